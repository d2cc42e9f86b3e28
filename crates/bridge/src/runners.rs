//! [`Runners`]: the count of tasks draining a job queue, kept so that no job
//! is ever left in the queue with nobody to run it.

use crate::sync::{fence, AtomicUsize, Ordering};

/// Counts the runners that drain a queue of jobs (tasks that pop and run
/// jobs until the queue is empty), so that submitters start a runner only
/// when one is needed and **a pushed job is never stranded**: if every
/// runner stops, the last one to stop sees any job pushed before it stopped
/// and carries on instead.
///
/// The queue itself is the caller's; `Runners` only needs to be told whether
/// it is empty. The protocol:
///
/// - a **submitter** pushes its job, then calls [`after_push`](Self::after_push):
///   `true` means no runner is sure to see the job, so the caller must
///   start one (it is already counted). Before pushing, it may
///   [`claim`](Self::claim) a runner instead and start it with the job in
///   hand, when a runner would be wanted anyway;
/// - a **runner** pops and runs jobs; while it has none it may say so with
///   [`idle`](Self::idle) (a hint that keeps submitters from starting
///   runners it would serve anyway) and take it back with
///   [`busy`](Self::busy); to stop, it calls [`retire`](Self::retire) (not
///   idle), which answers `false` when a job arrived meanwhile: the runner
///   is counted again and must carry on.
///
/// ```
/// use std::collections::VecDeque;
/// use std::sync::Mutex;
/// use compute_bridge::Runners;
///
/// let queue = Mutex::new(VecDeque::new());
/// let runners = Runners::new(1);
/// queue.lock().unwrap().push_back("job");
/// assert!(runners.after_push(|| queue.lock().unwrap().is_empty())); // start one
/// // ...the runner:
/// while let Some(job) = queue.lock().unwrap().pop_front() {
///     assert_eq!(job, "job");
/// }
/// assert!(runners.retire(|| queue.lock().unwrap().is_empty())); // it may stop
/// ```
///
/// Why nothing is stranded: a submitter's push, a `SeqCst` fence, then its
/// reads of the counts; a retiring runner's decrement, a `SeqCst` fence,
/// then its look at the queue. Of two `SeqCst` fences one comes first, so
/// either the submitter sees the runner gone (and starts one) or the runner
/// sees the job (and stays). The loom model `runners_never_strand_a_job`
/// checks every interleaving.
#[derive(Debug)]
pub struct Runners {
    /// Runners started and not retired.
    alive: AtomicUsize,
    /// Runners alive that have said they have no job (a hint only).
    idle: AtomicUsize,
    /// The most runners `after_push` asks for.
    max: usize,
}

impl Runners {
    /// No runner yet; `after_push` asks for at most `max` (at least 1).
    pub fn new(max: usize) -> Runners {
        Runners {
            alive: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            max: max.max(1),
        }
    }

    /// Call right after pushing a job; `queue_is_empty` looks at the queue.
    /// Returns `true` when the caller must start a runner, which is then
    /// already counted: no runner is idle, the job is still queued, and
    /// fewer than `max` runners are alive. Otherwise a runner alive now is
    /// sure to reach the job (or the job was already taken).
    pub fn after_push(&self, queue_is_empty: impl FnOnce() -> bool) -> bool {
        // ORDERING: SeqCst fence: orders our push before the reads below,
        // against `retire`'s fence between its decrement and its look at the
        // queue (see the type's docs). The counts themselves are Relaxed:
        // the fences carry the ordering.
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, see above. An idle runner either takes the job
        // or retires through the fenced check, which sees it.
        if self.idle.load(Ordering::Relaxed) > 0 || queue_is_empty() {
            return false;
        }
        // `false`: `max` runners are alive; each looks at the queue before
        // it stops.
        self.count_one_more()
    }

    /// Counts one more runner if the next job wants one even before it is
    /// pushed: no runner is idle and fewer than `max` are alive. The caller
    /// then starts a runner that brings that job along instead of pushing
    /// it; the runner drains the queue after it like any other.
    pub fn claim(&self) -> bool {
        // ORDERING: Relaxed: a hint, as in `after_push`. A claim that misses
        // an idle runner starts one runner too many (it drains and retires);
        // nothing is pushed, so nothing can be stranded here.
        if self.idle.load(Ordering::Relaxed) > 0 {
            return false;
        }
        self.count_one_more()
    }

    /// Counts one more runner unless `max` are alive.
    fn count_one_more(&self) -> bool {
        // ORDERING: Relaxed: a count; `after_push`'s and `retire`'s fences
        // order it against the queue.
        let mut alive = self.alive.load(Ordering::Relaxed);
        while alive < self.max {
            // ORDERING: Relaxed, as above.
            match self.alive.compare_exchange_weak(
                alive,
                alive + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => alive = now,
            }
        }
        false
    }

    /// A runner found no job and is waiting for one.
    pub fn idle(&self) {
        // ORDERING: Relaxed: a hint for `after_push`; correctness rests on
        // `retire`, which the runner reaches only through `busy`.
        self.idle.fetch_add(1, Ordering::Relaxed);
    }

    /// A runner that called [`idle`](Self::idle) took a job, or is about to
    /// retire.
    pub fn busy(&self) {
        // ORDERING: Relaxed: as in `idle`. `retire`'s fence comes after
        // this in program order, so a submitter that sees the runner gone
        // sees it no longer idle too.
        self.idle.fetch_sub(1, Ordering::Relaxed);
    }

    /// A runner that found the queue empty stops being counted. Returns
    /// `true` if it may stop; `false` if a job arrived meanwhile (then it is
    /// counted again and must carry on). Call it only while not idle.
    pub fn retire(&self, queue_is_empty: impl FnOnce() -> bool) -> bool {
        // ORDERING: Relaxed decrement, then the SeqCst fence that pairs with
        // `after_push`'s (see the type's docs).
        self.alive.fetch_sub(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if queue_is_empty() {
            return true;
        }
        // ORDERING: Relaxed: a count, as above.
        self.alive.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Runners alive now: a snapshot, for tests, and for a runner on a
    /// crowded CPU to see whether another could take over (a wrong guess
    /// only decides which runner serves, never whether one does).
    pub fn alive(&self) -> usize {
        // ORDERING: Relaxed: a snapshot only.
        self.alive.load(Ordering::Relaxed)
    }
}
