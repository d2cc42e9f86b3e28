//! [`ComputePool`]: CPU work from async code onto a dedicated rayon pool.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use compute_bridge::Spin;
use rayon::prelude::*;

use crate::config::{ComputeConfig, ConfigError};
use crate::context;
use crate::error::{ArgumentError, ComputeError};
use crate::gate::Gate;
use crate::handle::{CancelToken, TaskHandle};
use crate::inline_job::InlineJob;
use crate::job::{run_measured, ComputeThreadHome, Job, StackJob, SubmitSpan};
use crate::metrics::{ComputeMetrics, PoolMetrics};
use crate::run_queue::{self, RunQueue};
use crate::spin::{spin_until, AwaitSpin};

/// Lifecycle: accepting work.
const OPEN: u8 = 0;
/// Lifecycle: shutdown started; new submissions are refused, accepted jobs run.
const CLOSED: u8 = 1;
/// Lifecycle: the shutdown deadline passed; jobs that have not started are
/// discarded with `Shutdown` when a compute thread reaches them.
const PAST_DEADLINE: u8 = 2;

/// What jobs share with the pool. Jobs and the compute threads hold this,
/// never the rayon pool, so dropping the last [`ComputePool`] lets the
/// threads finish and exit.
pub(crate) struct Shared {
    pub(crate) metrics: PoolMetrics,
    /// How long a first `.await` may spin; learned from compute times.
    pub(crate) await_spin: AwaitSpin,
    /// Jobs record their submission time relative to this.
    epoch: Instant,
    config: ComputeConfig,
    /// Where `execute`'s jobs wait for a runner (see `run_queue.rs`).
    pub(crate) run_queue: RunQueue,
    num_threads: usize,
    lifecycle: AtomicU8,
    /// The `max_in_flight` limit and its queue; `None` when unbounded.
    pub(crate) gate: Option<Gate>,
    /// Shutdown waits here for the pool to go idle.
    idle_lock: Mutex<()>,
    idle: Condvar,
    /// The pool handle, set once right after the rayon pool is built; read by
    /// [`context::current`].
    handle: OnceLock<Weak<PoolHandle>>,
}

impl Shared {
    /// Whether new work is refused.
    pub(crate) fn is_closed(&self) -> bool {
        // ORDERING: Relaxed: a flag checked per submission; nothing is read
        // on the strength of it. A submission racing `shutdown` may slip in,
        // and is then simply one more job shutdown waits for.
        self.lifecycle.load(Ordering::Relaxed) != OPEN
    }

    /// Whether jobs that have not started must be discarded.
    pub(crate) fn is_past_deadline(&self) -> bool {
        // ORDERING: Relaxed: as above; a job that misses the flag by a hair
        // runs, which shutdown allows (it cannot stop running jobs anyway).
        self.lifecycle.load(Ordering::Relaxed) == PAST_DEADLINE
    }

