//! [`ComputeMetrics`], the snapshot of a pool's counters that users read:
//! its figures, derived ones included, and its one-line `Display`.

use std::fmt;

use super::LaneMetrics;
use crate::histogram::Histogram;

/// A snapshot of a pool's counters, from [`ComputePool::metrics`](crate::ComputePool::metrics).
///
/// Durations are compute time measured on the compute thread (queue wait is
/// separate). Counts are totals since the pool was built.
///
/// ```
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// futures::executor::block_on(pool.execute(|| (0..1000u64).sum::<u64>())).unwrap();
/// let m = pool.metrics();
/// assert_eq!(m.tasks_total(), 1);
/// assert_eq!(m.tasks_completed(), 1);
/// assert_eq!(m.tasks_active(), 0);
/// println!("{m}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputeMetrics {
    pub(super) num_threads: usize,
    pub(super) lanes: [LaneMetrics; 2],
    pub(super) submitted: u64,
    pub(super) started: u64,
    pub(super) completed: u64,
    pub(super) panicked: u64,
    pub(super) cancelled: u64,
    pub(super) rejected: u64,
    pub(super) drop_panics: u64,
    pub(super) escaped_panics: u64,
    pub(super) awaited: u64,
    pub(super) compute_ns: u64,
    pub(super) max_compute_ns: u64,
    pub(super) queue_wait_ns: u64,
    pub(super) max_queue_wait_ns: u64,
    pub(super) slow: u64,
    pub(super) histogram: Histogram,
    pub(super) waits: Histogram,
    pub(super) adaptive_inline: u64,
    pub(super) adaptive_offloaded: u64,
    pub(super) adaptive_mispredicted: u64,
    pub(super) blocked_tasks: u64,
    pub(super) starved_events: u64,
}

impl ComputeMetrics {
    /// Jobs accepted since the pool was built (including cancelled ones; not
    /// submissions refused with `Shutdown` or `Saturated`).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| ());
    /// assert_eq!(pool.metrics().tasks_total(), 1);
    /// ```
    pub fn tasks_total(&self) -> u64 {
        self.submitted
    }

    /// Jobs accepted and not yet finished or cancelled: queued + running.
    /// Returns to 0 once every handle has resolved or been dropped.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// drop(pool.execute(|| ()));
    /// let _ = pool.execute_sync(|| ()); // the pool is idle afterwards
    /// assert_eq!(pool.metrics().tasks_active(), 0);
    /// ```
    pub fn tasks_active(&self) -> u64 {
        self.submitted
            .saturating_sub(self.completed + self.panicked + self.cancelled)
    }

    /// Jobs accepted and not started (including those waiting for room
    /// under `max_in_flight`).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().tasks_queued(), 0);
    /// ```
    pub fn tasks_queued(&self) -> u64 {
        self.submitted.saturating_sub(self.started + self.cancelled)
    }

    /// Jobs running now.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let running = pool.execute_sync({
    ///     let pool = pool.clone();
    ///     move || pool.metrics().tasks_running()
    /// });
    /// assert_eq!(running.unwrap(), 1);
    /// ```
    pub fn tasks_running(&self) -> u64 {
        self.started.saturating_sub(self.completed + self.panicked)
    }

    /// Handles an async task is awaiting right now: polled, parked until
    /// the result comes, and not yet resolved or dropped. A runtime that
    /// shuts down waits for this to reach 0, so that the tasks take the
    /// results their jobs already sent.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// futures::executor::block_on(pool.execute(|| std::thread::sleep(std::time::Duration::from_millis(5)))).unwrap();
    /// assert_eq!(pool.metrics().tasks_awaited(), 0);
    /// ```
    pub fn tasks_awaited(&self) -> u64 {
        self.awaited
    }

    /// Jobs that ran to the end and returned a value.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| 1);
    /// assert_eq!(pool.metrics().tasks_completed(), 1);
    /// ```
    pub fn tasks_completed(&self) -> u64 {
        self.completed
    }

    /// Jobs that panicked (the panic went to their awaiter).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| -> () { panic!("no") });
    /// assert_eq!(pool.metrics().tasks_panicked(), 1);
    /// ```
    pub fn tasks_panicked(&self) -> u64 {
        self.panicked
    }

