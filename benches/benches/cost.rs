//! The cost report: what each way of handing a job to another thread costs
//! in memory and CPU, not just in wall time (criterion measures wall time only).
//!
//! ```text
//! cargo bench -p compute-benches --bench cost              # full run
//! cargo bench -p compute-benches --bench cost -- --quick   # seconds, for CI
//! cargo bench -p compute-benches --bench cost -- --json out.json
//! ```
//!
//! `COST_QUICK=1` and `COST_JSON=path` do the same as the flags. The JSON goes
//! to `target/cost.json` by default; the plot tool reads it.
//!
//! This binary installs a counting global allocator, so allocations and bytes
//! are counted for every thread of the process.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use compute_benches::alloc::{Counting, Snapshot};
use compute_benches::cpu::process_cpu_time;
use compute_benches::job;
use compute_benches::oneshots::{Feed, Futures, Oneshot, Ours, Tokio, Worker};
use compute_benches::peers::naive_spawn;
use compute_benches::setup::{Bridge, Setup, Threads};
use futures::FutureExt;
use serde::Serialize;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Command-line options (unknown arguments, such as the `--bench` cargo
/// passes, are ignored).
struct Options {
    quick: bool,
    json: PathBuf,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut quick = std::env::var_os("COST_QUICK").is_some_and(|v| v != "0");
        let mut json = std::env::var_os("COST_JSON").map(PathBuf::from);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
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
            json: json.unwrap_or_else(|| compute_benches::target_dir().join("cost.json")),
        })
    }
}

/// Memory cost of one oneshot channel: created, sent on, received.
#[derive(Debug, Serialize)]
struct ChannelCost {
    channel: &'static str,
    allocations_per_channel: f64,
    bytes_per_channel: f64,
    sender_size: usize,
    receiver_size: usize,
}

/// Round trip through a persistent sending thread, the channels measured
/// in turns (batch after batch, round robin), so a change in the machine's
/// load hits all three alike. Median over the batches.
#[derive(Debug, Serialize)]
struct ChannelRoundTrip {
    channel: &'static str,
    median_ns: f64,
    batches: usize,
    per_batch: u32,
}

/// One case through one bridge, in one thread layout.
#[derive(Debug, Serialize)]
struct PoolCost {
    layout: String,
    case: &'static str,
    bridge: &'static str,
    jobs: u64,
    /// The job's own duration (0 for the trivial job).
    job_us: f64,
    wall_us_per_job: f64,
    /// Process CPU time (all threads) per job.
    cpu_us_per_job: f64,
    allocations_per_job: f64,
    bytes_per_job: f64,
    /// Process CPU in the 10 ms after the last job, in % of one core.
    idle_cpu_percent: f64,
}

/// The whole report, as written to JSON.
#[derive(Debug, Serialize)]
struct Report {
    quick: bool,
    machine: String,
    bridge: Vec<ChannelCost>,
    bridge_round_trip: Vec<ChannelRoundTrip>,
    pool: Vec<PoolCost>,
}

fn channel_cost<Tx, Rx>(
    channel: &'static str,
    rounds: u32,
    make: impl Fn() -> (Tx, Rx),
    send: impl Fn(Tx, u64),
) -> ChannelCost
where
    Rx: std::future::Future + Unpin,
{
    let before = Snapshot::now();
    for i in 0..rounds {
        let (tx, rx) = make();
        send(tx, u64::from(i));
        black_box(rx.now_or_never());
    }
    let spent = Snapshot::now().since(before);
    ChannelCost {
        channel,
        allocations_per_channel: spent.allocations as f64 / f64::from(rounds),
        bytes_per_channel: spent.bytes as f64 / f64::from(rounds),
        sender_size: std::mem::size_of::<Tx>(),
        receiver_size: std::mem::size_of::<Rx>(),
    }
}

fn bridge_costs(rounds: u32) -> Vec<ChannelCost> {
    vec![
        channel_cost(
            "compute_bridge",
            rounds,
            compute_bridge::channel::<u64>,
            |tx, v| {
                let _ = tx.send(v);
            },
        ),
        channel_cost(
            "tokio_oneshot",
            rounds,
            tokio::sync::oneshot::channel::<u64>,
            |tx, v| {
                let _ = tx.send(v);
            },
        ),
        channel_cost(
            "futures_oneshot",
            rounds,
            futures::channel::oneshot::channel::<u64>,
            |tx, v| {
                let _ = tx.send(v);
            },
        ),
    ]
}

