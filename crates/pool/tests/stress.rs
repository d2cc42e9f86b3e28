//! Stress: 64 async tasks push a large number of jobs through one pool,
//! mixing every way to submit (`execute`, `execute_scoped`, `join`,
//! `par_map`, and `execute_sync` from `spawn_blocking`) with faults: a
//! seeded share of jobs is dropped before or during its run, timed out,
//! panics, or returns a result whose `Drop` panics.
//!
//! Checked, job by job (per-job counters indexed by job id):
//! - every job that was not cancelled ran exactly once (each of its parts:
//!   the scope's spawns, both sides of a join, every item of a par_map);
//! - every result (value or panic) reached its awaiter exactly once, and a
//!   panic carries its own job's payload;
//! - every cancelled job ran at most once (all of its parts, or none);
//! - every result value was dropped exactly once, wherever it ended up;
//! - the pool's metrics agree: `tasks_active` returns to 0, the totals add
//!   up, panics and contained result-drop panics are counted exactly;
//! - a counting global allocator shows live bytes back where they started
//!   once the pool and the runtime are gone (see `WARM_SLACK`), and a peak
//!   that does not grow with the job count;
//! - a watchdog turns any hang into a failure.
//!
//! Rounds: two small warm-up rounds (unbounded, and with `max_in_flight =
//! 64`), then the measured round without a limit, then one with
//! `max_in_flight = 64` and a quarter of the jobs (512 submitted at a time,
//! so cancellations and timeouts also hit jobs waiting in the pool's queue).
//!
//! Size: `STRESS_JOBS` (default 1 000 000, about 10 s for the whole test in
//! a debug build on 2 cores); `STRESS_SOAK=1` makes it 10 000 000 with a 30-minute watchdog,
//! and `STRESS_ROUNDS=n` repeats the round with fresh seeds (memory must not
//! creep between rounds); `COMPUTE_TEST_SCALE` multiplies the job count (the
//! memcheck step shrinks it under valgrind); `STRESS_SEED` picks the plan;
//! `STRESS_WATCHDOG_SECS` overrides the watchdog (default 300 s). Run with
//! `--nocapture` to see the figures.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod reliability_common;

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compute_pool::{ComputeConfig, ComputeError, ComputePool, TaskHandle};
use compute_test_support::alloc::{Counting, Snapshot};
use compute_test_support::{scaled, test_scale};
use reliability_common::{env_flag, env_u64, os_threads, wait_for_threads, Watchdog, XorShift};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Async tasks submitting concurrently.
const TASKS: usize = 64;
/// Jobs a task has in flight at once (submitted together, then awaited).
const BATCH: usize = 8;
/// Jobs in the default (CI) run: about 6 s in a debug build on 2 cores.
const DEFAULT_JOBS: u64 = 1_000_000;
/// Jobs per round in the soak (`STRESS_SOAK=1`).
const SOAK_JOBS: u64 = 10_000_000;
/// `max_in_flight` of the bounded round.
const MAX_IN_FLIGHT: usize = 64;
/// The bounded round runs this fraction (1/n) of the jobs.
const BOUNDED_SHARE: usize = 4;
/// Jobs in the warm-up round that initialises process-wide lazy state
/// before the measured round takes its memory baseline.
const WARMUP_JOBS: u64 = 4_000;

/// Live bytes a measured round may leave behind after the pool and the
/// runtime are gone and their threads have exited. What can remain is not
/// per job: crossbeam-epoch (rayon's deques) frees retired deque buffers
/// lazily, and the first use of a lazily-initialised thread-local on the
/// test thread allocates once. Measured (docs/reliability.md): after the two
/// warm-up rounds, +128 bytes per measured round (the test's own
/// bookkeeping) whether it runs 20 000, 1 000 000 or 10 000 000 jobs, with
/// the starting figure unchanged from round to round; the first round after
/// a single warm-up kept +8.9 to +13 KB. The bound leaves room for a few
/// retired deque buffers and never grows with the job count.
const WARM_SLACK: isize = 64 * 1024;
/// Bound on the peak of live bytes during a round, above its start. Jobs in
/// flight are bounded (64 tasks x 8), so the peak must not grow with the
/// job count. Measured: about 360 KB at 1 000 000 jobs and at 10 000 000.
const PEAK_BOUND: isize = 16 << 20;
/// The same bound for the cold warm-up round, which also pays for
/// process-wide lazy statics (tokio's and tracing's globals, the
/// crossbeam-epoch collector, std's per-thread destructor list).
const COLD_SLACK: isize = 512 * 1024;