    /// Called whenever a job leaves the active set: wakes a shutdown waiting
    /// for the pool to go idle. Costs one relaxed load while the pool is open.
    pub(crate) fn notify_if_closing(&self) {
        if self.is_closed() {
            let _guard = self
                .idle_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    /// How long the first poll of job number `number` (see
    /// [`PoolMetrics::record_submitted`]) may spin, if at all: only while
    /// the job is running or next in line for a thread (fewer jobs ahead of
    /// it than threads), and as long as the learned budget says. So the
    /// awaiter of the oldest of many jobs in flight spins, while one whose
    /// job must first wait for others parks.
    pub(crate) fn spin_budget(&self, number: u64) -> Option<Duration> {
        let budget = self.await_spin.budget()?;
        (self.metrics.queued_before(number) < self.num_threads as u64).then_some(budget)
    }

    /// How long a compute thread lingers for more work after a job: only
    /// while the await spin is on and jobs are short (see `spin.rs`).
    pub(crate) fn linger_budget(&self) -> Option<Duration> {
        self.await_spin
            .budget()
            .map(|budget| budget.min(crate::spin::LINGER))
    }

    /// How long a runner out of jobs may doze before it retires (see
    /// `ComputeConfig::runner_keep_alive`); `None` with one thread, which
    /// must stay free for rayon's own work.
    pub(crate) fn runner_keep_alive(&self) -> Option<Duration> {
        let keep_alive = self.config.runner_keep_alive;
        (self.num_threads > 1 && !keep_alive.is_zero()).then_some(keep_alive)
    }

    /// `at` as nanoseconds since the pool was built (saturating).
    pub(crate) fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The inverse of [`nanos_since_epoch`](Self::nanos_since_epoch).
    pub(crate) fn instant_since_epoch(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// The pool this state belongs to, while it is alive.
    pub(crate) fn pool(&self) -> Option<ComputePool> {
        let inner = self.handle.get()?.upgrade()?;
        Some(ComputePool { inner })
    }
}

/// Owns the rayon pool. Dropped with the last [`ComputePool`] clone; its
/// threads then finish the queued jobs (including those waiting for room,
/// which finishing jobs start) and exit.
pub(crate) struct PoolHandle {
    pub(crate) rayon: rayon::ThreadPool,
    pub(crate) shared: Arc<Shared>,
}

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
    pub(crate) inner: Arc<PoolHandle>,
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
        let shared = Arc::new(Shared {
            metrics: PoolMetrics::new(config.slow_task_threshold),
            await_spin: AwaitSpin::new(config.await_spin_limit),
            epoch: Instant::now(),
            gate: config.max_in_flight.map(Gate::new),
            num_threads,
            run_queue: RunQueue::new(num_threads),
            lifecycle: AtomicU8::new(OPEN),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
            handle: OnceLock::new(),
            config,
        });
        let prefix = shared.config.thread_name_prefix.clone();
        let mut builder = rayon::ThreadPoolBuilder::new()
            .num_threads(num_threads)
            .thread_name(move |index| format!("{prefix}-{index}"))
            .panic_handler({
                let shared = Arc::downgrade(&shared);
                move |_payload| {
                    // Jobs catch their own panics; this sees only a panic that
                    // escaped the job wrapper (say, from dropping a captured
                    // value of a job that never ran). Count it and carry on.
                    if let Some(shared) = shared.upgrade() {
                        shared.metrics.record_escaped_panic();
                    }
                }
            })
            .start_handler({
                let shared = shared.clone();
                move |_index| {
                    context::set_current_shared(Arc::downgrade(&shared));
                    ComputeThreadHome::enter(shared.clone());
                }
            });
        if let Some(size) = shared.config.stack_size {
            builder = builder.stack_size(size);
        }
        let rayon = builder.build().map_err(|err| ConfigError::Build {
            what: "compute pool".to_owned(),
            message: err.to_string(),
        })?;
        let inner = Arc::new(PoolHandle { rayon, shared });
        // Cannot fail: the cell is new and set only here.
        let _ = inner.shared.handle.set(Arc::downgrade(&inner));
        Ok(ComputePool { inner })
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
        self.inner.shared.num_threads
    }

    /// The configuration the pool was built with.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.config().thread_name_prefix, "compute");
    /// ```
    pub fn config(&self) -> &ComputeConfig {
        &self.inner.shared.config
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
        self.inner.shared.metrics.snapshot(self.num_threads())
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
        self.inner.rayon.current_thread_index().is_some()
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
        self.inner.shared.is_closed()
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
    pub fn execute<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(move |_: CancelToken<'_>| f())
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
    pub fn install<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(move |_: CancelToken<'_>| f())
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
    pub fn execute_cancellable<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(f)
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
    pub fn execute_scoped<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: for<'s> FnOnce(&rayon::Scope<'s>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(move |_: CancelToken<'_>| rayon::scope(f))
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
    pub fn execute_scoped_fifo<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: for<'s> FnOnce(&rayon::ScopeFifo<'s>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(move |_: CancelToken<'_>| rayon::scope_fifo(f))
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
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> TaskHandle<(RA, RB)>
    where
        A: FnOnce() -> RA + Send + 'static,
        B: FnOnce() -> RB + Send + 'static,
        RA: Send + 'static,
        RB: Send + 'static,
    {
        self.submit(move |_: CancelToken<'_>| rayon::join(a, b))
    }

    /// Maps `f` over `items` in parallel on the pool; the output keeps the
    /// input's order.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let squares = futures::executor::block_on(pool.par_map((1..=5u32).collect(), |x| x * x)).unwrap();
    /// assert_eq!(squares, vec![1, 4, 9, 16, 25]);
    /// ```
    pub fn par_map<T, R, F>(&self, items: Vec<T>, f: F) -> TaskHandle<Vec<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.submit(move |_: CancelToken<'_>| items.into_par_iter().map(f).collect())
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
            return TaskHandle::ready(Err(ComputeError::InvalidArgument(Box::new(
                ArgumentError {
                    name: "batch_size",
                    value: batch_size.to_string(),
                    reason: "must be at least 1",
                },
            ))));
        }
        self.submit(move |_: CancelToken<'_>| {
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
    pub fn execute_sync<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let shared = &*self.inner.shared;
        if shared.is_closed() {
            shared.metrics.record_rejected();
            return Err(ComputeError::Shutdown);
        }
        if self.is_worker_thread() {
            return self.run_inline(move |_| f());
        }
        if rayon::current_thread_index().is_some() {
            // A thread of another rayon pool: rayon's `install` keeps it
            // running its own pool's jobs while it waits. Parked, it would
            // not, and a job of ours that calls back into its pool could
            // wait for it forever.
            return self.run_accounted(|shared, submitted_at, span| {
                self.inner.rayon.install(move || {
                    run_measured(
                        shared,
                        submitted_at,
                        &span,
                        move |_| f(),
                        CancelToken::inline(shared),
                    )
                })
            });
        }
        // The job goes to the pool like any other, but lives on this stack,
        // borrowing what `f` borrows; this thread waits for its channel,
        // spinning first when the pool's jobs are short (see `spin.rs`).
        let (tx, rx) = compute_bridge::channel();
        let number = shared.metrics.record_submitted();
        let job = Job::new(shared, ComputeThreadHome, tx, move |_: CancelToken<'_>| f());
        let mut slot = Some(move || job.run());
        // SAFETY: `slot` stays here, untouched, until `rx` resolves below,
        // and this function neither returns nor unwinds before that (the
        // wait runs no user code). `rx` resolves when the job sends, after
        // `f` was consumed, or when the job is dropped unrun, after `f` was
        // dropped (see `Job::parts`); either way nothing `f` borrows is
        // used afterwards. The job itself was moved off the slot to run.
        let stack_job = unsafe { StackJob::new(&mut slot) };
        self.inner.rayon.spawn(move || stack_job.run());
        if let Some(budget) = shared.spin_budget(number) {
            spin_until(budget, || rx.is_finished());
        }
        rx.recv_blocking_with(Spin::OFF)
            .unwrap_or(Err(ComputeError::Lost))
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
    pub fn execute_here<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R,
    {
        let shared = &*self.inner.shared;
        if shared.is_closed() {
            shared.metrics.record_rejected();
            return Err(ComputeError::Shutdown);
        }
        self.run_inline(move |_| f())
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
    pub fn try_execute<F, R>(&self, f: F) -> Result<TaskHandle<R>, ComputeError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = &self.inner.shared;
        if shared.is_closed() {
            shared.metrics.record_rejected();
            return Err(ComputeError::Shutdown);
        }
        if self.is_worker_thread() {
            return Ok(TaskHandle::ready(self.run_inline(move |_| f())));
        }
        let Some(gate) = &shared.gate else {
            return Ok(self.spawn_job(move |_: CancelToken<'_>| f()));
        };
        let (tx, rx) = compute_bridge::channel();
        let job = Job::new(shared, shared.clone(), tx, move |_: CancelToken<'_>| f());
        match gate.try_enqueue(Box::new(job)) {
            Ok(spawn) => {
                let number = shared.metrics.record_submitted();
                if spawn {
                    self.spawn_puller();
                }
                Ok(TaskHandle::waiting(rx, shared.clone(), number))
            }
            Err(job) => {
                // Close the channel first, so the job does not count itself.
                drop(rx);
                drop(job);
                shared.metrics.record_rejected();
                Err(ComputeError::Saturated)
            }
        }
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
        let shared = &self.inner.shared;
        shared.close();
        if shared.metrics.active() == 0 {
            return true;
        }
        let (tx, rx) = compute_bridge::channel();
        let pool = self.clone();
        let waiter = std::thread::Builder::new()
            .name(format!("{}-shutdown", shared.config.thread_name_prefix))
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
        let shared = &self.inner.shared;
        shared.close();
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = shared
            .idle_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if shared.metrics.active() == 0 {
                return true;
            }
            let now = Instant::now();
            let left = match deadline {
                Some(deadline) if now >= deadline => break,
                Some(deadline) => deadline - now,
                None => Duration::MAX,
            };
            // Jobs notify as they leave; the bounded wait also covers a
            // notification that raced the check above.
            let slice = left.min(Duration::from_millis(10));
            guard = shared
                .idle
                .wait_timeout(guard, slice)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(guard);
        shared.pass_deadline();
        false
    }

    /// Runs `work` here, on a thread of this pool, as a nested call.
    fn run_inline<W, R>(&self, work: W) -> Result<R, ComputeError>
    where
        W: FnOnce(CancelToken<'_>) -> R,
    {
        self.run_accounted(|shared, submitted_at, span| {
            run_measured(
                shared,
                submitted_at,
                &span,
                work,
                CancelToken::inline(shared),
            )
        })
    }

    /// Counts a job whose caller waits for it in place (no channel), and
    /// calls `run` with the pool's state, the submission time and span.
    fn run_accounted<R>(
        &self,
        run: impl FnOnce(&Shared, Instant, SubmitSpan) -> Result<R, ComputeError>,
    ) -> Result<R, ComputeError> {
        let shared = &*self.inner.shared;
        shared.metrics.record_submitted();
        let result = run(shared, Instant::now(), SubmitSpan::current());
        shared.notify_if_closing();
        result
    }

    /// The one submission path of every async method.
    fn submit<W, R>(&self, work: W) -> TaskHandle<R>
    where
        W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = &self.inner.shared;
        if shared.is_closed() {
            shared.metrics.record_rejected();
            return TaskHandle::ready(Err(ComputeError::Shutdown));
        }
        if self.is_worker_thread() {
            return TaskHandle::ready(self.run_inline(work));
        }
        let Some(gate) = &shared.gate else {
            return self.spawn_job(work);
        };
        // With a limit, the job waits its turn in the pool's queue; a puller
        // holding a permit runs it. The handle just waits for the result.
        let (tx, rx) = compute_bridge::channel();
        let number = shared.metrics.record_submitted();
        let job = Job::new(shared, shared.clone(), tx, work);
        if gate.enqueue(Box::new(job)) {
            self.spawn_puller();
        }
        TaskHandle::waiting(rx, shared.clone(), number)
    }

    /// Spawns a puller, which holds a permit the caller took.
    fn spawn_puller(&self) {
        let shared = self.inner.shared.clone();
        self.inner.rayon.spawn(move || {
            if let Some(gate) = &shared.gate {
                gate.pull(&shared.metrics);
            }
        });
    }

    /// Wraps `work` in a [`Job`] and queues it for the pool's runners.
    fn spawn_job<W, R>(&self, work: W) -> TaskHandle<R>
    where
        W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = &self.inner.shared;
        let (tx, rx) = compute_bridge::channel();
        let number = shared.metrics.record_submitted();
        let job = Job::new(shared, ComputeThreadHome, tx, work);
        if shared.run_queue.claim_runner() {
            // A new runner takes this job along: no queue, no box.
            self.inner.rayon.spawn(move || {
                run_queue::runner_with(Some(move |before_send: &mut dyn FnMut()| {
                    job.run_then(before_send);
                }));
            });
        } else if shared.run_queue.push(InlineJob::new(job)) {
            self.inner.rayon.spawn(run_queue::runner);
        }
        TaskHandle::waiting(rx, shared.clone(), number)
    }
}

impl Shared {
    /// Refuses new work from now on.
    fn close(&self) {
        // ORDERING: Relaxed: the flag guards no data. Jobs that finish
        // concurrently may miss it and not notify; shutdown's bounded wait
        // re-checks the counters anyway.
        let _ = self
            .lifecycle
            .compare_exchange(OPEN, CLOSED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Discards jobs that have not started: those waiting for room resolve
    /// to `Shutdown` now, those in rayon's queue when a thread reaches them.
    fn pass_deadline(&self) {
        // ORDERING: Relaxed: as in `close`.
        self.lifecycle.store(PAST_DEADLINE, Ordering::Relaxed);
        if let Some(gate) = &self.gate {
            gate.discard_all();
        }
    }
}

// A panic on a thread using the pool (or inside a job) leaves the pool
// consistent: its state is atomics and a lock held only to notify.
impl std::panic::UnwindSafe for ComputePool {}
impl std::panic::RefUnwindSafe for ComputePool {}

impl fmt::Debug for ComputePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.inner.shared;
        f.debug_struct("ComputePool")
            .field("num_threads", &shared.num_threads)
            .field("thread_name_prefix", &shared.config.thread_name_prefix)
            .field("max_in_flight", &shared.gate.as_ref().map(Gate::limit))
            .field("waiting_for_room", &shared.gate.as_ref().map(Gate::waiting))
            .field("shutdown", &shared.is_closed())
            .field("tasks_active", &shared.metrics.active())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_await_spins_only_for_a_job_that_is_running_or_next_in_line() {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            ..Default::default()
        })
        .unwrap();
        let shared = &pool.inner.shared;
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = pool.execute(move || wait.recv().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.metrics.queued_before(1) > 0 {
            assert!(Instant::now() < deadline, "the blocking job never started");
            std::thread::yield_now();
        }
        // Jobs 1, 2 and 3 queue behind the running job 0.
        let queued: Vec<_> = (0..3).map(|_| pool.execute(|| ())).collect();
        assert!(shared.spin_budget(0).is_some(), "running");
        assert!(shared.spin_budget(1).is_some(), "next in line");
        assert!(shared.spin_budget(2).is_none(), "one job ahead, one thread");
        assert!(shared.spin_budget(3).is_none(), "two jobs ahead");
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
        while pool.inner.shared.run_queue.runners() > 0 {
            assert!(Instant::now() < deadline, "a runner never retired");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_execute_job_with_two_words_of_captures_is_queued_inline() {
        let shared = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            ..Default::default()
        })
        .unwrap()
        .inner
        .shared
        .clone();
        let (tx, _rx) = compute_bridge::channel();
        let captures = (Arc::new(1u64), 2u64);
        let work = move |_: CancelToken<'_>| *captures.0 + captures.1;
        let job = Job::new(&shared, ComputeThreadHome, tx, work);
        assert!(InlineJob::new(job).is_inline());
    }

    #[test]
    fn only_a_pool_of_two_threads_or_more_keeps_a_runner_alive() {
        let keep_alive = Duration::from_millis(40);
        let shared_of = |num_threads, runner_keep_alive| {
            let pool = ComputePool::new(ComputeConfig {
                num_threads: Some(num_threads),
                runner_keep_alive,
                ..Default::default()
            })
            .unwrap();
            pool.inner.shared.runner_keep_alive()
        };
        assert_eq!(shared_of(2, keep_alive), Some(keep_alive));
        assert_eq!(shared_of(1, keep_alive), None, "rayon keeps its one thread");
        assert_eq!(shared_of(2, Duration::ZERO), None, "switched off");
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
        let queue = &pool.inner.shared.run_queue;
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
                if queue.dozing() {
                    return true;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            false
        });
        assert!(dozed, "the runner never dozed");
        while queue.runners() > 0 {
            assert!(Instant::now() < deadline, "a dozing runner never retired");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
