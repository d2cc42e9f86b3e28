//! What a pool learns to steer its waits: how long its jobs typically
//! compute ([`AwaitSpin`], the awaiter's budget) and how soon the next job
//! typically comes after a runner runs out ([`NextJob`], the linger's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::PICKUP;

/// A moving average of durations (weight 1/8), in nanoseconds; 0 until the
/// first sample.
#[derive(Default)]
struct Typical(AtomicU64);

impl Typical {
    fn observe(&self, sample: Duration) {
        let sample = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        // ORDERING: Relaxed: a statistic. Two samples fed at once may lose
        // one; the average only steers how long a wait lasts.
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        // ORDERING: Relaxed: as above.
        self.0.store(new.max(1), Ordering::Relaxed);
    }

    fn nanos(&self) -> u64 {
        // ORDERING: Relaxed: a statistic, see `observe`.
        self.0.load(Ordering::Relaxed)
    }
}

/// The learned spin budget of one pool.
pub(crate) struct AwaitSpin {
    limit_ns: u64,
    /// The typical compute time.
    typical: Typical,
}

/// Spin for at least this long when anything is spun at all: the cost of a
/// hand-off itself, so the first jobs of a pool are covered too.
const FLOOR_NS: u64 = 5_000;

impl AwaitSpin {
    pub(crate) fn new(limit: Duration) -> AwaitSpin {
        AwaitSpin {
            limit_ns: u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
            typical: Typical::default(),
        }
    }

    /// Feeds one job's compute time (on the compute thread).
    pub(crate) fn observe(&self, compute: Duration) {
        if self.limit_ns != 0 {
            self.typical.observe(compute);
        }
    }

    /// How long a first poll may wait awake when the wait may last at most
    /// `cap`: about twice the typical job, within `cap`; `None` (park at
    /// once) when the typical job is longer than `cap` or than the limit,
    /// since a wait that ends before the job does saves nothing and the
    /// awaiter parks after all.
    pub(crate) fn budget(&self, cap: Duration) -> Option<Duration> {
        let cap = u64::try_from(cap.as_nanos())
            .unwrap_or(u64::MAX)
            .min(self.limit_ns);
        if cap == 0 {
            return None;
        }
        let typical = self.typical.nanos();
        if typical > cap {
            return None;
        }
        let spin = typical.saturating_mul(2).max(FLOOR_NS).min(cap);
        Some(Duration::from_nanos(spin))
    }
}

/// How soon the next job turns up after a pool's runner runs out of them,
/// learned from its lingers: the typical time until a job came, a linger
/// that saw none counting as the whole cap.
///
/// A linger pays only when the next job comes within it: then it saves a
/// runner's restart, which may mean waking a thread. When jobs come back
/// after their awaiters were woken (tasks parked on their handles, the
/// next job submitted after a wake of their executor's thread), they come
/// too late for any linger, and lingering only burns the CPU, often one a
/// Tokio worker about to be woken wants. So a runner lingers the whole
/// cap while the typical job came within half of it, and otherwise only
/// looks for [`PICKUP`], which keeps the figure up to date: a job that
/// comes that soon pulls the average back down.
#[derive(Default)]
pub(crate) struct NextJob {
    typical: Typical,
}

impl NextJob {
    /// Feeds how one linger ended: `came_after` the job turned up, or
    /// `None` if none did. `cap` is the longest any linger may last.
    pub(crate) fn observe(&self, came_after: Option<Duration>, cap: Duration) {
        self.typical
            .observe(came_after.map_or(cap, |after| after.min(cap)));
    }

    /// How long the next linger may last, given the longest any may
    /// (`cap`): all of it while the typical job came within half of it,
    /// else a look of [`PICKUP`].
    pub(crate) fn budget(&self, cap: Duration) -> Duration {
        if Duration::from_nanos(self.typical.nanos()) <= cap / 2 {
            cap
        } else {
            cap.min(PICKUP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_the_typical_job_and_stays_bounded() {
        let spin = AwaitSpin::new(Duration::from_micros(200));
        let cap = Duration::from_micros(200);
        assert_eq!(spin.budget(cap), Some(Duration::from_nanos(FLOOR_NS)));
        for _ in 0..64 {
            spin.observe(Duration::from_micros(30));
        }
        let budget = spin.budget(cap).unwrap();
        assert!(budget >= Duration::from_micros(55) && budget <= Duration::from_micros(65));
        for _ in 0..64 {
            spin.observe(Duration::from_micros(150));
        }
        assert_eq!(spin.budget(cap), Some(Duration::from_micros(200)), "capped");
        for _ in 0..64 {
            spin.observe(Duration::from_millis(1));
        }
        assert_eq!(spin.budget(cap), None, "long jobs are not spun for");
    }

    #[test]
    fn no_wait_for_a_job_longer_than_the_cap() {
        let spin = AwaitSpin::new(Duration::from_micros(200));
        for _ in 0..64 {
            spin.observe(Duration::from_micros(100));
        }
        // A 25 µs wait (a wake's cost) would end long before a 100 µs job.
        assert_eq!(spin.budget(Duration::from_micros(25)), None);
        for _ in 0..64 {
            spin.observe(Duration::from_micros(10));
        }
        let budget = spin.budget(Duration::from_micros(25)).unwrap();
        assert!(budget >= Duration::from_micros(19) && budget <= Duration::from_micros(25));
    }

    #[test]
    fn lingers_shrink_to_a_look_while_jobs_come_late_and_grow_back() {
        let cap = Duration::from_micros(20);
        let next = NextJob::default();
        assert_eq!(next.budget(cap), cap, "nothing learned yet: the whole cap");
        for _ in 0..8 {
            next.observe(Some(Duration::from_micros(1)), cap);
        }
        assert_eq!(next.budget(cap), cap, "jobs come at once");
        for _ in 0..32 {
            next.observe(None, cap);
        }
        assert_eq!(next.budget(cap), PICKUP, "no job came within any linger");
        for _ in 0..32 {
            next.observe(Some(Duration::from_millis(1)), cap);
        }
        assert_eq!(
            next.budget(cap),
            PICKUP,
            "a job later than the cap counts as the cap"
        );
        for _ in 0..32 {
            next.observe(Some(Duration::from_nanos(500)), cap);
        }
        assert_eq!(
            next.budget(cap),
            cap,
            "jobs came within the looks: linger again"
        );
        let small = Duration::from_nanos(1500);
        assert_eq!(NextJob::default().budget(small), small);
        let late = NextJob::default();
        late.observe(None, small);
        assert_eq!(
            late.budget(small),
            small,
            "a look is never longer than the cap"
        );
    }

    #[test]
    fn zero_limit_switches_spinning_off() {
        let spin = AwaitSpin::new(Duration::ZERO);
        spin.observe(Duration::from_nanos(10));
        assert_eq!(spin.budget(Duration::from_micros(100)), None);
    }
}
