//! The `prometheus` feature: a pool's metrics encoded by a
//! `prometheus-client` registry, parsed back and checked against the jobs
//! that ran.
//!
//! Built when the feature is on: `cargo test -p compute-pool --features
//! prometheus`, and in `cargo test --workspace`, where the demo's
//! dependency turns the feature on for the whole build.
#![cfg(feature = "prometheus")]

use std::collections::HashMap;
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool, Priority};
use compute_test_support::watchdog;
use futures::executor::block_on;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// One sample line: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// The text exposition, parsed: `# TYPE`s, `# UNIT`s and samples.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    units: HashMap<String, String>,
    samples: Vec<Sample>,
}

/// A line-based parser of the text format, enough for what the collector
/// writes (label values hold no `,`, `"` or `}`).
fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            out.types.insert(name.into(), kind.into());
        } else if let Some(rest) = line.strip_prefix("# UNIT ") {
            let (name, unit) = rest.split_once(' ').expect("# UNIT name unit");
            out.units.insert(name.into(), unit.into());
        } else if line.starts_with('#') {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.strip_suffix('}').expect("closing }")),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (key, value) = l.split_once('=').expect("key=value");
                    let value = value.trim_matches('"');
                    (key.to_owned(), value.to_owned())
                })
                .collect();
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
            };
            out.samples.push(Sample {
                name: name.into(),
                labels,
                value,
            });
        }
    }
    out
}

impl Exposition {
    /// The value of the one sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    /// The `(le, cumulative count)` buckets of a histogram's series.
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        self.samples
            .iter()
            .filter(|s| {
                s.name == bucket
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| {
                let le = &s.labels["le"];
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, s.value)
            })
            .collect()
    }
}

fn encoded(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[test]
fn the_registry_exports_the_jobs_that_ran() {
    watchdog(|| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            slow_task_threshold: Duration::from_secs(3600),
            ..Default::default()
        })
        .unwrap();
        let mut registry = Registry::default();
        pool.register_metrics(&mut registry, "test");

        // Four jobs return (three High, one Low, which sleeps 5 ms), two
        // panic.
        for i in 0..3u64 {
            assert_eq!(block_on(pool.execute(move || i)).unwrap(), i);
        }
        block_on(
            pool.with_priority(Priority::Low)
                .execute(|| std::thread::sleep(Duration::from_millis(5))),
        )
        .unwrap();
        for _ in 0..2 {
            let panicked = block_on(pool.execute(|| -> u32 { panic!("expected by the test") }));
            assert!(panicked.unwrap_err().is_panic());
        }
        // Three are cancelled while the one thread runs a blocker, which
        // then returns.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = pool.execute(move || wait.recv().unwrap());
        for _ in 0..3 {
            let mut queued = pool.execute(|| unreachable!("cancelled before it started"));
            assert!(queued.cancel());
        }
        release.send(()).unwrap();
        block_on(blocker).unwrap();
        // The cancelled jobs stay in the queue until the runner reaches
        // them and drops them unrun.
        while pool.metrics().lane(Priority::High).tasks_queued() > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // One is refused.
        assert!(block_on(pool.shutdown(Duration::from_secs(30))));
        assert!(pool.execute_sync(|| ()).is_err());

        let text = encoded(&registry);
        let e = parse(&text);
        let pool_label = [("pool", "test")];

        // Counters: the TYPE names the family, every sample ends in _total.
        for (family, want) in [
            ("compute_pool_tasks", 10.0),
            ("compute_pool_tasks_completed", 5.0),
            ("compute_pool_tasks_panicked", 2.0),
            ("compute_pool_tasks_cancelled", 3.0),
            ("compute_pool_tasks_rejected", 1.0),
            ("compute_pool_slow_tasks", 0.0),
            ("compute_pool_escaped_panics", 0.0),
        ] {
            assert_eq!(e.types[family], "counter", "{family}\n{text}");
            let total = format!("{family}_total");
            assert_eq!(e.value(&total, &pool_label), want, "{total}\n{text}");
        }
        // Every sample is labelled with the pool; each belongs to the
        // longest TYPE'd name it starts with, and a counter's sample is
        // that name with `_total`.
        for sample in &e.samples {
            assert_eq!(sample.labels["pool"], "test", "{sample:?}");
            let family = e
                .types
                .keys()
                .filter(|f| sample.name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .unwrap_or_else(|| panic!("no # TYPE for {sample:?}"));
            if e.types[family] == "counter" {
                assert_eq!(sample.name, format!("{family}_total"), "{sample:?}");
            }
        }

        // Gauges: the pool is idle.
        assert_eq!(e.types["compute_pool_threads"], "gauge");
        assert_eq!(e.value("compute_pool_threads", &pool_label), 1.0);
        for gauge in [
            "compute_pool_tasks_active",
            "compute_pool_tasks_queued",
            "compute_pool_tasks_running",
        ] {
            assert_eq!(e.types[gauge], "gauge", "{gauge}");
            assert_eq!(e.value(gauge, &pool_label), 0.0, "{gauge}\n{text}");
        }

        // Per lane: High started the blocker, three returns and two panics;
        // Low one.
        assert_eq!(e.types["compute_pool_lane_tasks_queued"], "gauge");
        assert_eq!(e.types["compute_pool_lane_tasks_started"], "counter");
        for (lane, started) in [("high", 6.0), ("low", 1.0)] {
            let labels = [("pool", "test"), ("lane", lane)];
            assert_eq!(e.value("compute_pool_lane_tasks_queued", &labels), 0.0);
            assert_eq!(
                e.value("compute_pool_lane_tasks_started_total", &labels),
                started,
                "{lane}\n{text}"
            );
        }

        // Histograms, in seconds: counts match the jobs that ran.
        let histograms = [
            ("compute_pool_task_duration_seconds", &pool_label[..], 7.0),
            ("compute_pool_queue_wait_seconds", &pool_label[..], 7.0),
            (
                "compute_pool_lane_queue_wait_seconds",
                &[("pool", "test"), ("lane", "high")][..],
                6.0,
            ),
            (
                "compute_pool_lane_queue_wait_seconds",
                &[("pool", "test"), ("lane", "low")][..],
                1.0,
            ),
        ];
        for (name, labels, count) in histograms {
            assert_eq!(e.types[name], "histogram", "{name}\n{text}");
            assert_eq!(e.units[name], "seconds", "{name}");
            assert_eq!(e.value(&format!("{name}_count"), labels), count, "{name}");
            assert!(e.value(&format!("{name}_sum"), labels) >= 0.0, "{name}");
            let buckets = e.buckets(name, labels);
            assert_eq!(buckets.len(), 29, "{name}: {buckets:?}");
            assert!(buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
            assert_eq!(buckets[0].0, 1024e-9, "{name}: the first bound is 2^10 ns");
            assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count), "{name}");
        }
        // The job that slept 5 ms is above the 2^22 ns (4.19 ms) bound.
        let compute = e.buckets("compute_pool_task_duration_seconds", &pool_label);
        let (le, below) = compute[22 - 10];
        assert_eq!(le, 4_194_304e-9);
        assert!(below <= 6.0, "{compute:?}");
        assert!(e.value("compute_pool_task_duration_seconds_sum", &pool_label) >= 0.005);

        // A pool that is gone exports nothing.
        drop(pool);
        assert!(!encoded(&registry).contains("compute_pool"));
    });
}
