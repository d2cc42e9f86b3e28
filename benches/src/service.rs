//! The shapes a service puts a pool in: many independent tasks, each
//! looping submit-then-await on its own jobs, while an I/O task on the same
//! runtime answers messages from outside.
//!
//! One batch awaited by one task (what most bridge benches measure) hides
//! what a bridge costs the rest of the service: a poll that waits awake
//! for its job holds a worker that other tasks, and the I/O task, need. So
//! each measurement here runs `tasks` tasks on the runtime, each submitting
//! one job and awaiting it, again and again, and reports:
//!
//! - jobs finished per second, all tasks together;
//! - process CPU per job (every thread but the outside feeder's);
//! - the delay of an I/O task on the same runtime: an outside thread sends
//!   it a timestamp every [`PROBE_EVERY`], and the task notes how late each
//!   one arrives (p50 and p99);
//! - how long single polls of a job's handle took, their 99.9th
//!   percentile and the longest (a poll that holds its thread keeps every
//!   other task on that worker waiting; the longest also catches the
//!   kernel preempting a thread mid-poll, which the percentile mostly
//!   does not);
//! - the share of jobs that ran on the CPU their task submitted from (the
//!   kernel's placement, which moves some ratios on a small machine);
//! - the CPU the process uses in an idle window [`IDLE_AFTER`] after the
//!   last job, as a share of one core.
//!
//! [`compare`] measures every bridge of a list in turns, run after run, in
//! alternating order, so a change in the machine's load hits all alike,
//! each run on fresh threads (a new placement), and gives each figure's
//! median over the runs and its median ratio to a reference bridge taken
//! run by run; the I/O delays' percentiles it takes over every run's
//! delays together instead (see [`Compared`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;

use compute_test_support::alloc::Snapshot;
use compute_test_support::median;

use crate::cpu::{cpu_by_thread_group, current_cpu, settled_process_cpu_time};
use crate::job::spin_for;
use crate::percentile;
use crate::setup::{Bridge, Setup, Threads};

mod report;

pub use report::{markdown, print, report, shape_rows, Row, REPORTED};

/// The task counts measured: one task, a few, many, very many.
pub const TASKS: [usize; 4] = [1, 4, 16, 256];

/// The job sizes measured (zero is the trivial job), with their labels.
pub const JOBS: [(&str, Duration); 4] = [
    ("trivial", Duration::ZERO),
    ("10us", Duration::from_micros(10)),
    ("100us", Duration::from_micros(100)),
    ("1ms", Duration::from_millis(1)),
];

/// How often the outside thread sends the I/O task a message.
pub const PROBE_EVERY: Duration = Duration::from_micros(250);

/// How long after the last job the idle window starts.
pub const IDLE_AFTER: Duration = Duration::from_millis(10);

/// How long the idle window lasts.
const IDLE_WINDOW: Duration = Duration::from_millis(40);

/// The name of the outside thread that feeds the I/O task; its CPU is the
/// harness's, not the service's, and is left out of CPU per job.
const PROBE_THREAD: &str = "bench-probe";

/// One service shape: how many tasks, and how long each job computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Independent tasks, each looping submit then await.
    pub tasks: usize,
    /// The job's compute time (zero: the trivial job).
    pub job: Duration,
}

/// What one run of one bridge in one shape measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Jobs finished per second.
    pub jobs_per_s: f64,
    /// Process CPU per job, in µs (the outside feeder's CPU left out).
    pub cpu_us_per_job: f64,
    /// Median delay of the I/O task's messages, in µs (in a [`Compared`]
    /// summary: over every run's delays together).
    pub io_p50_us: f64,
    /// 99th percentile delay of the I/O task's messages, in µs (in a
    /// [`Compared`] summary: over every run's delays together).
    pub io_p99_us: f64,
    /// The 99.9th percentile of single polls of a job's handle, in µs
    /// (1 µs buckets; 513 means longer than 512 µs).
    pub poll_p999_us: f64,
    /// The longest single poll of a job's handle, in µs.
    pub longest_poll_us: f64,
    /// Percent of jobs that ran on the CPU their task submitted from.
    pub same_cpu_pct: f64,
    /// Process CPU in the idle window after the last job, percent of a core.
    pub idle_pct: f64,
    /// Allocations per job, every thread of the process (zero unless the
    /// binary counts them with `compute_test_support::alloc::Counting`).
    pub allocs_per_job: f64,
}

