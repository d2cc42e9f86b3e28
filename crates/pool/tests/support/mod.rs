//! Helpers shared by the pool's behaviour tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use compute_pool::{ComputeConfig, ComputePool, TaskHandle};

/// Every test fails instead of hanging after this long.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A pool with `threads` compute threads and otherwise default settings.
pub fn pool(threads: usize) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        ..Default::default()
    })
    .expect("a valid config")
}

/// Awaits `fut` under [`LIMIT`], failing the test on a hang.
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("the test hung: timed out")
}

/// Runs `f` on its own thread and fails the test if it takes longer than
/// [`LIMIT`] (for tests with no async runtime).
pub fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(LIMIT, f)
}

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `limit`: a hang (say, a runtime blocked on one of its own workers) fails
/// fast instead of stalling the suite.
pub fn watchdog_for<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the test hung for more than {limit:?}"),
    }
}

/// Polls `cond` until it holds, failing the test after [`LIMIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
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
