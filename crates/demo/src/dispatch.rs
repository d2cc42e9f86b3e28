//! How a request handler hands its compute off: the pluggable strategy the
//! demo compares.
//!
//! Every endpoint builds a closure that uses rayon primitives (`par_iter`,
//! `par_chunks`, `scope`) and passes it to a [`Dispatcher`]. The dispatcher's
//! [`Mode`] decides where the closure runs and how the async handler waits:
//!
//! | mode | where the closure runs | how the handler waits |
//! |---|---|---|
//! | `pool` | our `ComputePool` (`execute`; with the pool full, `max_in_flight` jobs running and `max_queued` waiting, the job is refused) | `.await` on the pool's `TaskHandle` |
//! | `inline` | the Tokio worker that runs the handler | it does not: the worker is busy |
//! | `spawn-blocking` | a thread of Tokio's blocking pool | `.await` on the `JoinHandle` |
//! | `naive` | a plain `rayon::ThreadPool` via `spawn` | `.await` on a `tokio::sync::oneshot`, panics caught with `catch_unwind` (what the `tokio-rayon` crate does) |
//!
//! In `inline` and `spawn-blocking` the calling thread is not a rayon
//! thread, so before the closure runs the thread joins a one-thread rayon
//! pool of its own: `par_iter` and `scope` then run sequentially right there,
//! as they would for a user who computes in the handler, and rayon's global
//! pool is never created. Parallelism in those modes comes only from
//! concurrent requests.
//!
//! Whatever the mode, a panic in the closure becomes
//! [`DispatchError::Panicked`] for that request; the server lives on.
//!
//! # Lanes
//!
//! In `pool` mode each job waits in one of the pool's two lanes
//! ([`Priority`]): [`Dispatcher::in_lane`] gives a dispatcher whose jobs
//! go to the lane asked for. The service puts the work a user waits for in
//! the High lane and batch work in the Low lane:
//!
//! | endpoint | lane | why |
//! |---|---|---|
//! | `/tokenize` | High | interactive: a caller waits for a short answer |
//! | `/infer` | High | interactive: a prediction for a caller who waits |
//! | `/embed` | Low | batch work: embeddings computed in bulk |
//!
//! A waiting High job starts before a waiting Low job; Low still gets at
//! least one start in `low_priority_every`, and a Low job that has waited
//! `low_priority_max_wait` starts next. A running job is never pre-empted.
//! [`Dispatcher::with_lanes`]`(false)` turns lanes off: every job then goes
//! to the High lane, first come first served (the demo measures both). The
//! other modes have no lanes: [`Dispatcher::in_lane`] changes nothing there.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use compute_runtime::Priority;
use serde::{Deserialize, Serialize};

/// Where request handlers run their compute.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Our `ComputePool`: the async bridge under test.
    Pool,
    /// Directly on the Tokio worker thread (blocks the runtime).
    Inline,
    /// `tokio::task::spawn_blocking`.
    SpawnBlocking,
    /// `rayon::ThreadPool::spawn` + `tokio::sync::oneshot` + `catch_unwind`.
    Naive,
}

impl Mode {
    /// Every mode, in the order the default run measures them.
    pub const ALL: [Mode; 4] = [Mode::Pool, Mode::Inline, Mode::SpawnBlocking, Mode::Naive];

