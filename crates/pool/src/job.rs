//! The one wrapper every pool job runs in.
//!
//! A [`Job`] carries the user's work and the sending end of its bridge
//! channel, and reaches the pool's [`Shared`] state through its [`Home`]
//! (never the rayon pool itself, so jobs do not keep the pool's threads
//! alive). On a compute thread, [`Job::run`]:
//!
//! 1. claims the channel with `try_start` (false: the handle was dropped or
//!    cancelled first, and the handle side has already counted it: skip);
//! 2. skips with `Err(Shutdown)` if the pool is past its shutdown deadline;
//! 3. records the queue wait, runs the work under `catch_unwind` (inside the
//!    submitter's tracing span), records the compute time;
//! 4. sends the result; if nobody waits any more the value comes back and
//!    is dropped here, under `catch_unwind` too.
//!
//! Jobs from `execute` wait in the pool's run queue and run inside a runner
//! task (see the `run_queue` module). With `max_in_flight`, jobs wait in the
//! gate's queue instead and run inside a puller that holds the permit (see
//! the `gate` module).
//!
//! A job dropped without running (rayon never does that, but the gate's
//! queue drops abandoned jobs, and `try_execute` drops one it refuses) accounts
//! for itself in `Drop` if its handle still waits, so nothing leaks and no
//! receiver hangs.

