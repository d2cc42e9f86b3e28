//! The engine: what a pool's jobs, runners and handles share.
//!
//! [`PoolOwner`] owns the rayon thread pool and is dropped with the last
//! `ComputePool` clone; jobs, compute threads and handles hold the
//! [`Engine`] instead, never the rayon pool, so dropping the last clone lets
//! the threads finish the queued jobs and exit.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::config::ComputeConfig;
use crate::detector::Detector;
use crate::erased::ErasedJob;
use crate::ledger::Ledger;
use crate::metrics::PoolMetrics;
use crate::queue::{LanePolicy, RunQueue};
use crate::spin::{wake_cost, AwaitSpin, NextJob, SpinPolicy, LINGER};

/// A job of the pool, as the run queue holds it.
pub(crate) type PoolJob = ErasedJob<Engine>;

/// The state a pool's jobs share. See the module docs.
pub(crate) struct Engine {
    /// Lifecycle and exactly-once accounting; shutdown waits on it.
    pub(crate) ledger: Ledger,
    /// Durations and contained panics.
    pub(crate) metrics: PoolMetrics,
    /// How long a first `.await` may spin; learned from compute times.
    pub(crate) await_spin: AwaitSpin,
    /// How soon the next job comes after a runner runs out; learned from
    /// the runners' lingers, it steers how long they last.
    pub(crate) next_job: NextJob,
    /// Where submitted jobs wait for a runner (see `queue.rs`).
    pub(crate) queue: RunQueue<PoolJob>,
    pub(crate) config: ComputeConfig,
    pub(crate) num_threads: usize,
    /// Blocked-job detection: the threads' slots and the call sites.
    pub(crate) detector: Detector,
    /// Unique among the engines of this process (call-site caches key on it).
    pub(crate) id: u64,
    /// Jobs record their submission time relative to this.
    epoch: Instant,
    /// The owner, set once right after the rayon pool is built; read by
    /// `compute_pool::current`.
    owner: OnceLock<Weak<PoolOwner>>,
}

/// Owns the rayon pool; see the module docs.
pub(crate) struct PoolOwner {
    pub(crate) rayon: rayon::ThreadPool,
    pub(crate) engine: Arc<Engine>,
}

impl Engine {
    /// The engine of a pool of `num_threads` threads built from `config`
    /// (already validated).
    pub(crate) fn new(config: ComputeConfig, num_threads: usize) -> Engine {
        // Measured once per process, here rather than in a first poll.
        let _ = wake_cost();
        // `max_in_flight` caps the runners: each runs one job at a time.
        let max_runners = config
            .max_in_flight
            .map_or(num_threads, |limit| limit.min(num_threads));
        Engine {
            ledger: Ledger::new(
                config.max_in_flight,
                config.max_queued.map(|queued| {
                    config
                        .max_in_flight
                        .unwrap_or(num_threads)
                        .saturating_add(queued)
                }),
            ),
            metrics: PoolMetrics::new(config.slow_task_threshold),
            await_spin: AwaitSpin::new(config.await_spin_limit),
            next_job: NextJob::default(),
            queue: RunQueue::new(
                max_runners,
                LanePolicy {
                    every: config.low_priority_every,
                    max_wait: config.low_priority_max_wait,
                },
            ),
            detector: Detector::new(
                num_threads,
                config.blocked_check_interval,
                config.blocked_threshold,
            ),
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                // ORDERING: Relaxed: only uniqueness matters.
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            num_threads,
            epoch: Instant::now(),
            owner: OnceLock::new(),
            config,
        }
    }

    /// Records the owner (once, right after it is built).
    pub(crate) fn set_owner(&self, owner: &Arc<PoolOwner>) {
        // Cannot fail: set only here, once per engine.
        let _ = self.owner.set(Arc::downgrade(owner));
    }

    /// The owner, while the pool is alive.
    pub(crate) fn owner(&self) -> Option<Arc<PoolOwner>> {
        self.owner.get()?.upgrade()
    }

