//! The ledger: the pool's lifecycle, and every job's accounting, exactly once.
//!
//! Every way a job enters the pool goes through [`Ledger::admit`], which
//! either refuses it (counted as refused, no ticket) or admits it and hands
//! out a [`Ticket`]. The ticket is the job's accounting obligation; it moves
//! with the job and is consumed exactly once:
//!
//! | stage     | recorded by                                  | how                          |
//! |-----------|----------------------------------------------|------------------------------|
//! | admitted  | the submitter                                | [`Ledger::admit`] → `Ticket` |
//! | refused   | the submitter (no ticket)                    | [`Ledger::admit`] → `Err`    |
//! | started   | the thread that runs the job                 | [`Ticket::start`] → `Running`|
//! | finished  | the same thread                              | [`Running::finish`]          |
//! | cancelled | the job side (discarded, or dropped unrun)   | [`Ticket::cancel`]           |
//! | cancelled | the handle side, when it closed first        | [`Ledger::cancel_unstarted`], and the job then [`Ticket::forfeit`]s |
//!
//! Whether the handle or the job settles a job that never runs is decided by
//! the job's channel: `Receiver::close` and `Sender::try_start` race with one
//! read-modify-write each, and exactly one side sees the other (see the
//! bridge). So every admitted job is settled once: `active = admitted -
//! finished - cancelled` returns to 0 when the pool is idle, and shutdown
//! waits here ([`Ledger::wait_idle`]) for exactly that.
//!
//! The metrics read these counters and keep the durations themselves; they
//! never count a job.
//!
//! # Why a job admitted while the pool closes is never missed
//!
//! `admit` bumps `admitted`, then a `SeqCst` fence, then reads the
//! lifecycle; `close` stores the lifecycle, then a `SeqCst` fence, then
//! reads the counters. Of two `SeqCst` fences one comes first, so either
//! the submitter sees the pool closed (and settles its own admission as
//! cancelled, refusing the job), or the closer sees the job admitted (and
//! waits for it). A shutdown that reports the pool idle has seen every job
//! it will ever run. The loom model `race11_a_job_admitted_while_the_pool_closes`
//! checks every interleaving (the ledger's atomics come from `sync.rs`).

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use crate::error::ComputeError;
use crate::places::{Bound, Places};
use crate::sync::{fence, AtomicU64, AtomicU8, Condvar, Mutex, Ordering};

/// Lifecycle: accepting work.
const OPEN: u8 = 0;
/// Lifecycle: shutdown started; new jobs are refused, admitted jobs run.
const CLOSED: u8 = 1;
/// Lifecycle: the shutdown deadline passed; jobs that have not started are
/// discarded with `Shutdown`.
const PAST_DEADLINE: u8 = 2;

/// How much room a submission needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// A place under the capacity (`max_in_flight + max_queued`), or the
    /// job is refused with `Saturated`; without `max_queued` there is
    /// always one. The async methods (`execute` and the rest).
    Any,
    /// A place whatever the bounds: jobs whose caller waits for them in
    /// place (nested calls from the pool's own threads, `execute_here`,
    /// `execute_sync`), which must never be refused for room.
    Unbounded,
    /// A free place under `max_in_flight`, or the job is refused with
    /// `Saturated` (`try_execute`).
    InFlight,
    /// A place the caller reserved already (`Permit::execute`): the job
    /// takes it over, and gives it back when it settles (or here, if it is
    /// refused).
    Reserved,
}

/// Keeps its contents on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct CacheLine<T>(T);

/// Counters written by submitters (and by handles that cancel).
#[derive(Default)]
struct SubmitSide {
    admitted: AtomicU64,
    refused: AtomicU64,
    cancelled: AtomicU64,
    /// Handles parked on a result: polled, pending, not yet resolved.
    awaited: AtomicU64,
}

/// Counters written by the threads that run jobs.
#[derive(Default)]
struct ComputeSide {
    started: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
}

/// The counts at one moment; see [`Ledger::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub admitted: u64,
    pub refused: u64,
    pub cancelled: u64,
    pub started: u64,
    pub completed: u64,
    pub panicked: u64,
    pub awaited: u64,
}

