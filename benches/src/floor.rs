//! The machine's floor: what it costs here to hand a job from one plain
//! thread to another and get the answer back, with no runtime, no pool and
//! no channel in between (two counters, or a mutex and two condvars).
//!
//! No bridge can do better than this on the same machine with the same kind
//! of waiting, so the cost report prints it beside the bridges: a bridge's
//! figure is then read against what the hardware (here, a virtual machine)
//! charges for the hand-off itself. Two kinds of waiting:
//!
//! - [`Wait::Spin`]: both threads stay awake and watch a counter (the limit
//!   of any busy-waiting hand-off);
//! - [`Wait::Sleep`]: both threads sleep on a condvar and wake each other, as
//!   any bridge must for a job too long to spin through. On a virtual
//!   machine each wake-up of a thread whose CPU went idle is expensive for
//!   the waker as well as for the woken thread, which is what the CPU per
//!   job shows.
//!
//! and three placements ([`Placement`]): wherever the kernel puts them, pinned
//! to two different CPUs, or pinned together on one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cpu::{current_cpu, thread_cpu_time};
use crate::job::timed_spin;
use crate::oneshots::relax;
use compute_test_support::median;

/// How the two threads wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Busy-wait on a counter (with a yield every 64 checks, see [`relax`]).
    Spin,
    /// Sleep on a condvar until woken.
    Sleep,
}

impl Wait {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Sleep => "sleep",
        }
    }
}

/// Where the two threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the kernel puts them.
    Free,
    /// Pinned to two different CPUs.
    Apart,
    /// Both pinned to one CPU.
    Together,
}

impl Placement {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Free => "free",
            Placement::Apart => "apart",
            Placement::Together => "together",
        }
    }
}

/// What one series of hand-offs cost.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorCost {
    /// Round trip per job (submit to answer), median.
    pub wall_p50: Duration,
    /// Round trip less the job's own run time (measured on the thread that
    /// ran it), median.
    pub added_p50: Duration,
    /// CPU time of both threads together, per job (the job included).
    pub cpu_per_job: Duration,
    /// Where the submitting and the working thread ran when the timed jobs
    /// began (`sched_getcpu`, if the system says): pinned threads stay
    /// there; free ones may move later.
    pub cpus: (Option<u32>, Option<u32>),
}

/// Hands `jobs` jobs of `job` (busy, on the CPU) one at a time from one
/// thread to another and back, waiting as `wait` says, placed as `placement`
/// says; `None` when the placement cannot be had (fewer than two
/// [`allowed_cpus`] for [`Placement::Apart`], none known for a pinned
/// placement, or pinning refused).
///
/// ```
/// use std::time::Duration;
/// use compute_benches::floor::{hand_off, Placement, Wait};
/// let job = Duration::from_micros(50);
/// let cost = hand_off(Wait::Sleep, Placement::Free, job, 20).unwrap();
/// // Each round trip holds a whole job, and the job's own time is taken out.
/// assert!(cost.wall_p50 >= job);
/// assert!(cost.added_p50 < cost.wall_p50);
/// ```
pub fn hand_off(wait: Wait, placement: Placement, job: Duration, jobs: u32) -> Option<FloorCost> {
    let cpus = allowed_cpus();
    let (submitter_cpu, worker_cpu) = match placement {
        Placement::Free => (None, None),
        Placement::Apart => (Some(*cpus.first()?), Some(*cpus.get(1)?)),
        Placement::Together => (Some(*cpus.first()?), Some(*cpus.first()?)),
    };
    let line = Arc::new(Line::default());
    // Both threads pin themselves, then meet here; if either could not, both
    // give up.
    let ready = Arc::new(Barrier::new(2));
    let worker = {
        let (line, ready) = (Arc::clone(&line), Arc::clone(&ready));
        std::thread::Builder::new()
            .name("floor-worker".to_owned())
            .spawn(move || {
                line.pinned(worker_cpu);
                ready.wait();
                line.all_pinned()
                    .then(|| (serve(&line, wait, job, jobs), current_cpu()))
            })
            .expect("spawn the floor's worker thread")
    };
    let submitter = std::thread::Builder::new()
        .name("floor-submitter".to_owned())
        .spawn(move || {
            line.pinned(submitter_cpu);
            ready.wait();
            // The worker is told to stop however this thread leaves, so a
            // panic here does not leave it waiting for ever.
            let _stop = StopOnDrop(&line, wait);
            line.all_pinned()
                .then(|| (submit(&line, wait, jobs), current_cpu()))
        })
        .expect("spawn the floor's submitting thread");
    let measured = submitter
        .join()
        .expect("the floor's submitter does not panic");
    let worker_cpu_time = worker.join().expect("the floor's worker does not panic");
    let (
        ((mut walls, mut added, submitter_cpu_time), submitter_ran_on),
        (worker_cpu_time, worker_ran_on),
    ) = (measured?, worker_cpu_time?);
    let cpu = submitter_cpu_time + worker_cpu_time;
    Some(FloorCost {
        wall_p50: p50_of_micros(&mut walls),
        added_p50: p50_of_micros(&mut added),
        cpu_per_job: cpu / jobs.max(1),
        cpus: (submitter_ran_on, worker_ran_on),
    })
}

