//! Back-pressure: at most `max_in_flight` jobs queued on, or running in, the
//! rayon pool; the rest wait in a first-come first-served queue owned by
//! the pool.
//!
//! With a limit, every job goes through this queue, and rayon runs
//! *pullers* instead of the jobs themselves. A puller holds one permit; it
//! takes the job at the front of the queue, runs it, and repeats until the
//! queue is empty, then gives its permit back. A submitter queues its job
//! and, if a permit is free, spawns a new puller. So:
//!
//! - at most `max_in_flight` pullers exist, hence at most that many jobs
//!   are running or about to;
//! - a puller gives its permit back as soon as its job's work is over and
//!   nothing waits (before the job's result is sent), so an awaiter that
//!   wakes up finds room;
//! - jobs start in the order they were queued (exactly so with one compute
//!   thread; with several, jobs taken at the same moment race);
//! - nothing depends on the job's [`TaskHandle`](crate::TaskHandle) being
//!   polled: a handle just waits for its result, as without a limit;
//! - a handle dropped while its job waits leaves the job behind as an
//!   abandoned entry: pullers skip it, and the queue prunes such entries
//!   now and then, so dropped handles do not pile up.
//!
//! # Why no wakeup is lost
//!
//! A puller finds the queue empty and gives its permit back in one critical
//! section (after a job, or between jobs); a submitter pushes its job in another and only then tries to
//! take a permit. If the puller's section came first, its give-back
//! happens before the submitter's attempt, which sees the free permit and
//! spawns a puller. If the push came first, the puller finds the job.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::metrics::PoolMetrics;

/// A job waiting in the queue, type-erased.
pub(crate) trait QueuedJob: Send {
    /// Whether its handle is gone, so it need not run.
    fn is_abandoned(&self) -> bool;

    /// Runs the job on the current compute thread, calling `before_send`
    /// once when its work is over, before its result is sent.
    fn run_queued(self: Box<Self>, before_send: &mut dyn FnMut());

    /// Resolves the job to `Err(Shutdown)` without running it.
    fn discard(self: Box<Self>);
}

/// The `max_in_flight` limit and its queue.
pub(crate) struct Gate {
    limit: usize,
    /// Permits held, one per puller.
    pullers: AtomicUsize,
    /// The queue length, for a lock-free look (`try_execute`, metrics).
    waiting: AtomicUsize,
    queue: Mutex<Queue>,
}

struct Queue {
    jobs: VecDeque<Box<dyn QueuedJob>>,
    /// Pullers spawned that have not yet looked at the queue: each will
    /// take a job if there is one, so no more are needed while they cover
    /// the queue.
    pending_pullers: usize,
    /// Abandoned jobs are pruned when the queue reaches this length.
    prune_at: usize,
}

/// The queue length from which abandoned jobs are pruned.
const MIN_PRUNE_AT: usize = 64;

