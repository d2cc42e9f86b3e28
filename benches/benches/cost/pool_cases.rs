//! The pool cases: one job at a time (or 256 in flight) through every
//! bridge and blocking caller, the callers taking turns.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use compute_benches::cpu::{cpu_by_thread_group, current_cpu, settled_process_cpu_time};
use compute_benches::peers::naive_spawn;
use compute_benches::setup::{Bridge, Setup, Threads};
use compute_benches::{job, percentile};
use compute_test_support::alloc::Snapshot;
use serde::Serialize;

use crate::{cpu_ratio, Options};

/// One case through one bridge (or blocking caller), in one thread layout.
#[derive(Debug, Serialize)]
pub(crate) struct PoolCost {
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
    /// Added latency p50 of the jobs that ran on their submitter's CPU, and
    /// of those that ran on another: where the kernel placed the threads
    /// decides a round trip several times over, so bridges compare fairly
    /// only placement by placement (`None` when no job ran so placed).
    added_p50_same_cpu_us: Option<f64>,
    added_p50_other_cpu_us: Option<f64>,
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

/// A case of the pool report.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Case {
    /// Jobs of this duration, one at a time, awaited from a tokio task.
    Sequential(&'static str, Duration),
    /// Rounds of 256 trivial jobs submitted together, then awaited.
    InFlight256,
    /// Jobs of this duration from a plain thread, blocking.
    Sync(&'static str, Duration),
}

impl Case {
    pub(crate) fn label(self) -> &'static str {
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

pub(crate) const CASES: [Case; 7] = [
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
pub(crate) enum Caller {
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
pub(crate) struct Timings {
    total: Vec<f64>,
    added: Vec<f64>,
    /// The added latencies of the jobs whose CPU and their submitter's are
    /// both known: those that ran on the CPU their submitter was on, and
    /// those that ran on another.
    added_same_cpu: Vec<f64>,
    added_other_cpu: Vec<f64>,
}

impl Timings {
    fn with_capacity(n: usize) -> Timings {
        Timings {
            total: Vec::with_capacity(n),
            added: Vec::with_capacity(n),
            added_same_cpu: Vec::new(),
            added_other_cpu: Vec::new(),
        }
    }

    /// One job: its round trip, its own run time, and the CPUs it was
    /// submitted from and ran on (when known).
    fn push(&mut self, total: Duration, ran: Duration, cpus: (Option<u32>, Option<u32>)) {
        let added = total.saturating_sub(ran).as_nanos() as f64;
        self.total.push(total.as_nanos() as f64);
        self.added.push(added);
        if let (Some(submitted_on), Some(ran_on)) = cpus {
            if submitted_on == ran_on {
                self.added_same_cpu.push(added);
            } else {
                self.added_other_cpu.push(added);
            }
        }
    }
}

/// Runs `jobs` jobs of `case` through `caller`, timing each one (for the
/// in-flight case, each round of 256, divided among its jobs).
pub(crate) fn run_batch(
    setup: &Setup,
    case: Case,
    caller: Caller,
    jobs: u64,
    mut t: Timings,
) -> Timings {
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

/// `0..n` in a random order drawn from `seed` (Fisher-Yates over a
/// xorshift generator: the same seed gives the same order).
pub(crate) fn shuffled(n: usize, seed: u64) -> Vec<usize> {
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
///
/// Every round builds a fresh runtime and fresh pools: where the kernel
/// places their threads decides a trivial job's round trip several times
/// over, and one setup for all rounds would report a single placement.
pub(crate) fn measure_case(
    threads: Threads,
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
    // The last round's setup stays for the idle windows: one built for
    // them would bill the exit of the previous setup's threads (rayon's
    // wind down after their pool is dropped) to the first caller.
    let mut current: Option<Setup> = None;
    for round in 0..rounds as usize {
        // The previous setup's threads wind down during the warm-up.
        let setup = &*current.insert(Setup::new(threads));
        // Warm every caller up on this setup; not measured.
        for &caller in &callers {
            run_batch(
                setup,
                case,
                caller,
                per_batch.min(100),
                Timings::with_capacity(512),
            );
        }
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
    let setup = current.expect("at least one round");
    let mut rows = Vec::new();
    for (mut acc, &caller) in accs.into_iter().zip(&callers) {
        // The CPU the process burns in the 10 ms after this caller's last job.
        std::thread::sleep(Duration::from_millis(5));
        run_batch(
            &setup,
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
            layout: threads.label(),
            case: case.label(),
            bridge: caller.name(),
            jobs,
            job_us: case.job().as_secs_f64() * 1e6,
            wall_p50_us: us(percentile(&mut acc.timings.total, 0.5)),
            wall_mean_us: acc.wall.as_secs_f64() * 1e6 / jobs as f64,
            added_p50_us: us(percentile(&mut acc.timings.added, 0.5)),
            added_p90_us: us(percentile(&mut acc.timings.added, 0.9)),
            added_mean_us: us(mean(&acc.timings.added)),
            added_p50_same_cpu_us: p50_us(&mut acc.timings.added_same_cpu),
            added_p50_other_cpu_us: p50_us(&mut acc.timings.added_other_cpu),
            cpu_us_per_job: acc.cpu.as_secs_f64() * 1e6 / jobs as f64,
            allocations_per_job: acc.allocated.allocations as f64 / jobs as f64,
            bytes_per_job: acc.allocated.bytes as f64 / jobs as f64,
            idle_cpu_percent: 100.0 * idle_cpu.as_secs_f64() / idle_window.as_secs_f64(),
            same_cpu_percent: same_cpu_percent(&acc.timings),
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

/// The median of `ns`, in µs; `None` if empty.
fn p50_us(ns: &mut [f64]) -> Option<f64> {
    (!ns.is_empty()).then(|| percentile(ns, 0.5) / 1000.0)
}

/// The share of the placed jobs that ran on their submitter's CPU, in %.
fn same_cpu_percent(t: &Timings) -> Option<f64> {
    let (same, other) = (t.added_same_cpu.len(), t.added_other_cpu.len());
    (same + other > 0).then(|| 100.0 * same as f64 / (same + other) as f64)
}

pub(crate) fn pool_costs(options: &Options) -> Vec<PoolCost> {
    let quick = options.quick;
    let rounds = if quick { 2 } else { 10 };
    let mut rows = Vec::new();
    for threads in options.layouts() {
        let cases = CASES.into_iter().filter(|case| {
            options
                .cases
                .as_ref()
                .is_none_or(|list| list.iter().any(|c| c == case.label()))
        });
        for case in cases {
            rows.extend(measure_case(threads, case, rounds, quick, options.threads));
        }
    }
    rows
}

pub(crate) fn print_pool(rows: &[PoolCost]) {
    println!(
        "\n== pool cases, callers taking turns. Per job: wall p50 and added latency \
         (round trip - the job's own run time) p50/p90 over single jobs; cpu = process CPU \
         (all threads) per job; idle = process CPU in the 10 ms after the last job; \
         same = jobs run on their submitter's CPU; add p50 of those (p50 same) and of the \
         others (p50 other), the fair comparison where placement decides"
    );
    println!(
        "{:<5} {:<13} {:<14} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7} {:>6} {:>6} {:>9} {:>9}",
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
        "same%",
        "p50 same",
        "p50 other"
    );
    for row in rows {
        let cpu_ratio = cpu_ratio(row.cpu_us_per_job, row.job_us);
        let same = row
            .same_cpu_percent
            .map_or_else(|| "-".to_owned(), |same| format!("{same:.0}"));
        let us = |p50: Option<f64>| p50.map_or_else(|| "-".to_owned(), |us| format!("{us:.2}"));
        println!(
            "{:<5} {:<13} {:<14} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>7.2} {:>7.1} {:>6.2} {:>6} {:>9} {:>9}",
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
            same,
            us(row.added_p50_same_cpu_us),
            us(row.added_p50_other_cpu_us)
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