// A job's plan: one byte.
const KIND_MASK: u8 = 0b111;
const EXECUTE: u8 = 0;
const SCOPED: u8 = 1;
const JOIN: u8 = 2;
const PAR_MAP: u8 = 3;
const SYNC: u8 = 4;
const KINDS: [&str; 5] = [
    "execute",
    "execute_scoped",
    "join",
    "par_map",
    "execute_sync",
];

const CANCEL_SHIFT: u8 = 3;
const CANCEL_MASK: u8 = 0b11 << CANCEL_SHIFT;
const KEEP: u8 = 0;
const DROP_BEFORE: u8 = 1;
const DROP_DURING: u8 = 2;
const TIMEOUT: u8 = 3;
const CANCELS: [&str; 4] = [
    "awaited",
    "dropped at once",
    "dropped while running",
    "timed out",
];

const PANICS: u8 = 1 << 5;
const ARMED: u8 = 1 << 6;

// What the awaiter saw.
const NOTHING: u8 = 0;
const GOT_VALUE: u8 = 1;
const GOT_PANIC: u8 = 2;
const ABANDONED: u8 = 3;
const WRONG: u8 = 4;

// Handshake of a job dropped while running.
const HS_STARTED: u8 = 1;
const HS_DROPPED: u8 = 2;

fn kind(plan: u8) -> u8 {
    plan & KIND_MASK
}
fn cancel(plan: u8) -> u8 {
    (plan & CANCEL_MASK) >> CANCEL_SHIFT
}

/// Parts of a job, each counted in its own 2-bit field of `ran`, so a part
/// that runs twice shows as a 2 in its field.
fn parts(kind: u8) -> u32 {
    match kind {
        SCOPED => 3,  // the scope body and two scope.spawn
        JOIN => 2,    // both sides
        PAR_MAP => 3, // three items
        _ => 1,
    }
}
/// `ran` once every part ran exactly once.
fn all_parts(kind: u8) -> u8 {
    (0..parts(kind)).map(|i| 1u8 << (2 * i)).sum()
}
/// Result values a job makes when it does not panic.
fn values(kind: u8) -> u8 {
    match kind {
        JOIN => 2,
        PAR_MAP => 3,
        _ => 1,
    }
}

/// The panic payload of a planned panic.
struct StressPanic(u32);
/// The panic payload of a result whose `Drop` panics.
struct DropPanic;

/// Per-job counters, and totals.
struct Book {
    plan: Vec<u8>,
    ran: Vec<AtomicU8>,
    received: Vec<AtomicU8>,
    made: Vec<AtomicU8>,
    dropped: Vec<AtomicU8>,
    outcome: Vec<AtomicU8>,
    handshake: Vec<AtomicU8>,
    /// Armed values dropped (each panicked), and how many of those drops
    /// happened on a compute thread.
    armed_drops: AtomicU64,
    armed_drops_on_pool: AtomicU64,
    /// Armed values the awaiter received and dropped itself.
    caught_by_awaiter: AtomicU64,
    /// Panics that came out of dropping a `TaskHandle` (must stay 0).
    handle_drop_panics: AtomicU64,
    /// A value found armed while its thread was already unwinding (must stay 0).
    drop_while_panicking: AtomicU64,
    /// Jobs the awaiters are done with (progress, for the watchdog).
    settled: AtomicU64,
    errors: Mutex<Vec<String>>,
    pool_prefix: String,
}

