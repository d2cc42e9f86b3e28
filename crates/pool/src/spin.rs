//! Keeping an awaiting thread awake for a job that is about to finish.
//!
//! When a job's result arrives after its awaiter's thread went to sleep, the
//! wakeup costs tens of microseconds on a virtual machine: more than a short
//! job itself. So the first poll of a [`TaskHandle`](crate::TaskHandle) may
//! spin for a while, watching the channel, instead of returning `Pending` at
//! once. The spin is:
//!
//! - **learned**: about twice the pool's typical compute time (a moving
//!   average kept here, fed by every job), so it covers jobs that usually
//!   finish in time and is not spent on jobs that do not;
//! - **bounded**: never longer than `ComputeConfig::await_spin_limit`, and
//!   not at all when the typical job is longer than that limit, or when the
//!   pool has more active jobs than threads (the job would have to queue);
//! - **off** with `await_spin_limit = Duration::ZERO`.
//!
//! The compute side has the mirror problem: an idle rayon thread notices a
//! new job only after its next `sched_yield`, or after a wakeup once it has
//! gone to sleep. So a compute thread that just finished a short job
//! *lingers*: for at most [`LINGER`] it keeps asking rayon for work
//! (`rayon::yield_now`), and runs the awaiter's next job the moment it is
//! submitted. It lingers only when the await spin is on (the same switch and
//! the same learned "jobs here are short"), never on top of another job, and
//! a job it runs restarts the wait, so a steady stream keeps it hot while an
//! idle pool falls quiet within [`LINGER`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The learned spin budget of one pool.
pub(crate) struct AwaitSpin {
    limit_ns: u64,
    /// Moving average of compute time (weight 1/8); 0 until the first job.
    typical_ns: AtomicU64,
}

/// The longest a compute thread lingers for new work after a short job.
pub(crate) const LINGER: Duration = Duration::from_micros(20);

/// Spin for at least this long when anything is spun at all: the cost of a
/// hand-off itself, so the first jobs of a pool are covered too.
const FLOOR_NS: u64 = 5_000;

impl AwaitSpin {
    pub(crate) fn new(limit: Duration) -> AwaitSpin {
        AwaitSpin {
            limit_ns: u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
            typical_ns: AtomicU64::new(0),
        }
    }

    /// Feeds one job's compute time (on the compute thread).
    pub(crate) fn observe(&self, compute: Duration) {
        if self.limit_ns == 0 {
            return;
        }
        let sample = u64::try_from(compute.as_nanos()).unwrap_or(u64::MAX);
        // ORDERING: Relaxed: a statistic. Two jobs finishing at once may lose
        // one sample; the average only steers how long a poll spins.
        let old = self.typical_ns.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        // ORDERING: Relaxed: as above.
        self.typical_ns.store(new.max(1), Ordering::Relaxed);
    }

    /// How long a first poll may spin, or `None` to park at once.
    pub(crate) fn budget(&self) -> Option<Duration> {
        if self.limit_ns == 0 {
            return None;
        }
        // ORDERING: Relaxed: a statistic, see `observe`.
        let typical = self.typical_ns.load(Ordering::Relaxed);
        if typical > self.limit_ns {
            return None;
        }
        let spin = typical.saturating_mul(2).max(FLOOR_NS).min(self.limit_ns);
        Some(Duration::from_nanos(spin))
    }
}

/// Keeps running rayon work on this (compute) thread until none has turned
/// up for `budget`; yields to the OS scheduler now and then, like the await
/// spin, so a thread queued on this CPU is not starved.
pub(crate) fn linger_for(budget: Duration) {
    let mut deadline = Instant::now() + budget;
    let mut idle_rounds = 0u32;
    loop {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                deadline = Instant::now() + budget;
                idle_rounds = 0;
            }
            Some(rayon::Yield::Idle) => {
                idle_rounds += 1;
                if idle_rounds % 64 == 0 {
                    if Instant::now() >= deadline {
                        return;
                    }
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            // Not a rayon thread: nothing to linger for.
            None => return,
        }
    }
}

/// Spins until `done()` or `budget` has passed; returns whether `done()`.
///
/// The clock is read once every 64 checks, so a check costs a load. Between
/// rounds the thread yields to the OS scheduler: the compute thread that was
/// just woken to run the job is often queued on this very CPU (the kernel
/// places a wakee next to its waker), and a spin that never yields would
/// keep it from starting until the budget ran out. A yield with nobody else
/// waiting returns at once.
pub(crate) fn spin_until(budget: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + budget;
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= deadline {
            return done();
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_the_typical_job_and_stays_bounded() {
        let spin = AwaitSpin::new(Duration::from_micros(200));
        assert_eq!(spin.budget(), Some(Duration::from_nanos(FLOOR_NS)));
        for _ in 0..64 {
            spin.observe(Duration::from_micros(30));
        }
        let budget = spin.budget().unwrap();
        assert!(budget >= Duration::from_micros(55) && budget <= Duration::from_micros(65));
        for _ in 0..64 {
            spin.observe(Duration::from_micros(150));
        }
        assert_eq!(spin.budget(), Some(Duration::from_micros(200)), "capped");
        for _ in 0..64 {
            spin.observe(Duration::from_millis(1));
        }
        assert_eq!(spin.budget(), None, "long jobs are not spun for");
    }

    #[test]
    fn zero_limit_switches_spinning_off() {
        let spin = AwaitSpin::new(Duration::ZERO);
        spin.observe(Duration::from_nanos(10));
        assert_eq!(spin.budget(), None);
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
