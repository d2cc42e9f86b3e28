//! The one wrapper every queued pool job runs in.
//!
//! A [`Job`] carries the user's work, the sending end of its bridge
//! channel and its ledger [`Ticket`]. It reaches its pool's [`Engine`] only
//! when it runs or is discarded (the runner passes it in), so a job holds
//! no reference of its own. On a compute thread, [`Job::run`]:
//!
//! 1. claims the channel with `try_start` (false: the handle was dropped or
//!    cancelled first and settled the job with the ledger: skip, forfeiting
//!    the ticket);
//! 2. skips with `Err(Shutdown)` if the pool is past its shutdown deadline;
//! 3. runs the work as a counted job ([`run_counted`]): queue wait, the
//!    work under `catch_unwind` inside the submitter's tracing span, compute
//!    time, the ticket started and finished;
//! 4. sends the result; if nobody waits any more the value comes back and
//!    is dropped here, under `catch_unwind` too.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use compute_bridge::Sender;

use crate::cancel::CancelToken;
use crate::detector::SitePtr;
use crate::engine::Engine;
use crate::erased::Runnable;
use crate::error::ComputeError;
use crate::ledger::Ticket;
use crate::priority::Priority;

/// What a job's channel carries.
pub(crate) type JobResult<R> = Result<R, ComputeError>;

/// A job on its way to a compute thread. See the module docs.
pub(crate) struct Job<W, R> {
    /// The work, the channel and the ticket; `None` once the job has run
    /// (or been skipped). One `Option` for all, so the channel's non-null
    /// pointer is its tag and the job stays small. The work comes first so
    /// that, dropped together, the work goes before the channel closes: a
    /// caller of `execute_sync` waiting on the channel may then free what
    /// the work borrows.
    parts: Option<(W, Sender<JobResult<R>>, Ticket)>,
    /// When it was submitted, in nanoseconds since the pool's epoch (half
    /// the size of an `Instant`).
    submitted_ns: u64,
    /// Where it was submitted, and the submitter's tracing span.
    origin: Origin,
}

impl<W, R> Job<W, R>
where
    W: FnOnce(CancelToken<'_>) -> R + Send,
    R: Send,
{
    pub(crate) fn new(
        engine: &Engine,
        ticket: Ticket,
        tx: Sender<JobResult<R>>,
        site: SitePtr,
        work: W,
    ) -> Self {
        Job {
            submitted_ns: engine.nanos_since_epoch(Instant::now()),
            parts: Some((work, tx, ticket)),
            origin: Origin::current(site),
        }
    }
}

impl<W, R> Runnable<Engine> for Job<W, R>
where
    W: FnOnce(CancelToken<'_>) -> R + Send,
    R: Send,
{
    /// Runs the job on the current (compute) thread. See the module docs.
    fn run(mut self, engine: &Engine, lane: Option<Priority>, before_send: &mut dyn FnMut()) {
        let Some((work, tx, ticket)) = self.parts.take() else {
            before_send();
            return;
        };
        // Rebound after `tx`, so that were anything here to unwind, `work`
        // would be dropped first (see `parts`).
        let work = work;
        if !tx.try_start() {
            // The handle closed first and settled the job.
            ticket.forfeit();
            drop_contained(engine, work);
            before_send();
            return;
        }
        if engine.ledger.is_past_deadline() {
            drop_contained(engine, work);
            ticket.cancel(&engine.ledger);
            before_send();
            // An error value: if nobody waits, dropping it here is harmless.
            let _ = tx.send(Err(ComputeError::Shutdown));
            return;
        }
        let submitted_at = engine.instant_since_epoch(self.submitted_ns);
        let token = CancelToken::new(&tx, &engine.ledger);
        let result = run_counted(
            engine,
            ticket,
            submitted_at,
            lane,
            &self.origin,
            work,
            token,
        );
        before_send();
        // `send` only panics if the awaiter's waker panics in `wake`; the
        // value is delivered all the same, so count it and carry on.
        match catch_unwind(AssertUnwindSafe(move || tx.send(result))) {
            Ok(Ok(())) => {}
            // Nobody awaits the result: drop it here.
            Ok(Err(unclaimed)) => drop_contained(engine, unclaimed),
            Err(_waker_panic) => engine.metrics.record_escaped_panic(),
        }
    }

    /// Resolves the job to `Err(Shutdown)` without running it.
    fn discard(mut self, engine: &Engine) {
        let Some((work, tx, ticket)) = self.parts.take() else {
            return;
        };
        drop_contained(engine, work);
        if tx.try_start() {
            ticket.cancel(&engine.ledger);
            let _ = tx.send(Err(ComputeError::Shutdown));
        } else {
            ticket.forfeit();
        }
    }
}

impl<W, R> Drop for Job<W, R> {
    fn drop(&mut self) {
        // Only a job neither run nor discarded gets here: one left in the
        // queue when its engine itself is dropped (runners drain the queue
        // before they retire, so this is a last resort). Its handle, if
        // any, resolves to `Lost` when the channel closes; there is no
        // ledger left to settle with.
        if let Some((work, tx, ticket)) = self.parts.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(work)));
            ticket.forfeit();
            drop(tx);
        }
    }
}

