//! Runners: the rayon tasks that drain the pool's run queue (see
//! `queue.rs`).
//!
//! - A runner runs the job it was started with, if any, then queued jobs
//!   until the queue is empty.
//! - A runner that runs out of jobs lingers (see `spin.rs`): for the linger
//!   budget it watches the queue and runs any other rayon work that turns
//!   up. After short jobs it then retires.
//! - After long jobs (too long for the await spin, or with the spin off)
//!   it dozes instead (one runner at a time, in pools of two threads or
//!   more): asleep, it waits up to the keep-alive for the next job, which
//!   the submitter hands it with a wake-up (`Runners::doze`, loom-checked);
//!   then it retires. Between long jobs going back to rayon costs more
//!   than it seems: rayon's idle spin after every job, and a rayon thread
//!   that finds work wakes a sleeping sibling to help; a dozing runner
//!   spares both.
//! - On a crowded CPU a runner steps aside for one on another thread (see
//!   [`drain`]).
//! - A runner started inside another job (rayon runs queued work on a thread
//!   that waits in `join` or `scope`) runs one job, then hands the rest to a
//!   fresh runner, so the job it interrupted is not held up by the queue.

use std::cell::Cell;
use std::time::Duration;

use crate::engine::{Engine, PoolJob};
use crate::home;
use crate::priority::Priority;
use crate::queue::RunQueue;
use crate::spin::{linger_until, Rounds};

/// Where a runner runs: decides how much of the queue it takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nesting {
    /// On a thread that runs no other job: drain the queue.
    Outermost,
    /// Inside another job (rayon runs queued work on a thread waiting in
    /// `join` or `scope`): one job, then hand over.
    InsideAJob,
}

/// How a runner ends its shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShiftEnd {
    /// It retired: no job is left that it must run.
    Retired,
    /// Jobs are left and it is still counted: the caller starts a fresh
    /// runner to carry on (a runner inside another job runs one job only).
    HandOver,
}

/// How a runner runs a job taken from a lane: the hook is called before
/// the job's result is sent.
pub(crate) type RunJob<'a, J> = dyn Fn(J, Priority, &mut dyn FnMut()) + 'a;

/// What a runner needs to know to serve a queue of `J`s.
pub(crate) struct Shift<'a, J> {
    pub(crate) queue: &'a RunQueue<J>,
    /// Runs one job taken from a lane, calling the hook before its result
    /// is sent.
    pub(crate) run: &'a RunJob<'a, J>,
    /// How long to linger for more work after the queue empties, if at
    /// all; asked afresh before every linger.
    pub(crate) linger: &'a dyn Fn() -> Option<Duration>,
    /// Told how each linger ended: how soon a job turned up, if one did.
    pub(crate) lingered: &'a dyn Fn(Option<Duration>),
    /// How long to doze for the next job before retiring, if at all; asked
    /// afresh after every drain.
    pub(crate) keep_alive: &'a dyn Fn() -> Option<Duration>,
    pub(crate) nesting: Nesting,
    /// Starts a runner; used when this one unwinds with jobs left.
    pub(crate) start_runner: &'a dyn Fn(),
}

/// The body of a runner: runs `first` if it brought a job along, drains
/// the queue and lingers, then dozes if asked to, and retires.
pub(crate) fn serve<J>(shift: &Shift<'_, J>, mut first: Option<(J, Priority)>) -> ShiftEnd {
    let nested = shift.nesting == Nesting::InsideAJob;
    // Kept across drains, so a runner that left the queue to another
    // because its CPU is crowded leaves again at once if a job holds it.
    let mut rounds = Rounds::new();
    loop {
        drain(shift, first.take(), !nested, &mut rounds);
        let doze = !nested && !rounds.crowded();
        let runners = &shift.queue.runners;
        if let Some(keep_alive) = (shift.keep_alive)().filter(|_| doze) {
            if runners.doze(keep_alive, || shift.queue.is_empty()) {
                continue;
            }
        }
        if runners.retire(|| shift.queue.is_empty()) {
            return ShiftEnd::Retired;
        }
        // A job arrived as we retired, and we are counted again.
        if nested {
            return ShiftEnd::HandOver;
        }
    }
}

