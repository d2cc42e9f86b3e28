//! The submitting methods that take one closure: the async ones (`execute`,
//! `install`, `execute_cancellable`, `try_execute`), which return a handle
//! to await, and the ones that wait in place (`execute_sync`,
//! `execute_here`). Each is `#[track_caller]`, so the job carries its
//! submitter's call site.

use std::panic::Location;

use crate::cancel::CancelToken;
use crate::error::ComputeError;
use crate::handle::TaskHandle;
use crate::ledger::Room;
use crate::pool::ComputePool;

impl ComputePool {
    /// Runs `f` on a compute thread and returns a handle to await its result.
    ///
    /// `f` panicking gives `Err(ComputeError::Panicked)`; the thread and the
    /// pool carry on. Dropping the handle before the job starts means it
    /// never runs. See [`TaskHandle`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let primes = pool
    ///     .execute(|| (2..10_000u32).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0)).count())
    ///     .await
    ///     .unwrap();
    /// assert_eq!(primes, 1229);
    /// # }
    /// ```
    #[track_caller]
    pub fn execute<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| f())
    }

    /// Runs `f` on a compute thread like [`execute`](Self::execute); rayon's
    /// parallel iterators, `join` and `scope` inside `f` use this pool.
    ///
    /// (Every job runs on this pool's threads, so `install` and `execute` do
    /// the same thing; `install` reads better around parallel iterators.)
    ///
    /// ```
    /// use rayon::prelude::*;
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let words = vec!["tokio".to_string(), "rayon".into(), "bridge".into()];
    /// let lengths = futures::executor::block_on(
    ///     pool.install(move || words.par_iter().map(|w| w.len()).collect::<Vec<_>>()),
    /// )
    /// .unwrap();
    /// assert_eq!(lengths, vec![5, 5, 6]);
    /// ```
    #[track_caller]
    pub fn install<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| f())
    }

    /// Runs `f` on a compute thread, giving it a [`CancelToken`] that turns
    /// true when the handle is dropped or cancelled (or the shutdown deadline
    /// passes), so long work can stop early.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let handle = pool.execute_cancellable(move |token| {
    ///     let mut rounds = 0u64;
    ///     while !token.is_cancelled() {
    ///         rounds += 1;
    ///         std::hint::black_box(rounds);
    ///     }
    ///     tx.send(rounds).unwrap();
    /// });
    /// // Give up after 20 ms: the timeout drops the handle, the loop sees it.
    /// assert!(tokio::time::timeout(Duration::from_millis(20), handle).await.is_err());
    /// assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap() > 0);
    /// # }
    /// ```
    #[track_caller]
    pub fn execute_cancellable<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async(f)
    }

    /// Runs `f` on the pool and blocks the calling thread until it is done.
    /// `f` may borrow from the caller's stack.
    ///
    /// From one of this pool's threads it runs `f` inline. From a thread of
    /// another rayon pool it goes through rayon's `install`, so that thread
    /// keeps running its own pool's jobs while it waits. From any other
    /// thread it blocks only that thread (spinning briefly when the pool's
    /// jobs are short, as an `.await` does, then parking), so from async
    /// code call it inside
    /// `tokio::task::spawn_blocking` (or `block_in_place`): called directly on
    /// a Tokio worker it stalls that worker. Not limited by `max_in_flight`
    /// (each blocked caller adds at most one job).
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let data = vec![3u64, 1, 4, 1, 5, 9, 2, 6];
    /// let max = pool.execute_sync(|| data.iter().copied().max()).unwrap();
    /// assert_eq!(max, Some(9));
    /// assert_eq!(data.len(), 8); // still ours: it was only borrowed
    /// ```
    #[track_caller]
    pub fn execute_sync<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        self.inner.submit_and_wait(f)
    }

    /// Runs `f` here, on the calling thread, as a job of this pool: it is
    /// counted in the metrics like any other job, a panic in it is
    /// [`ComputeError::Panicked`], and after [`shutdown`](Self::shutdown) it
    /// is refused with [`ComputeError::Shutdown`] without running (its
    /// captures are dropped, a panic in their `Drop` contained). Not limited
    /// by `max_in_flight`: nothing waits for a compute thread.
    ///
    /// Meant for work too short to be worth a hand-off (a size class's
    /// `Small`, or adaptive dispatch's inline runs); it runs on the calling
    /// thread, so on an async thread keep it short.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.execute_here(|| 6 * 7).unwrap(), 42);
    /// assert!(pool.execute_here(|| -> u8 { panic!("contained") }).unwrap_err().is_panic());
    /// assert_eq!(pool.metrics().tasks_total(), 2);
    /// pool.shutdown_blocking(std::time::Duration::from_secs(1));
    /// assert!(pool.execute_here(|| ()).unwrap_err().is_shutdown());
    /// ```
    #[track_caller]
    pub fn execute_here<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R,
    {
        self.inner.submit_here(move |_| f())
    }

    /// Like [`execute`](Self::execute), but with `max_in_flight` set and no
    /// room (or other jobs already waiting for room), answers
    /// `Err(ComputeError::Saturated)` at once instead of queueing the job;
    /// after shutdown, `Err(ComputeError::Shutdown)`.
    ///
    /// ```
    /// use compute_pool::{ComputeConfig, ComputeError, ComputePool};
    /// let pool = ComputePool::new(ComputeConfig { max_in_flight: Some(1), ..Default::default() }).unwrap();
    /// let (release, wait) = std::sync::mpsc::channel::<()>();
    /// let busy = pool.try_execute(move || wait.recv().unwrap()).unwrap();
    /// assert!(matches!(pool.try_execute(|| ()), Err(ComputeError::Saturated)));
    /// release.send(()).unwrap();
    /// futures::executor::block_on(busy).unwrap();
    /// ```
    #[track_caller]
    pub fn try_execute<F, R>(&self, f: F) -> Result<TaskHandle<R>, ComputeError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner
            .submit(Room::InFlight, self.lane, move |_: CancelToken<'_>| f())
    }

    /// [`execute`](Self::execute) on behalf of a caller at `location`, the
    /// job's call site: for the adaptors that submit later (the stream
    /// adaptors, adaptive dispatch), where `#[track_caller]` cannot reach.
    pub(crate) fn execute_from<F, R>(
        &self,
        location: &'static Location<'static>,
        f: F,
    ) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async_from(location, move |_: CancelToken<'_>| f())
    }

    /// [`execute_here`](Self::execute_here) on behalf of a caller at
    /// `location` (see [`execute_from`](Self::execute_from)).
    pub(crate) fn execute_here_from<F, R>(
        &self,
        location: &'static Location<'static>,
        f: F,
    ) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R,
    {
        self.inner.submit_here_from(location, move |_| f())
    }

    /// The one submission of every async method: refused work resolves the
    /// handle to its error.
    #[track_caller]
    pub(super) fn submit_async<W, R>(&self, work: W) -> TaskHandle<R>
    where
        W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async_from(Location::caller(), work)
    }

    fn submit_async_from<W, R>(
        &self,
        location: &'static Location<'static>,
        work: W,
    ) -> TaskHandle<R>
    where
        W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner
            .submit_from(location, Room::Any, self.lane, work)
            .unwrap_or_else(|error| TaskHandle::ready(Err(error)))
    }
}
