//! [`ComputePool`]: the public face of a pool. Each method says what it
//! does and delegates: admission and routing are in `submit.rs`, the state
//! jobs share in `engine.rs`, accounting in `ledger.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cancel::CancelToken;
use crate::config::{ComputeConfig, ConfigError};
use crate::engine::{Engine, PoolOwner};
use crate::error::{ArgumentError, ComputeError};
use crate::handle::TaskHandle;
use crate::home;
use crate::job::drop_contained;
use crate::ledger::Room;
use crate::metrics::ComputeMetrics;
use crate::priority::Priority;

/// A pool of compute threads that async code hands CPU-bound work to.
///
/// Each async method hands a job to the pool's own rayon threads (one hop:
/// a queue their runner tasks drain; rayon's global pool is never used or
/// created) and returns a [`TaskHandle`] to await. Inside a job, rayon's parallel
/// iterators, `scope` and `join` use this pool. Cloning is cheap (one
/// `Arc`); every clone is the same pool. Dropping the last clone lets queued
/// jobs finish, then the threads exit.
///
/// ```
/// use compute_pool::ComputePool;
/// use rayon::prelude::*;
///
/// let pool = ComputePool::with_defaults().unwrap();
/// let data: Vec<u64> = (0..10_000).collect();
/// let total = futures::executor::block_on(
///     pool.install(move || data.par_iter().map(|x| x * x).sum::<u64>()),
/// )
/// .unwrap();
/// assert_eq!(total, (0..10_000u64).map(|x| x * x).sum());
/// ```
///
/// # Calls from the pool's own threads
///
/// A job that calls back into its own pool (`execute`, `install`,
/// `execute_sync`, ...) runs the nested work inline, on the calling compute
/// thread, and gets an already-resolved handle. That can never deadlock,
/// even with one thread; use rayon's `join` or `scope` inside a job for
/// parallelism instead.
///
/// What can deadlock is a compute thread *blocking* on a handle it did not
/// create inline (say `futures::executor::block_on(handle)` inside a job,
/// for a handle submitted from outside): if every thread waits that way,
/// nothing is left to run the jobs they wait for. Pass data, not handles,
/// into jobs, or use `execute_sync`.
#[derive(Clone)]
pub struct ComputePool {
    pub(crate) inner: Arc<PoolOwner>,
    /// The lane this handle's jobs wait in.
    pub(crate) lane: Priority,
}

impl ComputePool {
    /// Builds a pool from a validated config.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the bad field and value, or
    /// [`ConfigError::Build`] if the threads cannot be spawned.
    ///
    /// ```
    /// use compute_pool::{ComputeConfig, ComputePool};
    /// let pool = ComputePool::new(ComputeConfig {
    ///     num_threads: Some(2),
    ///     stack_size: Some(4 << 20),
    ///     thread_name_prefix: "math".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let name = futures::executor::block_on(
    ///     pool.execute(|| std::thread::current().name().map(str::to_owned)),
    /// )
    /// .unwrap();
    /// assert!(name.unwrap().starts_with("math-"));
    ///
    /// assert!(ComputePool::new(ComputeConfig { num_threads: Some(0), ..Default::default() }).is_err());
    /// ```
    pub fn new(config: ComputeConfig) -> Result<ComputePool, ConfigError> {
        config.validate()?;
        let num_threads = config.effective_num_threads();
        let engine = Arc::new(Engine::new(config, num_threads));
        let prefix = engine.config.thread_name_prefix.clone();
        let mut builder = rayon::ThreadPoolBuilder::new()
            .num_threads(num_threads)
            .thread_name(move |index| format!("{prefix}-{index}"))
            .panic_handler({
                let engine = Arc::downgrade(&engine);
                move |_payload| {
                    // Jobs catch their own panics; this sees only a panic that
                    // escaped the job wrapper. Count it and carry on.
                    if let Some(engine) = engine.upgrade() {
                        engine.metrics.record_escaped_panic();
                    }
                }
            })
            .start_handler({
                let engine = engine.clone();
                move |index| {
                    home::serve(engine.clone(), index);
                    engine.detector.register(index);
                    run_start_hook(&engine);
                }
            });
        if let Some(size) = engine.config.stack_size {
            builder = builder.stack_size(size);
        }
        let rayon = builder.build().map_err(|err| ConfigError::Build {
            what: "compute pool".to_owned(),
            message: err.to_string(),
        })?;
        crate::watchdog::start_watchdog(&engine);
        let inner = Arc::new(PoolOwner { rayon, engine });
        inner.engine.set_owner(&inner);
        Ok(ComputePool {
            inner,
            lane: Priority::High,
        })
    }

