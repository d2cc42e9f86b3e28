//! The cost report: what each way of handing a job to another thread costs
//! in memory and CPU, not just in wall time (criterion measures wall time only).
//!
//! ```text
//! cargo bench -p compute-benches --bench cost              # full run
//! cargo bench -p compute-benches --bench cost -- --quick   # seconds, for CI
//! cargo bench -p compute-benches --bench cost -- --json out.json
//! cargo bench -p compute-benches --bench cost -- --cases 100us,1ms --layout 1w1c
//! cargo bench -p compute-benches --bench cost -- --parts services
//! ```
//!
//! `COST_QUICK=1` and `COST_JSON=path` do the same as the flags. The JSON goes
//! to `target/cost.json` by default (a relative `--json` path is taken from
//! the workspace root); the plot tool reads it. `--cases` keeps
//! the named cases only (`trivial`, `10us`, `100us`, `1ms`, `in_flight_256`,
//! `sync_trivial`, `sync_100us`), in their usual order; `--layout` one thread
//! layout (`1w1c` or `2w2c`). A case runs after the ones before it on the same
//! pools, and what those left behind (where the threads sit, what the await
//! spin learned) shapes its figures, so compare subsets with subsets.
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
//!
//! This binary installs a counting global allocator, so allocations and bytes
//! are counted for every thread of the process.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use compute_benches::cpu::{cpu_by_thread_group, current_cpu, settled_process_cpu_time};
use compute_benches::job;
use compute_benches::oneshots::{Feed, Futures, Oneshot, Ours, Tokio, Worker};
use compute_benches::peers::naive_spawn;
use compute_benches::service;
use compute_benches::setup::{Bridge, Setup, Threads};
use compute_test_support::alloc::{Counting, Snapshot};
use compute_test_support::median;
use futures::FutureExt;
use serde::Serialize;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Command-line options (unknown arguments, such as the `--bench` cargo
/// passes, are ignored).
struct Options {
    quick: bool,
    json: PathBuf,
    /// Case labels to run; all when `None`.
    cases: Option<Vec<String>>,
    /// The one layout label to run; both when `None`.
    layout: Option<String>,
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
            threads,
            parts,
        })
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
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

/// One case through one bridge (or blocking caller), in one thread layout.
#[derive(Debug, Serialize)]
struct PoolCost {
    layout: String,
    case: &'static str,
    bridge: &'static str,
    jobs: u64,
    /// The job's own duration (0 for the trivial job).
    job_us: f64,
    /// Round trip per job: median over single jobs, and mean.
    wall_p50_us: f64,
    wall_mean_us: f64,
    /// Round trip minus the job's own run time (measured by the job on its
    /// thread): median, 90th percentile and mean over single jobs.
    added_p50_us: f64,
    added_p90_us: f64,
    added_mean_us: f64,
    /// Process CPU time (all threads) per job.
    cpu_us_per_job: f64,
    allocations_per_job: f64,
    bytes_per_job: f64,
    /// Process CPU in the 10 ms after the last job, in % of one core.
    idle_cpu_percent: f64,
    /// Share of the jobs that ran on the CPU their submitter was on, in %
    /// (`None` for the in-flight case, whose jobs are not followed one by one).
    same_cpu_percent: Option<f64>,
    /// CPU per job of each thread group, in µs (with `--threads` only).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    cpu_us_per_job_by_thread: std::collections::BTreeMap<String, f64>,
    /// CPU of each thread group in the idle window, in µs (with `--threads`
    /// only; groups that used none are left out).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    idle_us_by_thread: std::collections::BTreeMap<String, f64>,
}

