//! The service shapes as a report: every shape of every layout through the
//! reported bridges, printed as a table and written as Markdown.

use std::time::Duration;

use serde::Serialize;

use super::{compare, Sample, Shape, PROBE_EVERY};
use crate::setup::{Bridge, Setup, Threads};

/// The bridges of the report: the naive bridge (the reference), ours, and
/// ours in its latency mode.
pub const REPORTED: [Bridge; 3] = [Bridge::Naive, Bridge::Ours, Bridge::OursLatency];

/// One row of the report: a bridge in one shape of one layout.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The thread layout, e.g. `1w1c`.
    pub layout: String,
    /// Independent tasks.
    pub tasks: usize,
    /// The job size's label.
    pub job: &'static str,
    /// The bridge's name.
    pub bridge: &'static str,
    /// Median of each figure over the runs.
    pub median: Sample,
    /// Median run-by-run ratio of each figure to the naive bridge's.
    pub ratio: Sample,
    /// Every run's figures, in run order.
    pub runs: Vec<Sample>,
}

/// Measures every shape (`tasks` × `jobs`) in every layout through the
/// [`REPORTED`] bridges, `runs` runs of `window` each.
pub fn report(
    layouts: &[Threads],
    tasks: &[usize],
    jobs: &[(&'static str, Duration)],
    runs: usize,
    window: Duration,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &threads in layouts {
        let setup = Setup::new(threads);
        for &n in tasks {
            for &(label, job) in jobs {
                let shape = Shape { tasks: n, job };
                for compared in compare(&setup, &REPORTED, shape, runs, window) {
                    rows.push(Row {
                        layout: threads.label(),
                        tasks: n,
                        job: label,
                        bridge: compared.bridge.name(),
                        median: compared.median,
                        ratio: compared.ratio,
                        runs: compared.runs,
                    });
                }
            }
        }
    }
    rows
}

/// Prints the report's rows as one table per layout.
pub fn print(rows: &[Row], runs: usize) {
    let mut layout = "";
    for row in rows {
        if row.layout != layout {
            layout = &row.layout;
            println!(
                "\n== service shapes, {layout}: N tasks, each looping submit then await, and an \
                 I/O task fed every {} us from outside; medians of {runs} runs in alternating \
                 order, (x) = median ratio to naive_bridge in the same run",
                PROBE_EVERY.as_micros()
            );
            println!(
                "{:>5} {:<7} {:<13} {:>9} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>6} {:>6} {:>7}",
                "tasks",
                "job",
                "bridge",
                "jobs/s",
                "(x)",
                "cpu us/j",
                "(x)",
                "io p50",
                "io p99",
                "(x)",
                "poll p999",
                "max poll",
                "same%",
                "idle%",
                "allocs"
            );
        }
        let (m, r) = (&row.median, &row.ratio);
        println!(
            "{:>5} {:<7} {:<13} {:>9.0} {:>7.2} {:>9.1} {:>7.2} {:>7.1} {:>7.1} {:>7.2} {:>9.0} {:>9.1} {:>6.0} {:>6.2} {:>7.2}",
            row.tasks,
            row.job,
            row.bridge,
            m.jobs_per_s,
            r.jobs_per_s,
            m.cpu_us_per_job,
            r.cpu_us_per_job,
            m.io_p50_us,
            m.io_p99_us,
            r.io_p99_us,
            m.poll_p999_us,
            m.longest_poll_us,
            m.same_cpu_pct,
            m.idle_pct,
            m.allocs_per_job
        );
    }
}

/// The report as Markdown, one table per layout: each shape's figures for
/// every bridge, ours with its ratios to the naive bridge.
pub fn markdown(rows: &[Row], runs: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut layout = "";
    for row in rows {
        if row.layout != layout {
            layout = &row.layout;
            let _ = write!(
                out,
                "\n#### `{layout}` (medians of {runs} runs; (x): median ratio to \
                 `naive_bridge` in the same run)\n\n\
                 | tasks | job | bridge | jobs/s (x) | CPU µs/job (x) | I/O p50 µs | \
                 I/O p99 µs (x) | poll p99.9 µs | longest poll µs | same% | idle% | allocs/job |\n\
                 |---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            );
        }
        let (m, r) = (&row.median, &row.ratio);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} ({:.2}) | {:.1} ({:.2}) | {:.1} | {:.1} ({:.2}) | {:.0} | {:.1} | {:.0} | {:.2} | {:.2} |",
            row.tasks,
            row.job,
            row.bridge,
            m.jobs_per_s,
            r.jobs_per_s,
            m.cpu_us_per_job,
            r.cpu_us_per_job,
            m.io_p50_us,
            m.io_p99_us,
            r.io_p99_us,
            m.poll_p999_us,
            m.longest_poll_us,
            m.same_cpu_pct,
            m.idle_pct,
            m.allocs_per_job
        );
    }
    out
}