/// Drops `value` (an unclaimed result, or the captures of work that will
/// never run), containing and counting a panic from its `Drop`.
pub(crate) fn drop_contained<T>(engine: &Engine, value: T) {
    if catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        engine.metrics.record_drop_panic();
    }
}

/// Runs `work` as the counted job `ticket`: starts it, records its queue
/// wait (for `lane` too, if it waited in one), runs it inside `span`
/// catching its panic, records its compute time (for its call `site` too)
/// and finishes it. The outermost job on a compute thread is published in
/// the thread's detector slot while it runs: two stores each way.
///
/// Every job runs through here: queued jobs, `execute_sync` and inline runs
/// (nested calls, `execute_here`), so every path counts and measures the
/// same way.
// Each argument is one fact about the job, from three routes that have them
// in different places; a struct for them would only be taken apart here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_counted<'t, W, R>(
    engine: &Engine,
    ticket: Ticket,
    submitted_at: Instant,
    lane: Option<Priority>,
    origin: &Origin,
    work: W,
    token: CancelToken<'t>,
) -> JobResult<R>
where
    W: FnOnce(CancelToken<'t>) -> R,
{
    let started = Instant::now();
    let running = ticket.start(&engine.ledger);
    let queue_wait = started.saturating_duration_since(submitted_at);
    engine.metrics.record_queue_wait(queue_wait, lane);
    let site = origin.site();
    let slot = if engine.detector.on {
        crate::home::slot(engine)
            .filter(|slot| slot.enter(engine.nanos_since_epoch(started), site.0))
    } else {
        None
    };
    let outcome = {
        let _entered = origin.enter();
        catch_unwind(AssertUnwindSafe(move || work(token)))
    };
    let compute = started.elapsed();
    if let Some(slot) = slot {
        slot.leave();
    }
    site.get().record(nanos(queue_wait), nanos(compute));
    engine.metrics.record_compute(compute);
    engine.await_spin.observe(compute);
    running.finish(&engine.ledger, outcome.is_err());
    outcome.map_err(ComputeError::panicked)
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Where a job came from, in one word: its call site and, when a tracing
/// subscriber wants it, the submitter's span, entered while the job runs.
/// Usually the site's own pointer; with a live span, a box holding both,
/// told apart by the low bit (both are at least 8-byte aligned, so a real
/// pointer never has it set). One word, so a job of two words of captures
/// still fits in the run queue's slot.
pub(crate) struct Origin(usize);

/// What a traced origin's box holds.
#[cfg(feature = "tracing")]
type Traced = (SitePtr, tracing::Span);

/// The low bit of a traced origin.
#[cfg(feature = "tracing")]
const TRACED: usize = 1;

impl Origin {
    /// The origin of a job submitted here, from `site`.
    pub(crate) fn current(site: SitePtr) -> Origin {
        #[cfg(feature = "tracing")]
        {
            let span = tracing::Span::current();
            if !span.is_none() {
                let boxed: *mut Traced = Box::into_raw(Box::new((site, span)));
                return Origin(boxed as usize | TRACED);
            }
        }
        Origin(site.0 as usize)
    }

    /// The box of a traced origin.
    #[cfg(feature = "tracing")]
    fn traced(&self) -> Option<&Traced> {
        (self.0 & TRACED != 0).then(|| {
            // SAFETY: the bit is set only by `current`, on the pointer of a
            // box it leaked; the box is freed only in `drop`, so it lives as
            // long as `self` borrows it.
            unsafe { &*((self.0 & !TRACED) as *const Traced) }
        })
    }

    /// The job's call site.
    pub(crate) fn site(&self) -> SitePtr {
        #[cfg(feature = "tracing")]
        if let Some((site, _)) = self.traced() {
            return *site;
        }
        SitePtr(self.0 as *const _)
    }

    /// Enters the submitter's span, if any, until the guard drops.
    fn enter(&self) -> impl Sized + '_ {
        #[cfg(feature = "tracing")]
        return self.traced().map(|(_, span)| span.enter());
        #[cfg(not(feature = "tracing"))]
        ()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        #[cfg(feature = "tracing")]
        if self.0 & TRACED != 0 {
            // SAFETY: as in `traced`: a box `current` leaked, freed once,
            // here.
            drop(unsafe { Box::from_raw((self.0 & !TRACED) as *mut Traced) });
        }
    }
}

// SAFETY: an `Origin` is a `SitePtr` (`Send`) or a box of one and a
// `tracing::Span` (`Send`); the word is only a way to hold either.
unsafe impl Send for Origin {}
