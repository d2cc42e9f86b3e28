//! Blocking a thread on a receiver: spin briefly, then park.

use std::task::{Poll, Wake, Waker};

use crate::channel::Receiver;
use crate::error::RecvError;
use crate::sync::{spin_loop, thread};

/// How long a blocking wait spins before it parks the thread.
///
/// Parking and being unparked costs tens of microseconds on a virtual
/// machine; spinning costs a core. A short spin pays off when the result is
/// about to arrive. The budget is a number of `spin_loop` hints, bounded, and
/// [`Spin::OFF`] parks at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spin {
    iterations: u32,
}

impl Spin {
    /// Never spin: park straight away.
    pub const OFF: Spin = Spin { iterations: 0 };

    /// The most a single wait will spin, whatever is asked for (roughly
    /// 100 µs on current x86 cores), so a spin can never turn into a busy loop.
    pub const MAX_ITERATIONS: u32 = 1 << 16;

    /// Spin for at most `n` hints (clamped to [`Spin::MAX_ITERATIONS`]).
    pub const fn iterations(n: u32) -> Spin {
        let iterations = if n > Self::MAX_ITERATIONS {
            Self::MAX_ITERATIONS
        } else {
            n
        };
        Spin { iterations }
    }

    /// The number of spin hints this budget allows.
    pub const fn get(self) -> u32 {
        self.iterations
    }
}

impl Default for Spin {
    /// A short spin (a few microseconds) that covers a result already on its way.
    fn default() -> Self {
        Spin::iterations(2_000)
    }
}

/// Wakes a parked thread.
struct Unparker(thread::Thread);

impl Wake for Unparker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

impl<T> Receiver<T> {
    /// Blocks the current thread until the result arrives, spinning for
    /// [`Spin::default`] first.
    ///
    /// Do not call this on an async executor's thread: it blocks the thread.
    pub fn recv_blocking(self) -> Result<T, RecvError> {
        self.recv_blocking_with(Spin::default())
    }

    /// Blocks the current thread until the result arrives: spins for at most
    /// `spin`, then parks until the sender wakes it.
    ///
    /// Spurious unparks are harmless: the thread re-checks and parks again.
    pub fn recv_blocking_with(mut self, spin: Spin) -> Result<T, RecvError> {
        for _ in 0..spin.get() {
            if self.is_finished() {
                break;
            }
            spin_loop();
        }
        // A result already there needs no waker (and no allocation for one):
        // the state is final, so the first poll below returns it.
        let waker = if self.is_finished() {
            Waker::noop().clone()
        } else {
            Waker::from(std::sync::Arc::new(Unparker(thread::current())))
        };
        loop {
            match self.poll_with(&waker) {
                Poll::Ready(result) => return result,
                Poll::Pending => thread::park(),
            }
        }
    }
}
