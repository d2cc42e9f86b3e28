//! [`Runtime`]: a Tokio multi-thread runtime and a compute pool built from
//! one [`RuntimeConfig`], with the pool visible from every thread of both
//! through [`current`](crate::current).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use compute_pool::{ComputePool, ConfigError, ThreadHook};

use crate::settings::{RuntimeConfig, ThreadPlan};

/// A Tokio multi-thread runtime plus the compute pool its tasks hand CPU
/// work to.
///
/// On every thread of the runtime, its Tokio workers, its blocking threads
/// (`spawn_blocking`, `block_in_place`), its compute threads, and the thread
/// inside [`block_on`](Runtime::block_on), [`current`](crate::current)
/// returns this runtime's pool.
///
/// Its compute threads run inside the Tokio runtime's context, for their
/// whole life: a job can `tokio::spawn` I/O, or take
/// [`Handle::current`](tokio::runtime::Handle::current) to hand work back to
/// the async side, and return at once (`docs/configuration.md`, "Handing
/// I/O back from a job"). A job must not wait there for async work
/// (`Handle::block_on`, `futures::executor::block_on`): that holds a compute
/// thread idle.
///
/// ```
/// use compute_runtime::{Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig { num_worker_threads: Some(1), compute_threads: Some(1), ..Default::default() })?;
/// let pool = runtime.compute_pool().expect("compute_threads is not 0");
/// let io = runtime.block_on(async move {
///     // The job spawns the I/O and returns its JoinHandle at once.
///     let task = pool.execute(|| tokio::spawn(async { "written" })).await?;
///     Ok::<_, compute_runtime::ComputeError>(task.await.expect("the task ran"))
/// })?;
/// assert_eq!(io, "written");
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
///
/// Once Tokio has stopped (the runtime shut down or dropped),
/// a job still running on one of its compute threads, say on a clone of
/// the pool kept past a drop, finds the handle still entered but the
/// runtime gone: `tokio::spawn` returns a handle whose task never runs (it
/// resolves to a cancelled `JoinError`), a Tokio timer panics when polled
/// (like any panic in a job, that resolves the job's handle to
/// [`ComputeError::Panicked`](crate::ComputeError::Panicked)), and
/// registering an I/O resource fails with an error; each says the runtime
/// "is being shutdown".
///
/// ```
/// use compute_runtime::{Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig {
///     num_worker_threads: Some(2),
///     compute_threads: Some(1),
///     ..Default::default()
/// })?;
/// let pool = runtime.compute_pool().expect("compute_threads is not 0");
/// let sum = runtime.block_on(async move {
///     pool.execute(|| (1..=100u32).sum::<u32>()).await
/// })?;
/// assert_eq!(sum, 5050);
/// assert!(runtime.shutdown(std::time::Duration::from_secs(5)));
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct Runtime {
    /// `Some` until [`shutdown`](Runtime::shutdown) takes it. Declared
    /// before `pool`, so a plain drop stops Tokio first.
    tokio: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Option<ComputePool>,
    /// The pool Tokio's thread-start hook enters, emptied when the runtime
    /// drops. Tokio keeps its hook as long as any clone of its handle lives,
    /// and the compute threads keep one (their entered context): a pool held
    /// by the hook directly would keep its own threads alive forever.
    tokio_thread_pool: Arc<Mutex<Option<ComputePool>>>,
    plan: ThreadPlan,
    config: RuntimeConfig,
    /// Unique among the runtimes of this process; marks its Tokio threads
    /// (see [`OWNER`]).
    id: u64,
}

/// Numbers the runtimes of this process, from 1.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the [`Runtime`] whose Tokio thread (worker or blocking
    /// thread) this is; 0 on other threads. `shutdown` reads it to tell
    /// whether Tokio, stopping, would wait for the calling thread.
    static OWNER: Cell<u64> = const { Cell::new(0) };
}

