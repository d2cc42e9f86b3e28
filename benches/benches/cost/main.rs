//! The cost report: what each way of handing a job to another thread costs
//! in memory and CPU, not just in wall time (criterion measures wall time only).
//!
//! ```text
//! cargo bench -p compute-benches --bench cost              # full run
//! cargo bench -p compute-benches --bench cost -- --quick   # seconds, for CI
//! cargo bench -p compute-benches --bench cost -- --json out.json
//! cargo bench -p compute-benches --bench cost -- --cases 100us,1ms --layout 1w1c
//! cargo bench -p compute-benches --bench cost -- --parts services
//! cargo bench -p compute-benches --bench cost -- --parts services --placement paired
//! ```
//!
//! `COST_QUICK=1` and `COST_JSON=path` do the same as the flags. The JSON goes
//! to `target/cost.json` by default (a relative `--json` path is taken from
//! the workspace root); the plot tool reads it. `--cases` keeps
//! the named cases only (`trivial`, `10us`, `100us`, `1ms`, `in_flight_256`,
//! `sync_trivial`, `sync_100us`), in their usual order; `--layout` one thread
//! layout (`1w1c` or `2w2c`). Every round of a case builds a fresh runtime
//! and fresh pools, so its figures cover as many thread placements as it has
//! rounds and no case inherits what another left behind.
//! `--cases` also limits the machine's floor (printed before the pool
//! cases) to the job sizes it names; `--layout` does not apply to the
//! floor, which has no runtime.
//! `--threads` (or `COST_THREADS=1`) adds, per row, the CPU per job of each
//! group of threads (tokio's, each pool's, the harness's), and each group's
//! CPU in the idle window, from `/proc/self/task/*/schedstat`.
//! `--parts channels,floor,pool,services` runs only the named parts of the
//! report (all by default); `services` is the service shapes of
//! `compute_benches::service` (their job sizes follow `--cases`, their
//! layouts `--layout`), also written as Markdown beside the JSON.
//! `--placement kernel|paired|apart` pins the pool cases' and service
//! shapes' threads (see `compute_benches::placement`; `kernel`, the
//! default, leaves them where the kernel puts them).
//!
//! This binary installs a counting global allocator, so allocations and bytes
//! are counted for every thread of the process.

use std::path::PathBuf;
use std::time::Duration;

use compute_benches::placement::Placement;
use compute_benches::service;
use compute_benches::setup::Threads;
use compute_test_support::alloc::Counting;
use serde::Serialize;

mod channels;
mod floor;
mod pool_cases;

