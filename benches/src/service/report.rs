//! The service shapes as a report: every shape of every layout through the
//! reported bridges, printed as a table and written as Markdown.

use std::time::Duration;

use serde::Serialize;

use super::{compare, Sample, Shape, PROBE_EVERY};
use crate::setup::{Bridge, Threads};

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
    /// Median of each figure over the runs (the I/O delays' percentiles:
    /// over every run's delays together).
    pub median: Sample,
    /// Median run-by-run ratio of each figure to the reference bridge's
    /// (the naive bridge in the report); the I/O delays' pooled
    /// percentiles divided by the reference's (see [`Compared`](super::Compared)).
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
        for &n in tasks {
            for &job in jobs {
                rows.extend(shape_rows(threads, &REPORTED, n, job, runs, window));
            }
        }
    }
    rows
}

/// Measures one shape (`tasks` tasks, the labelled `job`) in the `threads`
/// layout through `bridges` (see [`compare`]; ratios are to `bridges[0]`),
/// as the report's rows.
pub fn shape_rows(
    threads: Threads,
    bridges: &[Bridge],
    tasks: usize,
    (label, job): (&'static str, Duration),
    runs: usize,
    window: Duration,
) -> Vec<Row> {
    let shape = Shape { tasks, job };
    compare(threads, bridges, shape, runs, window)
        .into_iter()
        .map(|compared| Row {
            layout: threads.label(),
            tasks,
            job: label,
            bridge: compared.bridge.name(),
            median: compared.median,
            ratio: compared.ratio,
            runs: compared.runs,
        })
        .collect()
}

/// The report's columns: header, width in the printed table, and whether
/// the column is left-aligned. `(x)`: the figure before it as a median
/// ratio to the naive bridge.
const COLUMNS: [(&str, usize, bool); 15] = [
    ("tasks", 5, false),
    ("job", 7, true),
    ("bridge", 13, true),
    ("jobs/s", 9, false),
    ("(x)", 7, false),
    ("cpu us/job", 10, false),
    ("(x)", 7, false),
    ("io p50 us", 9, false),
    ("io p99 us", 9, false),
    ("(x)", 7, false),
    ("poll p99.9 us", 13, false),
    ("max poll us", 11, false),
    ("same%", 6, false),
    ("idle%", 6, false),
    ("allocs/job", 10, false),
];

/// One row's cells, in the order of [`COLUMNS`].
fn cells(row: &Row) -> [String; 15] {
    let (m, r) = (&row.median, &row.ratio);
    [
        row.tasks.to_string(),
        row.job.to_owned(),
        row.bridge.to_owned(),
        format!("{:.0}", m.jobs_per_s),
        format!("{:.2}", r.jobs_per_s),
        format!("{:.1}", m.cpu_us_per_job),
        format!("{:.2}", r.cpu_us_per_job),
        format!("{:.1}", m.io_p50_us),
        format!("{:.1}", m.io_p99_us),
        format!("{:.2}", r.io_p99_us),
        format!("{:.0}", m.poll_p999_us),
        format!("{:.1}", m.longest_poll_us),
        format!("{:.0}", m.same_cpu_pct),
        format!("{:.2}", m.idle_pct),
        format!("{:.2}", m.allocs_per_job),
    ]
}

/// A line of the printed table.
fn text_line<S: AsRef<str>>(cells: &[S]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(COLUMNS)
        .map(|(cell, (_, width, left))| {
            if left {
                format!("{:<width$}", cell.as_ref())
            } else {
                format!("{:>width$}", cell.as_ref())
            }
        })
        .collect();
    padded.join(" ")
}

/// A line of a Markdown table.
fn markdown_line<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<&str> = cells.iter().map(AsRef::as_ref).collect();
    format!("| {} |", cells.join(" | "))
}

/// What a table per layout says of itself.
fn caption(layout: &str, runs: usize) -> String {
    format!(
        "service shapes, {layout}: N tasks, each looping submit then await, and an I/O task \
         fed every {} us from outside; medians of {runs} runs in alternating order, (x) = \
         median ratio to naive_bridge in the same run; io p50/p99 over all runs' delays \
         together, (x) their ratio",
        PROBE_EVERY.as_micros()
    )
}

/// Prints the report's rows as one table per layout.
pub fn print(rows: &[Row], runs: usize) {
    let headers = COLUMNS.map(|(header, _, _)| header);
    let mut layout = "";
    for row in rows {
        if row.layout != layout {
            layout = &row.layout;
            println!("\n== {}", caption(layout, runs));
            println!("{}", text_line(&headers));
        }
        println!("{}", text_line(&cells(row)));
    }
}

/// The report as Markdown: the same tables as [`print()`], one per layout.
pub fn markdown(rows: &[Row], runs: usize) -> String {
    let headers = COLUMNS.map(|(header, _, _)| header);
    let aligns = COLUMNS.map(|(_, _, left)| if left { "---" } else { "---:" });
    let mut out = String::new();
    let mut layout = "";
    for row in rows {
        if row.layout != layout {
            layout = &row.layout;
            out.push_str(&format!(
                "\n#### {}\n\n{}\n{}\n",
                caption(layout, runs),
                markdown_line(&headers),
                markdown_line(&aligns)
            ));
        }
        out.push_str(&markdown_line(&cells(row)));
        out.push('\n');
    }
    out
}
