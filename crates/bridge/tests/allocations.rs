//! What the channel allocates: one block per channel, and nothing more for
//! a blocking wait whose result is already there. Counted with a counting
//! global allocator (its own test binary, one test).

use compute_bridge::{channel, Spin};
use compute_test_support::alloc::{Counting, Snapshot};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn one_allocation_per_channel_and_none_for_a_wait_that_finds_the_result() {
    const N: usize = 1000;
    // The counters cover every thread, and the test harness's own thread
    // may still be allocating as this test starts (under valgrind it
    // often is). Other threads only add: the least of three windows is
    // this loop's.
    let allocations = (0..3)
        .map(|_| {
            let before = Snapshot::now();
            for i in 0..N {
                let (tx, rx) = channel::<usize>();
                tx.send(i).unwrap();
                assert_eq!(rx.recv_blocking_with(Spin::OFF).unwrap(), i);
            }
            Snapshot::now().since(before).allocations
        })
        .min();
    assert_eq!(allocations, Some(N as u64), "one allocation per channel");
}