    /// How long the awaiter of job number `number` may wait awake, if at
    /// all: only while the job is running or about to (next in line with a
    /// thread free), as long as the learned budget says, and with
    /// [`SpinPolicy::Balanced`] no longer than a wake costs (see
    /// `spin.rs`), not at all when the typical job outlasts that, not
    /// while other handles of the pool are parked, and not for a job that
    /// waits for the runners already serving the queue (`for_a_runner`:
    /// not started, and no runner started for it) when they are all of
    /// the pool's threads and all share this thread's CPU. An awaiter
    /// whose job waits for a thread parks at once: it could not be served
    /// sooner.
    pub(crate) fn spin_budget(&self, number: u64, for_a_runner: bool) -> Option<Duration> {
        let budget = self.await_spin.budget(self.spin_cap())?;
        if !self.spins_in_poll()
            && (self.ledger.parked_handles() > 0
                || (for_a_runner && self.all_threads_serve_from_here()))
        {
            // Other tasks await this pool: the executor has them to run when
            // their results come, and their jobs want the CPUs a wait would
            // burn. Or the runners that will take the job share this CPU:
            // they run once this thread gives the CPU up, not before.
            return None;
        }
        self.ledger
            .may_run_now(number, self.num_threads as u64)
            .then_some(budget)
    }

    /// Whether every thread of the pool is a runner serving the queue from
    /// the calling thread's CPU: a job left to them starts only once this
    /// thread gives the CPU up. (With a thread to spare, the submitter may
    /// have started a runner elsewhere, and the kernel soon moves a runner
    /// kept waiting to a CPU that falls idle.)
    fn all_threads_serve_from_here(&self) -> bool {
        self.queue.runners.alive() >= self.num_threads && self.queue.watchers.only_here()
    }

    /// How long a compute thread out of jobs lingers for the next one: at
    /// most as long as the policy lets any wait last, up to [`LINGER`],
    /// while the await spin is on, whatever the jobs' length (the next job
    /// comes after its submitter's turnaround, which a job's length says
    /// nothing about, and with other jobs in flight it is often on its
    /// way). With [`SpinPolicy::Balanced`] and short jobs, all of that only
    /// while the next job has typically come within half of it, else a
    /// short look (see `NextJob`); between long jobs it lingers the whole
    /// budget and then dozes: a job that came after a mere look would cost
    /// the doze's wake-up.
    pub(crate) fn linger_budget(&self) -> Option<Duration> {
        let cap = self.linger_cap();
        if cap.is_zero() {
            return None;
        }
        let learned = self.config.spin_policy == SpinPolicy::Balanced && !self.long_jobs();
        Some(if learned {
            self.next_job.budget(cap)
        } else {
            cap
        })
    }

    /// Records how a runner's linger ended (see `NextJob::observe`).
    pub(crate) fn lingered(&self, came_after: Option<Duration>) {
        self.next_job.observe(came_after, self.linger_cap());
    }

    /// The longest any linger may last.
    fn linger_cap(&self) -> Duration {
        self.spin_cap()
            .min(self.config.await_spin_limit)
            .min(LINGER)
    }

    /// How long a runner whose linger found no job may doze for the next
    /// one before it retires: the keep-alive, when the pool's jobs are long
    /// (too long for the await spin, or the spin is off). After short jobs
    /// it retires at once: the next one comes within a linger or not soon,
    /// and rayon's idle spin catches gaps a doze would pay a wake-up for.
    pub(crate) fn doze_budget(&self) -> Option<Duration> {
        self.runner_keep_alive().filter(|_| self.long_jobs())
    }

    /// Whether the pool's typical job is too long for the await spin (or
    /// the spin is off): runners then doze between jobs.
    fn long_jobs(&self) -> bool {
        self.await_spin.budget(self.spin_cap()).is_none()
    }

    /// The longest any wait awake may last under the spin policy.
    fn spin_cap(&self) -> Duration {
        match self.config.spin_policy {
            SpinPolicy::Balanced => wake_cost(),
            SpinPolicy::Latency => self.config.await_spin_limit,
        }
    }

    /// Whether a poll may wait awake itself (see `spin.rs`).
    pub(crate) fn spins_in_poll(&self) -> bool {
        self.config.spin_policy == SpinPolicy::Latency
    }

    /// How long a runner out of jobs may doze before it retires (see
    /// `ComputeConfig::runner_keep_alive`); `None` with one thread, which
    /// must stay free for rayon's own work.
    pub(crate) fn runner_keep_alive(&self) -> Option<Duration> {
        let keep_alive = self.config.runner_keep_alive;
        (self.num_threads > 1 && !keep_alive.is_zero()).then_some(keep_alive)
    }

    /// `at` as nanoseconds since the pool was built (saturating).
    pub(crate) fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The inverse of [`nanos_since_epoch`](Self::nanos_since_epoch).
    pub(crate) fn instant_since_epoch(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// Passes the shutdown deadline: jobs still queued resolve to
    /// `Shutdown` now, without running; a runner that pops one meanwhile
    /// discards it the same way.
    pub(crate) fn pass_deadline(&self) {
        self.ledger.pass_deadline();
        while let Some((job, _)) = self.queue.pop() {
            job.discard(self);
        }
    }
}
