//! The pool's metrics in a `prometheus-client` registry (feature
//! `prometheus`).
//!
//! A [`PoolCollector`] reads [`ComputePool::metrics`] at each scrape and
//! encodes it: nothing is added to the hot path, and the figures are as
//! live as a snapshot. Its metrics, each labelled `pool="<name>"`:
//!
//! | metric | type | what |
//! |---|---|---|
//! | `compute_pool_threads` | gauge | threads in the pool |
//! | `compute_pool_tasks_total` | counter | jobs accepted |
//! | `compute_pool_tasks_completed_total` | counter | jobs that returned |
//! | `compute_pool_tasks_panicked_total` | counter | jobs that panicked |
//! | `compute_pool_tasks_cancelled_total` | counter | accepted jobs that never ran |
//! | `compute_pool_tasks_rejected_total` | counter | submissions refused (`Shutdown`, `Saturated`) |
//! | `compute_pool_slow_tasks_total` | counter | jobs that reached `slow_task_threshold` |
//! | `compute_pool_escaped_panics_total` | counter | panics contained outside a job's own catch |
//! | `compute_pool_tasks_active` | gauge | jobs queued or running |
//! | `compute_pool_tasks_queued` | gauge | jobs accepted and not started |
//! | `compute_pool_tasks_running` | gauge | jobs running |
//! | `compute_pool_task_duration_seconds` | histogram | compute time of finished jobs |
//! | `compute_pool_queue_wait_seconds` | histogram | submission to start, every started job |
//! | `compute_pool_lane_tasks_queued{lane}` | gauge | jobs waiting in the lane |
//! | `compute_pool_lane_tasks_started_total{lane}` | counter | jobs started from the lane |
//! | `compute_pool_lane_queue_wait_seconds{lane}` | histogram | submission to start, the lane's jobs |
//!
//! `lane` is `high` or `low` ([`Priority`]). The histograms' bounds are
//! every power of two of nanoseconds from 2^10 ns (1.024 µs) to 2^37 ns
//! (about 137 s): each is an edge of the pool's fine buckets, so the count
//! at each bound is exact, not interpolated.

use std::fmt;
use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::engine::PoolOwner;
use crate::histogram::Histogram;
use crate::{ComputePool, Priority};

/// The exported histogram bounds, as powers of two of nanoseconds: 2^10 ns
/// (1.024 µs) to 2^37 ns (about 137 s), 28 bounds and `+Inf`.
const BOUND_POWERS: std::ops::RangeInclusive<u32> = 10..=37;

/// Labels of one sample: the pool's name, and the lane's for lane metrics.
type Labels<'a> = [(&'static str, &'a str)];

/// Encodes a pool's metrics at each scrape of the registry it is
/// registered with; see [`ComputePool::register_metrics`].
///
/// It holds the pool weakly: a registry does not keep a pool's threads
/// alive, and a pool that is gone exports nothing.
pub struct PoolCollector {
    pool: Weak<PoolOwner>,
    name: String,
}

impl PoolCollector {
    /// A collector of `pool`'s metrics, labelled `pool="<pool_name>"`.
    ///
    /// ```
    /// use compute_pool::{ComputePool, PoolCollector};
    /// use prometheus_client::registry::Registry;
    ///
    /// let pool = ComputePool::with_defaults().unwrap();
    /// let mut registry = Registry::default();
    /// registry.register_collector(Box::new(PoolCollector::new(&pool, "images")));
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("compute_pool_tasks_total{pool=\"images\"} 0"));
    /// ```
    pub fn new(pool: &ComputePool, pool_name: impl Into<String>) -> PoolCollector {
        PoolCollector {
            pool: std::sync::Arc::downgrade(&pool.inner),
            name: pool_name.into(),
        }
    }
}

impl fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolCollector")
            .field("pool_name", &self.name)
            .field("alive", &(self.pool.strong_count() > 0))
            .finish()
    }
}