use channels::{bridge_costs, bridge_round_trips, ChannelCost, ChannelRoundTrip};
use floor::{floor_costs, print_floor, FloorRow};
use pool_cases::{pool_costs, print_pool, PoolCost, CASES};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Command-line options (unknown arguments, such as the `--bench` cargo
/// passes, are ignored).
pub(crate) struct Options {
    quick: bool,
    json: PathBuf,
    /// Case labels to run; all when `None`.
    cases: Option<Vec<String>>,
    /// The one layout label to run; both when `None`.
    layout: Option<String>,
    /// Where the pool cases' and service shapes' threads run.
    placement: Placement,
    /// Whether to split each row's CPU by thread group.
    threads: bool,
    /// The parts of the report to run (see [`PARTS`]).
    parts: Vec<String>,
}

/// The report's parts, in the order they run: the oneshot channels, the
/// machine's floor, the pool cases, the service shapes.
const PARTS: [&str; 4] = ["channels", "floor", "pool", "services"];

impl Options {
    fn parse() -> Result<Options, String> {
        let mut quick = std::env::var_os("COST_QUICK").is_some_and(|v| v != "0");
        let mut json = std::env::var_os("COST_JSON").map(PathBuf::from);
        let mut cases = None;
        let mut layout = None;
        let mut placement = Placement::Kernel;
        let mut threads = std::env::var_os("COST_THREADS").is_some_and(|v| v != "0");
        let mut parts: Vec<String> = PARTS.iter().map(|p| p.to_string()).collect();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--threads" => threads = true,
                "--cases" => {
                    let list = args
                        .next()
                        .ok_or_else(|| "--cases needs a list, got nothing".to_string())?;
                    let list: Vec<String> = list.split(',').map(str::to_owned).collect();
                    if let Some(bad) = list.iter().find(|c| !CASES.iter().any(|k| k.label() == *c))
                    {
                        return Err(format!("--cases: no case is called {bad:?}"));
                    }
                    cases = Some(list);
                }
                "--layout" => {
                    let label = args
                        .next()
                        .ok_or_else(|| "--layout needs 1w1c or 2w2c, got nothing".to_string())?;
                    if !Threads::BOTH.iter().any(|t| t.label() == label) {
                        return Err(format!("--layout: expected 1w1c or 2w2c, got {label:?}"));
                    }
                    layout = Some(label);
                }
                "--parts" => {
                    let list = args
                        .next()
                        .ok_or_else(|| "--parts needs a list, got nothing".to_string())?;
                    parts = list.split(',').map(str::to_owned).collect();
                    if let Some(bad) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
                        return Err(format!(
                            "--parts: no part is called {bad:?} (parts: {})",
                            PARTS.join(",")
                        ));
                    }
                }
                "--placement" => {
                    let name = args.next().ok_or_else(|| {
                        "--placement needs kernel, paired or apart, got nothing".to_string()
                    })?;
                    placement = Placement::from_name(&name).ok_or_else(|| {
                        format!("--placement: expected kernel, paired or apart, got {name:?}")
                    })?;
                }
                "--json" => {
                    let path = args
                        .next()
                        .ok_or_else(|| "--json needs a path, got nothing".to_string())?;
                    json = Some(PathBuf::from(path));
                }
                _ => {}
            }
        }
        Ok(Options {
            quick,
            // Cargo runs a bench in its package's directory; a relative path
            // is meant from the workspace root, where the command was typed.
            json: json.map_or_else(
                || compute_benches::target_dir().join("cost.json"),
                |path| compute_benches::workspace_root().join(path),
            ),
            cases,
            layout,
            placement,
            threads,
            parts,
        })
    }

    /// The thread layouts to run (`--layout`), placed as `--placement` says.
    pub(crate) fn layouts(&self) -> Vec<Threads> {
        Threads::BOTH
            .into_iter()
            .filter(|t| self.layout.as_ref().is_none_or(|l| *l == t.label()))
            .map(|t| t.placed(self.placement))
            .collect()
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// The whole report, as written to JSON.
#[derive(Debug, Serialize)]
struct Report {
    quick: bool,
    machine: String,
    bridge: Vec<ChannelCost>,
    bridge_round_trip: Vec<ChannelRoundTrip>,
    floor: Vec<FloorRow>,
    pool: Vec<PoolCost>,
    services: Vec<service::Row>,
}

/// CPU per job over the job's own time ("1.042x"), or "-" for the trivial
/// job, which has no time of its own.
pub(crate) fn cpu_ratio(cpu_us: f64, job_us: f64) -> String {
    if job_us > 0.0 {
        format!("{:.3}x", cpu_us / job_us)
    } else {
        "-".to_owned()
    }
}

/// The service shapes (see `compute_benches::service`): every task count
/// and job size in full, a corner of them in one short run when quick.
fn service_costs(options: &Options) -> Vec<service::Row> {
    let layouts = options.layouts();
    let jobs: Vec<(&'static str, Duration)> = service::JOBS
        .into_iter()
        .filter(|(label, _)| {
            options
                .cases
                .as_ref()
                .is_none_or(|cases| cases.iter().any(|c| c == label))
        })
        .collect();
    let rows = if options.quick {
        service::report(
            &layouts,
            &[4, 256],
            &jobs[..jobs.len().min(1)],
            1,
            Duration::from_millis(20),
        )
    } else {
        service::report(
            &layouts,
            &service::TASKS,
            &jobs,
            5,
            Duration::from_millis(150),
        )
    };
    let runs = if options.quick { 1 } else { 5 };
    service::print(&rows, runs);
    let markdown = options.json.with_extension("services.md");
    match std::fs::write(&markdown, service::markdown(&rows, runs)) {
        Ok(()) => println!("wrote {}", markdown.display()),
        Err(e) => eprintln!("cost: cannot write {}: {e}", markdown.display()),
    }
    rows
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{} {}, {cpus} CPUs",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("cost: {message}");
            std::process::exit(2);
        }
    };
    let rounds = if options.quick { 1_000 } else { 100_000 };

    let mut bridge = Vec::new();
    let mut bridge_round_trip = Vec::new();
    if options.runs("channels") {
        bridge = bridge_costs(rounds);
        println!("== one oneshot channel (u64): create, send, receive; {rounds} rounds");
        println!(
            "{:<18} {:>12} {:>12} {:>8} {:>10}",
            "channel", "allocs/chan", "bytes/chan", "tx size", "rx size"
        );
        for c in &bridge {
            println!(
                "{:<18} {:>12.2} {:>12.1} {:>8} {:>10}",
                c.channel,
                c.allocations_per_channel,
                c.bytes_per_channel,
                c.sender_size,
                c.receiver_size
            );
        }

        let (batches, per_batch) = if options.quick { (20, 50) } else { (200, 200) };
        bridge_round_trip = bridge_round_trips(batches, per_batch);
        println!(
            "\n== round trip through a persistent sending thread (parking), channels in turns; \
             median of {batches} batches of {per_batch}"
        );
        for r in &bridge_round_trip {
            println!("{:<18} {:>10.0} ns", r.channel, r.median_ns);
        }
    }

    // Before the pool cases, so no pool's threads are alive yet.
    let mut floor = Vec::new();
    if options.runs("floor") {
        floor = floor_costs(&options);
        print_floor(&floor);
    }

    let mut pool = Vec::new();
    if options.runs("pool") {
        pool = pool_costs(&options);
        print_pool(&pool);
    }

    let mut services = Vec::new();
    if options.runs("services") {
        services = service_costs(&options);
    }

    let report = Report {
        quick: options.quick,
        machine: machine(),
        bridge,
        bridge_round_trip,
        floor,
        pool,
        services,
    };
    let text = serde_json::to_string_pretty(&report).expect("the report serialises");
    if let Some(dir) = options.json.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cost: cannot create {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
    if let Err(e) = std::fs::write(&options.json, text) {
        eprintln!("cost: cannot write {}: {e}", options.json.display());
        std::process::exit(1);
    }
    println!("wrote {}", options.json.display());
}
