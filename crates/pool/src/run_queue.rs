//! The pool's run queue: jobs submitted with `execute` (and the async
//! methods built on it) wait here and are run by *runners*, rayon tasks that
//! drain the queue, rather than by one `rayon::spawn` each.
//!
//! A `rayon::spawn` per job boxes the job, counts it on the registry's
//! terminate counter (a cache line the submitting and the computing thread
//! both write), pushes it on rayon's injector and checks rayon's sleep
//! counters; a runner that is already running takes the next job from the
//! queue with one compare-and-swap. With many jobs in flight that is
//! most of a job's cost (see `docs/benchmarks.md`).
//!
//! - There are at most as many runners as the pool has threads. A submitter
//!   starts one only when no runner is idle and its job is still queued;
//!   [`compute_bridge::Runners`] (loom-checked) makes sure a queued job always
//!   has a runner that will reach it, however submitting and retiring race.
//!   When a runner is wanted before the job is even queued, it is started
//!   with the job in hand ([`RunQueue::claim_runner`]): a lone job then
//!   costs one `rayon::spawn` and no queue slot.
//! - A runner that runs out of short jobs lingers as a compute thread does
//!   after a short job (see `spin.rs`): for the linger budget it watches the
//!   queue and runs any other rayon work that turns up, then retires. (Rayon
//!   itself then keeps the thread awake a little longer: an idle rayon
//!   thread spins through a few dozen `sched_yield`s before it sleeps, which
//!   catches the next job when it comes a few tens of microseconds later.)
//! - A runner that runs out of long jobs (too long to linger for, or with
//!   the await spin off) dozes instead (one runner at a time, in pools of
//!   two threads or more): asleep, it waits up to the keep-alive for the
//!   next job, which the submitter hands it with a wake-up
//!   ([`Runners::doze`], loom-checked); then it retires. Between long jobs
//!   going back to rayon costs more than it seems: the idle spin above,
//!   after every job, and a rayon thread that finds work wakes a sleeping
//!   sibling to help, which spins in turn; a dozing runner spares both.
//! - On a crowded CPU a runner steps aside for one on another thread (see
//!   [`RunQueue::drain`]).
//! - A runner started inside another job (rayon runs queued work on a thread
//!   that waits in `join` or `scope`) runs one job, then hands the rest to a
//!   fresh runner, so the job it interrupted is not held up by the queue.
//!
//! The queue is crossbeam's `Injector` (the one rayon itself uses for work
//! submitted from outside): unbounded, one allocation per 63 jobs. A job
//! sits in the queue's slot itself when it is small ([`InlineJob`]), so
//! queuing it allocates nothing of its own.

use std::cell::Cell;
use std::time::Duration;

use compute_bridge::Runners;
use crossbeam_deque::{Injector, Steal};

use crate::inline_job::InlineJob;
use crate::job::{ComputeThreadHome, Home, OutermostJob};
use crate::spin::{linger_until, Rounds};

/// The queue and the count of its runners. See the module docs.
pub(crate) struct RunQueue {
    jobs: Injector<InlineJob>,
    runners: Runners,
}

impl RunQueue {
    /// An empty queue drained by at most `max_runners` runners.
    pub(crate) fn new(max_runners: usize) -> RunQueue {
        RunQueue {
            jobs: Injector::new(),
            runners: Runners::new(max_runners),
        }
    }

    /// Queues `job`; returns `true` when the caller must start a runner
    /// ([`runner`]).
    #[must_use = "a queued job may need a runner started"]
    pub(crate) fn push(&self, job: InlineJob) -> bool {
        self.jobs.push(job);
        self.runners.after_push(|| self.jobs.is_empty())
    }

    /// The next job, if any.
    fn pop(&self) -> Option<InlineJob> {
        loop {
            match self.jobs.steal() {
                Steal::Success(job) => return Some(job),
                Steal::Empty => return None,
                // Another runner took the slot we aimed at: look again.
                Steal::Retry => {}
            }
        }
    }

    /// Runners alive now (for tests).
    #[cfg(test)]
    pub(crate) fn runners(&self) -> usize {
        self.runners.alive()
    }

    /// Whether a runner dozes now (for tests).
    #[cfg(test)]
    pub(crate) fn dozing(&self) -> bool {
        self.runners.dozing()
    }

    /// Counts a new runner if the next job wants one before it is even
    /// queued (no runner idle, fewer than the most alive): the caller then
    /// starts a runner that brings the job along ([`runner_with`]), and the
    /// job needs no queue slot.
    pub(crate) fn claim_runner(&self) -> bool {
        self.runners.claim()
    }