    /// The name used on the command line, in reports and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pool => "pool",
            Mode::Inline => "inline",
            Mode::SpawnBlocking => "spawn-blocking",
            Mode::Naive => "naive",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why dispatched compute produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The closure panicked; the message is the panic payload when it was a
    /// string.
    #[error("the computation panicked: {0}")]
    Panicked(String),
    /// The work was dropped before it produced a result (runtime or pool
    /// shutting down).
    #[error("the computation was cancelled: {0}")]
    Cancelled(String),
    /// The pool already holds `max_in_flight + max_queued` jobs (running
    /// or waiting): the work was refused at once, without queueing.
    #[error("the service is saturated: {0}")]
    Saturated(String),
    /// The pool refused the work or failed in another way.
    #[error("the compute pool failed: {0}")]
    Failed(String),
    /// The dispatcher could not be built.
    #[error("cannot build the {mode} dispatcher: {reason}")]
    Setup {
        /// The requested mode.
        mode: Mode,
        /// What went wrong.
        reason: String,
    },
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

thread_local! {
    /// Whether this thread already belongs to a rayon pool of its own (see
    /// [`join_local_rayon_pool`]).
    static HAS_LOCAL_POOL: Cell<bool> = const { Cell::new(false) };
}

/// Makes the calling thread the only worker of a private one-thread rayon
/// pool, once per thread, so that rayon primitives called here run
/// sequentially on this thread instead of creating rayon's global pool.
///
/// Does nothing on a thread that already is a rayon worker.
fn join_local_rayon_pool() -> Result<(), DispatchError> {
    if HAS_LOCAL_POOL.with(Cell::get) || rayon::current_thread_index().is_some() {
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
        .map_err(|e| DispatchError::Failed(format!("joining a one-thread rayon pool: {e}")))?;
    // rayon leaks the registry of a pool that adopted the current thread
    // (the thread keeps pointing at it); dropping the handle would only ask
    // that registry to terminate while this thread still uses it.
    std::mem::forget(pool);
    HAS_LOCAL_POOL.with(|flag| flag.set(true));
    Ok(())
}

/// Runs `f` on the calling thread, as the only worker of its own rayon pool,
/// catching a panic.
fn run_here<R>(f: impl FnOnce() -> R) -> Result<R, DispatchError> {
    join_local_rayon_pool()?;
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|payload| DispatchError::Panicked(panic_message(&*payload)))
}

#[derive(Clone)]
enum Strategy {
    Pool(compute_runtime::ComputePool),
    Inline,
    SpawnBlocking,
    Naive(Arc<rayon::ThreadPool>),
}

/// Runs request compute according to a [`Mode`]. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    mode: Mode,
    strategy: Strategy,
    /// Whether [`Dispatcher::in_lane`] may pick the Low lane.
    lanes: bool,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("mode", &self.mode)
            .field("lanes", &self.lanes)
            .field("lane", &self.lane())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher for `mode`.
    ///
    /// `pool` is the runtime's compute pool (required for [`Mode::Pool`]);
    /// `compute_threads` sizes the rayon pool of [`Mode::Naive`], so both
    /// bridges get the same number of threads.
    pub fn new(
        mode: Mode,
        pool: Option<compute_runtime::ComputePool>,
        compute_threads: usize,
    ) -> Result<Dispatcher, DispatchError> {
        let strategy = match mode {
            Mode::Pool => Strategy::Pool(pool.ok_or_else(|| DispatchError::Setup {
                mode,
                reason: "the runtime has no compute pool (compute_threads = 0 in [runtime])".into(),
            })?),
            Mode::Inline => Strategy::Inline,
            Mode::SpawnBlocking => Strategy::SpawnBlocking,
            Mode::Naive => {
                if compute_threads == 0 {
                    return Err(DispatchError::Setup {
                        mode,
                        reason: "compute_threads = 0: the naive bridge needs at least one thread"
                            .into(),
                    });
                }
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(compute_threads)
                    .thread_name(|i| format!("naive-rayon-{i}"))
                    .build()
                    .map_err(|e| DispatchError::Setup {
                        mode,
                        reason: e.to_string(),
                    })?;
                Strategy::Naive(Arc::new(pool))
            }
        };
        Ok(Dispatcher {
            mode,
            strategy,
            lanes: true,
        })
    }

    /// The mode this dispatcher implements.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// This dispatcher with lanes on (the default) or off. Off, every job
    /// goes to the High lane whatever [`in_lane`](Self::in_lane) asks for.
    pub fn with_lanes(mut self, on: bool) -> Dispatcher {
        self.lanes = on;
        if !on {
            self = self.in_lane(Priority::High);
        }
        self
    }

    /// Whether lanes are on: `pool` mode with [`with_lanes`](Self::with_lanes)
    /// not turned off. The other modes have no lanes.
    pub fn lanes(&self) -> bool {
        self.lanes && matches!(self.strategy, Strategy::Pool(_))
    }

    /// A dispatcher (a cheap clone) whose `pool`-mode jobs wait in `lane`,
    /// or in the High lane when lanes are off. In the other modes it is the
    /// same dispatcher.
    pub fn in_lane(&self, lane: Priority) -> Dispatcher {
        let mut dispatcher = self.clone();
        if let Strategy::Pool(pool) = &self.strategy {
            let lane = if self.lanes { lane } else { Priority::High };
            dispatcher.strategy = Strategy::Pool(pool.with_priority(lane));
        }
        dispatcher
    }

