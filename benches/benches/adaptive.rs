//! Adaptive dispatch against its two fixed alternatives, in the same run.
//!
//! Groups `adaptive/1us`, `adaptive/50us`, `adaptive/1ms`: one job of that
//! compute time (a calibrated spin), awaited from a task on a Tokio
//! multi-thread runtime (1 worker) with a 1-thread compute pool. Members:
//! - `execute_adaptive`: `pool.execute_adaptive(job)`, learning the site;
//! - `always_offload`: `pool.execute(job).await`;
//! - `always_inline`: the job called directly in the task.
//!
//! Adaptive should track `always_inline` for the 1 µs job and
//! `always_offload` for the 1 ms job (where inline would block the async
//! thread for the whole job); at 50 µs it offloads, since the job is past
//! its 30 µs inline threshold. After each group the pool's decision counts
//! are printed to stderr.
//!
//! `cargo bench -p compute-benches --bench adaptive` (about 30 s).

use std::time::Duration;

use compute_benches::job::spin_for;
use compute_pool::{ComputeConfig, ComputePool};
use criterion::Criterion;

/// A job of `MICROS` µs. The closure's type differs per `MICROS`, so each
/// size is its own call site for adaptive dispatch.
fn job<const MICROS: u64>() -> impl FnOnce() -> u64 + Send + 'static {
    || spin_for(Duration::from_micros(MICROS))
}

fn group<const MICROS: u64>(c: &mut Criterion, label: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        thread_name_prefix: "bench-adaptive".into(),
        ..Default::default()
    })
    .expect("compute pool");

    let mut group = c.benchmark_group(format!("adaptive/{label}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    group.bench_function("execute_adaptive", |b| {
        b.to_async(&runtime)
            .iter(|| async { pool.execute_adaptive(job::<MICROS>()).await.unwrap() })
    });
    group.bench_function("always_offload", |b| {
        b.to_async(&runtime)
            .iter(|| async { pool.execute(job::<MICROS>()).await.unwrap() })
    });
    group.bench_function("always_inline", |b| {
        b.to_async(&runtime).iter(|| async { job::<MICROS>()() })
    });
    group.finish();

    let m = pool.metrics();
    eprintln!(
        "adaptive/{label}: inline {} offloaded {} mispredicted {} (estimate {:?})",
        m.adaptive_inline(),
        m.adaptive_offloaded(),
        m.adaptive_mispredicted(),
        compute_pool::adaptive_estimate(&job::<MICROS>()),
    );
}

fn adaptive(c: &mut Criterion) {
    group::<1>(c, "1us");
    group::<50>(c, "50us");
    group::<1000>(c, "1ms");
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    adaptive(&mut criterion);
    criterion.final_summary();
}