/// Poll durations: counts in 1 µs buckets up to [`POLL_BUCKETS`] - 1 µs,
/// the last bucket for longer polls, and the longest in ns. Allocated
/// before the measured window.
struct PollTimes {
    buckets: Box<[u64; POLL_BUCKETS]>,
    longest_ns: u64,
}

/// Buckets of [`PollTimes`].
const POLL_BUCKETS: usize = 513;

impl PollTimes {
    fn new() -> PollTimes {
        PollTimes {
            buckets: Box::new([0; POLL_BUCKETS]),
            longest_ns: 0,
        }
    }

    fn record(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.longest_ns = self.longest_ns.max(ns);
        let bucket = usize::try_from(ns / 1_000).unwrap_or(usize::MAX);
        self.buckets[bucket.min(POLL_BUCKETS - 1)] += 1;
    }

    fn merge(&mut self, other: &PollTimes) {
        self.longest_ns = self.longest_ns.max(other.longest_ns);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine += theirs;
        }
    }

    /// The `q` quantile in µs (a bucket's upper edge).
    fn quantile_us(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().sum();
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return (i + 1) as f64;
            }
        }
        0.0
    }
}

/// A future that notes how long each of its polls took.
struct TimedPolls<'a, F> {
    inner: F,
    times: &'a mut PollTimes,
}

impl<F: Future + Unpin> Future for TimedPolls<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let polled = Pin::new(&mut self.inner).poll(cx);
        self.times.record(started.elapsed());
        polled
    }
}

/// What the submitting tasks share.
#[derive(Default)]
struct Tally {
    stop: AtomicBool,
    jobs: AtomicU64,
    same_cpu: AtomicU64,
    polls: Mutex<Option<PollTimes>>,
}