/// Runs `first`, then queued jobs (one job only inside another job), and
/// lingers for more; returns, not idle, when it is time to try to retire.
/// Meanwhile it marks the CPU it serves from (see `watchers.rs`).
///
/// A runner whose CPU is crowded (its lingers keep yielding to another
/// thread: typically the awaiter of its jobs, spinning on the same vCPU,
/// the two taking turns at every hand-off) stops telling submitters it
/// is idle, so the next one starts another runner, on a thread the
/// kernel wakes on an idle CPU if there is one; with another runner
/// alive, it leaves the queue to it. Alone with no room for another, it
/// carries on where it is.
fn drain<J>(
    shift: &Shift<'_, J>,
    mut first: Option<(J, Priority)>,
    may_linger: bool,
    rounds: &mut Rounds,
) {
    let runners = &shift.queue.runners;
    let idle = Cell::new(false);
    let advertise_idle = Cell::new(!rounds.crowded());
    let mut watch = shift.queue.watchers.watch();
    loop {
        watch.follow();
        if let Some(job) = first.take().or_else(|| shift.queue.pop()) {
            run_job(shift, &idle, &advertise_idle, job);
            if shift.nesting == Nesting::InsideAJob {
                break;
            }
        } else {
            let Some(budget) = (shift.linger)().filter(|_| may_linger) else {
                break;
            };
            if advertise_idle.get() && !idle.replace(true) {
                runners.idle();
            }
            let came_after = linger_until(budget, rounds, || !shift.queue.is_empty());
            (shift.lingered)(came_after);
            if came_after.is_none() {
                break;
            }
        }
        let crowded = rounds.crowded();
        advertise_idle.set(!crowded);
        if crowded {
            if idle.replace(false) {
                runners.busy();
            }
            if runners.alive() > 1 {
                break;
            }
        }
    }
    if idle.get() {
        runners.busy();
    }
}

/// Runs one job, telling submitters this runner is idle from the moment
/// the job's result can be seen (so that whoever gets it and submits
/// again finds it idle and starts no runner of its own).
fn run_job<J>(
    shift: &Shift<'_, J>,
    idle: &Cell<bool>,
    advertise_idle: &Cell<bool>,
    (job, lane): (J, Priority),
) {
    let runners = &shift.queue.runners;
    if idle.replace(false) {
        runners.busy();
    }
    let on_unwind = HandOverOnUnwind { shift, idle };
    (shift.run)(job, lane, &mut || {
        if advertise_idle.get() && !idle.replace(true) {
            runners.idle();
        }
    });
    std::mem::forget(on_unwind);
}

/// If a job unwinds out of a runner (its jobs catch their own panics, so
/// only a panic from outside the work can), the runner retires on the way
/// out and starts a successor if jobs are waiting, so none is stranded.
struct HandOverOnUnwind<'a, 'b, J> {
    shift: &'a Shift<'b, J>,
    idle: &'a Cell<bool>,
}

impl<J> Drop for HandOverOnUnwind<'_, '_, J> {
    fn drop(&mut self) {
        let queue = self.shift.queue;
        if self.idle.replace(false) {
            queue.runners.busy();
        }
        if !queue.runners.retire(|| queue.is_empty()) {
            (self.shift.start_runner)();
        }
    }
}

/// A runner of a pool, as spawned onto the pool's threads, with the job it
/// was started with if any (see `RunQueue::claim_runner`). It finds its
/// pool through the thread it runs on: runners are spawned only onto their
/// pool's threads, which serve that pool from start to exit.
pub(crate) fn runner(first: Option<PoolJob>) {
    let in_job = home::enter_job();
    let nesting = if in_job.is_some() {
        Nesting::Outermost
    } else {
        Nesting::InsideAJob
    };
    let end = home::with_engine(|engine: &Engine| {
        let shift = Shift {
            queue: &engine.queue,
            run: &|job: PoolJob, lane, before_send: &mut dyn FnMut()| {
                job.run(engine, Some(lane), before_send);
            },
            linger: &|| engine.linger_budget(),
            lingered: &|came_after| engine.lingered(came_after),
            keep_alive: &|| engine.doze_budget(),
            nesting,
            start_runner: &start_runner,
        };
        serve(&shift, first.map(|job| (job, Priority::High)))
    });
    if end == Some(ShiftEnd::HandOver) {
        start_runner();
    }
}