    /// The lane this dispatcher's jobs wait in: the pool handle's in `pool`
    /// mode, `None` in the modes without lanes.
    pub fn lane(&self) -> Option<Priority> {
        match &self.strategy {
            Strategy::Pool(pool) => Some(pool.priority()),
            _ => None,
        }
    }

    /// Whether new compute would be refused now: in `pool` mode, when the
    /// pool already holds `max_in_flight + max_queued` jobs (the thread
    /// count stands in for an unset `max_in_flight`). Without `max_queued`
    /// the pool's queue is unbounded and it is never saturated; nor are the
    /// other modes, which have no admission limit.
    pub fn is_saturated(&self) -> bool {
        match &self.strategy {
            Strategy::Pool(pool) => {
                let config = pool.config();
                config.max_queued.is_some_and(|queued| {
                    let running = config.max_in_flight.unwrap_or(pool.num_threads());
                    pool.metrics().tasks_active() >= (running + queued) as u64
                })
            }
            _ => false,
        }
    }

    /// Runs `f` where this mode puts compute; rayon parallel iterators inside
    /// `f` use the same threads. In `pool` mode it is submitted with
    /// `execute`, in this dispatcher's lane: when the pool is full
    /// ([`is_saturated`](Self::is_saturated)) the answer is
    /// [`DispatchError::Saturated`] at once, without running `f`. Resolves
    /// to `f`'s result, or an error if it panicked or was dropped.
    pub async fn install<F, R>(&self, f: F) -> Result<R, DispatchError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match &self.strategy {
            Strategy::Pool(pool) => pool.execute(f).await.map_err(from_compute_error),
            Strategy::Inline => run_here(f),
            Strategy::SpawnBlocking => tokio::task::spawn_blocking(move || run_here(f))
                .await
                .map_err(from_join_error)?,
            Strategy::Naive(pool) => naive_spawn(pool, f).await,
        }
    }

    /// Runs `f` with a rayon scope, where this mode puts compute. The result
    /// resolves once `f` has returned *and* every task it spawned on the
    /// scope has finished.
    pub async fn scoped<F, R>(&self, f: F) -> Result<R, DispatchError>
    where
        F: for<'s> FnOnce(&rayon::Scope<'s>) -> R + Send + 'static,
        R: Send + 'static,
    {
        match &self.strategy {
            // The job runs on a compute thread, so `rayon::scope` there is
            // the pool's scope, as with `execute_scoped`.
            Strategy::Pool(pool) => pool
                .execute(move || rayon::scope(f))
                .await
                .map_err(from_compute_error),
            Strategy::Inline => run_here(|| rayon::scope(f)),
            Strategy::SpawnBlocking => {
                tokio::task::spawn_blocking(move || run_here(|| rayon::scope(f)))
                    .await
                    .map_err(from_join_error)?
            }
            Strategy::Naive(pool) => naive_spawn(pool, move || rayon::scope(f)).await,
        }
    }
}

/// The naive bridge: `rayon::ThreadPool::spawn`, a `tokio::sync::oneshot`
/// for the result, `catch_unwind` so a panic reaches the awaiter instead of
/// rayon's panic handler (which would abort the process).
async fn naive_spawn<F, R>(pool: &rayon::ThreadPool, f: F) -> Result<R, DispatchError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        // The receiver may be gone (the client hung up): nothing to do then.
        let _ = tx.send(result);
    });
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(payload)) => Err(DispatchError::Panicked(panic_message(&*payload))),
        Err(_) => Err(DispatchError::Cancelled(
            "the rayon job was dropped without a result".into(),
        )),
    }
}

fn from_join_error(e: tokio::task::JoinError) -> DispatchError {
    if e.is_panic() {
        DispatchError::Panicked(panic_message(&*e.into_panic()))
    } else {
        DispatchError::Cancelled("the blocking task was cancelled (runtime shutting down)".into())
    }
}

fn from_compute_error(e: compute_runtime::ComputeError) -> DispatchError {
    if e.is_panic() {
        match e.into_panic() {
            Some(payload) => DispatchError::Panicked(panic_message(&*payload)),
            None => DispatchError::Panicked("unknown payload".into()),
        }
    } else if matches!(e, compute_runtime::ComputeError::Saturated) {
        DispatchError::Saturated(e.to_string())
    } else if e.is_cancelled() || e.is_shutdown() {
        DispatchError::Cancelled(e.to_string())
    } else {
        DispatchError::Failed(e.to_string())
    }
}