impl ComputePool {
    /// Registers this pool's metrics with `registry`, labelled
    /// `pool="<pool_name>"`: a [`PoolCollector`] that reads
    /// [`metrics`](Self::metrics) at each scrape (the list is in its
    /// module's table: counters ending in `_total`, gauges, and histograms
    /// in seconds per pool and per lane).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use compute_pool::ComputePool;
    /// use prometheus_client::registry::Registry;
    ///
    /// let pool = ComputePool::with_defaults().unwrap();
    /// let mut registry = Registry::default();
    /// pool.register_metrics(&mut registry, "images");
    /// pool.execute(|| (0..1000u64).sum::<u64>()).await.unwrap();
    ///
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("# TYPE compute_pool_task_duration_seconds histogram"));
    /// assert!(text.contains("compute_pool_tasks_completed_total{pool=\"images\"} 1"));
    /// assert!(text.contains("compute_pool_task_duration_seconds_count{pool=\"images\"} 1"));
    /// # }
    /// ```
    pub fn register_metrics(&self, registry: &mut Registry, pool_name: &str) {
        registry.register_collector(Box::new(PoolCollector::new(self, pool_name)));
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(inner) = self.pool.upgrade() else {
            return Ok(());
        };
        let m = ComputePool {
            inner,
            lane: Priority::High,
        }
        .metrics();
        let pool: &Labels = &[("pool", &self.name)];
        let e = &mut encoder;

        gauge(
            e,
            "compute_pool_threads",
            "Threads in the compute pool.",
            &[(pool, m.num_threads() as u64)],
        )?;
        let counters: [(&str, &str, u64); 7] = [
            (
                "compute_pool_tasks",
                "Jobs accepted by the pool.",
                m.tasks_total(),
            ),
            (
                "compute_pool_tasks_completed",
                "Jobs that returned a value.",
                m.tasks_completed(),
            ),
            (
                "compute_pool_tasks_panicked",
                "Jobs that panicked (the panic went to their awaiter).",
                m.tasks_panicked(),
            ),
            (
                "compute_pool_tasks_cancelled",
                "Accepted jobs that never ran (cancelled, dropped, or discarded at shutdown).",
                m.tasks_cancelled(),
            ),
            (
                "compute_pool_tasks_rejected",
                "Submissions refused with Shutdown or Saturated.",
                m.tasks_rejected(),
            ),
            (
                "compute_pool_slow_tasks",
                "Jobs whose compute time reached the slow-task threshold.",
                m.slow_tasks(),
            ),
            (
                "compute_pool_escaped_panics",
                "Panics contained outside a job's own catch.",
                m.escaped_panics(),
            ),
        ];
        for (name, help, value) in counters {
            counter(e, name, help, &[(pool, value)])?;
        }
        let gauges: [(&str, &str, u64); 3] = [
            (
                "compute_pool_tasks_active",
                "Jobs queued or running.",
                m.tasks_active(),
            ),
            (
                "compute_pool_tasks_queued",
                "Jobs accepted and not started.",
                m.tasks_queued(),
            ),
            (
                "compute_pool_tasks_running",
                "Jobs running now.",
                m.tasks_running(),
            ),
        ];
        for (name, help, value) in gauges {
            gauge(e, name, help, &[(pool, value)])?;
        }
        histogram(
            e,
            "compute_pool_task_duration",
            "Compute time of finished jobs.",
            &[(pool, m.compute_histogram(), m.compute_ns())],
        )?;
        histogram(
            e,
            "compute_pool_queue_wait",
            "Time from submission to start of every started job.",
            &[(pool, m.queue_wait_histogram(), m.queue_wait_ns())],
        )?;

        let lanes = [(Priority::High, "high"), (Priority::Low, "low")]
            .map(|(lane, name)| (m.lane(lane), [("pool", self.name.as_str()), ("lane", name)]));
        let per_lane = |value: fn(&crate::LaneMetrics) -> u64| {
            lanes
                .iter()
                .map(|(lane, labels)| (&labels[..], value(lane)))
                .collect::<Vec<_>>()
        };
        gauge(
            e,
            "compute_pool_lane_tasks_queued",
            "Jobs waiting in the lane.",
            &per_lane(|lane| lane.tasks_queued()),
        )?;
        counter(
            e,
            "compute_pool_lane_tasks_started",
            "Jobs started from the lane.",
            &per_lane(|lane| lane.tasks_started()),
        )?;
        let waits: Vec<_> = lanes
            .iter()
            .map(|(lane, labels)| {
                (
                    &labels[..],
                    lane.queue_wait_histogram(),
                    lane.queue_wait_ns(),
                )
            })
            .collect();
        histogram(
            e,
            "compute_pool_lane_queue_wait",
            "Time from submission to start of the lane's jobs.",
            &waits,
        )
    }
}

/// One counter family: a `# TYPE .. counter` and a `_total` sample per label set.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&Labels, u64)],
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// One gauge family: a sample per label set.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&Labels, u64)],
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        // Gauges are signed; the counts are far below i64::MAX.
        let value = i64::try_from(*value).unwrap_or(i64::MAX);
        ConstGauge::new(value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// One histogram family in seconds (`<name>_seconds`): per label set, the
/// fine `histogram` folded into the [`BOUND_POWERS`] bounds, with the sum
/// of the durations, `sum_ns`.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&Labels, &Histogram, u64)],
) -> Result<(), fmt::Error> {
    let mut metric =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, histogram, sum_ns) in samples {
        let count = histogram.count();
        // The encoder takes each bucket's own count and accumulates them.
        let mut buckets = Vec::with_capacity(BOUND_POWERS.count() + 1);
        let mut below = 0;
        for power in BOUND_POWERS {
            let edge_ns = 1u64 << power;
            let le = histogram.count_le(edge_ns);
            buckets.push((edge_ns as f64 / 1e9, le - below));
            below = le;
        }
        buckets.push((f64::INFINITY, count - below));
        metric
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(*sum_ns as f64 / 1e9, count, &buckets, None)?;
    }
    Ok(())
}