/// Runs `shape` through `bridge` on `setup` for about `window` (after a
/// short warm-up) and measures it. Returns the figures and the I/O task's
/// delays in the window, in µs.
pub fn measure(
    setup: &Setup,
    bridge: Bridge,
    shape: Shape,
    window: Duration,
) -> (Sample, Vec<f64>) {
    let tally = Arc::new(Tally::default());

    // The I/O task, and the outside thread that feeds it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let io_task = setup.runtime.spawn(async move {
        let mut delays = Vec::with_capacity(16_384);
        while let Some(sent) = rx.recv().await {
            delays.push((sent, sent.elapsed()));
        }
        delays
    });
    let feeder = {
        let tally = Arc::clone(&tally);
        std::thread::Builder::new()
            .name(PROBE_THREAD.to_owned())
            .spawn(move || {
                // ORDERING: Relaxed: a stop flag; nothing is published with it.
                while !tally.stop.load(Ordering::Relaxed) {
                    if tx.send(Instant::now()).is_err() {
                        break;
                    }
                    std::thread::sleep(PROBE_EVERY);
                }
            })
            .expect("start the probe thread")
    };

    let tasks: Vec<_> = (0..shape.tasks)
        .map(|_| {
            let pools = Arc::clone(&setup.pools);
            let tally = Arc::clone(&tally);
            let job = shape.job;
            setup.runtime.spawn(async move {
                let mut polls = PollTimes::new();
                let (mut jobs, mut same) = (0u64, 0u64);
                // ORDERING: Relaxed: a stop flag; the counts are summed
                // after the task is joined.
                while !tally.stop.load(Ordering::Relaxed) {
                    let from = current_cpu();
                    let handle = pools.submit(bridge, move || {
                        let ran_on = current_cpu();
                        if !job.is_zero() {
                            spin_for(job);
                        }
                        ran_on
                    });
                    let ran_on = TimedPolls {
                        inner: handle,
                        times: &mut polls,
                    }
                    .await;
                    jobs += 1;
                    same += u64::from(from.is_some() && from == ran_on);
                    // ORDERING: Relaxed: a tally read at the window's edges.
                    tally.jobs.fetch_add(1, Ordering::Relaxed);
                }
                // ORDERING: Relaxed: tallies read after every task is joined.
                tally.same_cpu.fetch_add(same, Ordering::Relaxed);
                let mut all = tally.polls.lock().unwrap_or_else(PoisonError::into_inner);
                match all.as_mut() {
                    Some(all) => all.merge(&polls),
                    None => *all = Some(polls),
                }
                jobs
            })
        })
        .collect();

    // Warm up, then the measured window.
    std::thread::sleep((window / 4).max(Duration::from_millis(5)));
    let probe_cpu = || {
        cpu_by_thread_group()
            .get(PROBE_THREAD)
            .copied()
            .unwrap_or_default()
    };
    let (cpu0, probe0) = (settled_process_cpu_time(), probe_cpu());
    // ORDERING: Relaxed: a tally; the window's edges are approximate anyway.
    let jobs0 = tally.jobs.load(Ordering::Relaxed);
    let allocs0 = Snapshot::now().allocations;
    let started = Instant::now();
    std::thread::sleep(window);
    let jobs1 = tally.jobs.load(Ordering::Relaxed);
    let allocs1 = Snapshot::now().allocations;
    let (cpu1, probe1) = (settled_process_cpu_time(), probe_cpu());
    let ended = Instant::now();
    let wall = ended - started;

    tally.stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for task in tasks {
        total += setup.runtime.block_on(task).expect("a bench task panicked");
    }
    feeder.join().expect("the probe thread panicked");
    let mut delays: Vec<f64> = setup
        .runtime
        .block_on(io_task)
        .expect("the I/O task panicked")
        .into_iter()
        .filter(|(sent, _)| *sent >= started && *sent < ended)
        .map(|(_, delay)| delay.as_secs_f64() * 1e6)
        .collect();

    // The idle window: nothing submitted, nothing running.
    std::thread::sleep(IDLE_AFTER);
    let idle0 = settled_process_cpu_time();
    let idle_started = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let idle_cpu = settled_process_cpu_time().saturating_sub(idle0);
    let idle_wall = idle_started.elapsed();

    let polls = tally
        .polls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let jobs = jobs1.saturating_sub(jobs0).max(1) as f64;
    let cpu = cpu1
        .saturating_sub(cpu0)
        .saturating_sub(probe1.saturating_sub(probe0));
    let sample = Sample {
        jobs_per_s: jobs / wall.as_secs_f64(),
        cpu_us_per_job: cpu.as_secs_f64() * 1e6 / jobs,
        io_p50_us: percentile(&mut delays, 0.50),
        io_p99_us: percentile(&mut delays, 0.99),
        poll_p999_us: polls.as_ref().map_or(0.0, |p| p.quantile_us(0.999)),
        longest_poll_us: polls.as_ref().map_or(0.0, |p| p.longest_ns as f64 / 1e3),
        same_cpu_pct: 100.0 * tally.same_cpu.load(Ordering::Relaxed) as f64 / total.max(1) as f64,
        idle_pct: 100.0 * idle_cpu.as_secs_f64() / idle_wall.as_secs_f64(),
        allocs_per_job: allocs1.saturating_sub(allocs0) as f64 / jobs,
    };
    (sample, delays)
}

