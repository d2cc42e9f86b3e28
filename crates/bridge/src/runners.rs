//! [`Runners`]: the count of tasks draining a job queue, kept so that no job
//! is ever left in the queue with nobody to run it.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use crate::sync::{fence, AtomicUsize, Condvar, Mutex, Ordering};

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
///   is counted again and must carry on. Before retiring it may
///   [`doze`](Self::doze) instead: sleep, still counted and idle, until a
///   job is pushed or a timeout passes, so a steady stream of jobs finds
///   it there rather than starting a runner each time.
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
/// sees the job (and stays). The loom models
/// `race9_runner_retires_while_a_job_arrives` and
/// `race9_claimed_runner_retires_while_a_job_arrives` check every
/// interleaving.
///
/// Why a dozing runner is always woken: the same pattern, with the dozer's
/// mark and a fence before its look at the queue, and the submitter's read
/// of the mark after its fence; a submitter that sees the mark notifies the
/// dozer under the mutex the dozer holds from its look to its sleep, so a
/// ring before the dozer sleeps is not lost.
/// The loom model `race10_runner_dozes_while_a_job_arrives` checks it.
#[derive(Debug)]
pub struct Runners {
    /// Runners started and not retired.
    alive: AtomicUsize,
    /// Runners alive that have said they have no job (a hint only).
    idle: AtomicUsize,
    /// The most runners `after_push` asks for.
    max: usize,
    /// 1 while a runner dozes (at most one does), else 0.
    dozing: AtomicUsize,
    /// Held by the dozer while it looks at the queue, and by a submitter
    /// ringing for it: no ring falls between the look and the sleep.
    bell: Mutex<()>,
    /// Where the dozer sleeps.
    bell_rung: Condvar,
}

impl Runners {
    /// No runner yet; `after_push` asks for at most `max` (at least 1).
    pub fn new(max: usize) -> Runners {
        Runners {
            alive: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            max: max.max(1),
            dozing: AtomicUsize::new(0),
            bell: Mutex::new(()),
            bell_rung: Condvar::new(),
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
            // An idle runner may be dozing: then it needs waking.
            self.wake_dozer();
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

    /// A runner that found the queue empty, instead of retiring, sleeps
    /// until a job is pushed or `timeout` has passed; it stays counted and
    /// idle meanwhile, so submitters start no runner and wake it instead.
    /// Returns `true` when a job is waiting (carry on draining), `false`
    /// when time is up or another runner is dozing already (at most one
    /// does): then retire as usual. Call it only while not idle.
    ///
    /// A wake-up that finds the queue empty (another runner took the job)
    /// sleeps again until the deadline.
    pub fn doze(&self, timeout: Duration, queue_is_empty: impl Fn() -> bool) -> bool {
        // A timeout too far off to count is none: sleep until a job comes.
        let deadline = Instant::now().checked_add(timeout);
        // ORDERING: Relaxed: picks the one dozer; the fence below orders
        // the mark against the queue.
        if self
            .dozing
            .compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.idle();
        // Not idle, not dozing, however we leave (a panicking
        // `queue_is_empty` included): a mark left behind would keep
        // submitters from ever starting a runner.
        let _awake = WakeUp(self);
        // ORDERING: SeqCst fence: orders the mark before the look at the
        // queue, against `after_push`'s fence between its push and its read
        // of the mark (see the type's docs).
        fence(Ordering::SeqCst);
        let mut bell = self.bell.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            // Under the lock. A submitter that rings from now on takes the
            // lock to do so, so it finds us waiting; one that rang before
            // pushed before, and this look sees its job (the lock orders
            // its push before the look).
            if !queue_is_empty() {
                return true;
            }
            bell = match deadline {
                None => self
                    .bell_rung
                    .wait(bell)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    match self.bell_rung.wait_timeout(bell, left) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                }
            };
        }
    }

    /// Rings the bell if a runner dozes. Called after a push and its fence.
    fn wake_dozer(&self) {
        // ORDERING: Relaxed: read after `after_push`'s fence, which pairs
        // with the fence in `doze`.
        if self.dozing.load(Ordering::Relaxed) == 0 {
            return;
        }
        // Notified under the lock: see `doze`.
        let _bell = self.bell.lock().unwrap_or_else(PoisonError::into_inner);
        self.bell_rung.notify_one();
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

    /// Whether a runner dozes now: a snapshot, for tests.
    pub fn dozing(&self) -> bool {
        // ORDERING: Relaxed: a snapshot only.
        self.dozing.load(Ordering::Relaxed) != 0
    }

    /// Runners alive now: a snapshot, for tests, and for a runner on a
    /// crowded CPU to see whether another could take over (a wrong guess
    /// only decides which runner serves, never whether one does).
    pub fn alive(&self) -> usize {
        // ORDERING: Relaxed: a snapshot only.
        self.alive.load(Ordering::Relaxed)
    }
}

/// Takes a dozing runner back: not idle, not dozing.
struct WakeUp<'a>(&'a Runners);

impl Drop for WakeUp<'_> {
    fn drop(&mut self) {
        self.0.busy();
        // ORDERING: Relaxed: the mark is only a hint once the dozer is
        // awake; a submitter that still sees it notifies nobody.
        self.0.dozing.store(0, Ordering::Relaxed);
    }
}
