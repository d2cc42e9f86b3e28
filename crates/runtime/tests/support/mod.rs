//! Helpers shared by the runtime's behaviour tests (a copy of the part of
//! the pool tests' helpers these tests use).
#![allow(dead_code)]

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// Every test fails instead of hanging after this long.
pub const LIMIT: Duration = Duration::from_secs(60);

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