/// Times `per_batch` round trips of channel `O` through `worker`, in ns each.
fn round_trip_batch<O: Oneshot>(worker: &Worker<O>, per_batch: u32) -> f64 {
    futures::executor::block_on(async {
        let start = Instant::now();
        for _ in 0..per_batch {
            let (tx, rx) = O::channel();
            worker.give(tx);
            let _ = black_box(rx.await);
        }
        start.elapsed().as_nanos() as f64 / f64::from(per_batch)
    })
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

fn bridge_round_trips(batches: usize, per_batch: u32) -> Vec<ChannelRoundTrip> {
    let ours = Worker::<Ours>::start(Feed::Blocking);
    let tokio = Worker::<Tokio>::start(Feed::Blocking);
    let futures = Worker::<Futures>::start(Feed::Blocking);
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..batches {
        samples[0].push(round_trip_batch(&ours, per_batch));
        samples[1].push(round_trip_batch(&tokio, per_batch));
        samples[2].push(round_trip_batch(&futures, per_batch));
    }
    let [a, b, c] = samples;
    [(Ours::NAME, a), (Tokio::NAME, b), (Futures::NAME, c)]
        .into_iter()
        .map(|(channel, samples)| ChannelRoundTrip {
            channel,
            median_ns: median(samples),
            batches,
            per_batch,
        })
        .collect()
}

/// A case of the pool report.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// Jobs of this duration, one at a time, awaited from a tokio task.
    Sequential(&'static str, Duration),
    /// Rounds of 256 trivial jobs submitted together, then awaited.
    InFlight256,
    /// Jobs of this duration from a plain thread, blocking.
    Sync(&'static str, Duration),
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Sequential(label, _) | Case::Sync(label, _) => label,
            Case::InFlight256 => "in_flight_256",
        }
    }

    fn job(self) -> Duration {
        match self {
            Case::Sequential(_, d) | Case::Sync(_, d) => d,
            Case::InFlight256 => Duration::ZERO,
        }
    }

    /// How many jobs make a measurement.
    fn jobs(self, quick: bool) -> u64 {
        let full = match self.job().as_micros() {
            0 => 20_000,
            1..=10 => 5_000,
            11..=100 => 1_000,
            _ => 200,
        };
        if quick {
            (full / 20).max(10)
        } else {
            full
        }
    }
}

const CASES: [Case; 7] = [
    Case::Sequential("trivial", Duration::ZERO),
    Case::Sequential("10us", Duration::from_micros(10)),
    Case::Sequential("100us", Duration::from_micros(100)),
    Case::Sequential("1ms", Duration::from_millis(1)),
    Case::InFlight256,
    Case::Sync("sync_trivial", Duration::ZERO),
    Case::Sync("sync_100us", Duration::from_micros(100)),
];

/// The blocking callers of the `Sync` cases.
const SYNC_BRIDGES: [&str; 4] = ["inline", "ours", "rayon_install", "naive_bridge"];

/// Runs `jobs` jobs of `case` through `bridge` (for `Sync` cases, the
/// blocking caller named `sync`).
fn run_case(setup: &Setup, case: Case, bridge: Bridge, sync: &str, jobs: u64) {
    let duration = case.job();
    let work = move || job::spin_for(duration);
    match case {
        Case::Sequential(..) => setup.on_worker(|pools| async move {
            for _ in 0..jobs {
                black_box(pools.run(bridge, work).await);
            }
        }),
        Case::InFlight256 => setup.on_worker(|pools| async move {
            let mut handles = Vec::with_capacity(256);
            for _ in 0..jobs / 256 {
                handles.extend((0..256).map(|_| pools.submit(bridge, job::trivial)));
                for handle in handles.drain(..) {
                    black_box(handle.await);
                }
            }
        }),
        Case::Sync(..) => {
            let pools = &setup.pools;
            for _ in 0..jobs {
                let out = match sync {
                    "inline" => work(),
                    "ours" => pools
                        .ours
                        .execute_sync(work)
                        .expect("the job does not panic"),
                    "rayon_install" => pools.rayon.install(work),
                    _ => naive_spawn(&pools.rayon, work)
                        .wait()
                        .expect("the job does not panic"),
                };
                black_box(out);
            }
        }
    }
}

