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
//! The queue is crossbeam's `Injector` (the one rayon itself uses for work
//! submitted from outside): unbounded, first in first out, one allocation
//! per 63 jobs. A job sits in the queue's slot itself when it is small
//! (`ErasedJob`), so queuing it allocates nothing of its own.

use compute_bridge::Runners;
use crossbeam_deque::{Injector, Steal};

/// The queue and the count of its runners. See the module docs.
pub(crate) struct RunQueue<J> {
    jobs: Injector<J>,
    pub(crate) runners: Runners,
}

impl<J> RunQueue<J> {
    /// An empty queue drained by at most `max_runners` runners.
    pub(crate) fn new(max_runners: usize) -> RunQueue<J> {
        RunQueue {
            jobs: Injector::new(),
            runners: Runners::new(max_runners),
        }
    }

    /// Queues `job`; returns `true` when the caller must start a runner.
    #[must_use = "a queued job may need a runner started"]
    pub(crate) fn push(&self, job: J) -> bool {
        self.jobs.push(job);
        self.runners.after_push(|| self.jobs.is_empty())
    }

    /// Counts a new runner if the next job wants one before it is even
    /// queued (no runner idle, fewer than the most alive): the caller then
    /// starts a runner that brings the job along, and the job needs no
    /// queue slot.
    pub(crate) fn claim_runner(&self) -> bool {
        self.runners.claim()
    }

    /// The next job, if any.
    pub(crate) fn pop(&self) -> Option<J> {
        loop {
            match self.jobs.steal() {
                Steal::Success(job) => return Some(job),
                Steal::Empty => return None,
                // Another runner took the slot we aimed at: look again.
                Steal::Retry => {}
            }
        }
    }

    /// Whether no job waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}