impl Runtime {
    /// Builds the runtime: checks `config`, fills in the defaults for this
    /// machine ([`RuntimeConfig::thread_plan`]), logs a `tracing` warning if
    /// the thread counts oversubscribe the machine, then starts the compute
    /// pool (unless `compute_threads` is 0) and the Tokio runtime. The compute
    /// threads enter the Tokio runtime's context as they start (the pool's
    /// [`on_thread_start`](compute_pool::ComputeConfig::on_thread_start)
    /// hook; they wait, before their first job, for Tokio to be built).
    ///
    /// Tokio threads are named `tokio-rt-{n}`, compute threads
    /// `{compute_thread_prefix}-{index}`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field and value for a bad setting, or
    /// [`ConfigError::Build`] if the operating system refuses the threads.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, ConfigError> {
        config.validate()?;
        let plan = config.thread_plan();
        plan.warn_if_oversubscribed();

        // Tokio's thread-start hook needs the pool, so the pool comes first;
        // its threads wait in their own hook until Tokio's handle is here.
        // Dropped on every way out, the publisher releases them.
        let publisher = Publisher(Arc::new(HandleSlot::default()));
        let pool = if plan.compute_threads == 0 {
            None
        } else {
            let mut compute = config.compute_config(plan.compute_threads);
            compute.on_thread_start = Some(enter_tokio_hook(Arc::clone(&publisher.0)));
            Some(ComputePool::new(compute)?)
        };

        let mut builder = tokio::runtime::Builder::new_multi_thread();
        let counter = AtomicUsize::new(0);
        builder
            .worker_threads(plan.worker_threads)
            .enable_all()
            .thread_name_fn(move || {
                // ORDERING: Relaxed. Only uniqueness of the number matters.
                let n = counter.fetch_add(1, Ordering::Relaxed);
                format!("tokio-rt-{n}")
            });
        // ORDERING: Relaxed. Only uniqueness of the number matters.
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // Runs on every thread Tokio starts: workers and blocking threads.
        let tokio_thread_pool = Arc::new(Mutex::new(pool.clone()));
        let thread_pool = Arc::clone(&tokio_thread_pool);
        builder.on_thread_start(move || {
            OWNER.with(|owner| owner.set(id));
            if let Some(pool) = lock(&thread_pool).as_ref() {
                compute_pool::enter_context(pool);
            }
        });
        let has_pool = pool.is_some();
        builder.on_thread_stop(move || {
            OWNER.with(|owner| owner.set(0));
            if has_pool {
                compute_pool::leave_context();
            }
        });
        let tokio = builder.build().map_err(|error| ConfigError::Build {
            what: "tokio runtime".to_owned(),
            message: error.to_string(),
        })?;
        let handle = tokio.handle().clone();
        publisher.0.publish(Some(handle.clone()));
        tracing::debug!(
            worker_threads = plan.worker_threads,
            compute_threads = plan.compute_threads,
            physical_cores = plan.physical_cores,
            "runtime started"
        );
        Ok(Runtime {
            tokio: Some(tokio),
            handle,
            pool,
            tokio_thread_pool,
            plan,
            config,
            id,
        })
    }

    /// The compute pool (a cheap clone of the shared handle), or `None`
    /// when `compute_threads` is 0.
    pub fn compute_pool(&self) -> Option<ComputePool> {
        self.pool.clone()
    }

    /// Runs `future` to completion on the calling thread, with the Tokio
    /// runtime entered and [`current`](crate::current) returning this
    /// runtime's pool while it runs (the previous value is put back after).
    ///
    /// # Panics
    ///
    /// Like [`tokio::runtime::Runtime::block_on`], when called from inside
    /// an async context.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _context = self.pool.as_ref().map(ContextGuard::enter);
        self.tokio_runtime().block_on(future)
    }

    /// The Tokio runtime's handle, to spawn tasks or enter the runtime.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// The thread counts this runtime was built with.
    pub fn thread_plan(&self) -> ThreadPlan {
        self.plan
    }

    /// The configuration this runtime was built from (defaults not filled
    /// in; see [`thread_plan`](Runtime::thread_plan) for those).
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Shuts down in order: the compute pool first, waiting for its queued
    /// and running jobs while Tokio still runs, then for the tasks awaiting
    /// them to take their results (until
    /// [`tasks_awaited`](crate::ComputeMetrics::tasks_awaited) is 0), then
    /// the Tokio runtime with what is left of `timeout`. Returns `true` if all compute work finished within the
    /// timeout; `false` if the deadline passed first (unstarted jobs then
    /// resolve to [`ComputeError::Shutdown`](crate::ComputeError::Shutdown)).
    ///
    /// Blocks the calling thread while the pool drains. Where it is called
    /// from decides how Tokio is stopped:
    ///
    /// - outside any async context: here, waiting up to what is left of
    ///   `timeout` for Tokio's tasks and blocking threads;
    /// - inside another runtime's async context: the same, on a helper
    ///   thread (Tokio refuses to stop a runtime from async code), joined
    ///   before returning;
    /// - on one of this runtime's own threads (a task on its workers, or a
    ///   `spawn_blocking` closure): Tokio would wait for the calling thread
    ///   itself, so `shutdown` only starts the stop, on a detached helper
    ///   thread that gives Tokio's threads what is left of `timeout`, and
    ///   returns without waiting for it. The caller's task goes on until its
    ///   next `.await`, where the stopping runtime drops it. On a worker the
    ///   pool drains inside [`tokio::task::block_in_place`], so the worker's
    ///   other tasks (say, those awaiting the draining jobs) move to another
    ///   thread meanwhile.
    ///
    /// ```
    /// use std::time::Duration;
    /// use compute_runtime::{Runtime, RuntimeConfig};
    ///
    /// let runtime = Runtime::new(RuntimeConfig { num_worker_threads: Some(1), compute_threads: Some(1), ..Default::default() })?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let handle = runtime.handle().clone();
    /// // From one of its own tasks: returns without waiting for Tokio.
    /// handle.spawn(async move { tx.send(runtime.shutdown(Duration::from_secs(60))).unwrap() });
    /// assert!(rx.recv()?);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let drain = |pool: &ComputePool| {
            let drained = pool.shutdown_blocking(timeout);
            wait_for_awaiters(pool, deadline);
            drained
        };
        let drained = match &self.pool {
            Some(pool) if crate::size_class::can_block_in_place() => {
                tokio::task::block_in_place(|| drain(pool))
            }
            Some(pool) => drain(pool),
            None => true,
        };
        let left = deadline.map_or(Duration::MAX, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        });
        if let Some(tokio) = self.tokio.take() {
            let own_thread = OWNER.with(Cell::get) == self.id;
            shutdown_tokio(tokio, left, own_thread);
        }
        drained
    }

    fn tokio_runtime(&self) -> &tokio::runtime::Runtime {
        self.tokio
            .as_ref()
            .expect("the Tokio runtime is present until shutdown consumes the Runtime")
    }
}