impl Book {
    fn new(jobs: usize, seed: u64, pool_prefix: &str) -> Book {
        let mut rng = XorShift::new(seed);
        let plan = (0..jobs)
            .map(|_| {
                let kind = match rng.below(100) {
                    0..=34 => EXECUTE,
                    35..=52 => SCOPED,
                    53..=70 => JOIN,
                    71..=88 => PAR_MAP,
                    _ => SYNC,
                };
                // execute_sync blocks its caller: it cannot be dropped or timed out.
                let cancel = if kind == SYNC {
                    KEEP
                } else {
                    match rng.below(1000) {
                        0..=59 => DROP_BEFORE,
                        60..=89 => DROP_DURING,
                        90..=159 => TIMEOUT,
                        _ => KEEP,
                    }
                };
                // A job panics, or its value's Drop does; never both (a
                // panic while unwinding would abort the process).
                let fault = match rng.below(1000) {
                    0..=59 => PANICS,
                    60..=139 => ARMED,
                    _ => 0,
                };
                kind | (cancel << CANCEL_SHIFT) | fault
            })
            .collect();
        let counters = || (0..jobs).map(|_| AtomicU8::new(0)).collect::<Vec<_>>();
        Book {
            plan,
            ran: counters(),
            received: counters(),
            made: counters(),
            dropped: counters(),
            outcome: counters(),
            handshake: counters(),
            armed_drops: AtomicU64::new(0),
            armed_drops_on_pool: AtomicU64::new(0),
            caught_by_awaiter: AtomicU64::new(0),
            handle_drop_panics: AtomicU64::new(0),
            drop_while_panicking: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            pool_prefix: format!("{pool_prefix}-"),
        }
    }

    fn error(&self, message: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(message);
        }
    }

    /// Part `part` of job `id` runs.
    fn part(&self, id: u32, part: u32) {
        // ORDERING: Relaxed for every per-job counter: each is read only
        // after all threads that touch it were joined (or the pool's
        // threads exited, which the check waits for).
        self.ran[id as usize].fetch_add(1 << (2 * part), Ordering::Relaxed);
    }

    fn value(self: &Arc<Self>, id: u32, armed: bool) -> Value {
        // ORDERING: Relaxed: see `part`.
        self.made[id as usize].fetch_add(1, Ordering::Relaxed);
        Value {
            id,
            armed,
            book: self.clone(),
        }
    }
}

/// A job's result value: counts its drop; an armed one panics in `Drop`.
struct Value {
    id: u32,
    armed: bool,
    book: Arc<Book>,
}

impl Drop for Value {
    fn drop(&mut self) {
        let book = &self.book;
        // ORDERING: Relaxed: see `Book::part`.
        book.dropped[self.id as usize].fetch_add(1, Ordering::Relaxed);
        if !self.armed {
            return;
        }
        if std::thread::panicking() {
            // ORDERING: Relaxed: a tally checked at the end.
            book.drop_while_panicking.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // ORDERING: Relaxed: tallies checked at the end.
        book.armed_drops.fetch_add(1, Ordering::Relaxed);
        let thread = std::thread::current();
        if thread
            .name()
            .is_some_and(|n| n.starts_with(&book.pool_prefix))
        {
            // ORDERING: Relaxed: a tally.
            book.armed_drops_on_pool.fetch_add(1, Ordering::Relaxed);
        }
        std::panic::panic_any(DropPanic);
    }
}

/// Something that holds `Value`s: what each kind of job resolves to.
trait Values: Send + 'static {
    fn ids(&self) -> Vec<u32>;
}
impl Values for Value {
    fn ids(&self) -> Vec<u32> {
        vec![self.id]
    }
}
impl Values for (Value, Value) {
    fn ids(&self) -> Vec<u32> {
        vec![self.0.id, self.1.id]
    }
}
impl Values for Vec<Value> {
    fn ids(&self) -> Vec<u32> {
        self.iter().map(|v| v.id).collect()
    }
}

