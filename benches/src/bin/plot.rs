//! Reads the bench results and draws `docs/plots/added_latency.svg`: the
//! latency each bridge adds to a job, against the job's size, log scales,
//! one line per bridge, one panel per thread layout. Also prints the medians
//! of every criterion group as Markdown tables (with ratios to ours), which
//! is where the figures in `docs/benchmarks.md` come from.
//!
//! ```text
//! cargo run -p compute-benches --bin plot --release -- [--source criterion|cost]
//!     [--criterion target/criterion] [--cost target/cost.json]
//!     [--out docs/plots/added_latency.svg] [--no-table]
//! ```
//!
//! With `--source criterion` (the default) added latency is the median of
//! `pool_*/added_latency/<bridge>/<size>` from `target/criterion/**/new/`
//! (each job's round trip minus its own run time; see `benches/pool.rs`).
//! With `--source cost` it is the cost report's per-job median of the same
//! quantity, measured with the bridges taking turns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// One criterion result: group, function, parameter, median in ns.
#[derive(Debug, Clone)]
struct Measurement {
    group: String,
    function: String,
    parameter: String,
    median_ns: f64,
    elements: Option<f64>,
}

/// Added latency of one bridge for one job size, in one layout.
#[derive(Debug, Clone)]
struct Point {
    layout: String,
    bridge: String,
    job_us: f64,
    added_us: f64,
}

struct Options {
    source: String,
    criterion: PathBuf,
    cost: PathBuf,
    out: PathBuf,
    table: bool,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let root = compute_benches::workspace_root();
        let target = compute_benches::target_dir();
        let mut options = Options {
            source: "criterion".to_owned(),
            criterion: target.join("criterion"),
            cost: target.join("cost.json"),
            out: root.join("docs/plots/added_latency.svg"),
            table: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value, got nothing"))
            };
            match arg.as_str() {
                "--source" => options.source = value("--source")?,
                "--criterion" => options.criterion = PathBuf::from(value("--criterion")?),
                "--cost" => options.cost = PathBuf::from(value("--cost")?),
                "--out" => options.out = PathBuf::from(value("--out")?),
                "--no-table" => options.table = false,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if options.source != "criterion" && options.source != "cost" {
            return Err(format!(
                "--source must be \"criterion\" or \"cost\", got {:?}",
                options.source
            ));
        }
        Ok(options)
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

/// Every `new/benchmark.json` under `dir`, with the median from the
/// `estimates.json` beside it.
fn read_criterion(dir: &Path) -> Result<Vec<Measurement>, String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "new") {
                    if let Some(m) = read_one(&path)? {
                        found.push(m);
                    }
                } else if path
                    .file_name()
                    .is_none_or(|n| n != "base" && n != "change")
                {
                    stack.push(path);
                }
            }
        }
    }
    found.sort_by(|a, b| {
        (&a.group, &a.parameter, &a.function).cmp(&(&b.group, &b.parameter, &b.function))
    });
    Ok(found)
}

