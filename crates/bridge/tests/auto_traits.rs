//! Both ends of a channel are `Unpin` whatever the value, as with `std`'s
//! `Arc` (the channel's own `Arc` is `Unpin` only when the value is).

use std::marker::PhantomPinned;

fn unpin<T: Unpin>() {}

#[test]
fn both_ends_are_unpin_even_for_a_value_that_is_not() {
    unpin::<compute_bridge::Sender<PhantomPinned>>();
    unpin::<compute_bridge::Receiver<PhantomPinned>>();
}
