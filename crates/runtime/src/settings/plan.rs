//! The thread counts a config gives on a machine: [`ThreadPlan`], with the
//! defaults filled in and the budget they are held to.

use super::{physical_cores, RuntimeConfig};

impl RuntimeConfig {
    /// The thread counts this config gives on this machine, defaults filled
    /// in. See [`thread_plan_for`](RuntimeConfig::thread_plan_for).
    pub fn thread_plan(&self) -> ThreadPlan {
        self.thread_plan_for(physical_cores())
    }

    /// The thread counts this config gives on a machine with
    /// `physical_cores` cores.
    ///
    /// Defaults: Tokio workers = the physical cores, compute threads = half
    /// of them (at least 1, [`crate::default_num_threads_for`]), which keeps the
    /// total at 1.5 × the physical cores ([`ThreadPlan::budget`]). When only
    /// one of the two is set, the other is sized to fit what is left of that
    /// budget (at least 1). Counts that are set are used as they are, even
    /// when they oversubscribe; [`Runtime::new`](crate::Runtime::new) then
    /// logs a warning.
    ///
    /// ```
    /// use compute_runtime::RuntimeConfig;
    ///
    /// let plan = RuntimeConfig::default().thread_plan_for(8);
    /// assert_eq!((plan.worker_threads, plan.compute_threads), (8, 4));
    /// assert_eq!(plan.oversubscription(), None);
    ///
    /// let batch = RuntimeConfig { num_worker_threads: Some(4), compute_threads: Some(12), ..Default::default() };
    /// assert_eq!(batch.thread_plan_for(8).oversubscription(), Some(4)); // 16 threads, budget 12
    /// ```
    pub fn thread_plan_for(&self, physical_cores: usize) -> ThreadPlan {
        let cores = physical_cores.max(1);
        let budget = ThreadPlan::budget_for(cores);
        let default_compute = compute_pool::default_num_threads_for(cores);
        let (worker_threads, compute_threads) =
            match (self.num_worker_threads, self.compute_threads) {
                (Some(workers), Some(compute)) => (workers, compute),
                (None, Some(0)) => (cores, 0),
                (None, Some(compute)) => {
                    (cores.min(budget.saturating_sub(compute)).max(1), compute)
                }
                (Some(workers), None) => (
                    workers,
                    default_compute.min(budget.saturating_sub(workers)).max(1),
                ),
                (None, None) => (cores, default_compute),
            };
        ThreadPlan {
            worker_threads,
            compute_threads,
            physical_cores: cores,
        }
    }
}

/// Thread counts with the defaults filled in, and the machine they are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPlan {
    /// Tokio worker threads (blocking threads come and go on top of these).
    pub worker_threads: usize,
    /// Compute threads; 0 means no compute pool.
    pub compute_threads: usize,
    /// Physical cores of the machine the plan is for.
    pub physical_cores: usize,
}

impl ThreadPlan {
    pub(super) fn budget_for(physical_cores: usize) -> usize {
        (physical_cores.saturating_mul(3) / 2).max(2)
    }

    /// Worker plus compute threads, saturating at `usize::MAX` (counts
    /// that were never validated can be that large; such a plan is then
    /// reported as oversubscribed rather than overflowing).
    ///
    /// ```
    /// use compute_runtime::ThreadPlan;
    ///
    /// let plan = ThreadPlan { worker_threads: 8, compute_threads: 4, physical_cores: 8 };
    /// assert_eq!(plan.total(), 12);
    /// let absurd = ThreadPlan { worker_threads: usize::MAX, ..plan };
    /// assert_eq!(absurd.total(), usize::MAX);
    /// assert!(absurd.oversubscription().is_some());
    /// ```
    pub fn total(&self) -> usize {
        self.worker_threads.saturating_add(self.compute_threads)
    }

    /// The most threads recommended for this machine: 1.5 × the
    /// physical cores (rounded down), and never less than 2 (one worker plus
    /// one compute thread).
    pub fn budget(&self) -> usize {
        ThreadPlan::budget_for(self.physical_cores)
    }

    /// By how many threads the plan exceeds [`budget`](ThreadPlan::budget),
    /// or `None` if it fits.
    pub fn oversubscription(&self) -> Option<usize> {
        self.total()
            .checked_sub(self.budget())
            .filter(|&excess| excess > 0)
    }

    /// Logs a `tracing` warning if the plan oversubscribes the machine,
    /// saying by how much. Returns whether it did.
    pub fn warn_if_oversubscribed(&self) -> bool {
        let Some(excess) = self.oversubscription() else {
            return false;
        };
        tracing::warn!(
            worker_threads = self.worker_threads,
            compute_threads = self.compute_threads,
            physical_cores = self.physical_cores,
            budget = self.budget(),
            excess,
            "runtime oversubscribes the machine by {excess} thread{}: {} tokio workers + {} compute threads = {} threads, \
             more than the {} recommended (1.5 x {} physical cores); lower num_worker_threads or compute_threads",
            if excess == 1 { "" } else { "s" },
            self.worker_threads,
            self.compute_threads,
            self.total(),
            self.budget(),
            self.physical_cores,
        );
        true
    }
}
