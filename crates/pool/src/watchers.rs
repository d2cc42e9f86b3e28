//! The CPUs from which runners serve the run queue.
//!
//! A runner takes queued jobs one after another and, out of jobs, lingers,
//! checking the queue back to back (see `spin.rs`), so a job pushed from
//! another CPU starts within a microsecond. A job pushed from the very CPU
//! its only runner is on starts only once the submitting thread gives that
//! CPU up: its awaiter should park at once rather than wait awake, since
//! the wait itself keeps the job from running (see `Engine::spin_budget`).
//!
//! One bit per CPU (CPU numbers taken modulo 64), set while a runner on
//! that CPU drains the queue; the runner moves its bit when it finds
//! itself on another CPU, before each job and each linger. It is a hint
//! and nothing waits on it: a runner may move between two looks, and of
//! two runners on one CPU the first to stop clears the bit for both. A
//! stale bit costs a wake (an awaiter parks for a job that would have
//! started at once), a missing one a wait that the pickup rule ends
//! (`spin::PICKUP`); no job, result or wake-up depends on it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::placement::current_cpu;

/// The CPUs runners serve the queue from. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    cpus: AtomicU64,
}

/// A runner's mark on its CPU, cleared when dropped.
pub(crate) struct Watch<'a> {
    watchers: &'a Watchers,
    /// The bit set, 0 if none.
    bit: u64,
}

impl Watchers {
    /// Marks the calling thread's CPU as watched until the returned guard
    /// drops. Where the CPU is unknown, marks nothing.
    pub(crate) fn watch(&self) -> Watch<'_> {
        let mut watch = Watch {
            watchers: self,
            bit: 0,
        };
        watch.follow();
        watch
    }

    /// Whether runners serve the queue from the calling thread's CPU and
    /// from no other: a job submitted from here is taken up only once this
    /// thread gives the CPU up. `false` where the CPU is unknown.
    pub(crate) fn only_here(&self) -> bool {
        let Some(bit) = cpu_bit() else { return false };
        // ORDERING: Relaxed: a hint (see the module docs).
        self.cpus.load(Ordering::Relaxed) == bit
    }
}

impl Watch<'_> {
    /// Moves the mark to the CPU the calling thread is on now, if it moved.
    pub(crate) fn follow(&mut self) {
        let bit = cpu_bit().unwrap_or(0);
        if bit == self.bit {
            return;
        }
        let cpus = &self.watchers.cpus;
        // ORDERING: Relaxed: a hint (see the module docs); nothing is
        // published through it.
        cpus.fetch_or(bit, Ordering::Relaxed);
        cpus.fetch_and(!self.bit, Ordering::Relaxed);
        self.bit = bit;
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if self.bit != 0 {
            // ORDERING: Relaxed: see `follow`.
            self.watchers.cpus.fetch_and(!self.bit, Ordering::Relaxed);
        }
    }
}

/// The calling thread's CPU as a bit of the mask.
fn cpu_bit() -> Option<u64> {
    current_cpu().map(|cpu| 1 << (cpu % 64))
}

/// Runs `look` on the calling thread while a thread pinned to `cpu`
/// watches `watchers` (for tests of what a mark elsewhere changes).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn while_watched_from<T>(
    watchers: &Watchers,
    cpu: usize,
    look: impl FnOnce() -> T,
) -> T {
    let turns = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            crate::placement::pin_to(cpu);
            let _there = watchers.watch();
            turns.wait();
            turns.wait();
        });
        turns.wait();
        let seen = look();
        turns.wait();
        seen
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::placement::{pin_to, two_cpus};

    #[test]
    fn a_watcher_here_alone_is_only_here_and_one_elsewhere_is_not() {
        let Some((mine, theirs)) = two_cpus() else {
            return; // One CPU: every watcher is here.
        };
        // Fresh threads, so pinning never touches the test harness's.
        std::thread::spawn(move || {
            pin_to(mine);
            let watchers = Watchers::default();
            assert!(!watchers.only_here(), "nobody watches");
            let here = watchers.watch();
            assert!(watchers.only_here());
            assert!(
                !while_watched_from(&watchers, theirs, || watchers.only_here()),
                "one watches elsewhere"
            );
            assert!(watchers.only_here(), "the other watch is over");
            pin_to(theirs);
            assert!(
                !watchers.only_here(),
                "from there, the one watch is elsewhere"
            );
            pin_to(mine);
            assert!(watchers.only_here());
            let mut here = here;
            pin_to(theirs);
            here.follow();
            assert!(watchers.only_here(), "the mark moved along");
            drop(here);
            assert!(!watchers.only_here(), "nobody watches any more");
        })
        .join()
        .unwrap();
    }
}
