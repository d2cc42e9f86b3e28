//! [`ComputePool`]: the public face of a pool. Each method says what it
//! does and delegates: admission and routing are in `submit.rs`, the state
//! jobs share in `engine.rs`, accounting in `ledger.rs`.
//!
//! This file builds a pool and answers questions about it; its other
//! methods are grouped by job in the files beside it: `execute.rs` (one
//! closure, awaited or waited for), `parallel.rs` (rayon's `scope`, `join`
//! and parallel maps), `shutdown.rs`.

mod execute;
mod parallel;
mod shutdown;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use crate::config::{ComputeConfig, ConfigError};
use crate::engine::{Engine, PoolOwner};
use crate::home;
use crate::metrics::ComputeMetrics;
use crate::priority::Priority;

/// A pool of compute threads that async code hands CPU-bound work to.
///
/// Each async method hands a job to the pool's own rayon threads (one hop:
/// a queue their runner tasks drain; rayon's global pool is never used or
/// created) and returns a [`TaskHandle`](crate::TaskHandle) to await.
/// Inside a job, rayon's parallel iterators, `scope` and `join` use this
/// pool. Cloning is cheap (one
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