/// Runs `jobs` jobs in `shape` through `bridge`: the shape's tasks share
/// them, each taking the next until none is left. Returns the wall time
/// from the first submission to the last result (what criterion's
/// `iter_custom` wants: time per job is the figure).
pub fn run_jobs(setup: &Setup, bridge: Bridge, shape: Shape, jobs: u64) -> Duration {
    let left = Arc::new(AtomicU64::new(jobs));
    let started = Instant::now();
    let tasks: Vec<_> = (0..shape.tasks)
        .map(|_| {
            let pools = Arc::clone(&setup.pools);
            let left = Arc::clone(&left);
            let job = shape.job;
            setup.runtime.spawn(async move {
                // ORDERING: Relaxed: a counter of jobs to take; each task
                // only needs its own decrement to be unique.
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    pools
                        .run(bridge, move || {
                            if !job.is_zero() {
                                spin_for(job);
                            }
                        })
                        .await;
                }
            })
        })
        .collect();
    for task in tasks {
        setup.runtime.block_on(task).expect("a bench task panicked");
    }
    started.elapsed()
}

/// One bridge's figures in one shape over several runs: the median of each
/// figure, and the median of its run-by-run ratio to the reference bridge.
///
/// The I/O delays are the exception: their p50 and p99 are taken over the
/// delays of every run together, and their ratio is that of the pooled
/// percentiles. One run's few hundred delays make its p99 one of the five
/// or six longest, which jumps between runs with a single preemption; the
/// median of such p99s is noise at the 1.1× a service cares about.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    /// The bridge.
    pub bridge: Bridge,
    /// Every run's sample, in run order.
    pub runs: Vec<Sample>,
    /// Median of each figure over the runs.
    pub median: Sample,
    /// Median over the runs of each figure divided by the reference
    /// bridge's figure of the same run (1.0 for the reference itself); for
    /// the I/O delays, the pooled percentile divided by the reference's.
    pub ratio: Sample,
}

/// Measures `shape` through every bridge of `bridges` in the `threads`
/// layout, `runs` times, in turns: run `r` takes the bridges in order when
/// `r` is even and in reverse when odd, so no bridge always runs first.
/// Ratios are to `bridges[0]`.
///
/// Every run builds a fresh [`Setup`] (runtime and pools), so the kernel
/// places their threads anew: on a small machine where it keeps them
/// moves a trivial-job shape by 2× and more, and stays put for the life
/// of the threads, so one setup for all runs would give the median of
/// one placement.
pub fn compare(
    threads: Threads,
    bridges: &[Bridge],
    shape: Shape,
    runs: usize,
    window: Duration,
) -> Vec<Compared> {
    assert!(!bridges.is_empty() && runs > 0, "nothing to compare");
    let mut samples = vec![Vec::with_capacity(runs); bridges.len()];
    let mut delays = vec![Vec::new(); bridges.len()];
    for run in 0..runs {
        let setup = Setup::new(threads);
        let order: Vec<usize> = if run % 2 == 0 {
            (0..bridges.len()).collect()
        } else {
            (0..bridges.len()).rev().collect()
        };
        for i in order {
            let (sample, run_delays) = measure(&setup, bridges[i], shape, window);
            samples[i].push(sample);
            delays[i].extend(run_delays);
        }
    }
    summarise(bridges, samples, delays)
}