use std::cell::{Cell, OnceCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use compute_bridge::Sender;

use crate::error::ComputeError;
use crate::gate::QueuedJob;
use crate::handle::CancelToken;
use crate::inline_job::Runnable;
use crate::pool::Shared;
use crate::spin::linger_for;

/// What a job's channel carries.
pub(crate) type JobResult<R> = Result<R, ComputeError>;

/// A job on its way to a compute thread. See the module docs.
///
/// `H` says how the job reaches its pool's [`Shared`] state: a job spawned
/// straight onto the pool's threads finds it in the thread's [`Home`]
/// (no reference count to touch per job); a job that may be run or dropped
/// elsewhere (the `max_in_flight` queue, `try_execute`) holds an `Arc`.
pub(crate) struct Job<W, R, H: Home = Arc<Shared>> {
    home: H,
    /// The work and the channel; `None` once the job has run (or been
    /// skipped). One `Option` for both, so the channel's non-null pointer
    /// is its tag and the job stays small. The work comes first so that,
    /// dropped together, the work goes before the channel closes: a caller
    /// of `execute_sync` waiting on the channel may then free what the work
    /// borrows.
    parts: Option<(W, Sender<JobResult<R>>)>,
    /// When it was submitted, in nanoseconds since the pool's epoch (half
    /// the size of an `Instant`).
    submitted_ns: u64,
    span: SubmitSpan,
}

impl<W, R, H> Job<W, R, H>
where
    W: FnOnce(CancelToken<'_>) -> R + Send,
    R: Send,
    H: Home,
{
    pub(crate) fn new(shared: &Shared, home: H, tx: Sender<JobResult<R>>, work: W) -> Self {
        Job {
            submitted_ns: shared.nanos_since_epoch(Instant::now()),
            home,
            parts: Some((work, tx)),
            span: SubmitSpan::current(),
        }
    }

    /// Runs the job on the current (compute) thread. See the module docs.
    ///
    /// Afterwards, an outermost job of a pool whose jobs are short lingers
    /// briefly, running whatever rayon work turns up (typically the next job
    /// of an awaiter that just got this result), so that job starts at once
    /// instead of waiting for an idle thread to notice it (see `spin.rs`).
    pub(crate) fn run(self) {
        let Some(_outermost) = OutermostJob::enter() else {
            self.run_then(|| {});
            return;
        };
        let linger = self.home.with(Shared::linger_budget).flatten();
        self.run_then(|| {});
        if let Some(budget) = linger {
            linger_for(budget);
        }
    }

    /// Runs the job, calling `before_send` once its work is over (or
    /// skipped) and before the result is sent, so that whoever awaits it
    /// finds the job's room already given back.
    pub(crate) fn run_then(mut self, before_send: impl FnOnce()) {
        let Some(parts) = self.parts.take() else {
            before_send();
            return;
        };
        let span = std::mem::take(&mut self.span);
        let submitted_ns = self.submitted_ns;
        // Without its pool's state (which cannot happen: see `Home`) the
        // job is dropped unrun, work first, and its handle resolves to `Lost`.
        self.home.with(move |shared| {
            let (work, tx) = parts;
            // Rebound after `tx`, so that were anything here to unwind,
            // `work` would be dropped first (see `parts`).
            let work = work;
            if !tx.try_start() {
                // The handle closed first and counted the job cancelled.
                drop_contained(shared, work);
                before_send();
                return;
            }
            if shared.is_past_deadline() {
                shared.metrics.record_cancelled();
                drop_contained(shared, work);
                before_send();
                // An error value: if nobody waits, dropping it here is harmless.
                let _ = tx.send(Err(ComputeError::Shutdown));
                shared.notify_if_closing();
                return;
            }
            let result = run_measured(
                shared,
                shared.instant_since_epoch(submitted_ns),
                &span,
                work,
                CancelToken::new(&tx, shared),
            );
            before_send();
            // `send` only panics if the awaiter's waker panics in `wake`; the
            // value is delivered all the same, so count it and carry on.
            match catch_unwind(AssertUnwindSafe(move || tx.send(result))) {
                Ok(Ok(())) => {}
                // Nobody awaits the result: drop it here.
                Ok(Err(unclaimed)) => drop_contained(shared, unclaimed),
                Err(_waker_panic) => shared.metrics.record_escaped_panic(),
            }
            shared.notify_if_closing();
        });
    }
}

impl<W, R> Runnable for Job<W, R, ComputeThreadHome>
where
    W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
    R: Send + 'static,
{
    fn run_queued(self, before_send: &mut dyn FnMut()) {
        self.run_then(before_send);
    }
}

impl<W, R> QueuedJob for Job<W, R, Arc<Shared>>
where
    W: FnOnce(CancelToken<'_>) -> R + Send,
    R: Send,
{
    fn is_abandoned(&self) -> bool {
        self.parts.as_ref().is_none_or(|(_, tx)| tx.is_closed())
    }

    fn run_queued(self: Box<Self>, before_send: &mut dyn FnMut()) {
        (*self).run_then(before_send);
    }

    fn discard(self: Box<Self>) {
        let mut job = *self;
        let shared = &*job.home;
        if let Some((work, tx)) = job.parts.take() {
            drop_contained(shared, work);
            if tx.try_start() {
                shared.metrics.record_cancelled();
                let _ = tx.send(Err(ComputeError::Shutdown));
            }
            shared.notify_if_closing();
        }
    }
}

impl<W, R, H: Home> Drop for Job<W, R, H> {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            // Dropped without running: the work first (see `parts`), then
            // the channel. Whoever closes first accounts for the job: if
            // the handle is still there, we do, and dropping `tx` resolves
            // it to an error instead of leaving it hanging.
            self.home.with(move |shared| {
                let (work, tx) = parts;
                drop_contained(shared, work);
                if tx.try_start() {
                    shared.metrics.record_cancelled();
                }
                drop(tx);
                shared.notify_if_closing();
            });
        }
    }
}

/// A job that lives on the stack of a caller blocked until it is done
/// (`execute_sync`), handed to rayon's `spawn` (which wants `'static`) as
/// a type-erased pointer: rayon's `install` does the same with its own
/// stack jobs. No allocation of its own.
pub(crate) struct StackJob {
    slot: *mut (),
    run: unsafe fn(*mut ()),
}

// SAFETY: the pointer is used once, by the thread the job is sent to, to
// take the job out of its slot (see `StackJob::new`); the job it points to
// is `Send`.
unsafe impl Send for StackJob {}

impl StackJob {
    /// Points at `slot`, which holds the job.
    ///
    /// # Safety
    ///
    /// The caller keeps `slot` where it is and leaves it alone until the
    /// job has run (or been dropped) and holds nothing it borrows, and calls
    /// [`run`](Self::run) at most once. `execute_sync` waits for the job's
    /// channel, which is closed only after the work was consumed or dropped.
    pub(crate) unsafe fn new<F: FnOnce() + Send>(slot: &mut Option<F>) -> StackJob {
        unsafe fn take_and_run<F: FnOnce()>(slot: *mut ()) {
            // SAFETY: `slot` came from `&mut Option<F>` in `new`, whose
            // caller keeps it alive and untouched until the job is done.
            if let Some(job) = unsafe { (*slot.cast::<Option<F>>()).take() } {
                job();
            }
        }
        StackJob {
            slot: std::ptr::from_mut(slot).cast(),
            run: take_and_run::<F>,
        }
    }

    /// Takes the job out of its slot and runs it.
    pub(crate) fn run(self) {
        // SAFETY: `new`'s caller keeps the slot alive and untouched until
        // the job is done, and `self` is consumed, so this runs once.
        unsafe { (self.run)(self.slot) }
    }
}

/// How a job reaches its pool's [`Shared`] state when it runs or is dropped.
pub(crate) trait Home {
    /// Calls `f` with the pool's state; `None` (and `f` dropped) if it
    /// cannot be reached.
    fn with<T>(&self, f: impl FnOnce(&Shared) -> T) -> Option<T>;
}

/// A job that holds its pool's state.
impl Home for Arc<Shared> {
    fn with<T>(&self, f: impl FnOnce(&Shared) -> T) -> Option<T> {
        Some(f(self))
    }
}

/// A job run on its pool's own threads (by a runner of the run queue, or
/// spawned there), which finds the pool's state in the thread it runs on:
/// every compute thread holds its pool's [`Shared`] from its start (see
/// [`ComputeThreadHome::enter`]) to its exit, and rayon runs a pool's
/// spawned work only on that pool's threads, before they exit; runners
/// retire only with the run queue empty. So the job needs no reference of its own, and the submitting
/// and computing threads do not take turns on one reference count.
pub(crate) struct ComputeThreadHome;

thread_local! {
    /// The pool state of this compute thread; empty on other threads.
    static HOME: OnceCell<Arc<Shared>> = const { OnceCell::new() };
}

impl ComputeThreadHome {
    /// Makes `shared` this (compute) thread's home, from the pool's
    /// thread start handler.
    pub(crate) fn enter(shared: Arc<Shared>) {
        let _ = HOME.try_with(|home| home.set(shared));
    }
}

impl Home for ComputeThreadHome {
    fn with<T>(&self, f: impl FnOnce(&Shared) -> T) -> Option<T> {
        HOME.try_with(|home| home.get().map(|shared| f(shared)))
            .ok()
            .flatten()
    }
}

thread_local! {
    /// Whether this thread is inside a [`Job::run`] (so a job run nested in
    /// it, by rayon while it waits, does not linger on top of it).
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// Marks the outermost job on this thread until dropped.
pub(crate) struct OutermostJob;

impl OutermostJob {
    /// `None` when this thread is already inside a job.
    pub(crate) fn enter() -> Option<OutermostJob> {
        // `then`, not `then_some`: an eagerly built guard would be dropped
        // (clearing the flag) when this thread is already inside a job.
        IN_JOB.with(|in_job| (!in_job.replace(true)).then(|| OutermostJob))
    }
}

impl Drop for OutermostJob {
    fn drop(&mut self) {
        IN_JOB.with(|in_job| in_job.set(false));
    }
}

/// Drops `value` (an unclaimed result, or the captures of work that will
/// never run), containing and counting a panic from its `Drop`.
fn drop_contained<T>(shared: &Shared, value: T) {
    if catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        shared.metrics.record_drop_panic();
    }
}

/// Runs `work` with metrics around it, inside `span`, catching its panic.
///
/// Used by queued jobs, by `execute_sync` and by inline (nested) calls, so
/// every path counts and measures the same way. The caller has already
/// counted the job submitted.
pub(crate) fn run_measured<'t, W, R>(
    shared: &Shared,
    submitted_at: Instant,
    span: &SubmitSpan,
    work: W,
    token: CancelToken<'t>,
) -> JobResult<R>
where
    W: FnOnce(CancelToken<'t>) -> R,
{
    let started = Instant::now();
    shared
        .metrics
        .record_started(started.saturating_duration_since(submitted_at));
    let outcome = {
        let _entered = span.enter();
        catch_unwind(AssertUnwindSafe(move || work(token)))
    };
    let compute = started.elapsed();
    shared.metrics.record_finished(compute, outcome.is_err());
    shared.await_spin.observe(compute);
    outcome.map_err(ComputeError::panicked)
}

/// The submitter's tracing span, carried to the compute thread and entered
/// while the job runs. Boxed, and only when the span is live (a subscriber
/// wants it), so it costs a job one pointer; without the `tracing` feature
/// it is empty.
#[derive(Default)]
pub(crate) struct SubmitSpan {
    #[cfg(feature = "tracing")]
    span: Option<Box<tracing::Span>>,
}

impl SubmitSpan {
    /// The span active on the calling thread.
    pub(crate) fn current() -> SubmitSpan {
        #[cfg(feature = "tracing")]
        {
            let span = tracing::Span::current();
            SubmitSpan {
                span: (!span.is_none()).then(|| Box::new(span)),
            }
        }
        #[cfg(not(feature = "tracing"))]
        SubmitSpan {}
    }

    /// Enters the span until the guard drops.
    fn enter(&self) -> impl Sized + '_ {
        #[cfg(feature = "tracing")]
        return self.span.as_deref().map(tracing::Span::enter);
        #[cfg(not(feature = "tracing"))]
        ()
    }
}