/// The lifecycle and the accounting of one pool. See the module docs.
pub struct Ledger {
    lifecycle: AtomicU8,
    submit: CacheLine<SubmitSide>,
    compute: CacheLine<ComputeSide>,
    /// The places of a bounded pool (`max_in_flight`, `max_queued`), and
    /// its waiting reservers; `None` when unbounded (it pays nothing).
    places: Option<Places>,
    /// Shutdown waits here for the pool to go idle.
    idle_lock: Mutex<()>,
    idle: Condvar,
}

impl Ledger {
    /// An open ledger; `max_in_flight` bounds [`Room::InFlight`] and
    /// `capacity` bounds [`Room::Any`] and reservations.
    pub fn new(max_in_flight: Option<usize>, capacity: Option<usize>) -> Ledger {
        Ledger {
            lifecycle: AtomicU8::new(OPEN),
            submit: CacheLine::default(),
            compute: CacheLine::default(),
            places: Places::new(max_in_flight, capacity),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
        }
    }

    /// Admits one job, or refuses it: `Shutdown` once the pool is closed,
    /// `Saturated` when the place `room` asks for is not free. Returns the
    /// ticket and the job's number (how many jobs were admitted before it).
    pub fn admit(&self, room: Room) -> Result<(Ticket, u64), ComputeError> {
        if self.is_closed() {
            if room == Room::Reserved {
                self.release_place();
            }
            return Err(self.refuse(ComputeError::Shutdown));
        }
        if let Some(places) = &self.places {
            let took = match room {
                Room::Any => places.take(Bound::Capacity),
                Room::Unbounded => places.take(Bound::None),
                Room::InFlight => places.take(Bound::InFlight),
                Room::Reserved => true,
            };
            if !took {
                return Err(self.refuse(ComputeError::Saturated));
            }
        }
        // ORDERING: Relaxed count, then the SeqCst fence that orders it
        // before the look at the lifecycle, against the fence in `close`
        // (see the module docs).
        let number = self.submit.0.admitted.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed: the fence above carries the ordering.
        if self.lifecycle.load(Ordering::Relaxed) != OPEN {
            // Closed between the check above and our count: the closer may
            // already have found the pool idle, so this job must not run.
            self.settle_cancelled();
            return Err(ComputeError::Shutdown);
        }
        Ok((Ticket(()), number))
    }

    /// Counts a refusal and returns its error.
    fn refuse(&self, error: ComputeError) -> ComputeError {
        // ORDERING: Relaxed: an independent tally.
        self.submit.0.refused.fetch_add(1, Ordering::Relaxed);
        error
    }

    /// Settles, from the handle's side, a job whose handle closed before the
    /// job started (`Closed::BeforeStart`): the job will see `try_start()`
    /// fail and [`forfeit`](Ticket::forfeit) its ticket.
    pub fn cancel_unstarted(&self) {
        self.settle_cancelled();
    }

    fn settle_cancelled(&self) {
        // ORDERING: Relaxed: an independent tally; a shutdown waiting for
        // it is notified after it (see `leave`).
        self.submit.0.cancelled.fetch_add(1, Ordering::Relaxed);
        self.leave();
    }