    /// Builds a pool with [`ComputeConfig::default`]: about half the cores.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert!(pool.num_threads() >= 1);
    /// ```
    pub fn with_defaults() -> Result<ComputePool, ConfigError> {
        ComputePool::new(ComputeConfig::default())
    }

    /// Number of compute threads.
    ///
    /// ```
    /// use compute_pool::{ComputeConfig, ComputePool};
    /// let pool = ComputePool::new(ComputeConfig { num_threads: Some(3), ..Default::default() }).unwrap();
    /// assert_eq!(pool.num_threads(), 3);
    /// ```
    pub fn num_threads(&self) -> usize {
        self.inner.engine.num_threads
    }

    /// The configuration the pool was built with.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.config().thread_name_prefix, "compute");
    /// ```
    pub fn config(&self) -> &ComputeConfig {
        &self.inner.engine.config
    }

    /// A snapshot of the pool's counters.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| 2 + 2);
    /// let m = pool.metrics();
    /// assert_eq!((m.tasks_total(), m.tasks_completed(), m.tasks_active()), (1, 1, 0));
    /// ```
    pub fn metrics(&self) -> ComputeMetrics {
        let engine = &self.inner.engine;
        let waiting = [Priority::High, Priority::Low].map(|lane| engine.queue.waiting(lane));
        engine
            .metrics
            .snapshot(self.num_threads(), engine.ledger.counts(), waiting)
    }

    /// Statistics per call site: for each place in the source that
    /// submitted jobs to this pool, how many finished, their compute time and
    /// queue wait, and how many were found blocked (see the guide's "Jobs
    /// that block"). Sorted by file and line.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let line = line!() + 1;
    /// futures::executor::block_on(pool.execute(|| 1)).unwrap();
    /// let sites = pool.call_sites();
    /// assert_eq!((sites[0].line, sites[0].jobs), (line, 1));
    /// ```
    pub fn call_sites(&self) -> Vec<crate::CallSiteStats> {
        self.inner.engine.detector.sites.snapshot()
    }

    /// Whether this platform can detect jobs that block (Linux: it reads
    /// each compute thread's CPU clock); elsewhere the detector is off and
    /// `blocked_tasks` stays 0. It never guesses.
    ///
    /// ```
    /// assert_eq!(
    ///     compute_pool::ComputePool::blocked_detector_available(),
    ///     cfg!(target_os = "linux"),
    /// );
    /// ```
    pub fn blocked_detector_available() -> bool {
        crate::detector::AVAILABLE
    }

    /// Whether every compute thread is in a blocked job while jobs wait, as
    /// of the detector's last look (see the guide's "Jobs that block");
    /// false again once a thread frees up.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert!(!pool.is_starved());
    /// ```
    pub fn is_starved(&self) -> bool {
        self.inner.engine.metrics.is_starved()
    }

    /// A handle to this same pool whose jobs wait in the `lane` given
    /// (see [`Priority`]); a cheap clone. A plain pool is
    /// [`Priority::High`].
    ///
    /// ```
    /// use compute_pool::{ComputePool, Priority};
    /// let pool = ComputePool::with_defaults().unwrap();
    /// let batch = pool.with_priority(Priority::Low);
    /// assert!(batch.same_pool(&pool));
    /// assert_eq!(batch.priority(), Priority::Low);
    /// ```
    pub fn with_priority(&self, lane: Priority) -> ComputePool {
        ComputePool {
            inner: self.inner.clone(),
            lane,
        }
    }

    /// The lane this handle's jobs wait in.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.priority(), compute_pool::Priority::High);
    /// ```
    pub fn priority(&self) -> Priority {
        self.lane
    }

