//! Bounds on how long a test may wait, so a hang fails instead of stalling
//! the suite.

use std::future::Future;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every test fails instead of hanging after this long.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Awaits `fut` under [`LIMIT`], failing the test on a hang. Needs a tokio
/// runtime with the time driver enabled.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// assert_eq!(compute_test_support::within(async { 7 }).await, 7);
/// # });
/// ```
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("the test hung: timed out")
}

/// Runs `f` on its own thread and fails the test if it takes longer than
/// [`LIMIT`] (for tests with no async runtime).
///
/// ```
/// assert_eq!(compute_test_support::watchdog(|| 6 * 7), 42);
/// ```
pub fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(LIMIT, f)
}

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `limit`: a hang (say, a runtime blocked on one of its own workers) fails
/// fast instead of stalling the suite. A panic in `f` is resumed on the
/// caller's thread.
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
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_for(LIMIT, what, cond);
}

/// Polls `cond` (every millisecond) until it holds, failing the test after
/// `limit` with a message naming `what` it waited for.
pub fn wait_until_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_returns_the_value_and_resumes_a_panic() {
        assert_eq!(watchdog(|| 42), 42);
        let caught = std::panic::catch_unwind(|| watchdog(|| panic!("on purpose")));
        assert!(caught.is_err());
    }

    #[test]
    fn watchdog_for_fails_a_hang() {
        let caught = std::panic::catch_unwind(|| {
            watchdog_for(Duration::from_millis(10), || {
                std::thread::sleep(Duration::from_secs(1))
            })
        });
        assert!(caught.is_err());
    }

    #[test]
    fn wait_until_returns_once_the_condition_holds_and_fails_a_hang() {
        let mut polls = 0;
        wait_until("three polls", || {
            polls += 1;
            polls == 3
        });
        assert_eq!(polls, 3);
        let caught = std::panic::catch_unwind(|| {
            wait_until_for(Duration::from_millis(5), "never", || false)
        });
        assert!(caught.is_err());
    }

    #[test]
    fn within_returns_the_output() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(within(async { 5 })), 5);
    }
}