/// Waits, while Tokio still runs, until no task awaits a result of `pool`
/// (`tasks_awaited` is 0) or `deadline` passes: a job that finished has
/// sent its result, but the task that awaits it may not have been polled
/// yet, and stopping Tokio now would drop it with the result unseen.
fn wait_for_awaiters(pool: &ComputePool, deadline: Option<Instant>) {
    while pool.metrics().tasks_awaited() > 0 {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Shuts `tokio` down within `timeout`: here when this thread is outside
/// any async context (elsewhere Tokio would panic), else on a helper thread,
/// joined unless `own_thread` says this thread is one of `tokio`'s own (which
/// the shutdown would wait for: joining would deadlock until the timeout).
fn shutdown_tokio(tokio: tokio::runtime::Runtime, timeout: Duration, own_thread: bool) {
    if !own_thread && tokio::runtime::Handle::try_current().is_err() {
        tokio.shutdown_timeout(timeout);
        return;
    }
    // Shared with the helper so that, if no thread can be started, the
    // runtime is still here to stop in the background.
    let slot = Arc::new(std::sync::Mutex::new(Some(tokio)));
    let helper_slot = Arc::clone(&slot);
    let helper = std::thread::Builder::new()
        .name("tokio-rt-shutdown".to_owned())
        .spawn(move || {
            if let Some(tokio) = take(&helper_slot) {
                tokio.shutdown_timeout(timeout);
            }
        });
    match helper {
        Ok(helper) if !own_thread => {
            let _ = helper.join();
        }
        Ok(_detached) => {}
        Err(error) => {
            tracing::warn!(%error, "no thread to shut the tokio runtime down on; stopping it in the background");
            if let Some(tokio) = take(&slot) {
                tokio.shutdown_background();
            }
        }
    }
}

/// Locks `mutex`; a poisoned lock still gives its value (each of them
/// holds a value that is whole at every moment).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tokio's handle, passed from [`Runtime::new`] to the compute threads,
/// which start before Tokio is built and wait for it in their start hook.
#[derive(Default)]
struct HandleSlot {
    state: Mutex<TokioState>,
    changed: Condvar,
}

/// What a compute thread of a runtime being built finds in its
/// [`HandleSlot`].
#[derive(Default)]
enum TokioState {
    /// Tokio is being built: wait.
    #[default]
    Building,
    /// Tokio is built: enter this handle.
    Built(tokio::runtime::Handle),
    /// `Runtime::new` gave up: no context to enter.
    Failed,
}

impl HandleSlot {
    /// Hands `handle` (`None`: none is coming) to the threads waiting, and to
    /// those yet to start; only the first call counts.
    fn publish(&self, handle: Option<tokio::runtime::Handle>) {
        let mut state = lock(&self.state);
        if matches!(*state, TokioState::Building) {
            *state = handle.map_or(TokioState::Failed, TokioState::Built);
        }
        self.changed.notify_all();
    }

    /// Waits until [`publish`](HandleSlot::publish), then returns the handle,
    /// if any.
    fn wait(&self) -> Option<tokio::runtime::Handle> {
        let mut state = lock(&self.state);
        loop {
            match &*state {
                TokioState::Building => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                TokioState::Built(handle) => return Some(handle.clone()),
                TokioState::Failed => return None,
            }
        }
    }
}

/// Publishes "no handle" when dropped, unless a handle was published first,
/// so that whatever way [`Runtime::new`] returns (an error, a panic), no
/// compute thread waits forever.
struct Publisher(Arc<HandleSlot>);

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.publish(None);
    }
}

