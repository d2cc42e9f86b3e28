//! Keeping an awaiting thread awake for a job that is about to finish,
//! without ever stalling the executor.
//!
//! When a job's result arrives after its awaiter's thread went to sleep, the
//! wakeup costs tens of microseconds on a virtual machine: often more than
//! a short job itself. Waiting awake for a result that is about to come
//! saves that, but only while the wait is shorter than the wake it avoids:
//! spinning at most as long as a park plus a wake costs keeps both time and
//! CPU within twice the best possible (the classic spin-then-park bound).
//! So, with [`SpinPolicy::Balanced`] (the default):
//!
//! - **A poll spins only where no task needs its thread.** The first poll
//!   of a [`TaskHandle`](crate::TaskHandle) whose job is short and running
//!   (or next in line) wakes its own task and returns `Pending`: the
//!   executor runs every other ready task first and polls the handle
//!   again only when it would otherwise go idle. It keeps doing so until
//!   the result is there or the budget is spent, then parks as usual. Each
//!   poll returns at once. The wait also ends when no thread took the job
//!   up within [`PICKUP`]: a thread that has to be woken first cannot be
//!   caught, and one that shares this CPU gets it only once the wait
//!   stops (there, parking and being woken by it costs a few
//!   microseconds, waiting until the deadline all of it).
//!   On a multi-thread Tokio runtime with a worker parked, the first poll
//!   waits itself instead (see `executor.rs`): any other task goes to the
//!   parked worker, and a self-wake there would only wake that worker, a
//!   wake of the very kind the wait saves. Its checks yield the CPU, so a
//!   compute thread that shares it runs the job meanwhile.
//! - **The budget is the machine's wake cost**, measured once per process
//!   ([`wake_cost`]: two threads waking each other through a condition
//!   variable), and never more than about twice the pool's typical job (a
//!   moving average of compute times, kept here), nor
//!   `ComputeConfig::await_spin_limit`. No wait awake at all when the
//!   typical job is longer than the budget (the wait would end before the
//!   job does, and the awaiter park after all: all cost, no saving), nor
//!   while as many jobs as the pool has threads wait ahead of this one (it
//!   could not be served sooner), nor while another handle of the pool is
//!   parked: the executor has that task to run when its result comes, and
//!   a wait would burn a CPU that task's job wants (a waiting executor
//!   thread takes turns with the compute threads it waits for on a
//!   machine with no CPU to spare), nor for a job not yet taken up while
//!   every thread of the pool serves the queue from this thread's CPU
//!   (see `watchers.rs`): the job starts only once this thread gives the
//!   CPU up. That is every job on a machine with one CPU.
//! - **The same bound on the compute side**: a compute thread out of jobs
//!   lingers for the next one (running whatever rayon work turns up) for
//!   at most the wake cost, whatever the jobs' length: the next job comes
//!   after its submitter's turnaround, and with other jobs in flight it is
//!   often on its way. Between short jobs, only while it pays: when the
//!   next job has typically come later than half of that (its submitter
//!   was asleep, and came back only after a wake), a runner out of jobs
//!   merely looks for it ([`NextJob`]). `execute_sync`'s caller, a plain thread that would
//!   otherwise park, spins at most as long. (After long jobs the runner
//!   then dozes for its keep-alive: a sleep, not a spin, that costs no CPU
//!   while it waits.)
//!
//! - **A run of ready handles yields.** A task that awaits handle after
//!   handle, each with its result already there at the first poll (the
//!   latency mode's waits make that common), would never give its thread
//!   back to the executor, and an I/O task queued behind it would wait.
//!   Once such handles have kept a thread for longer than a wake costs,
//!   the next one wakes its own task and returns `Pending` once.
//!
//! [`SpinPolicy::Latency`] is for services that choose to trade CPU for
//! latency: the first poll itself waits awake, up to `await_spin_limit`,
//! and the compute side lingers up to [`LINGER`]. It holds the awaiting
//! thread while it spins; use it where that thread has nothing else to do.
//! `await_spin_limit = Duration::ZERO` switches every spin off.
//!
//! Every busy wait is paced by [`Rounds`]: alone on a CPU it checks back to
//! back and yields now and then; sharing a CPU with the thread it waits for
//! (the kernel often puts a woken thread next to its waker) it yields after
//! every check, so the two take turns at once.

