//! A stream of items, each mapped by a job on the pool, a bounded number in
//! flight, results in order: `compute_map` beside the hand-written ways.
//!
//! - `compute_map` / `compute_map_unordered`: our adaptors;
//! - `buffered_execute`: `stream.map(|x| pool.execute(..)).buffered(n)` on
//!   our pool, the pattern `compute_map` replaces;
//! - `buffered_naive`: the same over the naive bridge (rayon spawn + tokio
//!   oneshot + catch_unwind, see `peers::naive_spawn`).
//!
//! Every case keeps `n` = twice the compute threads in flight (the adaptor's
//! default) and consumes the results on a tokio worker task. Items spin for
//! 1 µs or 100 µs; the figure is items per second (criterion's throughput).
//! Each layout as in the `pool` bench: 1 worker + 1 compute thread, 2 + 2.
//!
//! `cargo bench -p compute-benches --bench stream`

use std::hint::black_box;
use std::time::{Duration, Instant};

use compute_benches::job;
use compute_benches::peers::naive_spawn;
use compute_benches::setup::{Pools, Setup, Threads};
use compute_pool::ComputeStreamExt;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use futures::stream::{self, StreamExt};

/// Item sizes, with their labels and the items per iteration (so that an
/// iteration takes a few milliseconds of compute either way).
const ITEMS: [(&str, Duration, u64); 2] = [
    ("1us", Duration::from_micros(1), 2_000),
    ("100us", Duration::from_micros(100), 100),
];

const CASES: [&str; 4] = [
    "compute_map",
    "compute_map_unordered",
    "buffered_execute",
    "buffered_naive",
];

/// Maps `items` items of `duration` each through `case`, `in_flight` at
/// once, and returns the sum of the results (checked by the caller).
async fn run_case(
    pools: &Pools,
    case: &str,
    duration: Duration,
    items: u64,
    in_flight: usize,
) -> u64 {
    let work = move |i: u64| {
        black_box(job::spin_for(duration));
        i
    };
    let input = stream::iter(0..items);
    let add = |a, x| async move { a + x };
    match case {
        "compute_map" => {
            input
                .compute_map(&pools.ours, in_flight, work)
                .map(|r| r.expect("no panic"))
                .fold(0, add)
                .await
        }
        "compute_map_unordered" => {
            input
                .compute_map_unordered(&pools.ours, in_flight, work)
                .map(|r| r.expect("no panic"))
                .fold(0, add)
                .await
        }
        "buffered_execute" => {
            input
                .map(|i| pools.ours.execute(move || work(i)))
                .buffered(in_flight)
                .map(|r| r.expect("no panic"))
                .fold(0, add)
                .await
        }
        _ => {
            input
                .map(|i| naive_spawn(&pools.rayon, move || work(i)))
                .buffered(in_flight)
                .map(|r| r.unwrap_or_else(|_| panic!("no panic")))
                .fold(0, add)
                .await
        }
    }
}

fn stream_group(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group(format!("stream_{}", setup.threads.label()));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sampling_mode(SamplingMode::Flat);
    let in_flight = 2 * setup.threads.compute;
    // Every case once before any is measured, so that the first one
    // measured does not also pay for waking the threads up (on a busy
    // machine that moved the 100 µs figures by 10-20 %).
    setup.on_worker(|pools| async move {
        for (_, duration, items) in ITEMS {
            for case in CASES {
                run_case(&pools, case, duration, items, in_flight).await;
            }
        }
    });
    for (label, duration, items) in ITEMS {
        group.throughput(Throughput::Elements(items));
        for case in CASES {
            group.bench_function(BenchmarkId::new(case, label), |b| {
                b.iter_custom(|iters| {
                    setup.on_worker(|pools| async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let sum = run_case(&pools, case, duration, items, in_flight).await;
                            assert_eq!(sum, items * (items - 1) / 2);
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    for threads in Threads::BOTH {
        let setup = Setup::new(threads);
        stream_group(&mut criterion, &setup);
    }
    criterion.final_summary();
}
