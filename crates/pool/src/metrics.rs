//! Durations kept by the pool, and the snapshot users read.
//!
//! How many jobs were admitted, started, finished or cancelled is the
//! ledger's (see `ledger.rs`); this module keeps how long they took (queue
//! wait, compute time, histograms of both, slow jobs) and the contained
//! panics, and a snapshot reads both.
//!
//! The histograms are log-linear: 16 sub-buckets per power of two of
//! nanoseconds, so a bucket's upper edge is less than 1/16 (6.25%) above
//! any value in it; values up to 32 ns have a bucket each, values above
//! 2^42 ns (about 73 minutes) share the last bucket. Recording one value is
//! a `leading_zeros`, a shift and one relaxed add.
//!
//! Every counter is a relaxed atomic: each is an independent tally, nothing
//! is published through it, and a snapshot is allowed to be a few jobs out of
//! date. Derived figures come from the ledger's monotonic counters, so they
//! can never go negative or leak: `active = admitted - completed - panicked -
//! cancelled`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::{AtomicHistogram, Histogram};
use crate::ledger::Counts;
use crate::priority::Priority;

/// Keeps its contents on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct CacheLine<T>(T);

/// Written on the compute threads.
#[derive(Default)]
struct ComputeSide {
    queue_wait_ns: AtomicU64,
    max_queue_wait_ns: AtomicU64,
    compute_ns: AtomicU64,
    max_compute_ns: AtomicU64,
    slow: AtomicU64,
    drop_panics: AtomicU64,
    escaped_panics: AtomicU64,
}

/// Written by the threads that start jobs taken from one lane.
struct LaneSide {
    started: AtomicU64,
    queue_wait_ns: AtomicU64,
    max_queue_wait_ns: AtomicU64,
    /// This lane's queue waits.
    waits: AtomicHistogram,
}

impl Default for LaneSide {
    fn default() -> Self {
        LaneSide {
            started: AtomicU64::new(0),
            queue_wait_ns: AtomicU64::new(0),
            max_queue_wait_ns: AtomicU64::new(0),
            waits: AtomicHistogram::default(),
        }
    }
}

/// Written by adaptive dispatch.
#[derive(Default)]
struct AdaptiveSide {
    inline: AtomicU64,
    offloaded: AtomicU64,
    mispredicted: AtomicU64,
}

/// The live counters of one pool.
pub(crate) struct PoolMetrics {
    compute: CacheLine<ComputeSide>,
    /// Compute times.
    histogram: AtomicHistogram,
    /// Queue waits of every started job, in a lane or not.
    waits: AtomicHistogram,
    /// Per lane, High then Low.
    lanes: [CacheLine<LaneSide>; 2],
    adaptive: CacheLine<AdaptiveSide>,
    slow_threshold_ns: u64,
    /// Written by the blocked-job detector's watchdog only.
    detector: CacheLine<DetectorSide>,
}