use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::placement;

mod learned;

pub(crate) use learned::{AwaitSpin, NextJob};

/// The longest a compute thread out of jobs lingers for new work (the
/// whole linger with [`SpinPolicy::Latency`]; with `Balanced`, at most the
/// wake cost).
pub(crate) const LINGER: Duration = Duration::from_micros(20);

/// How soon a compute thread that watches the queue takes a job pushed
/// meanwhile: its checks run back to back, well under a microsecond apart.
/// A job not started by then waits for a thread to be woken, or to be given
/// a CPU: a balanced wait through the executor for it ends there.
pub(crate) const PICKUP: Duration = Duration::from_micros(2);

/// How a pool's waits trade CPU for latency.
///
/// Waiting awake for a result that is about to come saves a sleeping
/// hand-off, but only while the wait is shorter than the wake it avoids.
/// `Balanced` spins in a poll only where no task needs its thread (the
/// first poll of a short, running job wakes its own task and returns
/// `Pending`, so the executor runs its other tasks first; on a
/// multi-thread Tokio runtime with a worker parked, which takes any other
/// task, it waits itself) and never waits awake longer than
/// [`wake_cost`]; `Latency` waits in the first poll itself, up to
/// `await_spin_limit`.
///
/// ```
/// use compute_pool::{ComputeConfig, ComputePool, SpinPolicy};
/// let pool = ComputePool::new(ComputeConfig {
///     spin_policy: SpinPolicy::Latency,
///     ..Default::default()
/// })
/// .unwrap();
/// assert_eq!(futures::executor::block_on(pool.execute(|| 1)).unwrap(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpinPolicy {
    /// Spin only where the thread would otherwise idle, never longer than a
    /// park plus a wake costs on this machine; a poll spins only where no
    /// task needs its thread.
    #[default]
    Balanced,
    /// The first poll of a short job's handle waits awake, holding its
    /// thread, up to `await_spin_limit`: lower latency for more CPU.
    Latency,
}

/// What one sleeping hand-off costs on this machine: the time for a thread
/// to wake another parked on a condition variable, measured once per
/// process (the median of a few rounds of two threads waking each other),
/// between 2 µs and 200 µs. The budget of every balanced spin.
///
/// The two threads are pinned to two different CPUs while they measure
/// (on Linux, when the process may use two): a hand-off between threads
/// that share a CPU is a mere context switch, ten times cheaper than
/// waking a CPU, and where the kernel happened to place them would
/// otherwise decide the budget of every pool for the life of the process.
///
/// ```
/// let cost = compute_pool::wake_cost();
/// assert!(cost >= std::time::Duration::from_micros(2));
/// assert!(cost <= std::time::Duration::from_micros(200));
/// ```
pub fn wake_cost() -> Duration {
    static COST: OnceLock<Duration> = OnceLock::new();
    *COST.get_or_init(|| {
        measure_wake_cost()
            .unwrap_or(FALLBACK_WAKE_COST)
            .clamp(MIN_WAKE_COST, MAX_WAKE_COST)
    })
}

/// The bounds of [`wake_cost`].
const MIN_WAKE_COST: Duration = Duration::from_micros(2);
const MAX_WAKE_COST: Duration = Duration::from_micros(200);

/// The wake cost assumed where no thread can be started to measure it.
const FALLBACK_WAKE_COST: Duration = Duration::from_micros(25);

/// Two threads take turns incrementing a counter, each sleeping on a
/// condition variable until the other has had its turn: a round is two
/// sleeping hand-offs. The median round, halved; `None` if no thread could
/// be started.
fn measure_wake_cost() -> Option<Duration> {
    // Fresh threads, so pinning never touches the caller's.
    std::thread::Builder::new()
        .name("compute-wake-probe".to_owned())
        .spawn(|| {
            let cpus = placement::two_cpus();
            if let Some((mine, _)) = cpus {
                placement::pin_to(mine);
            }
            probe_wake_cost(cpus.map(|(_, theirs)| theirs))
        })
        .ok()?
        .join()
        .ok()?
}