/// Each bridge's [`Compared`] from its runs' samples and I/O delays (in µs,
/// every run's together); ratios are to `bridges[0]`.
fn summarise(
    bridges: &[Bridge],
    samples: Vec<Vec<Sample>>,
    mut delays: Vec<Vec<f64>>,
) -> Vec<Compared> {
    let reference = samples[0].clone();
    let pooled: Vec<(f64, f64)> = delays
        .iter_mut()
        .map(|d| (percentile(d, 0.50), percentile(d, 0.99)))
        .collect();
    bridges
        .iter()
        .zip(samples)
        .zip(&pooled)
        .map(|((&bridge, runs), &(p50, p99))| {
            let median_of = |figure: fn(&Sample) -> f64, divide: bool| {
                let mut values: Vec<f64> = runs
                    .iter()
                    .zip(&reference)
                    .map(|(s, r)| {
                        if divide {
                            ratio(figure(s), figure(r))
                        } else {
                            figure(s)
                        }
                    })
                    .collect();
                median(&mut values).unwrap_or(0.0)
            };
            let summary = |divide, (io_p50_us, io_p99_us)| Sample {
                jobs_per_s: median_of(|s| s.jobs_per_s, divide),
                cpu_us_per_job: median_of(|s| s.cpu_us_per_job, divide),
                io_p50_us,
                io_p99_us,
                poll_p999_us: median_of(|s| s.poll_p999_us, divide),
                longest_poll_us: median_of(|s| s.longest_poll_us, divide),
                same_cpu_pct: median_of(|s| s.same_cpu_pct, divide),
                idle_pct: median_of(|s| s.idle_pct, divide),
                allocs_per_job: median_of(|s| s.allocs_per_job, divide),
            };
            let (ref_p50, ref_p99) = pooled[0];
            Compared {
                bridge,
                median: summary(false, (p50, p99)),
                ratio: summary(true, (ratio(p50, ref_p50), ratio(p99, ref_p99))),
                runs,
            }
        })
        .collect()
}

/// `a / b`, or 1 when both are zero and infinity when only `b` is.
fn ratio(a: f64, b: f64) -> f64 {
    match (a == 0.0, b == 0.0) {
        (true, true) => 1.0,
        (false, true) => f64::INFINITY,
        _ => a / b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_times_give_bucket_edges() {
        let mut times = PollTimes::new();
        for _ in 0..999 {
            times.record(Duration::from_nanos(500));
        }
        times.record(Duration::from_millis(3));
        assert_eq!(times.quantile_us(0.5), 1.0);
        assert_eq!(times.quantile_us(0.999), 1.0);
        assert_eq!(
            times.quantile_us(1.0),
            POLL_BUCKETS as f64,
            "past the last edge"
        );
        assert_eq!(times.longest_ns, 3_000_000);
    }

    #[test]
    fn io_percentiles_pool_every_runs_delays() {
        // Per run, the I/O percentiles the samples carry are left aside:
        // the summary takes them over the delays of all runs together.
        let run = |jobs_per_s| Sample {
            jobs_per_s,
            io_p50_us: 999.0,
            io_p99_us: 999.0,
            ..Sample::default()
        };
        // The reference: 300 delays of 10 µs and three of 500 µs, one per
        // run, so each run's p99 alone would be 500 µs.
        let quiet: Vec<f64> = (0..3)
            .flat_map(|_| std::iter::repeat_n(10.0, 100).chain([500.0]))
            .collect();
        // The other bridge: 20 µs, and 40 µs for the slowest 2 in 100.
        let slower: Vec<f64> = (0..300)
            .map(|i| if i % 50 == 0 { 40.0 } else { 20.0 })
            .collect();
        let compared = summarise(
            &[Bridge::Naive, Bridge::Ours],
            vec![
                vec![run(1.0), run(2.0), run(3.0)],
                vec![run(2.0), run(2.0), run(9.0)],
            ],
            vec![quiet, slower],
        );
        let (naive, ours) = (&compared[0], &compared[1]);
        assert_eq!(
            (naive.median.io_p50_us, naive.median.io_p99_us),
            (10.0, 10.0)
        );
        assert_eq!((ours.median.io_p50_us, ours.median.io_p99_us), (20.0, 40.0));
        assert_eq!((ours.ratio.io_p50_us, ours.ratio.io_p99_us), (2.0, 4.0));
        assert_eq!(naive.ratio.io_p99_us, 1.0);
        // The other figures stay medians of run-by-run values.
        assert_eq!(ours.median.jobs_per_s, 2.0);
        assert_eq!(ours.ratio.jobs_per_s, 2.0);
    }

    #[test]
    fn ratios_of_zero_are_defined() {
        assert_eq!(ratio(0.0, 0.0), 1.0);
        assert_eq!(ratio(1.0, 0.0), f64::INFINITY);
        assert_eq!(ratio(3.0, 2.0), 1.5);
    }
}