/// Written by the blocked-job detector (`detector.rs`).
#[derive(Default)]
struct DetectorSide {
    blocked: AtomicU64,
    starved_events: AtomicU64,
    starved: AtomicBool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl PoolMetrics {
    pub(crate) fn new(slow_threshold: Duration) -> PoolMetrics {
        PoolMetrics {
            compute: CacheLine::default(),
            histogram: AtomicHistogram::default(),
            waits: AtomicHistogram::default(),
            lanes: Default::default(),
            adaptive: CacheLine::default(),
            slow_threshold_ns: nanos(slow_threshold),
            detector: CacheLine::default(),
        }
    }

    /// A job starts running after waiting `queue_wait`.
    /// For a job taken from `lane`, that lane's figures too.
    pub(crate) fn record_queue_wait(&self, queue_wait: Duration, lane: Option<Priority>) {
        let ns = nanos(queue_wait);
        let c = &self.compute.0;
        // ORDERING: Relaxed: an independent sum.
        c.queue_wait_ns.fetch_add(ns, Ordering::Relaxed);
        // ORDERING: Relaxed: a read-only check first, so the common case (not
        // a new maximum) does no read-modify-write.
        if ns > c.max_queue_wait_ns.load(Ordering::Relaxed) {
            // ORDERING: Relaxed: fetch_max is atomic on its own.
            c.max_queue_wait_ns.fetch_max(ns, Ordering::Relaxed);
        }
        self.waits.record(ns);
        let Some(lane) = lane else { return };
        let side = &self.lanes[lane_index(lane)].0;
        // ORDERING: Relaxed: independent tallies and sums.
        side.started.fetch_add(1, Ordering::Relaxed);
        // ORDERING: Relaxed: as above.
        side.queue_wait_ns.fetch_add(ns, Ordering::Relaxed);
        // ORDERING: Relaxed: fetch_max is atomic on its own.
        side.max_queue_wait_ns.fetch_max(ns, Ordering::Relaxed);
        side.waits.record(ns);
    }

    /// A started job ran for `compute` (returned or unwound).
    pub(crate) fn record_compute(&self, compute: Duration) {
        let c = &self.compute.0;
        let ns = nanos(compute);
        // ORDERING: Relaxed: independent sums and tallies.
        c.compute_ns.fetch_add(ns, Ordering::Relaxed);
        // ORDERING: Relaxed: a read-only check first, so the common case (not
        // a new maximum) does no read-modify-write.
        if ns > c.max_compute_ns.load(Ordering::Relaxed) {
            // ORDERING: Relaxed: fetch_max is atomic on its own.
            c.max_compute_ns.fetch_max(ns, Ordering::Relaxed);
        }
        self.histogram.record(ns);
        if ns >= self.slow_threshold_ns {
            // ORDERING: Relaxed: an independent tally.
            c.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Dropping a result nobody awaited panicked (the panic was contained).
    pub(crate) fn record_drop_panic(&self) {
        // ORDERING: Relaxed: an independent tally.
        self.compute.0.drop_panics.fetch_add(1, Ordering::Relaxed);
    }

    /// A panic escaped a job's own catch (from an awaiter's waker, or into
    /// rayon's panic handler).
    pub(crate) fn record_escaped_panic(&self) {
        // ORDERING: Relaxed: an independent tally.
        self.compute
            .0
            .escaped_panics
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Adaptive dispatch ran a call inline.
    pub(crate) fn record_adaptive_inline(&self) {
        // ORDERING: Relaxed: an independent tally.
        self.adaptive.0.inline.fetch_add(1, Ordering::Relaxed);
    }

    /// Adaptive dispatch offloaded a call to the pool.
    pub(crate) fn record_adaptive_offloaded(&self) {
        // ORDERING: Relaxed: an independent tally.
        self.adaptive.0.offloaded.fetch_add(1, Ordering::Relaxed);
    }

    /// Adaptive dispatch chose wrong (ran inline a call that proved long, or
    /// offloaded one that proved short).
    pub(crate) fn record_adaptive_mispredicted(&self) {
        // ORDERING: Relaxed: an independent tally.
        self.adaptive.0.mispredicted.fetch_add(1, Ordering::Relaxed);
    }

    /// The detector found a job blocked.
    pub(crate) fn record_blocked(&self) {
        // ORDERING: Relaxed: an independent tally.
        self.detector.0.blocked.fetch_add(1, Ordering::Relaxed);
    }

    /// The detector found the pool starved (it was not).
    pub(crate) fn record_starved(&self) {
        // ORDERING: Relaxed: an independent tally.
        self.detector
            .0
            .starved_events
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the pool is starved, as the detector last saw it.
    pub(crate) fn set_starved(&self, starved: bool) {
        // ORDERING: Relaxed: a gauge; nothing is published through it.
        self.detector.0.starved.store(starved, Ordering::Relaxed);
    }

    /// See [`set_starved`](Self::set_starved).
    pub(crate) fn is_starved(&self) -> bool {
        // ORDERING: Relaxed: a gauge.
        self.detector.0.starved.load(Ordering::Relaxed)
    }

    /// A consistent-enough copy of every counter, with the ledger's
    /// `counts` (read first, so the durations cover at least those jobs).
    ///
    /// `waiting` is the jobs waiting in each lane now (High, Low).
    pub(crate) fn snapshot(
        &self,
        num_threads: usize,
        counts: Counts,
        waiting: [usize; 2],
    ) -> ComputeMetrics {
        let c = &self.compute.0;
        let a = &self.adaptive.0;
        // ORDERING: Relaxed for every load: a snapshot of independent
        // tallies.
        let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
        let compute_ns = load(&c.compute_ns);
        let max_compute_ns = load(&c.max_compute_ns);
        let slow = load(&c.slow);
        let queue_wait_ns = load(&c.queue_wait_ns);
        let max_queue_wait_ns = load(&c.max_queue_wait_ns);
        let histogram = self.histogram.load();
        let waits = self.waits.load();
        let lanes = [0, 1].map(|index| {
            let side = &self.lanes[index].0;
            LaneMetrics {
                queued: waiting[index] as u64,
                started: load(&side.started),
                queue_wait_ns: load(&side.queue_wait_ns),
                max_queue_wait_ns: load(&side.max_queue_wait_ns),
                waits: side.waits.load(),
            }
        });
        ComputeMetrics {
            num_threads,
            lanes,
            submitted: counts.admitted,
            started: counts.started,
            completed: counts.completed,
            panicked: counts.panicked,
            cancelled: counts.cancelled,
            rejected: counts.refused,
            awaited: counts.awaited,
            drop_panics: load(&c.drop_panics),
            escaped_panics: load(&c.escaped_panics),
            compute_ns,
            max_compute_ns,
            queue_wait_ns,
            max_queue_wait_ns,
            slow,
            histogram,
            waits,
            adaptive_inline: load(&a.inline),
            adaptive_offloaded: load(&a.offloaded),
            adaptive_mispredicted: load(&a.mispredicted),
            blocked_tasks: load(&self.detector.0.blocked),
            starved_events: load(&self.detector.0.starved_events),
        }
    }
}

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
    num_threads: usize,
    lanes: [LaneMetrics; 2],
    submitted: u64,
    started: u64,
    completed: u64,
    panicked: u64,
    cancelled: u64,
    rejected: u64,
    drop_panics: u64,
    escaped_panics: u64,
    awaited: u64,
    compute_ns: u64,
    max_compute_ns: u64,
    queue_wait_ns: u64,
    max_queue_wait_ns: u64,
    slow: u64,
    histogram: Histogram,
    waits: Histogram,
    adaptive_inline: u64,
    adaptive_offloaded: u64,
    adaptive_mispredicted: u64,
    blocked_tasks: u64,
    starved_events: u64,
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
    queued: u64,
    started: u64,
    queue_wait_ns: u64,
    max_queue_wait_ns: u64,
    waits: Histogram,
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
fn lane_index(lane: Priority) -> usize {
    match lane {
        Priority::High => 0,
        Priority::Low => 1,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::tests::assert_close;

    #[test]
    fn pool_and_lane_queue_waits_have_quantiles() {
        let m = PoolMetrics::new(Duration::from_millis(100));
        for i in 1..=100u64 {
            m.record_queue_wait(Duration::from_micros(i * 10), Some(Priority::Low));
        }
        m.record_queue_wait(Duration::from_micros(5), None);
        let s = m.snapshot(1, Counts::default(), [0, 0]);
        assert_eq!(s.queue_wait_histogram().count(), 101);
        assert_close(s.queue_wait_quantile_us(0.5), 500_000, "pool p50");
        assert_close(s.queue_wait_quantile_us(0.0), 5_000, "pool p0");
        let low = s.lane(Priority::Low);
        assert_close(low.queue_wait_quantile_us(0.5), 500_000, "low p50");
        assert_close(low.queue_wait_quantile_us(0.99), 990_000, "low p99");
        assert_eq!(s.lane(Priority::High).queue_wait_quantile_us(0.5), 0.0);
    }

    #[test]
    fn quantiles_bound_the_samples() {
        let m = PoolMetrics::new(Duration::from_millis(100));
        for _ in 0..99 {
            m.record_compute(Duration::from_micros(10));
        }
        m.record_compute(Duration::from_millis(5));
        let counts = Counts {
            admitted: 100,
            started: 100,
            completed: 100,
            ..Counts::default()
        };
        let s = m.snapshot(1, counts, [0, 0]);
        assert_close(s.p50_task_duration_us(), 10_000, "p50");
        assert_close(s.p99_task_duration_us(), 10_000, "p99");
        assert_eq!(s.quantile_us(1.0), 5000.0);
        assert_eq!(s.max_task_duration_us(), 5000);
        assert_eq!(s.tasks_active(), 0);
        assert_eq!(s.tasks_completed(), 100);
    }

    #[test]
    fn active_counts_queued_and_running() {
        let counts = Counts {
            admitted: 3,
            started: 1,
            cancelled: 1,
            ..Counts::default()
        };
        let s = PoolMetrics::new(Duration::from_millis(100)).snapshot(1, counts, [0, 0]);
        assert_eq!(s.tasks_active(), 2);
        assert_eq!(s.tasks_running(), 1);
        assert_eq!(s.tasks_queued(), 1);
    }
}