/// The measurement of [`measure_wake_cost`] from the calling thread, its
/// partner pinned to `partner_cpu` if given.
fn probe_wake_cost(partner_cpu: Option<usize>) -> Option<Duration> {
    const ROUNDS: u32 = 16;
    let turn = Arc::new((Mutex::new(0u32), Condvar::new()));
    let other = Arc::clone(&turn);
    let partner = std::thread::Builder::new()
        .name("compute-wake-probe".to_owned())
        .spawn(move || {
            if let Some(cpu) = partner_cpu {
                placement::pin_to(cpu);
            }
            let (count, changed) = &*other;
            for round in 0..ROUNDS {
                let mut n = count.lock().unwrap_or_else(PoisonError::into_inner);
                while *n != 2 * round + 1 {
                    n = changed.wait(n).unwrap_or_else(PoisonError::into_inner);
                }
                *n += 1;
                changed.notify_one();
            }
        })
        .ok()?;
    let (count, changed) = &*turn;
    let mut rounds = Vec::with_capacity(ROUNDS as usize);
    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut n = count.lock().unwrap_or_else(PoisonError::into_inner);
        *n += 1;
        changed.notify_one();
        while *n != 2 * round + 2 {
            n = changed.wait(n).unwrap_or_else(PoisonError::into_inner);
        }
        drop(n);
        rounds.push(started.elapsed());
    }
    partner.join().ok()?;
    rounds.sort_unstable();
    Some(rounds[rounds.len() / 2] / 2)
}

/// Keeps running rayon work on this (compute) thread until none has turned
/// up for `budget`, yielding to the OS scheduler between rounds (see
/// [`Rounds`]) so a thread waiting for this CPU is not starved.
pub(crate) fn linger_for(budget: Duration) {
    // Nothing cheaper to watch: ask rayon every round.
    linger(budget, &mut Rounds::new(), 1, || false);
}

/// Like [`linger_for`], but returns as soon as `has_job()` does (it is
/// checked every round; rayon is asked for work every
/// [`CHECKS_PER_RAYON_ASK`] rounds): how long after the linger (re)started
/// the job turned up, or `None` once nothing did for `budget`. `rounds`
/// carries the pacing from one linger to the next, so a thread that
/// lingers between every two jobs can tell over several of them that its
/// CPU is crowded ([`Rounds::crowded`]).
pub(crate) fn linger_until(
    budget: Duration,
    rounds: &mut Rounds,
    has_job: impl FnMut() -> bool,
) -> Option<Duration> {
    linger(budget, rounds, CHECKS_PER_RAYON_ASK, has_job)
}

/// The linger loop: `has_job()` every round, rayon every `checks_per_ask`
/// rounds; rayon work that runs restarts the wait.
fn linger(
    budget: Duration,
    rounds: &mut Rounds,
    checks_per_ask: u32,
    mut has_job: impl FnMut() -> bool,
) -> Option<Duration> {
    let mut started = Instant::now();
    let mut deadline = started + budget;
    let mut round = 0u32;
    loop {
        if has_job() {
            return Some(started.elapsed());
        }
        round = round.wrapping_add(1);
        if round % checks_per_ask == 0 {
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => {
                    started = Instant::now();
                    deadline = started + budget;
                    continue;
                }
                Some(rayon::Yield::Idle) => {}
                // Not a rayon thread: nothing else will turn up.
                None => return has_job().then(|| started.elapsed()),
            }
        }
        if !rounds.next(deadline) {
            return has_job().then(|| started.elapsed());
        }
    }
}

/// Rounds of a linger between two requests for rayon work: asking rayon
/// costs far more than a look at the run queue.
const CHECKS_PER_RAYON_ASK: u32 = 8;

/// Spins until `done()` or `budget` has passed; returns whether `done()`.
pub(crate) fn spin_until(budget: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + budget;
    let mut rounds = Rounds::new();
    loop {
        if done() {
            return true;
        }
        if !rounds.next(deadline) {
            return done();
        }
    }
}