/// Starts a runner from one of the pool's own threads (`rayon::spawn`
/// there goes to the same pool).
fn start_runner() {
    rayon::spawn(|| runner(None));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::queue::LanePolicy;

    // ORDERING: the run counters are SeqCst and read on the thread that ran
    // the jobs; these tests drive the queue from one thread.

    /// A job that counts its runs.
    struct Counted(Arc<AtomicUsize>);

    const LANES: LanePolicy = LanePolicy {
        every: 8,
        max_wait: Duration::from_secs(600),
    };

    fn counted(runs: &Arc<AtomicUsize>) -> Counted {
        Counted(runs.clone())
    }

    fn run(job: Counted, _: Priority, before_send: &mut dyn FnMut()) {
        job.0.fetch_add(1, Ordering::SeqCst);
        before_send();
    }

    /// A shift over `queue` with these settings, running `Counted` jobs.
    fn shift<'a>(
        queue: &'a RunQueue<Counted>,
        linger: &'a dyn Fn() -> Option<Duration>,
        keep_alive: &'a dyn Fn() -> Option<Duration>,
        nesting: Nesting,
    ) -> Shift<'a, Counted> {
        Shift {
            queue,
            run: &run,
            linger,
            lingered: &|_| {},
            keep_alive,
            nesting,
            start_runner: &|| panic!("no job of these tests unwinds"),
        }
    }

    #[test]
    fn the_first_job_starts_a_runner_and_the_next_ones_wait_for_it() {
        let queue = RunQueue::new(1, LANES);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(
            queue.push(counted(&runs), Priority::High),
            "no runner yet: start one"
        );
        assert!(
            !queue.push(counted(&runs), Priority::High),
            "the runner will get to it"
        );
        assert_eq!(queue.runners.alive(), 1);
        assert_eq!(
            serve(&shift(&queue, &|| None, &|| None, Nesting::Outermost), None),
            ShiftEnd::Retired,
            "an outermost runner drains and retires"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(queue.runners.alive(), 0);
    }

    #[test]
    fn a_runner_inside_another_job_runs_one_job_then_hands_over() {
        let queue = RunQueue::new(1, LANES);
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let _ = queue.push(counted(&runs), Priority::High);
        }
        assert_eq!(
            serve(
                &shift(&queue, &|| None, &|| None, Nesting::InsideAJob),
                None
            ),
            ShiftEnd::HandOver,
            "jobs are left: a fresh runner must take over"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            queue.runners.alive(),
            1,
            "the count passes to the fresh runner"
        );
        assert_eq!(
            serve(&shift(&queue, &|| None, &|| None, Nesting::Outermost), None),
            ShiftEnd::Retired
        );
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(queue.runners.alive(), 0);
    }

    #[test]
    fn a_runner_can_bring_its_first_job_along() {
        let queue = RunQueue::new(1, LANES);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.claim_runner(), "no runner: claim one");
        assert!(!queue.claim_runner(), "the most are alive");
        assert!(
            !queue.push(counted(&runs), Priority::High),
            "the claimed runner will get to it"
        );
        let first = counted(&runs);
        assert_eq!(
            serve(
                &shift(&queue, &|| None, &|| None, Nesting::Outermost),
                Some((first, Priority::High))
            ),
            ShiftEnd::Retired
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(queue.runners.alive(), 0);
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
        let queue = Arc::new(RunQueue::new(2, LANES));
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs), Priority::High));
        // Keep-alive far beyond the test's patience: only a wake-up can
        // bring the runner back in time. The thread is left to time out.
        let keep_alive = Duration::from_secs(600);
        let runner = queue.clone();
        std::thread::spawn(move || {
            serve(
                &shift(&runner, &|| None, &|| Some(keep_alive), Nesting::Outermost),
                None,
            )
        });
        wait_for("the first job and the doze", || {
            runs.load(Ordering::SeqCst) == 1 && queue.runners.dozing()
        });
        assert!(
            !queue.push(counted(&runs), Priority::High),
            "the dozing runner counts as idle: no new runner"
        );
        wait_for("the dozing runner to run the second job", || {
            runs.load(Ordering::SeqCst) == 2
        });
        wait_for("the runner to doze again", || queue.runners.dozing());
        assert_eq!(queue.runners.alive(), 1, "still the one runner");
    }

    #[test]
    fn a_runner_dozes_for_its_keep_alive_then_retires() {
        let queue = RunQueue::new(2, LANES);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs), Priority::High));
        let started = std::time::Instant::now();
        let keep_alive = Duration::from_millis(30);
        assert_eq!(
            serve(
                &shift(&queue, &|| None, &|| Some(keep_alive), Nesting::Outermost),
                None
            ),
            ShiftEnd::Retired
        );
        assert!(started.elapsed() >= keep_alive, "it dozed first");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(queue.runners.alive(), 0);
        assert!(!queue.runners.dozing());
    }

    #[test]
    fn a_runner_not_asked_to_doze_retires_after_its_linger() {
        let queue = Arc::new(RunQueue::new(2, LANES));
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs), Priority::High));
        let runner = queue.clone();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let linger = || Some(Duration::from_micros(50));
            let end = serve(&shift(&runner, &linger, &|| None, Nesting::Outermost), None);
            done.send(end).unwrap();
        });
        let end = finished
            .recv_timeout(Duration::from_secs(10))
            .expect("a runner with no keep-alive retires after its linger");
        assert_eq!(end, ShiftEnd::Retired);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(queue.runners.alive(), 0);
    }

    #[test]
    fn a_runner_reports_how_each_linger_ended() {
        let queue = RunQueue::new(1, LANES);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs), Priority::High));
        let ends = std::sync::Mutex::new(Vec::new());
        let lingered = |came_after| ends.lock().unwrap().push(came_after);
        let linger = || Some(Duration::from_micros(50));
        let shift = Shift {
            lingered: &lingered,
            ..shift(&queue, &linger, &|| None, Nesting::Outermost)
        };
        assert_eq!(serve(&shift, None), ShiftEnd::Retired);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            *ends.lock().unwrap(),
            [None],
            "one linger after the job, and no job came"
        );
    }

    #[test]
    fn an_idle_runner_spares_the_submitter_a_new_one() {
        let queue = RunQueue::new(2, LANES);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(queue.push(counted(&runs), Priority::High));
        queue.runners.idle();
        assert!(!queue.push(counted(&runs), Priority::High));
        queue.runners.busy();
        assert!(
            queue.push(counted(&runs), Priority::High),
            "no runner idle, fewer than the most: start another"
        );
        assert_eq!(queue.runners.alive(), 2);
    }
}