    /// Whether the current thread is one of this pool's compute threads.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert!(!pool.is_worker_thread());
    /// let inside = pool.execute_sync({ let pool = pool.clone(); move || pool.is_worker_thread() });
    /// assert!(inside.unwrap());
    /// ```
    pub fn is_worker_thread(&self) -> bool {
        self.inner.is_worker_thread()
    }

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

    /// Runs `f` inside a `rayon::scope` on a compute thread: `f` can spawn
    /// any number of tasks, decided at run time; the handle resolves after all
    /// of them finish. A panic in any of them gives `Panicked`.
    ///
    /// Tasks outlive `f`'s own locals, so they own (or share) their data.
    /// For tasks that write into locals read after the scope, call
    /// `rayon::scope` inside [`install`](Self::install) instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let total = Arc::new(AtomicU64::new(0));
    /// let sink = total.clone();
    /// pool.execute_scoped(move |scope| {
    ///     for part in 0..4u64 {
    ///         let sink = sink.clone();
    ///         scope.spawn(move |_| {
    ///             let sum: u64 = (part * 1000..(part + 1) * 1000).sum();
    ///             sink.fetch_add(sum, Ordering::Relaxed);
    ///         });
    ///     }
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(total.load(Ordering::Relaxed), (0..4000u64).sum());
    /// # }
    /// ```
    #[track_caller]
    pub fn execute_scoped<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: for<'s> FnOnce(&rayon::Scope<'s>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| rayon::scope(f))
    }

    /// Like [`execute_scoped`](Self::execute_scoped) with `rayon::scope_fifo`:
    /// tasks spawned from one thread start in the order they were spawned.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let pool = compute_pool::ComputePool::new(compute_pool::ComputeConfig {
    ///     num_threads: Some(1),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let seen = order.clone();
    /// futures::executor::block_on(pool.execute_scoped_fifo(move |scope| {
    ///     for i in 0..4 {
    ///         let seen = seen.clone();
    ///         scope.spawn_fifo(move |_| seen.lock().unwrap().push(i));
    ///     }
    /// }))
    /// .unwrap();
    /// assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn execute_scoped_fifo<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: for<'s> FnOnce(&rayon::ScopeFifo<'s>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| rayon::scope_fifo(f))
    }

    /// Runs `a` and `b` in parallel on the pool (`rayon::join`) and resolves
    /// to both results.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let (evens, odds) = futures::executor::block_on(pool.join(
    ///     || (0..100u32).filter(|n| n % 2 == 0).count(),
    ///     || (0..100u32).filter(|n| n % 2 == 1).count(),
    /// ))
    /// .unwrap();
    /// assert_eq!((evens, odds), (50, 50));
    /// ```
    #[track_caller]
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> TaskHandle<(RA, RB)>
    where
        A: FnOnce() -> RA + Send + 'static,
        B: FnOnce() -> RB + Send + 'static,
        RA: Send + 'static,
        RB: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| rayon::join(a, b))
    }

    /// Maps `f` over `items` in parallel on the pool; the output keeps the
    /// input's order.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let squares = futures::executor::block_on(pool.par_map((1..=5u32).collect(), |x| x * x)).unwrap();
    /// assert_eq!(squares, vec![1, 4, 9, 16, 25]);
    /// ```
    #[track_caller]
    pub fn par_map<T, R, F>(&self, items: Vec<T>, f: F) -> TaskHandle<Vec<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| items.into_par_iter().map(f).collect())
    }

    /// Splits `items` into chunks of `batch_size`, runs `f` on the chunks in
    /// parallel on the pool, and concatenates the outputs in input order.
    ///
    /// A `batch_size` of 0 resolves to [`ComputeError::InvalidArgument`]
    /// naming `batch_size`.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let lines: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    /// let lengths = futures::executor::block_on(pool.parallel_batch(lines, 4, |chunk: &[String]| {
    ///     chunk.iter().map(|l| l.len()).collect::<Vec<_>>()
    /// }))
    /// .unwrap();
    /// assert_eq!(lengths, vec![6; 10]);
    ///
    /// let err = futures::executor::block_on(pool.parallel_batch(vec![1], 0, |c: &[i32]| c.to_vec()));
    /// assert!(err.unwrap_err().to_string().contains("batch_size = 0"));
    /// ```
    #[track_caller]
    pub fn parallel_batch<T, R, F>(
        &self,
        items: Vec<T>,
        batch_size: usize,
        f: F,
    ) -> TaskHandle<Vec<R>>
    where
        T: Send + Sync + 'static,
        R: Send + 'static,
        F: Fn(&[T]) -> Vec<R> + Send + Sync + 'static,
    {
        if batch_size == 0 {
            // Never runs: dropped here, a panic from its captures contained.
            drop_contained(&self.inner.engine, (items, f));
            return TaskHandle::ready(Err(ComputeError::InvalidArgument(Box::new(
                ArgumentError {
                    name: "batch_size",
                    value: batch_size.to_string(),
                    reason: "must be at least 1",
                },
            ))));
        }
        self.submit_async(move |_: CancelToken<'_>| {
            items.par_chunks(batch_size).flat_map_iter(&f).collect()
        })
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

    /// Whether `self` and `other` are handles to the same pool (clones of
    /// one another), for example to check that [`current`](crate::current)
    /// found the pool you expect.
    ///
    /// ```
    /// use compute_pool::ComputePool;
    /// let a = ComputePool::with_defaults().unwrap();
    /// let b = ComputePool::with_defaults().unwrap();
    /// assert!(a.same_pool(&a.clone()));
    /// assert!(!a.same_pool(&b));
    /// ```
    pub fn same_pool(&self, other: &ComputePool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
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

    /// Stops accepting work and waits, without blocking the executor, until
    /// every accepted job has finished or `timeout` passes. Returns `true`
    /// if the pool went idle in time.
    ///
    /// New submissions resolve to `Err(Shutdown)` at once. Jobs already
    /// accepted run normally until the timeout; after it, jobs that have not
    /// started resolve to `Err(Shutdown)` without running (as soon as a
    /// compute thread reaches them), jobs waiting for room under
    /// `max_in_flight` resolve to `Err(Shutdown)` at once, and running jobs see their
    /// [`CancelToken`] cancelled. Needs no Tokio runtime (the wait happens on
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

    /// The one submission of every async method: refused work resolves the
    /// handle to its error.
    #[track_caller]
    fn submit_async<W, R>(&self, work: W) -> TaskHandle<R>
    where
        W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner
            .submit(Room::Any, self.lane, work)
            .unwrap_or_else(|error| TaskHandle::ready(Err(error)))
    }
}