/// The pacing of a busy wait: what to do between two checks.
///
/// Alone on its CPU, a waiter checks back to back (a pause between checks),
/// reads the clock once every [`SOLO_CHECKS`] and then offers the CPU with
/// `sched_yield`, which returns at once when nobody else wants it.
///
/// The thread it waits for is often queued on this very CPU, though (the
/// kernel places a woken thread next to its waker): then every check the
/// waiter makes is time that thread does not run. A yield that took long
/// shows it: another thread ran meanwhile. From then on the waiter yields
/// after every check, so the two take turns at once instead of after a
/// round of useless checks; a quick yield puts it back to solo pacing.
pub(crate) struct Rounds {
    checks: u32,
    checks_per_yield: u32,
    /// Long yields in a row (see [`Rounds::crowded`]).
    long_yields: u32,
}

/// Checks between yields for a waiter alone on its CPU.
const SOLO_CHECKS: u32 = 64;

/// A `sched_yield` that lasts longer than this ran another thread (one that
/// finds nobody to switch to costs a few hundred nanoseconds).
const SHARED_CPU_YIELD: Duration = Duration::from_micros(2);

/// Long yields in a row after which a waiter counts its CPU as crowded.
const CROWDED_AFTER: u32 = 3;

impl Rounds {
    pub(crate) fn new() -> Rounds {
        Rounds {
            checks: 0,
            checks_per_yield: SOLO_CHECKS,
            long_yields: 0,
        }
    }

    /// Whether the last few yields all ran another thread: this CPU is
    /// shared with a thread that wants it.
    pub(crate) fn crowded(&self) -> bool {
        self.long_yields >= CROWDED_AFTER
    }

    /// Paces one round after a check that found nothing; `false` once
    /// `deadline` has passed.
    fn next(&mut self, deadline: Instant) -> bool {
        self.checks += 1;
        if self.checks < self.checks_per_yield {
            std::hint::spin_loop();
            return true;
        }
        self.checks = 0;
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::yield_now();
        self.after_yield(now.elapsed());
        true
    }

    /// Sets the pacing from how long the last yield took.
    fn after_yield(&mut self, took: Duration) {
        if took > SHARED_CPU_YIELD {
            self.checks_per_yield = 1;
            self.long_yields += 1;
        } else {
            self.checks_per_yield = SOLO_CHECKS;
            self.long_yields = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_yield_makes_the_wait_yield_after_every_check() {
        let far = Instant::now() + Duration::from_secs(60);
        let mut rounds = Rounds::new();
        let solo_round = |rounds: &mut Rounds| {
            (1..SOLO_CHECKS).for_each(|_| assert!(rounds.next(far)));
            assert_eq!(
                rounds.checks,
                SOLO_CHECKS - 1,
                "no yield before the 64th check"
            );
        };
        solo_round(&mut rounds);
        rounds.after_yield(Duration::from_micros(40));
        assert_eq!(rounds.checks_per_yield, 1, "another thread ran: take turns");
        rounds.after_yield(Duration::from_nanos(300));
        assert_eq!(rounds.checks_per_yield, SOLO_CHECKS, "alone again");
        let mut rounds = Rounds::new();
        rounds.after_yield(Duration::from_micros(40));
        rounds.checks = 0;
        let past = Instant::now();
        assert!(
            !rounds.next(past),
            "every check is a yield point, and sees the deadline"
        );
    }

    #[test]
    fn a_cpu_is_crowded_after_a_few_long_yields_in_a_row() {
        let mut rounds = Rounds::new();
        for _ in 1..CROWDED_AFTER {
            rounds.after_yield(Duration::from_micros(40));
            assert!(!rounds.crowded(), "not yet");
        }
        rounds.after_yield(Duration::from_micros(40));
        assert!(rounds.crowded());
        rounds.after_yield(Duration::from_nanos(300));
        assert!(!rounds.crowded(), "one quick yield: alone again");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_wake_probe_runs_on_two_different_cpus() {
        let Some((mine, theirs)) = placement::two_cpus() else {
            return; // One CPU: the probe's threads share it, as everything does.
        };
        assert_ne!(mine, theirs);
        let ran_on = std::thread::spawn(move || {
            placement::pin_to(theirs);
            placement::current_cpu()
        })
        .join()
        .unwrap();
        assert_eq!(ran_on, Some(theirs));
    }

    #[test]
    fn spin_until_stops_at_the_deadline_or_when_done() {
        assert!(!spin_until(Duration::from_micros(50), || false));
        let mut calls = 0;
        assert!(spin_until(Duration::from_secs(10), || {
            calls += 1;
            calls == 3
        }));
    }
}
