//! One lane's figures in a snapshot: [`LaneMetrics`], and
//! [`ComputeMetrics::lane`] that gives them.

use super::ComputeMetrics;
use crate::histogram::Histogram;
use crate::priority::Priority;

impl ComputeMetrics {
    /// The figures of one lane (see [`Priority`](crate::Priority)): jobs
    /// waiting in it now, jobs started from it, and their queue wait.
    ///
    /// ```
    /// use compute_pool::Priority;
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// futures::executor::block_on(pool.with_priority(Priority::Low).execute(|| ())).unwrap();
    /// let low = pool.metrics().lane(Priority::Low);
    /// assert_eq!((low.tasks_started(), low.tasks_queued()), (1, 0));
    /// ```
    pub fn lane(&self, lane: Priority) -> LaneMetrics {
        self.lanes[lane_index(lane)].clone()
    }
}

/// One lane's figures in a [`ComputeMetrics`] snapshot; see
/// [`ComputeMetrics::lane`]. Only jobs that waited in a lane count here
/// (not those run inline, nor `execute_sync`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneMetrics {
    pub(super) queued: u64,
    pub(super) started: u64,
    pub(super) queue_wait_ns: u64,
    pub(super) max_queue_wait_ns: u64,
    pub(super) waits: Histogram,
}

impl LaneMetrics {
    /// Jobs waiting in this lane now.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().lane(compute_pool::Priority::High).tasks_queued(), 0);
    /// ```
    pub fn tasks_queued(&self) -> u64 {
        self.queued
    }

    /// Jobs started from this lane since the pool was built.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// futures::executor::block_on(pool.execute(|| ())).unwrap();
    /// assert_eq!(pool.metrics().lane(compute_pool::Priority::High).tasks_started(), 1);
    /// ```
    pub fn tasks_started(&self) -> u64 {
        self.started
    }

    /// Average time from submission to start of this lane's jobs, in
    /// microseconds (0 if none started).
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// assert_eq!(pool.metrics().lane(compute_pool::Priority::Low).avg_queue_wait_us(), 0.0);
    /// ```
    pub fn avg_queue_wait_us(&self) -> f64 {
        if self.started == 0 {
            0.0
        } else {
            self.queue_wait_ns as f64 / self.started as f64 / 1000.0
        }
    }

    /// The queue wait under which `q` (0.0..=1.0) of this lane's started jobs
    /// fall, in microseconds, from a log-linear histogram: at least the true
    /// value and less than 6.25% above it (see
    /// [`ComputeMetrics::quantile_us`]). 0 when none started.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// futures::executor::block_on(pool.execute(|| ())).unwrap();
    /// let high = pool.metrics().lane(compute_pool::Priority::High);
    /// assert!(high.queue_wait_quantile_us(0.99) >= high.queue_wait_quantile_us(0.5));
    /// ```
    pub fn queue_wait_quantile_us(&self, q: f64) -> f64 {
        self.waits.quantile_us(self.max_queue_wait_ns, q)
    }

    /// Total queue wait of this lane's started jobs, in nanoseconds.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // the exporter reads it
    pub(crate) fn queue_wait_ns(&self) -> u64 {
        self.queue_wait_ns
    }

    /// This lane's queue-wait histogram.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // the exporter reads it
    pub(crate) fn queue_wait_histogram(&self) -> &Histogram {
        &self.waits
    }
}

/// Index of a lane in the per-lane arrays.
pub(super) fn lane_index(lane: Priority) -> usize {
    match lane {
        Priority::High => 0,
        Priority::Low => 1,
    }
}
