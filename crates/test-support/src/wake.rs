//! A waker that counts its wakes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

/// Counts the wakes of the [`Waker`]s made from it.
#[derive(Debug, Default)]
pub struct CountingWaker(AtomicUsize);

impl CountingWaker {
    /// A fresh counter, and a waker that counts into it.
    pub fn new() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    /// How many times the waker was woken so far.
    pub fn wakes(&self) -> usize {
        // ORDERING: SeqCst: test bookkeeping, read after the poll that
        // woke (same thread) or after the wake happened-before the read.
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // ORDERING: SeqCst, see `wakes`.
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