    /// The body of a runner: runs `first` if it brought a job along, drains
    /// the queue, then lingers for `linger()` (short jobs) or dozes for at
    /// most `keep_alive` (long jobs: `linger()` is `None`), and retires.
    /// `linger` is asked afresh before every drain, as the pool's typical
    /// job changes. Returns `true` when the caller must start a fresh runner to
    /// carry on (a runner inside another job runs one job only).
    fn serve<F: FnOnce(&mut dyn FnMut())>(
        &self,
        mut first: Option<F>,
        linger: &dyn Fn() -> Option<Duration>,
        keep_alive: Option<Duration>,
        nested: bool,
    ) -> bool {
        // Kept across drains, so a runner that left the queue to another
        // because its CPU is crowded leaves again at once if a job holds it.
        let mut rounds = Rounds::new();
        loop {
            let linger = linger().filter(|_| !nested);
            self.drain(first.take(), linger, nested, &mut rounds);
            let doze = !nested && linger.is_none() && !rounds.crowded();
            if let Some(keep_alive) = keep_alive.filter(|_| doze) {
                if self.runners.doze(keep_alive, || self.jobs.is_empty()) {
                    continue;
                }
            }
            if self.runners.retire(|| self.jobs.is_empty()) {
                return false;
            }
            // A job arrived as we retired, and we are counted again.
            if nested {
                return true;
            }
        }
    }

    /// Runs `first`, then queued jobs (one job only when `one_job`), and
    /// lingers for more; returns, not idle, when it is time to try to retire.
    ///
    /// A runner whose CPU is crowded (its lingers keep yielding to another
    /// thread: typically the awaiter of its jobs, spinning on the same vCPU,
    /// the two taking turns at every hand-off) stops telling submitters it
    /// is idle, so the next one starts another runner, on a thread the
    /// kernel wakes on an idle CPU if there is one; with another runner
    /// alive, it leaves the queue to it. Alone with no room for another, it
    /// carries on where it is.
    fn drain<F: FnOnce(&mut dyn FnMut())>(
        &self,
        mut first: Option<F>,
        linger: Option<Duration>,
        one_job: bool,
        rounds: &mut Rounds,
    ) {
        let idle = Cell::new(false);
        let advertise_idle = Cell::new(!rounds.crowded());
        loop {
            let ran = if let Some(first) = first.take() {
                self.run_one(&idle, &advertise_idle, first);
                true
            } else if let Some(job) = self.pop() {
                self.run_one(&idle, &advertise_idle, |before_send| job.run(before_send));
                true
            } else {
                false
            };
            if ran {
                if one_job {
                    break;
                }
            } else {
                let Some(budget) = linger else { break };
                if advertise_idle.get() && !idle.replace(true) {
                    self.runners.idle();
                }
                if !linger_until(budget, rounds, || !self.jobs.is_empty()) {
                    break;
                }
            }
            let crowded = rounds.crowded();
            advertise_idle.set(!crowded);
            if crowded {
                if idle.replace(false) {
                    self.runners.busy();
                }
                if self.runners.alive() > 1 {
                    break;
                }
            }
        }
        if idle.get() {
            self.runners.busy();
        }
    }

    /// Runs one job, telling submitters this runner is idle from the moment
    /// the job's result can be seen (so that whoever gets it and submits
    /// again finds it idle and starts no runner of its own).
    fn run_one(
        &self,
        idle: &Cell<bool>,
        advertise_idle: &Cell<bool>,
        run: impl FnOnce(&mut dyn FnMut()),
    ) {
        if idle.replace(false) {
            self.runners.busy();
        }
        let on_unwind = HandOverOnUnwind { queue: self, idle };
        run(&mut || {
            if advertise_idle.get() && !idle.replace(true) {
                self.runners.idle();
            }
        });
        std::mem::forget(on_unwind);
    }
}

/// If a job unwinds out of a runner (its jobs catch their own panics, so
/// only a panic from outside the work can), the runner retires on the way
/// out and starts a successor if jobs are waiting, so none is stranded.
struct HandOverOnUnwind<'a> {
    queue: &'a RunQueue,
    idle: &'a Cell<bool>,
}

impl Drop for HandOverOnUnwind<'_> {
    fn drop(&mut self) {
        if self.idle.replace(false) {
            self.queue.runners.busy();
        }
        if !self.queue.runners.retire(|| self.queue.jobs.is_empty()) {
            rayon::spawn(runner);
        }
    }
}

/// A runner, as spawned onto the pool's threads: serves the pool's run
/// queue, found through the compute thread's home (see `ComputeThreadHome`).
pub(crate) fn runner() {
    runner_with(None::<fn(&mut dyn FnMut())>);
}