/// The request and the answer (each on its own cache line, so the two sides
/// do not share one; the answer's line also carries the job's run time, as
/// a real result would travel with its answer), and the sleepers' condvars.
#[derive(Default)]
struct Line {
    request: Padded,
    answer: Answer,
    /// Set when a thread could not be pinned where the placement says.
    pin_refused: AtomicBool,
    /// For [`Wait::Sleep`]: (request, answer) under one mutex.
    counts: Mutex<(u64, u64)>,
    to_worker: Condvar,
    to_submitter: Condvar,
}

#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

#[derive(Default)]
#[repr(align(128))]
struct Answer {
    /// The number of the last request answered (for [`Wait::Spin`]).
    number: AtomicU64,
    /// Nanoseconds the last job ran, written before its answer.
    ran_ns: AtomicU64,
}

/// Tells the worker to stop when dropped.
struct StopOnDrop<'a>(&'a Line, Wait);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop(self.1);
    }
}

/// The request number that tells the worker to stop.
const STOP: u64 = u64::MAX;

impl Line {
    /// Pins the calling thread to `cpu` (if any), noting a refusal.
    fn pinned(&self, cpu: Option<usize>) {
        if !cpu.is_none_or(pin_to) {
            // ORDERING: Relaxed: read after the barrier both threads pass,
            // which orders it.
            self.pin_refused.store(true, Ordering::Relaxed);
        }
    }

    /// After the barrier: whether both threads sit where they should.
    fn all_pinned(&self) -> bool {
        // ORDERING: Relaxed, see `pinned`.
        !self.pin_refused.load(Ordering::Relaxed)
    }

