//! The completion channel alone: ours (`compute_bridge::channel`) beside
//! `tokio::sync::oneshot` and `futures::channel::oneshot`, in the same run.
//!
//! Groups:
//! - `bridge/cross_thread_parked`: create a channel, hand its sender to a
//!   persistent worker thread (one thread for all three channels, fed
//!   through an `std::sync::mpsc` of boxed jobs), the worker sends, this
//!   thread awaits (parking when the value is not there yet). What a real
//!   hand-off costs, wake-ups included.
//! - `bridge/cross_thread_spinning`: the same, but the worker spins on its
//!   feed and this thread polls in a loop instead of parking, so no thread
//!   ever sleeps: the figure is the channel plus the cache-line traffic.
//! - `bridge/same_thread`: create, send and receive on one thread (the
//!   channel's own instruction and allocation cost).
//!
//! Bytes and allocations per channel are printed by the cost report
//! (`cargo bench -p compute-benches --bench cost`), which installs a
//! counting global allocator.

use std::hint::black_box;
use std::time::{Duration, Instant};

use compute_benches::oneshots::{spin_on, Feed, Futures, Oneshot, Ours, Tokio, Worker};

use criterion::{BenchmarkGroup, Criterion};
use futures::FutureExt;

fn cross_thread_parked<O: Oneshot>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    worker: &Worker,
) {
    group.bench_function(O::NAME, |b| {
        b.iter_custom(|iters| {
            futures::executor::block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (tx, rx) = O::channel();
                    worker.give::<O>(tx);
                    let _ = black_box(rx.await);
                }
                start.elapsed()
            })
        })
    });
}

fn cross_thread_spinning<O: Oneshot>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    worker: &Worker,
) {
    group.bench_function(O::NAME, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let (tx, rx) = O::channel();
                worker.give::<O>(tx);
                let _ = black_box(spin_on(rx));
            }
            start.elapsed()
        })
    });
}

fn same_thread<O: Oneshot>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.bench_function(O::NAME, |b| {
        b.iter(|| {
            let (tx, rx) = O::channel();
            O::send(tx, black_box(42));
            black_box(rx.now_or_never())
        })
    });
}

fn bridge(c: &mut Criterion) {
    // One sending thread for all three channels: see `Worker`.
    let worker = Worker::start(Feed::Blocking);
    let mut group = c.benchmark_group("bridge/cross_thread_parked");
    cross_thread_parked::<Ours>(&mut group, &worker);
    cross_thread_parked::<Tokio>(&mut group, &worker);
    cross_thread_parked::<Futures>(&mut group, &worker);
    group.finish();
    drop(worker);

    let worker = Worker::start(Feed::Spinning);
    let mut group = c.benchmark_group("bridge/cross_thread_spinning");
    cross_thread_spinning::<Ours>(&mut group, &worker);
    cross_thread_spinning::<Tokio>(&mut group, &worker);
    cross_thread_spinning::<Futures>(&mut group, &worker);
    group.finish();
    drop(worker);

    let mut group = c.benchmark_group("bridge/same_thread");
    same_thread::<Ours>(&mut group);
    same_thread::<Tokio>(&mut group);
    same_thread::<Futures>(&mut group);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
}

fn main() {
    let mut criterion = config().configure_from_args();
    bridge(&mut criterion);
    criterion.final_summary();
}