/// A runner that brings its first job along (see [`RunQueue::claim_runner`]):
/// `first` is called with the hook to call before its result is sent.
///
/// Runners are spawned only onto their pool's threads, which hold the
/// pool's state from start to exit, so the home is always there.
pub(crate) fn runner_with<F: FnOnce(&mut dyn FnMut())>(first: Option<F>) {
    let outermost = OutermostJob::enter();
    let hand_over = ComputeThreadHome.with(|shared| {
        shared.run_queue.serve(
            first,
            &|| shared.linger_budget(),
            shared.runner_keep_alive(),
            outermost.is_none(),
        )
    });
    if hand_over == Some(true) {
        // Still on a thread of the pool: `spawn` goes to the same pool.
        rayon::spawn(runner);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::inline_job::Runnable;

    // ORDERING: the run counters are SeqCst and read on the thread that ran
    // the jobs; these tests drive the queue from one thread.

    /// A job that counts its runs.
    struct Counted(Arc<AtomicUsize>);

    impl Runnable for Counted {
        fn run_queued(self, before_send: &mut dyn FnMut()) {
            self.0.fetch_add(1, Ordering::SeqCst);
            before_send();
        }
    }

    fn counted(runs: &Arc<AtomicUsize>) -> InlineJob {
        InlineJob::new(Counted(runs.clone()))
    }

    #[test]
    fn the_first_job_starts_a_runner_and_the_next_ones_wait_for_it() {
        let queue = RunQueue::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs)), "no runner yet: start one");
        assert!(!queue.push(counted(&runs)), "the runner will get to it");
        assert_eq!(queue.runners(), 1);
        assert!(
            !queue.serve(None::<fn(&mut dyn FnMut())>, &|| None, None, false),
            "an outermost runner drains and retires"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(queue.runners(), 0);
    }

    #[test]
    fn a_runner_inside_another_job_runs_one_job_then_hands_over() {
        let queue = RunQueue::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let _ = queue.push(counted(&runs));
        }
        assert!(
            queue.serve(None::<fn(&mut dyn FnMut())>, &|| None, None, true),
            "jobs are left: a fresh runner must take over"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(queue.runners(), 1, "the count passes to the fresh runner");
        assert!(!queue.serve(None::<fn(&mut dyn FnMut())>, &|| None, None, false));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(queue.runners(), 0);
    }

    #[test]
    fn a_runner_can_bring_its_first_job_along() {
        let queue = RunQueue::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.claim_runner(), "no runner: claim one");
        assert!(!queue.claim_runner(), "the most are alive");
        assert!(
            !queue.push(counted(&runs)),
            "the claimed runner will get to it"
        );
        let first = counted(&runs);
        let first = move |before_send: &mut dyn FnMut()| first.run(before_send);
        assert!(!queue.serve(Some(first), &|| None, None, false));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(queue.runners(), 0);
    }

    /// Polls `done` until it holds; panics after ten seconds.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_dozing_runner_is_woken_for_the_next_job() {
        let queue = Arc::new(RunQueue::new(2));
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs)));
        // Keep-alive far beyond the test's patience: only a wake-up can
        // bring the runner back in time. The thread is left to time out.
        let keep_alive = Duration::from_secs(600);
        let runner = queue.clone();
        std::thread::spawn(move || {
            runner.serve(
                None::<fn(&mut dyn FnMut())>,
                &|| None,
                Some(keep_alive),
                false,
            )
        });
        wait_for("the first job and the doze", || {
            runs.load(Ordering::SeqCst) == 1 && queue.dozing()
        });
        assert!(
            !queue.push(counted(&runs)),
            "the dozing runner counts as idle: no new runner"
        );
        wait_for("the dozing runner to run the second job", || {
            runs.load(Ordering::SeqCst) == 2
        });
        wait_for("the runner to doze again", || queue.dozing());
        assert_eq!(queue.runners(), 1, "still the one runner");
    }

    #[test]
    fn a_runner_dozes_for_its_keep_alive_then_retires() {
        let queue = RunQueue::new(2);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs)));
        let started = std::time::Instant::now();
        let keep_alive = Duration::from_millis(30);
        assert!(!queue.serve(
            None::<fn(&mut dyn FnMut())>,
            &|| None,
            Some(keep_alive),
            false
        ));
        assert!(started.elapsed() >= keep_alive, "it dozed first");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(queue.runners(), 0);
        assert!(!queue.dozing());
    }

    #[test]
    fn a_runner_of_short_jobs_lingers_and_retires_without_dozing() {
        let queue = Arc::new(RunQueue::new(2));
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs)));
        let runner = queue.clone();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let linger = || Some(Duration::from_micros(50));
            let keep_alive = Some(Duration::from_secs(600));
            let hand_over = runner.serve(None::<fn(&mut dyn FnMut())>, &linger, keep_alive, false);
            done.send(hand_over).unwrap();
        });
        let hand_over = finished
            .recv_timeout(Duration::from_secs(10))
            .expect("a runner with a linger budget retires instead of dozing");
        assert!(!hand_over);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(queue.runners(), 0);
    }

    #[test]
    fn an_idle_runner_spares_the_submitter_a_new_one() {
        let queue = RunQueue::new(2);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs)));
        queue.runners.idle();
        assert!(!queue.push(counted(&runs)));
        queue.runners.busy();
        assert!(
            queue.push(counted(&runs)),
            "no runner idle, fewer than the most: start another"
        );
        assert_eq!(queue.runners(), 2);
    }
}