/// The awaiter got a result: check it belongs to `id`, count it, drop it.
fn received<V: Values>(book: &Book, id: u32, result: Result<V, ComputeError>) {
    let i = id as usize;
    // ORDERING: Relaxed: see `Book::part`.
    book.received[i].fetch_add(1, Ordering::Relaxed);
    let outcome = match result {
        Ok(value) => {
            let ids = value.ids();
            let expected = values(kind(book.plan[i])) as usize;
            if ids.len() != expected || ids.iter().any(|&got| got != id) {
                book.error(format!("job {id}: got values of jobs {ids:?}"));
                WRONG
            } else {
                if catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
                    // ORDERING: Relaxed: a tally.
                    book.caught_by_awaiter.fetch_add(1, Ordering::Relaxed);
                }
                GOT_VALUE
            }
        }
        Err(err) if err.is_panic() => {
            let payload: Box<dyn Any + Send> = err.into_panic().expect("is_panic");
            match payload.downcast_ref::<StressPanic>() {
                Some(StressPanic(got)) if *got == id => GOT_PANIC,
                Some(StressPanic(got)) => {
                    book.error(format!("job {id}: got the panic of job {got}"));
                    WRONG
                }
                None => {
                    book.error(format!("job {id}: a panic with a foreign payload"));
                    WRONG
                }
            }
        }
        Err(err) => {
            book.error(format!("job {id}: unexpected error {err}"));
            WRONG
        }
    };
    // ORDERING: Relaxed: see `Book::part`.
    book.outcome[i].store(outcome, Ordering::Relaxed);
}

/// The awaiter gives up on the job: drop its handle; that must not panic.
fn abandon<R>(book: &Book, id: u32, handle: TaskHandle<R>) {
    if catch_unwind(AssertUnwindSafe(move || drop(handle))).is_err() {
        // ORDERING: Relaxed: a tally.
        book.handle_drop_panics.fetch_add(1, Ordering::Relaxed);
        book.error(format!("job {id}: dropping its handle panicked"));
    }
    // ORDERING: Relaxed: see `Book::part`.
    book.outcome[id as usize].store(ABANDONED, Ordering::Relaxed);
}

/// Awaits (or drops, or times out) one handle as the plan says.
async fn settle<V: Values>(book: &Arc<Book>, id: u32, mut handle: TaskHandle<V>) {
    let plan = book.plan[id as usize];
    match cancel(plan) {
        KEEP => received(book, id, handle.await),
        DROP_BEFORE => abandon(book, id, handle),
        DROP_DURING => {
            if kind(plan) == EXECUTE {
                // The job waits for this handshake, so the handle really is
                // dropped while the job runs.
                // ORDERING: Acquire/Release: the handshake orders the drop
                // after the job's start; nothing else depends on it.
                while book.handshake[id as usize].load(Ordering::Acquire) != HS_STARTED
                    && !handle.is_finished()
                {
                    tokio::task::yield_now().await;
                }
                abandon(book, id, handle);
                // ORDERING: Release: see above.
                book.handshake[id as usize].store(HS_DROPPED, Ordering::Release);
            } else {
                tokio::task::yield_now().await;
                abandon(book, id, handle);
            }
        }
        _ => {
            let limit = Duration::from_micros(u64::from(id).wrapping_mul(7919) % 2_000);
            match tokio::time::timeout(limit, &mut handle).await {
                Ok(result) => {
                    received(book, id, result);
                    drop(handle);
                }
                Err(_elapsed) => abandon(book, id, handle),
            }
        }
    }
    // ORDERING: Relaxed: progress only.
    book.settled.fetch_add(1, Ordering::Relaxed);
}

/// A job dropped while running waits (boundedly) for its handle to go.
fn wait_for_drop(book: &Book, id: u32) {
    let i = id as usize;
    // ORDERING: Release/Acquire: see `settle`.
    book.handshake[i].store(HS_STARTED, Ordering::Release);
    let give_up = Instant::now() + Duration::from_secs(2);
    // ORDERING: Acquire: see `settle`.
    while book.handshake[i].load(Ordering::Acquire) != HS_DROPPED && Instant::now() < give_up {
        std::thread::yield_now();
    }
}

fn maybe_panic(id: u32, plan: u8) {
    if plan & PANICS != 0 {
        std::panic::panic_any(StressPanic(id));
    }
}