    /// Accepted jobs that never ran: the handle was dropped or cancelled
    /// before the job started, or the job was discarded at shutdown.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let mut handle = pool.execute(|| ());
    /// let stopped_before_start = handle.cancel();
    /// let m = pool.metrics();
    /// assert_eq!(m.tasks_cancelled(), u64::from(stopped_before_start));
    /// ```
    pub fn tasks_cancelled(&self) -> u64 {
        self.cancelled
    }

    /// Submissions refused with `Shutdown` or `Saturated` (not in the total).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// pool.shutdown_blocking(std::time::Duration::from_secs(1));
    /// let _ = pool.execute_sync(|| ());
    /// assert_eq!(pool.metrics().tasks_rejected(), 1);
    /// ```
    pub fn tasks_rejected(&self) -> u64 {
        self.rejected
    }

    /// Values dropped on a compute thread whose `Drop` panicked (the panic
    /// was contained): results nobody awaited, and the captures of jobs
    /// skipped because they were cancelled or discarded at shutdown.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().result_drop_panics(), 0);
    /// ```
    pub fn result_drop_panics(&self) -> u64 {
        self.drop_panics
    }

    /// Panics that escaped a job's own catch and were contained by the pool:
    /// an awaiter's waker that panicked when the result was sent, a
    /// [`ThreadHook`](crate::ThreadHook) that panicked as its thread started,
    /// or a panic that reached rayon's panic handler (0 in normal operation:
    /// jobs catch their own panics).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| -> () { panic!("caught by the job wrapper") });
    /// assert_eq!(pool.metrics().escaped_panics(), 0);
    /// ```
    pub fn escaped_panics(&self) -> u64 {
        self.escaped_panics
    }

    /// Average compute time of finished jobs, in microseconds (0 if none).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| std::thread::sleep(std::time::Duration::from_millis(2)));
    /// assert!(pool.metrics().avg_task_duration_us() >= 2000.0);
    /// ```
    pub fn avg_task_duration_us(&self) -> f64 {
        let finished = self.completed + self.panicked;
        if finished == 0 {
            0.0
        } else {
            self.compute_ns as f64 / finished as f64 / 1000.0
        }
    }

    /// Longest compute time of any job, in microseconds.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| std::thread::sleep(std::time::Duration::from_millis(1)));
    /// assert!(pool.metrics().max_task_duration_us() >= 1000);
    /// ```
    pub fn max_task_duration_us(&self) -> u64 {
        self.max_compute_ns / 1000
    }

    /// Average time from submission to start, in microseconds (0 if none).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| ());
    /// assert!(pool.metrics().avg_queue_wait_us() >= 0.0);
    /// ```
    pub fn avg_queue_wait_us(&self) -> f64 {
        if self.started == 0 {
            0.0
        } else {
            self.queue_wait_ns as f64 / self.started as f64 / 1000.0
        }
    }

    /// Jobs whose compute time reached the configured `slow_task_threshold`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let pool = compute_pool::ComputePool::new(compute_pool::ComputeConfig {
    ///     slow_task_threshold: Duration::from_millis(1),
    ///     ..Default::default()
    /// }).unwrap();
    /// let _ = pool.execute_sync(|| std::thread::sleep(Duration::from_millis(2)));
    /// assert_eq!(pool.metrics().slow_tasks(), 1);
    /// ```
    pub fn slow_tasks(&self) -> u64 {
        self.slow
    }

