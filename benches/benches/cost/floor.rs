//! The machine's floor: two plain threads handing the job back and forth.

use std::time::Duration;

use compute_benches::job;
use serde::Serialize;

use crate::{cpu_ratio, Options};

/// The machine's floor for one case: two plain threads handing the job
/// back and forth (see `compute_benches::floor`).
#[derive(Debug, Serialize)]
pub(crate) struct FloorRow {
    case: &'static str,
    wait: &'static str,
    placement: &'static str,
    jobs: u32,
    job_us: f64,
    wall_p50_us: f64,
    added_p50_us: f64,
    /// CPU time of the two threads per job, the job included.
    cpu_us_per_job: f64,
}

/// The floor's cases: every job size of the pool cases, both ways of
/// waiting (spinning through a 1 ms job is what a bridge must not do; its
/// row shows what it would cost), every placement.
pub(crate) fn floor_costs(options: &Options) -> Vec<FloorRow> {
    use compute_benches::floor::{hand_off, Placement, Wait};
    let quick = options.quick;
    let placements = [Placement::Free, Placement::Apart, Placement::Together];
    let sizes = std::iter::once(("trivial", Duration::ZERO))
        .chain(job::LATENCY_JOBS)
        .filter(|(case, _)| {
            (options.cases.as_ref()).is_none_or(|list| list.iter().any(|c| c == case))
        });
    let mut series = Vec::new();
    for (case, job) in sizes {
        for wait in [Wait::Spin, Wait::Sleep] {
            let jobs = match (quick, case, wait) {
                (true, _, _) => 20,
                (false, "trivial", Wait::Spin) => 20_000,
                (false, "trivial" | "10us", _) => 2_000,
                (false, "100us", _) => 1_000,
                (false, _, _) => 300,
            };
            series.push((case, job, wait, jobs));
        }
    }
    let mut rows = Vec::new();
    for (case, job, wait, jobs) in series {
        for placement in placements {
            // `None`: this machine cannot place the threads so (one CPU).
            let Some(cost) = hand_off(wait, placement, job, jobs) else {
                continue;
            };
            rows.push(FloorRow {
                case,
                wait: wait.name(),
                placement: placement.name(),
                jobs,
                job_us: job.as_secs_f64() * 1e6,
                wall_p50_us: cost.wall_p50.as_secs_f64() * 1e6,
                added_p50_us: cost.added_p50.as_secs_f64() * 1e6,
                cpu_us_per_job: cost.cpu_per_job.as_secs_f64() * 1e6,
            });
        }
    }
    rows
}

pub(crate) fn print_floor(rows: &[FloorRow]) {
    println!(
        "\n== the machine's floor: two plain threads hand a job back and forth (no runtime, \
         no pool); cpu = both threads' CPU per job, the job included"
    );
    println!(
        "{:<9} {:<6} {:<9} {:>6} {:>9} {:>9} {:>9} {:>8}",
        "case", "wait", "placed", "jobs", "wall p50", "add p50", "cpu us", "cpu/job"
    );
    for r in rows {
        let ratio = cpu_ratio(r.cpu_us_per_job, r.job_us);
        println!(
            "{:<9} {:<6} {:<9} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>8}",
            r.case,
            r.wait,
            r.placement,
            r.jobs,
            r.wall_p50_us,
            r.added_p50_us,
            r.cpu_us_per_job,
            ratio
        );
    }
}