/// Submits job `id` as planned and settles it.
async fn run_job(pool: ComputePool, book: Arc<Book>, id: u32) {
    let plan = book.plan[id as usize];
    let armed = plan & ARMED != 0;
    let b = book.clone();
    match kind(plan) {
        EXECUTE => {
            let handle = pool.execute(move || {
                b.part(id, 0);
                if cancel(plan) == DROP_DURING {
                    wait_for_drop(&b, id);
                }
                maybe_panic(id, plan);
                b.value(id, armed)
            });
            settle(&book, id, handle).await;
        }
        SCOPED => {
            let handle = pool.execute_scoped(move |scope| {
                b.part(id, 0);
                let b1 = b.clone();
                scope.spawn(move |_| b1.part(id, 1));
                let b2 = b.clone();
                scope.spawn(move |_| {
                    b2.part(id, 2);
                    maybe_panic(id, plan);
                });
                b.value(id, armed)
            });
            settle(&book, id, handle).await;
        }
        JOIN => {
            let b2 = b.clone();
            let handle = pool.join(
                move || {
                    b.part(id, 0);
                    b.value(id, armed)
                },
                move || {
                    b2.part(id, 1);
                    maybe_panic(id, plan);
                    b2.value(id, false)
                },
            );
            settle(&book, id, handle).await;
        }
        PAR_MAP => {
            let handle = pool.par_map(vec![0u32, 1, 2], move |item| {
                b.part(id, item);
                if item == 2 {
                    maybe_panic(id, plan);
                }
                b.value(id, armed && item == 0)
            });
            settle(&book, id, handle).await;
        }
        _ => {
            let result = tokio::task::spawn_blocking(move || {
                // Borrowed by the job: execute_sync's closure need not be 'static.
                let local = [id; 4];
                pool.execute_sync(|| {
                    assert_eq!(
                        local.iter().map(|&x| u64::from(x)).sum::<u64>(),
                        4 * u64::from(id)
                    );
                    b.part(id, 0);
                    maybe_panic(id, plan);
                    b.value(id, armed)
                })
            })
            .await
            .expect("the spawn_blocking task itself does not panic");
            received(&book, id, result);
            // ORDERING: Relaxed: progress only.
            book.settled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Figures of one round, printed at the end.
#[derive(Debug)]
struct Round {
    jobs: usize,
    elapsed: Duration,
    live_before: isize,
    live_after: isize,
    peak: isize,
    by_kind: [u64; 5],
    by_cancel: [u64; 4],
    panics: u64,
    armed: u64,
    cancelled: u64,
    drop_panics_in_pool: u64,
    drop_panics_on_compute_threads: u64,
    drop_panics_at_awaiter: u64,
}

/// One full round: fresh runtime and pool (with `max_in_flight`), `jobs`
/// jobs, every check.
fn round(
    jobs: usize,
    seed: u64,
    max_in_flight: Option<usize>,
    slack: isize,
    watchdog: Duration,
) -> Round {
    let book = Arc::new(Book::new(jobs, seed, "stress"));
    let progress = {
        let book = book.clone();
        move || {
            format!(
                "{} of {} jobs settled",
                // ORDERING: Relaxed: progress only.
                book.settled.load(Ordering::Relaxed),
                book.plan.len()
            )
        }
    };
    let _watchdog = Watchdog::arm("stress round", watchdog, progress);

    let threads_before = os_threads();
    let live_before = Snapshot::now().live;
    Counting::reset_peak();
    let started = Instant::now();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        thread_name_prefix: "stress".into(),
        max_in_flight,
        ..Default::default()
    })
    .expect("pool");

    runtime.block_on(async {
        let mut tasks = Vec::with_capacity(TASKS);
        for t in 0..TASKS {
            let (pool, book) = (pool.clone(), book.clone());
            let ids = (t * jobs / TASKS) as u32..((t + 1) * jobs / TASKS) as u32;
            tasks.push(tokio::spawn(async move {
                let mut next = ids.start;
                while next < ids.end {
                    let batch = next..ids.end.min(next + BATCH as u32);
                    next = batch.end;
                    futures::future::join_all(
                        batch.map(|id| run_job(pool.clone(), book.clone(), id)),
                    )
                    .await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("a submitting task panicked");
        }
    });

    // Jobs whose handles were dropped may still be running: wait for them.
    while pool.metrics().tasks_active() != 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let metrics = pool.metrics();
    let elapsed = started.elapsed();
    drop(pool);
    drop(runtime);
    let threads_after = threads_before.and_then(|n| wait_for_threads(n, Duration::from_secs(30)));
    let Snapshot {
        live: live_after,
        peak,
        ..
    } = Snapshot::now();

    // Every thread that touched the book is gone: the counters are final.
    let errors = book.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "wrong results: {errors:#?}");
    assert_eq!(
        threads_after, threads_before,
        "the pool's and runtime's threads exited"
    );
    let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
    assert_eq!(
        load(&book.handle_drop_panics),
        0,
        "dropping a handle never panics"
    );
    assert_eq!(
        load(&book.drop_while_panicking),
        0,
        "test bug: armed value dropped while unwinding"
    );

    let mut r = Round {
        jobs,
        elapsed,
        live_before,
        live_after,
        peak,
        by_kind: [0; 5],
        by_cancel: [0; 4],
        panics: 0,
        armed: 0,
        cancelled: 0,
        drop_panics_in_pool: metrics.result_drop_panics(),
        drop_panics_on_compute_threads: load(&book.armed_drops_on_pool),
        drop_panics_at_awaiter: load(&book.caught_by_awaiter),
    };
    let mut panicked_runs = 0u64;
    for (i, &plan) in book.plan.iter().enumerate() {
        let ld = |v: &Vec<AtomicU8>| v[i].load(Ordering::Relaxed);
        let (ran, got, made, dropped, outcome) = (
            ld(&book.ran),
            ld(&book.received),
            ld(&book.made),
            ld(&book.dropped),
            ld(&book.outcome),
        );
        let k = kind(plan);
        r.by_kind[k as usize] += 1;
        r.by_cancel[cancel(plan) as usize] += 1;
        r.panics += u64::from(plan & PANICS != 0);
        r.armed += u64::from(plan & ARMED != 0);
        let what = format!(
            "job {i} ({}, {}, plan {plan:#010b}): ran {ran:#010b}, received {got}, values made {made} dropped {dropped}, outcome {outcome}",
            KINDS[k as usize],
            CANCELS[cancel(plan) as usize]
        );
        assert_eq!(made, dropped, "every value is dropped exactly once: {what}");
        assert!(
            ran == 0 || ran == all_parts(k),
            "all of a job's parts ran exactly once, or none: {what}"
        );
        if ran == 0 {
            r.cancelled += 1;
        } else if plan & PANICS != 0 {
            panicked_runs += 1;
        }
        match outcome {
            GOT_VALUE | GOT_PANIC => {
                assert_eq!(
                    got, 1,
                    "the result reached its awaiter exactly once: {what}"
                );
                assert_eq!(ran, all_parts(k), "a delivered job ran: {what}");
                let expected = if plan & PANICS != 0 {
                    GOT_PANIC
                } else {
                    GOT_VALUE
                };
                assert_eq!(outcome, expected, "the result is the planned one: {what}");
                if outcome == GOT_VALUE {
                    assert_eq!(
                        made,
                        values(k),
                        "a delivered job made all its values: {what}"
                    );
                }
            }
            ABANDONED => {
                assert_ne!(cancel(plan), KEEP, "only planned cancellations: {what}");
                assert_eq!(got, 0, "an abandoned job delivered nothing: {what}");
            }
            NOTHING => panic!("every awaiter settled its job: {what}"),
            _ => panic!("an awaiter saw a wrong result: {what}"),
        }
    }

    // The pool's own accounting agrees with what the jobs saw.
    assert_eq!(metrics.tasks_active(), 0, "{metrics}");
    assert_eq!(metrics.tasks_total(), jobs as u64, "{metrics}");
    assert_eq!(metrics.tasks_cancelled(), r.cancelled, "{metrics}");
    assert_eq!(metrics.tasks_panicked(), panicked_runs, "{metrics}");
    assert_eq!(
        metrics.tasks_completed() + metrics.tasks_panicked() + metrics.tasks_cancelled(),
        metrics.tasks_total(),
        "{metrics}"
    );
    assert_eq!(
        metrics.escaped_panics(),
        0,
        "no panic reached rayon: {metrics}"
    );
    // An armed value either reached its awaiter (which dropped it and
    // caught the panic itself) or was dropped by the pool: on the compute
    // thread when the handle had gone, or with the handle when the handle
    // was dropped after the result arrived. The pool contained and counted
    // every one of the latter.
    assert_eq!(
        metrics.result_drop_panics(),
        load(&book.armed_drops) - r.drop_panics_at_awaiter,
        "every result-drop panic inside the pool was contained and counted: {metrics}"
    );
    assert!(
        peak - live_before <= PEAK_BOUND,
        "peak live bytes stay bounded: +{} over the start (bound {PEAK_BOUND})",
        peak - live_before
    );
    assert!(
        live_after - live_before <= slack,
        "live bytes back near the start: before {live_before}, after {live_after} \
         (+{} > slack {slack})",
        live_after - live_before
    );
    r
}

#[test]
fn a_million_mixed_jobs_with_faults_lose_nothing() {
    let soak = env_flag("STRESS_SOAK");
    let jobs = env_u64("STRESS_JOBS", if soak { SOAK_JOBS } else { DEFAULT_JOBS });
    let jobs = scaled(jobs, TASKS as u64) as usize;
    let seed = env_u64("STRESS_SEED", 0x5EED_2026);
    let watchdog = Duration::from_secs(env_u64(
        "STRESS_WATCHDOG_SECS",
        if soak { 1_800 } else { 300 },
    ));

    // Planned panics and panicking drops are silent; anything else is
    // reported as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        if !payload.is::<StressPanic>() && !payload.is::<DropPanic>() {
            default_hook(info);
        }
    }));

    let warm = round(
        scaled(WARMUP_JOBS, TASKS as u64) as usize,
        seed ^ 1,
        None,
        COLD_SLACK,
        watchdog,
    );
    let warm_bounded = round(
        scaled(WARMUP_JOBS, TASKS as u64) as usize,
        seed ^ 2,
        Some(MAX_IN_FLIGHT),
        COLD_SLACK,
        watchdog,
    );
    let r = round(jobs, seed, None, WARM_SLACK, watchdog);
    // The same under back-pressure: 512 jobs submitted at a time against
    // room for 64, so cancellations and timeouts also hit jobs that wait
    // in the pool's queue.
    let bounded = round(
        (jobs / BOUNDED_SHARE).max(TASKS),
        seed ^ 3,
        Some(MAX_IN_FLIGHT),
        WARM_SLACK,
        watchdog,
    );
    // More rounds (STRESS_ROUNDS, for soaks): memory must not creep from
    // one round to the next either.
    for extra in 1..env_u64("STRESS_ROUNDS", 1) {
        let again = round(jobs, seed.wrapping_add(extra), None, WARM_SLACK, watchdog);
        eprintln!(
            "stress: round {} of {} jobs in {:.2?}: live bytes {} -> {}",
            extra + 1,
            again.jobs,
            again.elapsed,
            again.live_before,
            again.live_after
        );
        assert!(
            again.live_after - r.live_after <= WARM_SLACK,
            "live bytes creep from round to round: {} after round 1, {} after round {}",
            r.live_after,
            again.live_after,
            extra + 1
        );
    }
    let _ = std::panic::take_hook();

    eprintln!("stress: scale {}, seed {seed:#x}", test_scale());
    for (label, round) in [
        ("warm-up, unbounded", &warm),
        ("warm-up, max_in_flight 64", &warm_bounded),
        ("unbounded", &r),
        ("max_in_flight 64", &bounded),
    ] {
        report(label, round);
    }
}

/// Prints a round's figures (shown with `--nocapture`).
fn report(label: &str, r: &Round) {
    eprintln!(
        "stress: {label}: {} jobs in {:.2?}: live bytes {} -> {} ({:+}), peak +{}",
        r.jobs,
        r.elapsed,
        r.live_before,
        r.live_after,
        r.live_after - r.live_before,
        r.peak - r.live_before,
    );
    eprintln!(
        "stress: {label}: kinds {:?} = {:?}; handles {:?} = {:?}; planned panics {}, \
         armed drops {}; cancelled (never ran) {}; result-drop panics contained by the \
         pool {} ({} of them on compute threads), caught by awaiters {}",
        KINDS,
        r.by_kind,
        CANCELS,
        r.by_cancel,
        r.panics,
        r.armed,
        r.cancelled,
        r.drop_panics_in_pool,
        r.drop_panics_on_compute_threads,
        r.drop_panics_at_awaiter
    );
}