    /// The compute time under which `q` (0.0..=1.0) of finished jobs fall,
    /// in microseconds, from a log-linear histogram: at least the true
    /// value and less than 6.25% above it (exact up to 32 ns; durations
    /// over 2^42 ns, about 73 minutes, are reported as the longest seen).
    /// 0 when no job finished.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| std::thread::sleep(std::time::Duration::from_millis(1)));
    /// let m = pool.metrics();
    /// assert!(m.quantile_us(0.5) >= 1000.0);
    /// assert!(m.quantile_us(0.5) <= m.max_task_duration_us() as f64 + 1.0);
    /// ```
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.histogram.quantile_us(self.max_compute_ns, q)
    }

    /// The queue wait (submission to start) under which `q` (0.0..=1.0) of
    /// started jobs fall, in microseconds, with the error bound of
    /// [`quantile_us`](Self::quantile_us). Every started job counts, in a
    /// lane or not. 0 when none started.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// futures::executor::block_on(pool.execute(|| ())).unwrap();
    /// let m = pool.metrics();
    /// assert!(m.queue_wait_quantile_us(0.99) >= m.queue_wait_quantile_us(0.5));
    /// ```
    pub fn queue_wait_quantile_us(&self, q: f64) -> f64 {
        self.waits.quantile_us(self.max_queue_wait_ns, q)
    }

    /// Total compute time of finished jobs, in nanoseconds.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // the exporter reads it
    pub(crate) fn compute_ns(&self) -> u64 {
        self.compute_ns
    }

    /// Total queue wait of started jobs, in nanoseconds.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // the exporter reads it
    pub(crate) fn queue_wait_ns(&self) -> u64 {
        self.queue_wait_ns
    }

    /// The compute-time histogram.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // the exporter reads it
    pub(crate) fn compute_histogram(&self) -> &Histogram {
        &self.histogram
    }

    /// The queue-wait histogram of every started job.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // the exporter reads it
    pub(crate) fn queue_wait_histogram(&self) -> &Histogram {
        &self.waits
    }

    /// The median compute time in microseconds (see [`quantile_us`](Self::quantile_us)).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().p50_task_duration_us(), 0.0);
    /// ```
    pub fn p50_task_duration_us(&self) -> f64 {
        self.quantile_us(0.5)
    }

    /// The 99th percentile of compute time in microseconds (see
    /// [`quantile_us`](Self::quantile_us)).
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let _ = pool.execute_sync(|| ());
    /// assert!(pool.metrics().p99_task_duration_us() >= pool.metrics().p50_task_duration_us());
    /// ```
    pub fn p99_task_duration_us(&self) -> f64 {
        self.quantile_us(0.99)
    }

    /// Calls adaptive dispatch ran inline.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().adaptive_inline(), 0);
    /// ```
    pub fn adaptive_inline(&self) -> u64 {
        self.adaptive_inline
    }

    /// Calls adaptive dispatch offloaded to the pool.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().adaptive_offloaded(), 0);
    /// ```
    pub fn adaptive_offloaded(&self) -> u64 {
        self.adaptive_offloaded
    }

    /// Adaptive dispatch decisions that proved wrong.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().adaptive_mispredicted(), 0);
    /// ```
    pub fn adaptive_mispredicted(&self) -> u64 {
        self.adaptive_mispredicted
    }

    /// The pool's thread count when the snapshot was taken.
    ///
    /// ```
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().num_threads(), pool.num_threads());
    /// ```
    pub fn num_threads(&self) -> usize {
        self.num_threads
    }

    /// Jobs the blocked-job detector found holding a compute thread without
    /// using CPU (each counted once; see the guide's "Jobs that block").
    /// Always 0 where the detector is unavailable or switched off.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// pool.execute_sync(|| (0..100u64).sum::<u64>()).unwrap();
    /// assert_eq!(pool.metrics().blocked_tasks(), 0);
    /// ```
    pub fn blocked_tasks(&self) -> u64 {
        self.blocked_tasks
    }

    /// Times the detector found every compute thread in a blocked job while
    /// other jobs waited (counted when it starts, not while it lasts).
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().starved_events(), 0);
    /// ```
    pub fn starved_events(&self) -> u64 {
        self.starved_events
    }
}

impl fmt::Display for ComputeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "threads={} total={} active={} (queued={} running={}) completed={} panicked={} \
             cancelled={} rejected={} slow={} compute avg={:.1}us p50={:.1}us p99={:.1}us \
             max={}us queue-wait avg={:.1}us",
            self.num_threads,
            self.tasks_total(),
            self.tasks_active(),
            self.tasks_queued(),
            self.tasks_running(),
            self.completed,
            self.panicked,
            self.cancelled,
            self.rejected,
            self.slow,
            self.avg_task_duration_us(),
            self.p50_task_duration_us(),
            self.p99_task_duration_us(),
            self.max_task_duration_us(),
            self.avg_queue_wait_us(),
        )?;
        if self.adaptive_inline + self.adaptive_offloaded > 0 {
            write!(
                f,
                " adaptive inline={} offloaded={} mispredicted={}",
                self.adaptive_inline, self.adaptive_offloaded, self.adaptive_mispredicted
            )?;
        }
        Ok(())
    }
}