/// The compute threads' start hook: waits for Tokio's handle in `slot` and
/// enters the runtime's context for the rest of the thread's life.
fn enter_tokio_hook(slot: Arc<HandleSlot>) -> ThreadHook {
    ThreadHook::new(move || {
        if let Some(handle) = slot.wait() {
            // Entering puts a clone of the handle in Tokio's own
            // thread-local, which releases it when the thread exits. The
            // guard's one job, when dropped, is to put back the context the
            // thread had before: a compute thread had none, and keeps this
            // one for life. So the guard is forgotten rather than kept: kept
            // in a thread-local of ours, it would be dropped as the thread
            // exits, in no set order with Tokio's thread-local, which its
            // drop uses (and a panic in a thread-local's destructor aborts).
            std::mem::forget(handle.enter());
        }
    })
}

/// Takes the runtime out of `slot` (a poisoned lock still gives it up).
fn take(
    slot: &std::sync::Mutex<Option<tokio::runtime::Runtime>>,
) -> Option<tokio::runtime::Runtime> {
    lock(slot).take()
}

/// Puts the calling thread in a pool's compute context until dropped, then
/// restores the context it had before.
struct ContextGuard {
    previous: Option<ComputePool>,
}

impl ContextGuard {
    fn enter(pool: &ComputePool) -> ContextGuard {
        let previous = compute_pool::current();
        compute_pool::enter_context(pool);
        ContextGuard { previous }
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        match &self.previous {
            Some(pool) => compute_pool::enter_context(pool),
            None => compute_pool::leave_context(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(tokio) = self.tokio.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped inside an async context, where a blocking drop
                // would panic: stop without waiting.
                tokio.shutdown_background();
            } else {
                drop(tokio);
            }
        }
        // Tokio's hook may outlive the runtime (see `tokio_thread_pool`).
        lock(&self.tokio_thread_pool).take();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("worker_threads", &self.plan.worker_threads)
            .field("compute_threads", &self.plan.compute_threads)
            .field("physical_cores", &self.plan.physical_cores)
            .field("compute_pool", &self.pool)
            .field("running", &self.tokio.is_some())
            .finish()
    }
}