    /// A job left the active set: frees its place and wakes a shutdown
    /// waiting for the pool to go idle. One relaxed load while open.
    fn leave(&self) {
        self.release_place();
        if self.is_closed() {
            let _guard = self
                .idle_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    /// Gives a place back (a job left, or a permit went unused).
    pub(crate) fn release_place(&self) {
        if let Some(places) = &self.places {
            places.release();
        }
    }

    /// The places of a bounded pool, for reservers.
    pub(crate) fn places(&self) -> Option<&Places> {
        self.places.as_ref()
    }

    /// Whether new work is refused.
    pub fn is_closed(&self) -> bool {
        // ORDERING: Relaxed: a fast pre-check; `admit` looks again after its fence.
        self.lifecycle.load(Ordering::Relaxed) != OPEN
    }

    /// Whether jobs that have not started must be discarded.
    pub fn is_past_deadline(&self) -> bool {
        // ORDERING: Relaxed: a job that misses the flag by a hair runs,
        // which shutdown allows (it cannot stop running jobs anyway).
        self.lifecycle.load(Ordering::Relaxed) == PAST_DEADLINE
    }

    /// Refuses new work from now on. Every job admitted before is counted
    /// in what this thread reads of the ledger afterwards.
    pub fn close(&self) {
        // ORDERING: Relaxed exchange, then the SeqCst fence that orders it
        // before this thread's later reads of the counters, against the
        // fence in `admit` (see the module docs). A failed exchange (already
        // closed) changes nothing.
        let _ = self
            .lifecycle
            .compare_exchange(OPEN, CLOSED, Ordering::Relaxed, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        // Reservers waiting for a place see the pool closed and give up.
        if let Some(places) = &self.places {
            places.wake_all();
        }
    }

    /// Marks the shutdown deadline as passed: jobs not yet started are
    /// discarded when reached.
    pub fn pass_deadline(&self) {
        // ORDERING: Relaxed: a flag jobs check before they start; one that
        // misses it by a hair runs, which shutdown allows.
        self.lifecycle.store(PAST_DEADLINE, Ordering::Relaxed);
    }

    /// Jobs admitted and not yet finished or cancelled.
    pub fn active(&self) -> u64 {
        let c = self.counts();
        c.admitted
            .saturating_sub(c.completed + c.panicked + c.cancelled)
    }

    /// Waits until no job is active, or `deadline` passes (never, if `None`).
    /// Returns whether the pool went idle. Call after [`close`](Self::close).
    pub fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut guard = self
            .idle_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.active() == 0 {
                return true;
            }
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::MAX,
            };
            // Settles notify under the lock; the slice also covers one
            // that raced the check above without taking it.
            guard = self
                .idle
                .wait_timeout(guard, left.min(Duration::from_millis(10)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Whether job number `number` is running, or will be as soon as a
    /// thread looks (no job is ahead of it and a thread is free): only
    /// then can its awaiter be served sooner by waiting awake. Jobs start
    /// in about the order they were admitted, so this is an estimate.
    pub fn may_run_now(&self, number: u64, threads: u64) -> bool {
        let c = &self.compute.0;
        // ORDERING: Relaxed: an estimate from independent tallies: a stale
        // value only makes one awaiter wait awake or park when it could
        // have done the other. Later stages first, so `running` cannot go
        // negative.
        let finished = c.completed.load(Ordering::Relaxed) + c.panicked.load(Ordering::Relaxed);
        // ORDERING: Relaxed: as above.
        let started = c.started.load(Ordering::Relaxed);
        // ORDERING: Relaxed: as above.
        let left = started + self.submit.0.cancelled.load(Ordering::Relaxed);
        let running = started.saturating_sub(finished);
        left > number || (left == number && running < threads)
    }

    /// Handles parked on a result right now (the `awaited` gauge).
    pub fn parked_handles(&self) -> u64 {
        // ORDERING: Relaxed: a gauge read as a hint; a stale value only makes
        // one awaiter wait awake or park when it could have done the other.
        self.submit.0.awaited.load(Ordering::Relaxed)
    }

    /// A handle parked waiting for its result.
    pub fn awaiting(&self) {
        // ORDERING: Relaxed: a gauge read as a snapshot.
        self.submit.0.awaited.fetch_add(1, Ordering::Relaxed);
    }

    /// A parked handle resolved or was dropped.
    pub fn awaited(&self) {
        // ORDERING: Relaxed: as in `awaiting`.
        self.submit.0.awaited.fetch_sub(1, Ordering::Relaxed);
    }

    /// A copy of every counter. Later stages are read before earlier ones,
    /// so derived figures (active, queued, running) never go negative.
    pub fn counts(&self) -> Counts {
        let (s, c) = (&self.submit.0, &self.compute.0);
        // ORDERING: Relaxed for every load: after `close`, its fence orders
        // these reads (see the module docs); elsewhere a snapshot.
        let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
        let completed = load(&c.completed);
        let panicked = load(&c.panicked);
        let cancelled = load(&s.cancelled);
        let started = load(&c.started);
        let admitted = load(&s.admitted);
        Counts {
            admitted,
            refused: load(&s.refused),
            cancelled,
            started,
            completed,
            panicked,
            awaited: load(&s.awaited),
        }
    }
}

/// An admitted job's accounting obligation: consumed exactly once, by
/// [`start`](Ticket::start), [`cancel`](Ticket::cancel) or
/// [`forfeit`](Ticket::forfeit). See the module docs.
#[must_use = "an admitted job must be started, cancelled or forfeited"]
#[derive(Debug)]
pub struct Ticket(());

impl Ticket {
    /// The job starts running now.
    pub fn start(self, ledger: &Ledger) -> Running {
        std::mem::forget(self);
        // ORDERING: Relaxed: an independent tally.
        ledger.compute.0.started.fetch_add(1, Ordering::Relaxed);
        Running(())
    }

    /// The job will never run (discarded at shutdown, dropped unrun).
    pub fn cancel(self, ledger: &Ledger) {
        std::mem::forget(self);
        ledger.settle_cancelled();
    }

    /// The job's handle closed first and settled it
    /// ([`Ledger::cancel_unstarted`]): nothing left to count.
    pub fn forfeit(self) {
        std::mem::forget(self);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        debug_assert!(
            std::thread::panicking(),
            "a ticket was dropped without being settled"
        );
    }
}

/// A started job's obligation to report how it ended.
#[must_use = "a started job must be finished"]
pub struct Running(());

impl Running {
    /// The job ended: returned a value, or unwound if `panicked`.
    pub fn finish(self, ledger: &Ledger, panicked: bool) {
        std::mem::forget(self);
        let c = &ledger.compute.0;
        let done = if panicked { &c.panicked } else { &c.completed };
        // ORDERING: Relaxed: an independent tally; a shutdown waiting for
        // it is notified after it (see `leave`).
        done.fetch_add(1, Ordering::Relaxed);
        ledger.leave();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        debug_assert!(
            std::thread::panicking(),
            "a started job was dropped without being finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_is_counted_once_and_active_returns_to_zero() {
        let ledger = Ledger::new(None, None);
        let (ran, first) = ledger.admit(Room::Any).unwrap();
        let (dropped, second) = ledger.admit(Room::Any).unwrap();
        let (cancelled_by_handle, _) = ledger.admit(Room::Any).unwrap();
        assert_eq!((first, second), (0, 1));
        assert_eq!(ledger.active(), 3);
        ran.start(&ledger).finish(&ledger, false);
        dropped.cancel(&ledger);
        ledger.cancel_unstarted();
        cancelled_by_handle.forfeit();
        let c = ledger.counts();
        assert_eq!(
            (c.admitted, c.started, c.completed, c.cancelled),
            (3, 1, 1, 2)
        );
        assert_eq!(ledger.active(), 0);
    }

    #[test]
    fn a_closed_ledger_refuses_and_counts_the_refusal() {
        let ledger = Ledger::new(None, None);
        ledger.close();
        assert!(ledger.admit(Room::Any).unwrap_err().is_shutdown());
        assert_eq!(ledger.counts().refused, 1);
        assert_eq!(ledger.counts().admitted, 0);
        assert!(ledger.wait_idle(Some(Instant::now())));
    }

    #[test]
    fn in_flight_room_is_the_limit_and_comes_back_when_a_job_leaves() {
        let ledger = Ledger::new(Some(1), None);
        let (first, _) = ledger.admit(Room::InFlight).unwrap();
        assert!(matches!(
            ledger.admit(Room::InFlight),
            Err(ComputeError::Saturated)
        ));
        let (waits, _) = ledger.admit(Room::Any).expect("Any never saturates");
        first.start(&ledger).finish(&ledger, true);
        waits.cancel(&ledger);
        let (again, _) = ledger.admit(Room::InFlight).unwrap();
        again.cancel(&ledger);
        assert_eq!(ledger.counts().refused, 1);
        assert_eq!(ledger.active(), 0);
    }

    #[test]
    fn wait_idle_times_out_while_a_job_is_active() {
        let ledger = Ledger::new(None, None);
        let (ticket, _) = ledger.admit(Room::Any).unwrap();
        ledger.close();
        assert!(!ledger.wait_idle(Some(Instant::now() + Duration::from_millis(5))));
        ticket.cancel(&ledger);
        assert!(ledger.wait_idle(None));
    }
}