/// Runs the config's [`ThreadHook`](crate::ThreadHook), if any, on this
/// newly started compute thread; a panic is contained and counted as
/// escaped, and the thread serves the pool all the same.
fn run_start_hook(engine: &Engine) {
    let Some(hook) = &engine.config.on_thread_start else {
        return;
    };
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook.call())) {
        engine.metrics.record_escaped_panic();
        // The payload is nobody's: drop it, containing a panic from its Drop.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
    }
}

// A panic on a thread using the pool (or inside a job) leaves the pool
// consistent: its state is atomics and a lock held only to notify.
impl std::panic::UnwindSafe for ComputePool {}
impl std::panic::RefUnwindSafe for ComputePool {}

impl fmt::Debug for ComputePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = &self.inner.engine;
        let counts = engine.ledger.counts();
        f.debug_struct("ComputePool")
            .field("num_threads", &engine.num_threads)
            .field("thread_name_prefix", &engine.config.thread_name_prefix)
            .field("priority", &self.lane)
            .field("max_in_flight", &engine.config.max_in_flight)
            .field("shutdown", &engine.ledger.is_closed())
            .field("tasks_active", &engine.ledger.active())
            .field(
                "tasks_queued",
                &counts
                    .admitted
                    .saturating_sub(counts.started + counts.cancelled),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_await_spins_only_for_a_job_that_is_running_or_about_to() {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            ..Default::default()
        })
        .unwrap();
        let engine = &pool.inner.engine;
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = pool.execute(move || wait.recv().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.ledger.counts().started < 1 {
            assert!(Instant::now() < deadline, "the blocking job never started");
            std::thread::yield_now();
        }
        // Jobs 1, 2 and 3 queue behind the running job 0.
        let queued: Vec<_> = (0..3).map(|_| pool.execute(|| ())).collect();
        assert!(engine.spin_budget(0).is_some(), "running");
        assert!(
            engine.spin_budget(1).is_none(),
            "next in line, but no thread is free"
        );
        assert!(engine.spin_budget(2).is_none(), "one job ahead, one thread");
        assert!(engine.spin_budget(3).is_none(), "two jobs ahead");
        // With a thread free, the next job in line will start at once.
        let two = ComputePool::new(ComputeConfig {
            num_threads: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert!(
            two.inner.engine.spin_budget(0).is_some(),
            "first in line, threads free"
        );
        release.send(()).unwrap();
        futures::executor::block_on(blocker).unwrap();
        for handle in queued {
            futures::executor::block_on(handle).unwrap();
        }
    }

    fn one_thread_pool() -> ComputePool {
        ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn thousands_of_jobs_queued_behind_a_busy_thread_all_run() {
        let pool = one_thread_pool();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = pool.execute(move || wait.recv().unwrap());
        let jobs = 5000;
        let handles: Vec<_> = (0..jobs).map(|i| pool.execute(move || i)).collect();
        release.send(()).unwrap();
        futures::executor::block_on(blocker).unwrap();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(futures::executor::block_on(handle).unwrap(), i);
        }
    }

    #[test]
    fn runners_retire_once_the_pool_is_idle() {
        let pool = one_thread_pool();
        let handles: Vec<_> = (0..100u64).map(|i| pool.execute(move || i * 2)).collect();
        for (i, handle) in (0..100u64).zip(handles) {
            assert_eq!(futures::executor::block_on(handle).unwrap(), i * 2);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.inner.engine.queue.runners.alive() > 0 {
            assert!(Instant::now() < deadline, "a runner never retired");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_execute_job_with_two_words_of_captures_is_queued_inline() {
        let pool = one_thread_pool();
        let engine = &pool.inner.engine;
        let (ticket, _) = engine.ledger.admit(Room::Any).unwrap();
        let (tx, _rx) = compute_bridge::channel();
        let captures = (Arc::new(1u64), 2u64);
        let work = move |_: CancelToken<'_>| *captures.0 + captures.1;
        let job = crate::erased::ErasedJob::new(crate::job::Job::new(
            engine,
            ticket,
            tx,
            home::site(engine, std::panic::Location::caller()),
            work,
        ));
        assert!(job.is_inline());
        job.discard(engine);
    }

    #[test]
    fn only_a_pool_of_two_threads_or_more_keeps_a_runner_alive() {
        let keep_alive = Duration::from_millis(40);
        let keep_alive_of = |num_threads, runner_keep_alive| {
            let pool = ComputePool::new(ComputeConfig {
                num_threads: Some(num_threads),
                runner_keep_alive,
                ..Default::default()
            })
            .unwrap();
            pool.inner.engine.runner_keep_alive()
        };
        assert_eq!(keep_alive_of(2, keep_alive), Some(keep_alive));
        assert_eq!(
            keep_alive_of(1, keep_alive),
            None,
            "rayon keeps its one thread"
        );
        assert_eq!(keep_alive_of(2, Duration::ZERO), None, "switched off");
    }

    #[test]
    fn a_kept_alive_runner_serves_the_next_jobs_then_retires() {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(2),
            runner_keep_alive: Duration::from_millis(100),
            await_spin_limit: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
        let runners = &pool.inner.engine.queue.runners;
        let deadline = Instant::now() + Duration::from_secs(10);
        // A stall longer than the keep-alive lets the runner retire early;
        // try again rather than fail on a busy machine.
        let dozed = (0..20).any(|i| {
            assert_eq!(
                futures::executor::block_on(pool.execute(move || i)).unwrap(),
                i
            );
            let until = Instant::now() + Duration::from_millis(50);
            while Instant::now() < until {
                if runners.dozing() {
                    return true;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            false
        });
        assert!(dozed, "the runner never dozed");
        while runners.alive() > 0 {
            assert!(Instant::now() < deadline, "a dozing runner never retired");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