fn measure(setup: &Setup, case: Case, bridge: Bridge, sync: &'static str, quick: bool) -> PoolCost {
    let jobs = case.jobs(quick);
    let jobs = if matches!(case, Case::InFlight256) {
        (jobs / 256).max(1) * 256
    } else {
        jobs
    };
    // Warm the threads and caches up; not measured.
    run_case(setup, case, bridge, sync, (jobs / 10).max(1));
    std::thread::sleep(Duration::from_millis(2));

    let alloc_before = Snapshot::now();
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    run_case(setup, case, bridge, sync, jobs);
    let wall = start.elapsed();
    let cpu = process_cpu_time() - cpu_before;
    let allocated = Snapshot::now().since(alloc_before);

    // The CPU the process burns in the 10 ms after its last job.
    let idle_start = process_cpu_time();
    let idle_wall = Instant::now();
    std::thread::sleep(Duration::from_millis(10));
    let idle_cpu = process_cpu_time() - idle_start;
    let idle_window = idle_wall.elapsed();

    let per_job = |d: Duration| d.as_secs_f64() * 1e6 / jobs as f64;
    PoolCost {
        layout: setup.threads.label(),
        case: case.label(),
        bridge: if matches!(case, Case::Sync(..)) {
            sync
        } else {
            bridge.name()
        },
        jobs,
        job_us: case.job().as_secs_f64() * 1e6,
        wall_us_per_job: per_job(wall),
        cpu_us_per_job: per_job(cpu),
        allocations_per_job: allocated.allocations as f64 / jobs as f64,
        bytes_per_job: allocated.bytes as f64 / jobs as f64,
        idle_cpu_percent: 100.0 * idle_cpu.as_secs_f64() / idle_window.as_secs_f64(),
    }
}

fn pool_costs(quick: bool) -> Vec<PoolCost> {
    let mut rows = Vec::new();
    for threads in Threads::BOTH {
        let setup = Setup::new(threads);
        for case in CASES {
            if matches!(case, Case::Sync(..)) {
                for sync in SYNC_BRIDGES {
                    rows.push(measure(&setup, case, Bridge::Inline, sync, quick));
                }
            } else {
                for bridge in Bridge::ALL {
                    rows.push(measure(&setup, case, bridge, "", quick));
                }
            }
        }
    }
    rows
}

fn print_pool(rows: &[PoolCost]) {
    println!(
        "\n== pool cases: per job; added = wall - inline's wall; cpu/job counts every thread of the process"
    );
    println!(
        "{:<6} {:<14} {:<15} {:>7} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>7}",
        "layout",
        "case",
        "bridge",
        "jobs",
        "wall us",
        "added us",
        "cpu us",
        "cpu/job",
        "allocs",
        "bytes",
        "idle %"
    );
    for row in rows {
        let floor = rows
            .iter()
            .find(|r| r.layout == row.layout && r.case == row.case && r.bridge == "inline")
            .map_or(f64::NAN, |r| r.wall_us_per_job);
        let cpu_ratio = if row.job_us > 0.0 {
            format!("{:.3}x", row.cpu_us_per_job / row.job_us)
        } else {
            "-".to_owned()
        };
        println!(
            "{:<6} {:<14} {:<15} {:>7} {:>11.2} {:>11.2} {:>11.2} {:>9} {:>9.2} {:>9.1} {:>7.2}",
            row.layout,
            row.case,
            row.bridge,
            row.jobs,
            row.wall_us_per_job,
            row.wall_us_per_job - floor,
            row.cpu_us_per_job,
            cpu_ratio,
            row.allocations_per_job,
            row.bytes_per_job,
            row.idle_cpu_percent
        );
    }
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

    let bridge = bridge_costs(rounds);
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
    let bridge_round_trip = bridge_round_trips(batches, per_batch);
    println!(
        "\n== round trip through a persistent sending thread (parking), channels in turns; \
         median of {batches} batches of {per_batch}"
    );
    for r in &bridge_round_trip {
        println!("{:<18} {:>10.0} ns", r.channel, r.median_ns);
    }

    let pool = pool_costs(options.quick);
    print_pool(&pool);

    let report = Report {
        quick: options.quick,
        machine: machine(),
        bridge,
        bridge_round_trip,
        pool,
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