/// The machine's floor for one case: two plain threads handing the job
/// back and forth (see `compute_benches::floor`).
#[derive(Debug, Serialize)]
struct FloorRow {
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

/// The floor's cases: every job size of the pool cases, both ways of
/// waiting (spinning through a 1 ms job is what a bridge must not do; its
/// row shows what it would cost), every placement.
fn floor_costs(options: &Options) -> Vec<FloorRow> {
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

/// CPU per job over the job's own time ("1.042x"), or "-" for the trivial
/// job, which has no time of its own.
fn cpu_ratio(cpu_us: f64, job_us: f64) -> String {
    if job_us > 0.0 {
        format!("{:.3}x", cpu_us / job_us)
    } else {
        "-".to_owned()
    }
}

fn print_floor(rows: &[FloorRow]) {
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
fn round_trip_batch<O: Oneshot>(worker: &Worker, per_batch: u32) -> f64 {
    futures::executor::block_on(async {
        let start = Instant::now();
        for _ in 0..per_batch {
            let (tx, rx) = O::channel();
            worker.give::<O>(tx);
            let _ = black_box(rx.await);
        }
        start.elapsed().as_nanos() as f64 / f64::from(per_batch)
    })
}

fn bridge_round_trips(batches: usize, per_batch: u32) -> Vec<ChannelRoundTrip> {
    // One sending thread for all three: see `Worker`.
    let worker = Worker::start(Feed::Blocking);
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..batches {
        samples[0].push(round_trip_batch::<Ours>(&worker, per_batch));
        samples[1].push(round_trip_batch::<Tokio>(&worker, per_batch));
        samples[2].push(round_trip_batch::<Futures>(&worker, per_batch));
    }
    let [a, b, c] = samples;
    [(Ours::NAME, a), (Tokio::NAME, b), (Futures::NAME, c)]
        .into_iter()
        .map(|(channel, mut samples)| ChannelRoundTrip {
            channel,
            median_ns: median(&mut samples).unwrap_or(f64::NAN),
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

    /// How many jobs make a measurement, over all rounds.
    fn jobs(self, quick: bool) -> u64 {
        let full = match self.job().as_micros() {
            0 => 20_480,
            1..=10 => 5_000,
            11..=100 => 1_000,
            _ => 300,
        };
        if quick {
            full / 20
        } else {
            full
        }
    }

    fn callers(self) -> Vec<Caller> {
        match self {
            Case::Sync(..) => ["inline", "ours", "rayon_install", "naive_bridge"]
                .into_iter()
                .map(Caller::Blocking)
                .collect(),
            _ => Bridge::ALL.into_iter().map(Caller::Async).collect(),
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

/// Who submits the jobs: an async bridge awaited from a tokio task, or a
/// blocking call from a plain thread.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Async(Bridge),
    Blocking(&'static str),
}

impl Caller {
    fn name(self) -> &'static str {
        match self {
            Caller::Async(bridge) => bridge.name(),
            Caller::Blocking(name) => name,
        }
    }
}

/// Per-job round trips and added latencies of one batch, in ns.
struct Timings {
    total: Vec<f64>,
    added: Vec<f64>,
    /// Jobs whose CPU and their submitter's are both known, and of those,
    /// the ones that ran on the CPU their submitter was on.
    placed: u64,
    same_cpu: u64,
}

impl Timings {
    fn with_capacity(n: usize) -> Timings {
        Timings {
            total: Vec::with_capacity(n),
            added: Vec::with_capacity(n),
            placed: 0,
            same_cpu: 0,
        }
    }

    /// One job: its round trip, its own run time, and the CPUs it was
    /// submitted from and ran on (when known).
    fn push(&mut self, total: Duration, ran: Duration, cpus: (Option<u32>, Option<u32>)) {
        self.total.push(total.as_nanos() as f64);
        self.added.push(total.saturating_sub(ran).as_nanos() as f64);
        if let (Some(submitted_on), Some(ran_on)) = cpus {
            self.placed += 1;
            self.same_cpu += u64::from(submitted_on == ran_on);
        }
    }
}

/// Runs `jobs` jobs of `case` through `caller`, timing each one (for the
/// in-flight case, each round of 256, divided among its jobs).
fn run_batch(setup: &Setup, case: Case, caller: Caller, jobs: u64, mut t: Timings) -> Timings {
    let duration = case.job();
    // The job reports where it ran, so each row can say how often a bridge
    // ran it on its submitter's CPU (two context switches per hand-off)
    // rather than on another (a wake-up of that CPU, or a spinning pair).
    let work = move || (job::timed_spin(duration), current_cpu());
    match (case, caller) {
        (Case::InFlight256, Caller::Async(bridge)) => setup.on_worker(|pools| async move {
            let mut handles = Vec::with_capacity(256);
            for _ in 0..jobs.div_ceil(256) {
                let start = Instant::now();
                handles.extend((0..256).map(|_| pools.submit(bridge, job::trivial)));
                for handle in handles.drain(..) {
                    black_box(handle.await);
                }
                let each = start.elapsed() / 256;
                for _ in 0..256 {
                    t.push(each, Duration::ZERO, (None, None));
                }
            }
            t
        }),
        (_, Caller::Async(bridge)) => setup.on_worker(|pools| async move {
            for _ in 0..jobs {
                let submitted_on = current_cpu();
                let start = Instant::now();
                let (ran, ran_on) = pools.run(bridge, work).await;
                t.push(start.elapsed(), ran, (submitted_on, ran_on));
            }
            t
        }),
        (_, Caller::Blocking(name)) => {
            let pools = &setup.pools;
            for _ in 0..jobs {
                let submitted_on = current_cpu();
                let start = Instant::now();
                let (ran, ran_on) = match name {
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
                t.push(start.elapsed(), ran, (submitted_on, ran_on));
            }
            t
        }
    }
}

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index]
}

/// `0..n` in a random order drawn from `seed` (Fisher-Yates over a
/// xorshift generator: the same seed gives the same order).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Measures one case for every caller, the callers taking turns batch by
/// batch so that a change in the machine's load hits all of them alike.
fn measure_case(
    setup: &Setup,
    case: Case,
    rounds: u64,
    quick: bool,
    by_thread: bool,
) -> Vec<PoolCost> {
    let callers = case.callers();
    let per_batch = (case.jobs(quick) / rounds).max(1);
    let per_batch = if matches!(case, Case::InFlight256) {
        per_batch.div_ceil(256) * 256
    } else {
        per_batch
    };
    // Warm every caller up once; not measured.
    for &caller in &callers {
        run_batch(
            setup,
            case,
            caller,
            per_batch.min(100),
            Timings::with_capacity(512),
        );
    }
    struct Acc {
        timings: Timings,
        wall: Duration,
        cpu: Duration,
        allocated: Snapshot,
        by_thread: BTreeMap<String, Duration>,
    }
    let capacity = (per_batch * rounds) as usize;
    let mut accs: Vec<Acc> = callers
        .iter()
        .map(|_| Acc {
            timings: Timings::with_capacity(capacity),
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
            allocated: Snapshot::default(),
            by_thread: BTreeMap::new(),
        })
        .collect();
    for round in 0..rounds as usize {
        // Each round takes the callers in a different (seeded, so
        // repeatable) random order. A batch runs on the machine the one
        // before it left: after the inline caller held a CPU for a while,
        // the next pool's thread wakes on the other, halted CPU and every
        // job of that batch pays for the slow wake-up. A fixed order, even
        // rotated, puts the same caller after inline round after round.
        for i in shuffled(callers.len(), round as u64) {
            let (acc, caller) = (&mut accs[i], callers[i]);
            // Let the previous caller's threads fall asleep first, so their
            // wind-down is not billed to this one.
            std::thread::sleep(Duration::from_millis(1));
            let timings = std::mem::replace(&mut acc.timings, Timings::with_capacity(0));
            // The CPU readings allocate (they read /proc): allocations are
            // counted inside them.
            let threads_before = by_thread.then(cpu_by_thread_group);
            let cpu_before = settled_process_cpu_time();
            let alloc_before = Snapshot::now();
            let start = Instant::now();
            acc.timings = run_batch(setup, case, caller, per_batch, timings);
            acc.wall += start.elapsed();
            let spent = Snapshot::now().since(alloc_before);
            acc.cpu += settled_process_cpu_time() - cpu_before;
            if let Some(before) = threads_before {
                for (group, now) in cpu_by_thread_group() {
                    let spent = now.saturating_sub(before.get(&group).copied().unwrap_or_default());
                    *acc.by_thread.entry(group).or_default() += spent;
                }
            }
            acc.allocated.allocations += spent.allocations;
            acc.allocated.bytes += spent.bytes;
        }
    }
    let mut rows = Vec::new();
    for (mut acc, &caller) in accs.into_iter().zip(&callers) {
        // The CPU the process burns in the 10 ms after this caller's last job.
        std::thread::sleep(Duration::from_millis(5));
        run_batch(
            setup,
            case,
            caller,
            per_batch.min(256),
            Timings::with_capacity(512),
        );
        let idle_threads = by_thread.then(cpu_by_thread_group);
        let idle_cpu = settled_process_cpu_time();
        let idle_wall = Instant::now();
        std::thread::sleep(Duration::from_millis(10));
        let idle_cpu = settled_process_cpu_time() - idle_cpu;
        let idle_window = idle_wall.elapsed();
        let idle_us_by_thread = idle_threads
            .map(|before| {
                cpu_by_thread_group()
                    .into_iter()
                    .map(|(group, now)| {
                        let spent =
                            now.saturating_sub(before.get(&group).copied().unwrap_or_default());
                        (group, spent.as_secs_f64() * 1e6)
                    })
                    .filter(|(_, us)| *us > 0.0)
                    .collect()
            })
            .unwrap_or_default();

        let jobs = acc.timings.total.len() as u64;
        let us = |ns: f64| ns / 1000.0;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        rows.push(PoolCost {
            layout: setup.threads.label(),
            case: case.label(),
            bridge: caller.name(),
            jobs,
            job_us: case.job().as_secs_f64() * 1e6,
            wall_p50_us: us(percentile(&mut acc.timings.total, 0.5)),
            wall_mean_us: acc.wall.as_secs_f64() * 1e6 / jobs as f64,
            added_p50_us: us(percentile(&mut acc.timings.added, 0.5)),
            added_p90_us: us(percentile(&mut acc.timings.added, 0.9)),
            added_mean_us: us(mean(&acc.timings.added)),
            cpu_us_per_job: acc.cpu.as_secs_f64() * 1e6 / jobs as f64,
            allocations_per_job: acc.allocated.allocations as f64 / jobs as f64,
            bytes_per_job: acc.allocated.bytes as f64 / jobs as f64,
            idle_cpu_percent: 100.0 * idle_cpu.as_secs_f64() / idle_window.as_secs_f64(),
            same_cpu_percent: (acc.timings.placed > 0)
                .then(|| 100.0 * acc.timings.same_cpu as f64 / acc.timings.placed as f64),
            cpu_us_per_job_by_thread: acc
                .by_thread
                .iter()
                .filter(|(_, spent)| !spent.is_zero())
                .map(|(group, spent)| (group.clone(), spent.as_secs_f64() * 1e6 / jobs as f64))
                .collect(),
            idle_us_by_thread,
        });
    }
    rows
}

fn pool_costs(options: &Options) -> Vec<PoolCost> {
    let quick = options.quick;
    let rounds = if quick { 2 } else { 10 };
    let mut rows = Vec::new();
    let layouts = Threads::BOTH
        .into_iter()
        .filter(|t| options.layout.as_ref().is_none_or(|l| *l == t.label()));
    for threads in layouts {
        let setup = Setup::new(threads);
        let cases = CASES.into_iter().filter(|case| {
            options
                .cases
                .as_ref()
                .is_none_or(|list| list.iter().any(|c| c == case.label()))
        });
        for case in cases {
            rows.extend(measure_case(&setup, case, rounds, quick, options.threads));
        }
    }
    rows
}

fn print_pool(rows: &[PoolCost]) {
    println!(
        "\n== pool cases, callers taking turns. Per job: wall p50 and added latency \
         (round trip - the job's own run time) p50/p90 over single jobs; cpu = process CPU \
         (all threads) per job; idle = process CPU in the 10 ms after the last job; \
         same = jobs run on their submitter's CPU"
    );
    println!(
        "{:<5} {:<13} {:<14} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7} {:>6} {:>6}",
        "lay",
        "case",
        "bridge",
        "jobs",
        "wall p50",
        "add p50",
        "add p90",
        "cpu us",
        "cpu/job",
        "allocs",
        "bytes",
        "idle%",
        "same%"
    );
    for row in rows {
        let cpu_ratio = cpu_ratio(row.cpu_us_per_job, row.job_us);
        let same = row
            .same_cpu_percent
            .map_or_else(|| "-".to_owned(), |same| format!("{same:.0}"));
        println!(
            "{:<5} {:<13} {:<14} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>7.2} {:>7.1} {:>6.2} {:>6}",
            row.layout,
            row.case,
            row.bridge,
            row.jobs,
            row.wall_p50_us,
            row.added_p50_us,
            row.added_p90_us,
            row.cpu_us_per_job,
            cpu_ratio,
            row.allocations_per_job,
            row.bytes_per_job,
            row.idle_cpu_percent,
            same
        );
    }
    let split: Vec<&PoolCost> = rows
        .iter()
        .filter(|row| !row.cpu_us_per_job_by_thread.is_empty())
        .collect();
    if !split.is_empty() {
        println!("\n== CPU per job (us) by thread group");
        for row in split {
            let groups: Vec<String> = row
                .cpu_us_per_job_by_thread
                .iter()
                .map(|(group, us)| format!("{group} {us:.1}"))
                .collect();
            let idle: Vec<String> = row
                .idle_us_by_thread
                .iter()
                .map(|(group, us)| format!("{group} {us:.0}"))
                .collect();
            println!(
                "{:<5} {:<13} {:<14} {}; idle window (us): {}",
                row.layout,
                row.case,
                row.bridge,
                groups.join(", "),
                idle.join(", ")
            );
        }
    }
}

/// The service shapes (see `compute_benches::service`): every task count
/// and job size in full, a corner of them in one short run when quick.
fn service_costs(options: &Options) -> Vec<service::Row> {
    let layouts: Vec<Threads> = Threads::BOTH
        .into_iter()
        .filter(|t| options.layout.as_ref().is_none_or(|l| *l == t.label()))
        .collect();
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
