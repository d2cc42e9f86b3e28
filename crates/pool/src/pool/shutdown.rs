//! Shutting a pool down: refuse new work, wait for accepted work within a
//! timeout, then pass the deadline.

use std::time::{Duration, Instant};

use crate::pool::ComputePool;

impl ComputePool {
    /// Whether [`shutdown`](Self::shutdown) was called: new work is refused.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert!(!pool.is_shutdown());
    /// pool.shutdown_blocking(std::time::Duration::from_secs(1));
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.inner.engine.ledger.is_closed()
    }

    /// Stops accepting work and waits, without blocking the executor, until
    /// every accepted job has finished or `timeout` passes. Returns `true`
    /// if the pool went idle in time.
    ///
    /// New submissions resolve to `Err(Shutdown)` at once. Jobs already
    /// accepted run normally until the timeout; after it, jobs that have not
    /// started resolve to `Err(Shutdown)` without running (as soon as a
    /// compute thread reaches them), jobs waiting for room under
    /// `max_in_flight` resolve to `Err(Shutdown)` at once, and running jobs see their
    /// [`CancelToken`](crate::CancelToken) cancelled. Needs no Tokio runtime (the wait happens on
    /// a short-lived helper thread). Called from one of this pool's own jobs
    /// it cannot go idle (the caller is active) and waits for the timeout.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let job = pool.execute(|| std::thread::sleep(Duration::from_millis(10)));
    /// assert!(pool.shutdown(Duration::from_secs(10)).await);
    /// assert!(job.await.is_ok()); // accepted before shutdown: it ran
    /// assert!(pool.execute(|| ()).await.unwrap_err().is_shutdown());
    /// # }
    /// ```
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        let engine = &self.inner.engine;
        engine.ledger.close();
        if engine.ledger.active() == 0 {
            return true;
        }
        let (tx, rx) = compute_bridge::channel();
        let pool = self.clone();
        let waiter = std::thread::Builder::new()
            .name(format!("{}-shutdown", engine.config.thread_name_prefix))
            .spawn(move || {
                let _ = tx.send(pool.shutdown_blocking(timeout));
            });
        match waiter {
            Ok(_) => rx.await.unwrap_or(false),
            // No thread to wait on: wait here (this blocks the caller).
            Err(_) => self.shutdown_blocking(timeout),
        }
    }

    /// [`shutdown`](Self::shutdown), blocking the calling thread.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let job = pool.execute(|| 7);
    /// assert!(pool.shutdown_blocking(Duration::from_secs(10)));
    /// assert_eq!(futures::executor::block_on(job).unwrap(), 7);
    /// ```
    pub fn shutdown_blocking(&self, timeout: Duration) -> bool {
        let engine = &self.inner.engine;
        engine.ledger.close();
        if engine.ledger.wait_idle(Instant::now().checked_add(timeout)) {
            return true;
        }
        engine.pass_deadline();
        false
    }
}