    fn stop(&self, wait: Wait) {
        match wait {
            // ORDERING: Release, as every request (see `submit`).
            Wait::Spin => self.request.0.store(STOP, Ordering::Release),
            Wait::Sleep => {
                self.lock().0 = STOP;
                self.to_worker.notify_one();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hand-offs before the timed ones: the first pay for thread start-up and
/// cold caches.
fn warm_up(jobs: u32) -> u64 {
    u64::from(jobs / 10).clamp(1, 100)
}

/// The submitting side: [`warm_up`] jobs not timed, then `jobs` timed
/// ones. Returns the round trips and the added times (in µs), and this
/// thread's CPU time over the timed jobs.
fn submit(line: &Line, wait: Wait, jobs: u32) -> (Vec<f64>, Vec<f64>, Duration) {
    let mut next = 0u64;
    let mut round_trip = |line: &Line| {
        next += 1;
        let started = Instant::now();
        match wait {
            Wait::Spin => {
                // ORDERING: Release, paired with the worker's Acquire
                // load: the job is fixed, so the count is all it carries,
                // but a real hand-off publishes its job this way.
                line.request.0.store(next, Ordering::Release);
                let mut idle = 0;
                // ORDERING: Acquire: pairs with the worker's Release store
                // of the answer, so `ran_ns` is the job's.
                while line.answer.number.load(Ordering::Acquire) != next {
                    relax(&mut idle);
                }
            }
            Wait::Sleep => {
                line.lock().0 = next;
                line.to_worker.notify_one();
                let mut counts = line.lock();
                while counts.1 != next {
                    counts = line
                        .to_submitter
                        .wait(counts)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        let wall = started.elapsed();
        // ORDERING: Relaxed: written before the answer was published
        // (Release), read after it was seen (Acquire, or the mutex).
        let ran = Duration::from_nanos(line.answer.ran_ns.load(Ordering::Relaxed));
        (wall, wall.saturating_sub(ran))
    };
    for _ in 0..warm_up(jobs) {
        round_trip(line);
    }
    let cpu = thread_cpu_time();
    let mut walls = Vec::with_capacity(jobs as usize);
    let mut added = Vec::with_capacity(jobs as usize);
    for _ in 0..jobs {
        let (wall, add) = round_trip(line);
        walls.push(wall.as_secs_f64() * 1e6);
        added.push(add.as_secs_f64() * 1e6);
    }
    (walls, added, thread_cpu_time() - cpu)
}

/// The worker's side: runs a `job` for every request until told to stop;
/// returns its CPU time over the timed jobs (from the end of the warm-up to
/// its answer to the last one, the submitter's window too).
fn serve(line: &Line, wait: Wait, job: Duration, jobs: u32) -> Duration {
    let warm_up = warm_up(jobs);
    let last = warm_up + u64::from(jobs);
    let mut served = 0u64;
    let mut started = thread_cpu_time();
    let mut spent = Duration::ZERO;
    loop {
        let request = match wait {
            Wait::Spin => {
                let mut idle = 0;
                loop {
                    // ORDERING: Acquire, paired with the submitter's Release.
                    let request = line.request.0.load(Ordering::Acquire);
                    if request != served {
                        break request;
                    }
                    relax(&mut idle);
                }
            }
            Wait::Sleep => {
                let mut counts = line.lock();
                while counts.0 == served {
                    counts = line
                        .to_worker
                        .wait(counts)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                counts.0
            }
        };
        if request == STOP {
            return spent;
        }
        let ran = timed_spin(job);
        // ORDERING: Relaxed: published by the answer below.
        line.answer.ran_ns.store(
            u64::try_from(ran.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match wait {
            // ORDERING: Release: `ran_ns` is seen with the answer.
            Wait::Spin => line.answer.number.store(request, Ordering::Release),
            Wait::Sleep => {
                line.lock().1 = request;
                line.to_submitter.notify_one();
            }
        }
        served = request;
        if served == warm_up {
            started = thread_cpu_time();
        } else if served == last {
            spent = thread_cpu_time() - started;
        }
    }
}

/// The CPUs the calling thread may run on (its affinity mask, which the
/// threads it spawns inherit), lowest first; empty if the system does not
/// say. [`hand_off`] picks its CPUs from these.
///
/// ```
/// let cpus = compute_benches::floor::allowed_cpus();
/// if let Some(now) = compute_benches::cpu::current_cpu() {
///     assert!(cpus.contains(&(now as usize)));
/// }
/// ```
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread (and the threads it spawns from then on) to
/// `cpu`; whether that worked.
///
/// ```
/// use compute_benches::{cpu::current_cpu, floor::{allowed_cpus, pin_to}};
/// std::thread::spawn(|| {
///     let cpu = allowed_cpus()[0];
///     assert!(pin_to(cpu));
///     assert_eq!(current_cpu(), Some(cpu as u32));
/// })
/// .join()
/// .unwrap();
/// ```
pub fn pin_to(cpu: usize) -> bool {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t; libc's CPU_SET checks that `cpu`
    // is inside it (it panics otherwise).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == 0 }
}

/// The median of `samples` in microseconds, as a duration (zero if none).
fn p50_of_micros(samples: &mut [f64]) -> Duration {
    Duration::from_secs_f64(median(samples).unwrap_or(0.0) / 1e6)
}
