//! The service shapes in criterion: N independent tasks, each looping
//! submit then await, sharing a fixed number of jobs; the time reported is
//! per job (so jobs/s is its inverse). The cost report's `services` part
//! measures the same shapes for CPU per job, the delay of an I/O task on
//! the same runtime and the longest poll, which criterion cannot.
//!
//! ```text
//! cargo bench -p compute-benches --bench service
//! cargo bench -p compute-benches --bench service -- 1w1c/tasks16
//! ```

use std::time::Duration;

use compute_benches::service::{run_jobs, Shape, JOBS, REPORTED, TASKS};
use compute_benches::setup::{Setup, Threads};
use criterion::{BenchmarkId, Criterion, Throughput};

fn services(c: &mut Criterion) {
    for threads in Threads::BOTH {
        let setup = Setup::new(threads);
        for tasks in TASKS {
            let mut group = c.benchmark_group(format!("service/{}/tasks{tasks}", threads.label()));
            group.throughput(Throughput::Elements(1));
            for (label, job) in JOBS {
                let shape = Shape { tasks, job };
                for bridge in REPORTED {
                    group.bench_function(BenchmarkId::new(bridge.name(), label), |b| {
                        b.iter_custom(|jobs| run_jobs(&setup, bridge, shape, jobs))
                    });
                }
            }
            group.finish();
        }
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    services(&mut criterion);
    criterion.final_summary();
}
