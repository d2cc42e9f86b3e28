//! The peers our pool is measured against, written out here rather than
//! taken from a crate, so every line of their cost is visible.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What a peer's job gives its awaiter: the value, or the panic payload.
pub type JobResult<R> = Result<R, Box<dyn Any + Send + 'static>>;

/// The awaitable end of a peer's job: a `tokio::sync::oneshot` receiver.
#[derive(Debug)]
pub struct PeerHandle<R> {
    rx: tokio::sync::oneshot::Receiver<JobResult<R>>,
}

impl<R> Future for PeerHandle<R> {
    type Output = JobResult<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            // The sender lives in a job that always sends (the job itself is
            // behind catch_unwind), so this is a pool dropping queued jobs.
            Poll::Ready(Err(_)) => Poll::Ready(Err(Box::new("the pool dropped the job"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<R> PeerHandle<R> {
    /// Blocks the calling thread until the job is done (for callers outside
    /// any async runtime).
    pub fn wait(self) -> JobResult<R> {
        match self.rx.blocking_recv() {
            Ok(result) => result,
            Err(_) => Err(Box::new("the pool dropped the job")),
        }
    }
}

/// The naive bridge: `ThreadPool::spawn` a job that runs `f` under
/// `catch_unwind` and sends the outcome through a `tokio::sync::oneshot`.
/// This is exactly what the `tokio-rayon` crate does.
///
/// ```
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
/// let handle = compute_benches::peers::naive_spawn(&pool, || 6 * 7);
/// assert_eq!(futures::executor::block_on(handle).unwrap(), 42);
/// ```
pub fn naive_spawn<F, R>(pool: &rayon::ThreadPool, f: F) -> PeerHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    PeerHandle { rx }
}

/// The double hop: a job spawned on rayon's *global* pool, which then
/// `install`s `f` into the custom pool and sends the outcome back through a
/// `tokio::sync::oneshot`. Two thread hand-offs where one would do; a
/// pattern seen in services that keep a pool of their own beside rayon's
/// global one.
///
/// ```
/// use std::sync::Arc;
/// let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap());
/// let handle = compute_benches::peers::double_hop(&pool, || 6 * 7);
/// assert_eq!(futures::executor::block_on(handle).unwrap(), 42);
/// ```
pub fn double_hop<F, R>(pool: &Arc<rayon::ThreadPool>, f: F) -> PeerHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let pool = Arc::clone(pool);
    rayon::spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(|| pool.install(f)));
        let _ = tx.send(outcome);
    });
    PeerHandle { rx }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` on its own thread and fails the test if it takes longer
    /// than 30 s, so a lost wake-up fails fast instead of hanging.
    fn with_watchdog(body: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            body();
            let _ = done.send(());
        });
        match finished.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(()) => worker.join().expect("the test body does not panic"),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The body panicked: re-raise its panic here.
                if let Err(panic) = worker.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("the test did not finish within 30 s")
            }
        }
    }

    #[test]
    fn naive_spawn_reports_a_panic() {
        with_watchdog(naive_spawn_reports_a_panic_body);
    }

    fn naive_spawn_reports_a_panic_body() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool");
        let handle = naive_spawn(&pool, || -> u32 { panic!("boom") });
        let outcome = futures::executor::block_on(handle);
        let payload = outcome.expect_err("the job panicked");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        // The pool lives on.
        assert_eq!(naive_spawn(&pool, || 5).wait().ok(), Some(5));
    }

    #[test]
    fn double_hop_runs_on_the_custom_pool() {
        with_watchdog(double_hop_runs_on_the_custom_pool_body);
    }

    fn double_hop_runs_on_the_custom_pool_body() {
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|i| format!("custom-{i}"))
                .build()
                .expect("a one-thread pool"),
        );
        let name = double_hop(&pool, || std::thread::current().name().map(String::from))
            .wait()
            .expect("no panic");
        assert_eq!(name.as_deref(), Some("custom-0"));
    }
}
