//! Durations kept by the pool, and the snapshot users read.
//!
//! How many jobs were admitted, started, finished or cancelled is the
//! ledger's (see `ledger.rs`); this module keeps how long they took (queue
//! wait, compute time, histograms of both, slow jobs) and the contained
//! panics, and a snapshot reads both. This file is the live side,
//! [`PoolMetrics`]; the snapshot users read, [`ComputeMetrics`], is in
//! `metrics/snapshot.rs`, and its per-lane part, [`LaneMetrics`], in
//! `metrics/lane.rs`. The histograms are `histogram.rs`'s: recording one
//! value is a `leading_zeros`, a shift and one relaxed add.
//!
//! Every counter is a relaxed atomic: each is an independent tally, nothing
//! is published through it, and a snapshot is allowed to be a few jobs out of
//! date. Derived figures come from the ledger's monotonic counters, so they
//! can never go negative or leak: `active = admitted - completed - panicked -
//! cancelled`.

mod lane;
mod snapshot;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::AtomicHistogram;
use crate::ledger::Counts;
use crate::priority::Priority;

use lane::lane_index;
pub use lane::LaneMetrics;
pub use snapshot::ComputeMetrics;

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