fn read_one(new_dir: &Path) -> Result<Option<Measurement>, String> {
    let bench = new_dir.join("benchmark.json");
    let estimates = new_dir.join("estimates.json");
    if !bench.exists() || !estimates.exists() {
        return Ok(None);
    }
    let bench = read_json(&bench)?;
    let estimates = read_json(&estimates)?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let median_ns = estimates["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("no median in {}", new_dir.join("estimates.json").display()))?;
    Ok(Some(Measurement {
        group: text(&bench["group_id"]),
        function: text(&bench["function_id"]),
        parameter: text(&bench["value_str"]),
        median_ns,
        elements: bench["throughput"]["Elements"].as_f64(),
    }))
}

/// Parses a job-size label such as `10us` or `1ms` into microseconds.
fn job_micros(label: &str) -> Option<f64> {
    if let Some(n) = label.strip_suffix("us") {
        n.parse().ok()
    } else if let Some(n) = label.strip_suffix("ms") {
        n.parse::<f64>().ok().map(|ms| ms * 1000.0)
    } else {
        None
    }
}

fn points_from_criterion(found: &[Measurement]) -> Vec<Point> {
    found
        .iter()
        .filter(|m| m.function != "inline")
        .filter_map(|m| {
            let layout = m
                .group
                .strip_prefix("pool_")?
                .strip_suffix("/added_latency")?;
            Some(Point {
                layout: layout.to_owned(),
                bridge: m.function.clone(),
                job_us: job_micros(&m.parameter)?,
                added_us: m.median_ns / 1000.0,
            })
        })
        .collect()
}

/// The pool rows' added latency, and the machine's floor (two plain threads,
/// pinned apart, spinning or sleeping) drawn in every layout's panel.
fn points_from_cost(report: &serde_json::Value) -> Vec<Point> {
    let Some(rows) = report["pool"].as_array() else {
        return Vec::new();
    };
    let mut points: Vec<Point> = rows
        .iter()
        .filter_map(|row| {
            let bridge = row["bridge"].as_str()?;
            if bridge == "inline" {
                return None;
            }
            Some(Point {
                layout: row["layout"].as_str()?.to_owned(),
                bridge: bridge.to_owned(),
                // Only the timed-job cases have a size label such as "10us".
                job_us: job_micros(row["case"].as_str()?)?,
                added_us: row["added_p50_us"].as_f64()?,
            })
        })
        .collect();
    let mut layouts: Vec<String> = points.iter().map(|p| p.layout.clone()).collect();
    layouts.sort_unstable();
    layouts.dedup();
    let floor = report["floor"].as_array().map_or(&[][..], Vec::as_slice);
    let floor: Vec<(String, f64, f64)> = floor
        .iter()
        .filter(|row| row["placement"] == "apart")
        .filter_map(|row| {
            Some((
                format!("{} {}", FLOOR_PREFIX, row["wait"].as_str()?),
                job_micros(row["case"].as_str()?)?,
                row["added_p50_us"].as_f64()?,
            ))
        })
        .collect();
    for layout in &layouts {
        points.extend(floor.iter().map(|(bridge, job_us, added_us)| Point {
            layout: layout.clone(),
            bridge: bridge.clone(),
            job_us: *job_us,
            added_us: *added_us,
        }));
    }
    points
}

/// How the machine's floor lines are named ("floor (2 threads apart) spin").
const FLOOR_PREFIX: &str = "floor (2 threads apart)";

/// The smallest added latency the log axis shows; anything below sits on it.
const FLOOR_US: f64 = 0.1;

fn colour(bridge: &str) -> RGBColor {
    match bridge {
        "ours" => RGBColor(0xd6, 0x27, 0x28),
        "ours_nospin" => RGBColor(0xff, 0x7f, 0x0e),
        "naive_bridge" => RGBColor(0x1f, 0x77, 0xb4),
        "spawn_blocking" => RGBColor(0x2c, 0xa0, 0x2c),
        "double_hop" => RGBColor(0x94, 0x67, 0xbd),
        floor if floor.ends_with("spin") => RGBColor(0x30, 0x30, 0x30),
        _ => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

fn draw(points: &[Point], out: &Path, source: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut layouts: Vec<&str> = points.iter().map(|p| p.layout.as_str()).collect();
    layouts.sort_unstable();
    layouts.dedup();
    if layouts.is_empty() {
        return Err(
            "no added-latency data found (run the pool bench or the cost report first)".into(),
        );
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let width = 520 * layouts.len() as u32;
    let root = SVGBackend::new(out, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "Latency added to a job, beyond the job itself ({})",
            if source == "cost" {
                "per-job medians, cost report, callers in turns"
            } else {
                "criterion medians"
            }
        ),
        ("sans-serif", 18),
    )?;
    let panels = root.split_evenly((1, layouts.len()));
    let y_max = points
        .iter()
        .map(|p| p.added_us)
        .fold(FLOOR_US * 10.0, f64::max)
        * 2.0;
    for (panel, layout) in panels.iter().zip(&layouts) {
        let (workers, compute) = layout
            .strip_suffix('c')
            .and_then(|l| l.split_once('w'))
            .unwrap_or(("?", "?"));
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "tokio {workers} worker{} + {compute} compute thread{}",
                    plural(workers),
                    plural(compute)
                ),
                ("sans-serif", 15),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (5.0f64..2000.0f64).log_scale(),
                (FLOOR_US..y_max).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("job duration (µs)")
            .y_desc("added latency (µs)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y < 1.0 {
                    format!("{y:.1}")
                } else {
                    format!("{y:.0}")
                }
            })
            .draw()?;
        let mut bridges: Vec<&str> = points
            .iter()
            .filter(|p| p.layout == *layout)
            .map(|p| p.bridge.as_str())
            .collect();
        bridges.sort_unstable();
        bridges.dedup();
        for bridge in bridges {
            let mut series: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.layout == *layout && p.bridge == bridge)
                .map(|p| (p.job_us, p.added_us.max(FLOOR_US)))
                .collect();
            series.sort_by(|a, b| a.0.total_cmp(&b.0));
            let style = colour(bridge);
            let width = if bridge == "ours" { 3 } else { 2 };
            if bridge.starts_with(FLOOR_PREFIX) {
                // The machine's floor: dashed, no markers.
                chart
                    .draw_series(DashedLineSeries::new(series, 6, 4, style.stroke_width(1)))?
                    .label(bridge)
                    .legend(move |(x, y)| {
                        DashedPathElement::new(
                            vec![(x, y), (x + 20, y)],
                            6,
                            4,
                            style.stroke_width(1),
                        )
                    });
                continue;
            }
            chart
                .draw_series(LineSeries::new(series.clone(), style.stroke_width(width)))?
                .label(bridge)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(width))
                });
            chart.draw_series(
                series
                    .into_iter()
                    .map(|xy| Circle::new(xy, 4, style.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn plural(count: &str) -> &'static str {
    if count == "1" {
        ""
    } else {
        "s"
    }
}

fn format_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Prints each group as a Markdown table: one row per parameter, one column
/// per function, medians (per element for throughput groups), and each
/// peer's ratio to ours.
fn print_tables(found: &[Measurement]) {
    let mut groups: BTreeMap<&str, Vec<&Measurement>> = BTreeMap::new();
    for m in found {
        groups.entry(&m.group).or_default().push(m);
    }
    for (group, rows) in groups {
        let mut functions: Vec<&str> = Vec::new();
        for m in &rows {
            if !functions.contains(&m.function.as_str()) {
                functions.push(&m.function);
            }
        }
        let order = |f: &&str| match *f {
            "inline" | "sequential" => 0,
            "ours" | "compute_bridge" => 1,
            "ours_nospin" => 2,
            _ => 3,
        };
        functions.sort_by_key(order);
        let ours = functions
            .iter()
            .copied()
            .find(|f| *f == "ours" || *f == "compute_bridge");
        let mut parameters: Vec<&str> = rows.iter().map(|m| m.parameter.as_str()).collect();
        parameters.dedup();
        let per = if rows.iter().any(|m| m.elements.is_some()) {
            " (per element)"
        } else {
            ""
        };
        println!("\n### {group}{per}\n");
        print!("| case |");
        for f in &functions {
            print!(" {f} |");
        }
        println!();
        println!("|---|{}", "---|".repeat(functions.len()));
        for p in parameters {
            let cell = |f: &str| {
                rows.iter()
                    .find(|m| m.function == f && m.parameter == p)
                    .map(|m| m.median_ns / m.elements.unwrap_or(1.0))
            };
            print!("| {} |", if p.is_empty() { "-" } else { p });
            let base = ours.and_then(cell);
            for f in &functions {
                match (cell(f), base) {
                    (Some(v), Some(b)) if Some(*f) != ours && b > 0.0 => {
                        print!(" {} ({:.2}x ours) |", format_ns(v), v / b)
                    }
                    (Some(v), _) => print!(" {} |", format_ns(v)),
                    (None, _) => print!(" - |"),
                }
            }
            println!();
        }
    }
}

fn run(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let points = if options.source == "cost" {
        points_from_cost(&read_json(&options.cost)?)
    } else {
        points_from_criterion(&read_criterion(&options.criterion)?)
    };
    if options.table && options.source == "criterion" {
        print_tables(&read_criterion(&options.criterion)?);
    }
    println!("\n### added latency ({})\n", options.source);
    println!("| layout | bridge | job | added |");
    println!("|---|---|---|---|");
    for p in &points {
        println!(
            "| {} | {} | {} µs | {:.2} µs |",
            p.layout, p.bridge, p.job_us, p.added_us
        );
    }
    draw(&points, &options.out, &options.source)?;
    println!("\nwrote {}", options.out.display());
    Ok(())
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("plot: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plot: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_sizes_parse() {
        assert_eq!(job_micros("10us"), Some(10.0));
        assert_eq!(job_micros("1ms"), Some(1000.0));
        assert_eq!(job_micros("trivial"), None);
        assert_eq!(job_micros("in_flight_256"), None);
    }

    #[test]
    fn cost_points_skip_inline_and_untimed_cases() {
        let report = serde_json::json!({
            "pool": [
                {"layout": "1w1c", "case": "10us", "bridge": "inline", "added_p50_us": 0.05},
                {"layout": "1w1c", "case": "10us", "bridge": "ours", "added_p50_us": 2.5},
                {"layout": "1w1c", "case": "trivial", "bridge": "ours", "added_p50_us": 2.4},
                {"layout": "2w2c", "case": "1ms", "bridge": "naive_bridge", "added_p50_us": 9.0}
            ]
        });
        let points = points_from_cost(&report);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].bridge, "ours");
        assert_eq!(points[0].job_us, 10.0);
        assert_eq!(points[1].layout, "2w2c");
        assert_eq!(points[1].job_us, 1000.0);
    }

    #[test]
    fn the_floor_apart_is_drawn_in_every_layout() {
        let report = serde_json::json!({
            "pool": [
                {"layout": "1w1c", "case": "10us", "bridge": "ours", "added_p50_us": 2.5},
                {"layout": "2w2c", "case": "10us", "bridge": "ours", "added_p50_us": 1.5}
            ],
            "floor": [
                {"case": "10us", "wait": "spin", "placement": "apart", "added_p50_us": 0.3},
                {"case": "10us", "wait": "sleep", "placement": "apart", "added_p50_us": 65.0},
                {"case": "10us", "wait": "sleep", "placement": "together", "added_p50_us": 1.6},
                {"case": "trivial", "wait": "spin", "placement": "apart", "added_p50_us": 0.3}
            ]
        });
        let points = points_from_cost(&report);
        let floor: Vec<&Point> = points
            .iter()
            .filter(|p| p.bridge.starts_with(FLOOR_PREFIX))
            .collect();
        // Spin and sleep apart, with a size, in both panels.
        assert_eq!(floor.len(), 4);
        for layout in ["1w1c", "2w2c"] {
            let sleep = floor
                .iter()
                .find(|p| p.layout == layout && p.bridge.ends_with("sleep"))
                .expect("the sleeping floor in every panel");
            assert_eq!(sleep.added_us, 65.0);
        }
        let out = std::env::temp_dir().join(format!("floor-{}.svg", std::process::id()));
        draw(&points, &out, "cost").expect("draws with the floor lines");
        let svg = std::fs::read_to_string(&out).expect("the svg was written");
        std::fs::remove_file(&out).ok();
        assert!(svg.contains(FLOOR_PREFIX), "the floor is in the legend");
    }

    #[test]
    fn criterion_points_come_from_added_latency_groups() {
        let m = |group: &str, function: &str, parameter: &str, ns: f64| Measurement {
            group: group.to_owned(),
            function: function.to_owned(),
            parameter: parameter.to_owned(),
            median_ns: ns,
            elements: None,
        };
        let found = vec![
            m("pool_1w1c/added_latency", "inline", "10us", 50.0),
            m("pool_1w1c/added_latency", "ours", "100us", 3000.0),
            m("pool_1w1c/roundtrip", "ours", "", 2500.0),
        ];
        let points = points_from_criterion(&found);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].layout, "1w1c");
        assert_eq!(points[0].job_us, 100.0);
        assert!((points[0].added_us - 3.0).abs() < 1e-9);
    }

    #[test]
    fn drawing_writes_an_svg() {
        let dir = std::env::temp_dir().join(format!("plot-test-{}", std::process::id()));
        let out = dir.join("added.svg");
        let points = vec![
            Point {
                layout: "1w1c".to_owned(),
                bridge: "ours".to_owned(),
                job_us: 10.0,
                added_us: 2.0,
            },
            Point {
                layout: "1w1c".to_owned(),
                bridge: "ours".to_owned(),
                job_us: 1000.0,
                added_us: -1.0,
            },
        ];
        draw(&points, &out, "test").expect("draws");
        let svg = std::fs::read_to_string(&out).expect("written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("ours"));
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert!(draw(&[], &out, "test").is_err());
    }
}