impl Gate {
    pub(crate) fn new(limit: usize) -> Gate {
        Gate {
            limit,
            pullers: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                pending_pullers: 0,
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }

    /// Queues `job`. Returns `true` when the caller must spawn a puller
    /// ([`Gate::pull`]): a permit was free (and is now the puller's) and no
    /// puller already on its way will take the job.
    #[must_use]
    pub(crate) fn enqueue(&self, job: Box<dyn QueuedJob>) -> bool {
        let (spawn, pruned) = {
            let mut queue = self.lock();
            let pruned = self.prune_if_long(&mut queue);
            queue.jobs.push_back(job);
            self.publish_len(&queue);
            let spawn = queue.pending_pullers < queue.jobs.len() && self.take_permit();
            if spawn {
                queue.pending_pullers += 1;
            }
            (spawn, pruned)
        };
        // Dropped outside the lock: a job's captures may take their time.
        drop(pruned);
        spawn
    }

    /// Queues `job` only if it can start without waiting for a running job:
    /// a puller on its way is free to take it, or a permit is free.
    /// Otherwise hands it back. `Ok(true)`: the caller must spawn a puller,
    /// as for [`Gate::enqueue`].
    pub(crate) fn try_enqueue(&self, job: Box<dyn QueuedJob>) -> Result<bool, Box<dyn QueuedJob>> {
        let mut queue = self.lock();
        let spawn = if queue.jobs.len() < queue.pending_pullers {
            false
        } else if self.take_permit() {
            queue.pending_pullers += 1;
            true
        } else {
            return Err(job);
        };
        queue.jobs.push_back(job);
        self.publish_len(&queue);
        Ok(spawn)
    }

    /// The puller: runs on a compute thread holding one permit. Runs queued
    /// jobs in order until the queue is empty, then gives the permit back.
    pub(crate) fn pull(&self, metrics: &PoolMetrics) {
        let mut first = true;
        loop {
            let mut pruned = Vec::new();
            let next = {
                let mut queue = self.lock();
                if std::mem::take(&mut first) {
                    queue.pending_pullers -= 1;
                }
                let next = self.pop_live(&mut queue, &mut pruned);
                if next.is_none() {
                    // In the same critical section as the emptiness check:
                    // see the module docs.
                    self.give_back();
                }
                next
            };
            drop(pruned);
            let Some(job) = next else {
                return;
            };
            // When the job's work is over, and before its awaiter is woken:
            // if nothing else waits, give the permit back now, so the
            // awaiter finds room; otherwise keep it for the next job.
            let released = Cell::new(false);
            let mut before_send = || {
                let queue = self.lock();
                if queue.jobs.is_empty() {
                    self.give_back();
                    released.set(true);
                }
            };
            // A job catches its own panics; what could still escape (a
            // panicking waker, say) must not cost the permit.
            if catch_unwind(AssertUnwindSafe(|| job.run_queued(&mut before_send))).is_err() {
                metrics.record_escaped_panic();
            }
            if released.get() {
                return;
            }
        }
    }

    /// Empties the queue (shutdown past its deadline): every queued job
    /// resolves to `Err(Shutdown)` without running.
    pub(crate) fn discard_all(&self) {
        let jobs = {
            let mut queue = self.lock();
            let jobs = std::mem::take(&mut queue.jobs);
            self.publish_len(&queue);
            jobs
        };
        for job in jobs {
            job.discard();
        }
    }

    /// Jobs waiting in the queue (a snapshot).
    pub(crate) fn waiting(&self) -> usize {
        // ORDERING: Relaxed: a diagnostic snapshot.
        self.waiting.load(Ordering::Relaxed)
    }

    /// The limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// One permit, if one is free.
    fn take_permit(&self) -> bool {
        // ORDERING: AcqRel: the read pairs with `give_back` through the queue
        // lock (see the module docs); a read-modify-write always sees the
        // latest count. A failed update takes nothing: Relaxed.
        self.pullers
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        // ORDERING: Release, under the queue lock, which orders it before
        // the next submitter's push and permit attempt.
        self.pullers.fetch_sub(1, Ordering::Release);
    }

    /// Pops the first job whose handle is still there; abandoned ones go to
    /// `pruned`, to be dropped after the lock.
    fn pop_live(
        &self,
        queue: &mut Queue,
        pruned: &mut Vec<Box<dyn QueuedJob>>,
    ) -> Option<Box<dyn QueuedJob>> {
        let mut found = None;
        while let Some(job) = queue.jobs.pop_front() {
            if job.is_abandoned() {
                pruned.push(job);
            } else {
                found = Some(job);
                break;
            }
        }
        self.publish_len(queue);
        found
    }

    /// Drops abandoned jobs once the queue has doubled since the last prune
    /// (amortised O(1) per submission). Returns them, to drop after the lock.
    fn prune_if_long(&self, queue: &mut Queue) -> VecDeque<Box<dyn QueuedJob>> {
        if queue.jobs.len() < queue.prune_at {
            return VecDeque::new();
        }
        let (dead, live): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut queue.jobs)
            .into_iter()
            .partition(|job| job.is_abandoned());
        queue.jobs = live;
        queue.prune_at = (queue.jobs.len() * 2).max(MIN_PRUNE_AT);
        self.publish_len(queue);
        dead
    }

    /// Publishes the queue length; called under the lock after each change.
    fn publish_len(&self, queue: &Queue) {
        // ORDERING: Relaxed: read only as a hint or a snapshot.
        self.waiting.store(queue.jobs.len(), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
