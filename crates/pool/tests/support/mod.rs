//! Helpers shared by the pool's behaviour tests: a pool, a job that
//! occupies a compute thread, some CPU work; and, re-exported from
//! `compute-test-support`, the bounds that turn a hang into a failure.
#![allow(dead_code)]

use std::sync::mpsc;

use compute_pool::{ComputeConfig, ComputePool, TaskHandle};
// Each test binary uses a different subset.
#[allow(unused_imports)]
pub use compute_test_support::{wait_until, watchdog, watchdog_for, within, LIMIT};

/// A pool with `threads` compute threads and otherwise default settings.
pub fn pool(threads: usize) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        ..Default::default()
    })
    .expect("a valid config")
}

/// Occupies one compute thread until released, so later jobs queue.
pub struct Blocker {
    release: mpsc::Sender<()>,
    pub handle: TaskHandle<()>,
}

impl Blocker {
    /// Submits a job that blocks until [`Blocker::release`] and waits until
    /// it is running.
    pub fn occupy(pool: &ComputePool) -> Blocker {
        let (release, wait) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let handle = pool.execute(move || {
            started_tx.send(()).unwrap();
            let _ = wait.recv_timeout(LIMIT);
        });
        started_rx
            .recv_timeout(LIMIT)
            .expect("the blocking job did not start");
        Blocker { release, handle }
    }

    /// The blocking job's handle, and the sender that releases it.
    pub fn into_parts(self) -> (TaskHandle<()>, mpsc::Sender<()>) {
        (self.handle, self.release)
    }

    /// Lets the blocking job finish and returns its handle.
    pub fn release(self) -> TaskHandle<()> {
        let _ = self.release.send(());
        self.handle
    }
}

/// Some real CPU work: the number of primes below `n`.
pub fn count_primes(n: u32) -> usize {
    (2..n)
        .filter(|k| (2..*k).take_while(|d| d * d <= *k).all(|d| k % d != 0))
        .count()
}
