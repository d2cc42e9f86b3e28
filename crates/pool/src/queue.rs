//! The pool's run queue: every job submitted to the pool (the `execute`
//! family, with or without `max_in_flight`) waits here, and *runners*,
//! rayon tasks that drain the queue (see `worker.rs`), run them.
//!
//! A `rayon::spawn` per job boxes the job, counts it on the registry's
//! terminate counter (a cache line the submitting and the computing thread
//! both write), pushes it on rayon's injector and checks rayon's sleep
//! counters; a runner that is already running takes the next job from the
//! queue with one compare-and-swap.
//!
//! The protocol is [`compute_bridge::Runners`] (loom-checked in the
//! `loom-tests` package): a submitter pushes, then asks whether a runner
//! must be started; a runner that finds the queue empty retires only after
//! a fenced second look. So a queued job always has a runner that will
//! reach it, however submitting and retiring race. At most `max_runners`
//! runners exist: the pool's threads, or fewer under `max_in_flight`, which
//! is how that limit holds (each runner runs one job at a time).
//!
//! # Lanes
//!
//! The queue has two lanes ([`Priority`]). The High lane is crossbeam's
//! `Injector` (the one rayon itself uses for work submitted from outside):
//! unbounded, first in first out, one allocation per 63 jobs, and a job
//! sits in the queue's slot itself when it is small (`ErasedJob`), so
//! queuing it allocates nothing of its own. The Low lane, for batch work, is
//! a locked first-in first-out queue that remembers when each job came, so
//! its oldest job's wait can be seen.
//!
//! A runner takes the next job from High, unless Low is due: while Low jobs
//! wait, every `every`-th start goes to Low (the others were High in a
//! row), and a Low job that has waited `max_wait` starts next. For the
//! runner count, the queue is empty only when both lanes are.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use compute_bridge::Runners;
use crossbeam_deque::{Injector, Steal};

use crate::priority::Priority;
use crate::watchers::Watchers;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// When the Low lane gets a turn. See the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LanePolicy {
    /// At least one start in `every` goes to Low while Low jobs wait.
    pub(crate) every: u32,
    /// A Low job that has waited this long starts next.
    pub(crate) max_wait: Duration,
}

/// The queue and the count of its runners. See the module docs.
pub(crate) struct RunQueue<J> {
    high: Injector<J>,
    low: Mutex<VecDeque<(Instant, J)>>,
    /// Jobs in the Low lane: counted before the push's fence and after the
    /// pop, so the runner count's empty checks see every waiting job.
    low_len: AtomicUsize,
    /// High starts in a row while Low jobs waited.
    high_streak: AtomicU64,
    policy: LanePolicy,
    pub(crate) runners: Runners,
    /// Where runners linger, watching this queue.
    pub(crate) watchers: Watchers,
}

impl<J> RunQueue<J> {
    /// An empty queue drained by at most `max_runners` runners.
    pub(crate) fn new(max_runners: usize, policy: LanePolicy) -> RunQueue<J> {
        RunQueue {
            high: Injector::new(),
            low: Mutex::new(VecDeque::new()),
            low_len: AtomicUsize::new(0),
            high_streak: AtomicU64::new(0),
            policy,
            runners: Runners::new(max_runners),
            watchers: Watchers::default(),
        }
    }

    /// Queues `job` in `lane`; returns `true` when the caller must start a
    /// runner.
    #[must_use = "a queued job may need a runner started"]
    pub(crate) fn push(&self, job: J, lane: Priority) -> bool {
        match lane {
            Priority::High => self.high.push(job),
            Priority::Low => {
                let mut low = self.lock_low();
                low.push_back((Instant::now(), job));
                // ORDERING: Relaxed: `after_push`'s SeqCst fence orders this
                // count before its look at the queue (see `Runners`).
                self.low_len.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.runners.after_push(|| self.is_empty())
    }

    /// Jobs waiting in `lane` (a snapshot).
    pub(crate) fn waiting(&self, lane: Priority) -> usize {
        match lane {
            Priority::High => self.high.len(),
            // ORDERING: Relaxed: a snapshot.
            Priority::Low => self.low_len.load(Ordering::Relaxed),
        }
    }

    /// Counts a new runner if the next job wants one before it is even
    /// queued (no runner idle, fewer than the most alive): the caller then
    /// starts a runner that brings the job along, and the job needs no
    /// queue slot.
    pub(crate) fn claim_runner(&self) -> bool {
        self.runners.claim()
    }

    /// The next job, if any, and its lane: High first, unless Low is due
    /// (see the module docs).
    pub(crate) fn pop(&self) -> Option<(J, Priority)> {
        // ORDERING: Relaxed: a hint; the lock decides.
        let low_waits = self.low_len.load(Ordering::Relaxed) > 0;
        if low_waits {
            if let Some(job) = self.pop_low(false) {
                return Some((job, Priority::Low));
            }
        }
        if let Some(job) = self.pop_high() {
            if low_waits {
                // ORDERING: Relaxed: a turn counter; a lost update only
                // moves Low's turn by a start.
                self.high_streak.fetch_add(1, Ordering::Relaxed);
            }
            return Some((job, Priority::High));
        }
        self.pop_low(true).map(|job| (job, Priority::Low))
    }

    fn pop_high(&self) -> Option<J> {
        loop {
            match self.high.steal() {
                Steal::Success(job) => return Some(job),
                Steal::Empty => return None,
                // Another runner took the slot we aimed at: look again.
                Steal::Retry => {}
            }
        }
    }

    /// The oldest Low job, if `anyway` or Low is due.
    fn pop_low(&self, anyway: bool) -> Option<J> {
        let mut low = self.lock_low();
        let (since, _) = low.front()?;
        // ORDERING: Relaxed: see `pop`.
        let streak = self.high_streak.load(Ordering::Relaxed);
        let due = anyway
            || streak + 1 >= u64::from(self.policy.every)
            || since.elapsed() >= self.policy.max_wait;
        if !due {
            return None;
        }
        let (_, job) = low.pop_front()?;
        // ORDERING: Relaxed: counted down after the job left the lane, so
        // an empty check never misses a job still in it.
        self.low_len.fetch_sub(1, Ordering::Relaxed);
        // ORDERING: Relaxed: see `pop`.
        self.high_streak.store(0, Ordering::Relaxed);
        Some(job)
    }

    fn lock_low(&self) -> MutexGuard<'_, VecDeque<(Instant, J)>> {
        self.low.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether no job waits in either lane.
    pub(crate) fn is_empty(&self) -> bool {
        // ORDERING: Relaxed: called after the SeqCst fences of `Runners`,
        // which order it against the pushes (see `push`).
        self.high.is_empty() && self.low_len.load(Ordering::Relaxed) == 0
    }
}
