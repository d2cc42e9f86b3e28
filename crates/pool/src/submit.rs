//! The one way a job enters a pool: [`PoolOwner::admit`], then one of three
//! routes.
//!
//! Every submitting method (the `execute` family, `try_execute`,
//! `execute_sync`, `execute_here`, and the nested calls any of them makes
//! from the pool's own threads) asks the ledger to admit its job first. A
//! refused job never runs: its closure is dropped here, a panic from a
//! capture's `Drop` contained and counted like any other. An admitted job
//! carries its ticket to one of:
//!
//! - **the run queue** ([`PoolOwner::submit`]): async work from outside the
//!   pool, awaited through a [`TaskHandle`];
//! - **this thread** ([`PoolOwner::submit_here`]): nested calls from the
//!   pool's own threads, and `execute_here`;
//! - **a compute thread while the caller blocks** ([`PoolOwner::submit_and_wait`]):
//!   `execute_sync`, whose job may borrow from the caller's stack.

use std::panic::Location;
use std::time::Instant;

use compute_bridge::Spin;

use crate::cancel::CancelToken;
use crate::detector::SitePtr;
use crate::engine::{Engine, PoolOwner};
use crate::erased::ErasedJob;
use crate::error::ComputeError;
use crate::handle::TaskHandle;
use crate::home;
use crate::job::{drop_contained, run_counted, Job, Origin};
use crate::ledger::{Room, Ticket};
use crate::priority::Priority;
use crate::spin::{linger_for, spin_until};
use crate::worker;

impl PoolOwner {
    /// Admits a job, or refuses it (`Shutdown`, or `Saturated` for
    /// [`Room::InFlight`]); a refused job's `work` is dropped here, a panic
    /// from its captures contained. Returns the ticket, the job's number and
    /// the work.
    fn admit<W>(&self, room: Room, work: W) -> Result<(Ticket, u64, W), ComputeError> {
        match self.engine.ledger.admit(room) {
            Ok((ticket, number)) => Ok((ticket, number, work)),
            Err(error) => {
                drop_contained(&self.engine, work);
                Err(error)
            }
        }
    }

    /// Whether the current thread is one of this pool's compute threads.
    pub(crate) fn is_worker_thread(&self) -> bool {
        self.rayon.current_thread_index().is_some()
    }

    /// Submits async work. From one of the pool's own threads it runs
    /// here and now (nesting can never deadlock), needing no room;
    /// otherwise it goes to the run queue.
    #[track_caller]
    pub(crate) fn submit<W, R>(
        &self,
        room: Room,
        lane: Priority,
        work: W,
    ) -> Result<TaskHandle<R>, ComputeError>
    where
        W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_from(Location::caller(), room, lane, work)
    }

    /// [`submit`](Self::submit), for a job whose call site is `location`:
    /// for adaptors that submit later on their caller's behalf, when
    /// `#[track_caller]` no longer reaches the caller.
    pub(crate) fn submit_from<W, R>(
        &self,
        location: &'static Location<'static>,
        room: Room,
        lane: Priority,
        work: W,
    ) -> Result<TaskHandle<R>, ComputeError>
    where
        W: FnOnce(CancelToken<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.is_worker_thread() {
            return Ok(TaskHandle::ready(self.submit_here_from(location, work)));
        }
        let (ticket, number, work) = self.admit(room, work)?;
        let engine = &self.engine;
        let site = home::site(engine, location);
        let (tx, rx) = compute_bridge::channel();
        let job = ErasedJob::new(Job::new(engine, ticket, tx, site, work));
        // A High job may start a runner that takes it along (no queue slot);
        // a Low one always queues, behind any High job waiting.
        let runner_started = if lane == Priority::High && engine.queue.claim_runner() {
            self.rayon.spawn(move || worker::runner(Some(job)));
            true
        } else if engine.queue.push(job, lane) {
            self.rayon.spawn(|| worker::runner(None));
            true
        } else {
            false
        };
        Ok(TaskHandle::waiting(
            rx,
            engine.clone(),
            number,
            runner_started,
        ))
    }

    /// Runs `work` on the calling thread as a counted job of this pool.
    #[track_caller]
    pub(crate) fn submit_here<W, R>(&self, work: W) -> Result<R, ComputeError>
    where
        W: FnOnce(CancelToken<'_>) -> R,
    {
        self.submit_here_from(Location::caller(), work)
    }

    /// [`submit_here`](Self::submit_here), for a job whose call site is
    /// `location` (see [`submit_from`](Self::submit_from)).
    pub(crate) fn submit_here_from<W, R>(
        &self,
        location: &'static Location<'static>,
        work: W,
    ) -> Result<R, ComputeError>
    where
        W: FnOnce(CancelToken<'_>) -> R,
    {
        let (ticket, _, work) = self.admit(Room::Unbounded, work)?;
        let site = home::site(&self.engine, location);
        self.run_inline(ticket, site, work)
    }

    fn run_inline<W, R>(&self, ticket: Ticket, site: SitePtr, work: W) -> Result<R, ComputeError>
    where
        W: FnOnce(CancelToken<'_>) -> R,
    {
        let engine: &Engine = &self.engine;
        let token = CancelToken::inline(&engine.ledger);
        run_counted(
            engine,
            ticket,
            Instant::now(),
            None,
            &Origin::current(site),
            work,
            token,
        )
    }

    /// Runs `f` on the pool and blocks the calling thread until it is done;
    /// `f` may borrow from the caller. See `ComputePool::execute_sync`.
    #[track_caller]
    pub(crate) fn submit_and_wait<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let (ticket, number, f) = self.admit(Room::Unbounded, f)?;
        let site = home::site(&self.engine, Location::caller());
        if self.is_worker_thread() {
            return self.run_inline(ticket, site, move |_| f());
        }
        if rayon::current_thread_index().is_some() {
            // A thread of another rayon pool: rayon's `install` keeps it
            // running its own pool's jobs while it waits. Parked, it would
            // not, and a job of ours that calls back into its pool could
            // wait for it forever.
            return self
                .rayon
                .install(move || self.run_inline(ticket, site, move |_| f()));
        }
        // The job goes to the pool's threads like any other, but lives on
        // this stack, borrowing what `f` borrows; this thread waits for its
        // channel, spinning first when the pool's jobs are short.
        let engine = &self.engine;
        let (tx, rx) = compute_bridge::channel();
        let job = Job::new(engine, ticket, tx, site, move |_: CancelToken<'_>| f());
        // SAFETY: this function returns only after `rx` resolves below, and
        // neither it nor the wait runs user code that could unwind before
        // that. `rx` resolves when the job sends, after `f` was consumed,
        // or when the job is dropped unrun, after `f` was dropped (the work
        // goes before the channel: see `Job::parts`); either way nothing
        // `f` borrows is used afterwards.
        let job = unsafe { ErasedJob::new_borrowed(job) };
        self.rayon.spawn(move || {
            home::with_engine(|engine| {
                let outermost = home::enter_job();
                job.run(engine, None, &mut || {});
                // A compute thread that just finished a job lingers
                // for the next one (see `spin.rs`).
                if let (Some(_), Some(budget)) = (outermost, engine.linger_budget()) {
                    linger_for(budget);
                }
            });
        });
        // Spawned as a job of its own: no runner of the queue takes it.
        if let Some(budget) = engine.spin_budget(number, false) {
            spin_until(budget, || rx.is_finished());
        }
        rx.recv_blocking_with(Spin::OFF)
            .unwrap_or(Err(ComputeError::Lost))
    }
}
