//! Faults: misbehaving wakers, panics where they are awkward, re-entrant
//! jobs, a job that blocks for ages, shutdown under load and a pool dropped
//! under its pending handles. Each must leave every handle resolved, the
//! pool usable (or cleanly gone) and the metrics balanced.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod reliability_common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use compute_pool::{ComputeConfig, ComputeError, ComputePool, TaskHandle};
use compute_test_support::{scaled, wait_until_for};
use reliability_common::{quiet_planned_panics, threads_named};

/// Generous bound for one test: a hang fails instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(120);

fn pool(threads: usize) -> ComputePool {
    quiet_planned_panics();
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        thread_name_prefix: "faults".into(),
        ..Default::default()
    })
    .expect("pool")
}

/// A pool whose awaiters never wait awake: a poll registers the caller's
/// waker at once, which is what the waker tests are about (a poll that
/// waits awake wakes its own task instead; see `spin_policy.rs`).
fn pool_without_spin(threads: usize, max_in_flight: Option<usize>) -> ComputePool {
    quiet_planned_panics();
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        max_in_flight,
        thread_name_prefix: "faults".into(),
        await_spin_limit: Duration::ZERO,
        ..Default::default()
    })
    .expect("pool")
}

/// Runs `f` on a multi-thread runtime under a timeout.
fn run<F: Future<Output = ()> + Send + 'static>(f: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(LIMIT, tokio::spawn(f))
            .await
            .expect("test hung")
            .expect("test task panicked");
    });
}

/// A gate a job waits behind until the test opens it (or `LIMIT` passes).
fn gate() -> (mpsc::Sender<()>, impl FnOnce() + Send + 'static) {
    let (open, wait) = mpsc::channel::<()>();
    (open, move || {
        let _ = wait.recv_timeout(LIMIT);
    })
}

// ---------------------------------------------------------------------
// A waker that panics on wake and on clone.

const PANIC_ON_CLONE: usize = 1;
const PANIC_ON_WAKE: usize = 2;

/// Shared by every copy of one test waker: its behaviour and its counts.
struct WakerState {
    flags: AtomicUsize,
    /// Wakers alive (the original and its clones); back to 0 means no
    /// waker leaked and none was dropped twice.
    live: AtomicIsize,
    wakes: AtomicUsize,
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(w_clone, w_wake, w_wake_by_ref, w_drop);

fn state_of<'a>(data: *const ()) -> &'a WakerState {
    // SAFETY: every waker built here points at a live `Arc<WakerState>`
    // whose strong count it owns.
    unsafe { &*(data as *const WakerState) }
}

unsafe fn w_clone(data: *const ()) -> RawWaker {
    let state = state_of(data);
    // ORDERING: SeqCst: test bookkeeping, read after the threads are done.
    if state.flags.load(Ordering::SeqCst) & PANIC_ON_CLONE != 0 {
        panic!("waker clone panics on purpose");
    }
    // ORDERING: SeqCst: as above.
    state.live.fetch_add(1, Ordering::SeqCst);
    // SAFETY: `data` came from `Arc::into_raw` and this copy keeps it alive.
    unsafe { Arc::increment_strong_count(data as *const WakerState) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn w_wake(data: *const ()) {
    struct DropAfter(*const ());
    impl Drop for DropAfter {
        fn drop(&mut self) {
            // SAFETY: waking by value consumes this copy, even if it panics.
            unsafe { w_drop(self.0) };
        }
    }
    let _consume = DropAfter(data);
    // SAFETY: `data` is a live waker copy.
    unsafe { w_wake_by_ref(data) };
}

unsafe fn w_wake_by_ref(data: *const ()) {
    let state = state_of(data);
    // ORDERING: SeqCst: test bookkeeping.
    state.wakes.fetch_add(1, Ordering::SeqCst);
    // ORDERING: SeqCst: as above.
    if state.flags.load(Ordering::SeqCst) & PANIC_ON_WAKE != 0 {
        panic!("waker wake panics on purpose");
    }
}

unsafe fn w_drop(data: *const ()) {
    // ORDERING: SeqCst: test bookkeeping.
    state_of(data).live.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: this copy owned one strong count.
    unsafe { Arc::decrement_strong_count(data as *const WakerState) };
}

fn test_waker(flags: usize) -> (Waker, Arc<WakerState>) {
    let state = Arc::new(WakerState {
        flags: AtomicUsize::new(flags),
        live: AtomicIsize::new(1),
        wakes: AtomicUsize::new(0),
    });
    let raw = RawWaker::new(Arc::into_raw(state.clone()) as *const (), &VTABLE);
    // SAFETY: the vtable functions uphold the RawWaker contract: clone
    // returns a new copy owning a strong count, wake consumes one, drop
    // releases one.
    (unsafe { Waker::from_raw(raw) }, state)
}

fn poll_with<R>(handle: &mut TaskHandle<R>, waker: &Waker) -> Poll<Result<R, ComputeError>> {
    Pin::new(handle).poll(&mut Context::from_waker(waker))
}

#[test]
fn a_waker_that_panics_on_clone_or_wake_loses_nothing() {
    let pool = pool_without_spin(1, None);
    let (open, wait) = gate();
    let mut handle = pool.execute(move || {
        wait();
        42u64
    });

    // Clone panics on the first poll: the panic reaches the poller, the
    // handle is intact.
    let (cloning, clone_state) = test_waker(PANIC_ON_CLONE);
    let polled = catch_unwind(AssertUnwindSafe(|| poll_with(&mut handle, &cloning)));
    assert!(polled.is_err(), "the clone panic reached the poller");

    // A good waker now, then a re-poll with a clone-panicking one: the
    // published (good) waker must stay in place and be woken.
    let (good, good_state) = test_waker(0);
    assert!(poll_with(&mut handle, &good).is_pending());
    let polled = catch_unwind(AssertUnwindSafe(|| poll_with(&mut handle, &cloning)));
    assert!(polled.is_err(), "the clone panic reached the poller");

    // Then a waker whose wake panics replaces it.
    let (waking, wake_state) = test_waker(PANIC_ON_WAKE);
    assert!(poll_with(&mut handle, &waking).is_pending());
    open.send(()).unwrap();
    // The job completes and wakes the panicking waker on the compute
    // thread; the value is already in place.
    wait_until_for(LIMIT, "the job finished", || handle.is_finished());
    // ORDERING: SeqCst: test bookkeeping.
    wait_until_for(LIMIT, "the waker was woken", || {
        wake_state.wakes.load(Ordering::SeqCst) == 1
    });
    assert_eq!(
        good_state.wakes.load(Ordering::SeqCst),
        0,
        "the replaced waker is not woken"
    );
    match poll_with(&mut handle, &good) {
        Poll::Ready(Ok(42)) => {}
        other => panic!("the result survived the panicking waker: {other:?}"),
    }
    drop(handle);

    // The compute thread and the pool live on.
    let after = futures::executor::block_on(pool.execute(|| 7)).unwrap();
    assert_eq!(after, 7);
    wait_until_for(LIMIT, "the pool is idle", || {
        pool.metrics().tasks_active() == 0
    });
    let m = pool.metrics();
    assert_eq!((m.tasks_completed(), m.tasks_panicked()), (2, 0), "{m}");
    // The wake panic unwinds out of the job on the compute thread, after
    // the job's accounting: at most that one reaches rayon's handler.
    assert!(m.escaped_panics() <= 1, "{m}");

    // Every waker copy the channel took was dropped exactly once.
    drop((cloning, good, waking));
    for state in [&clone_state, &good_state, &wake_state] {
        // ORDERING: SeqCst: test bookkeeping (see the test below for the wait).
        wait_until_for(LIMIT, "every waker copy was dropped", || {
            state.live.load(Ordering::SeqCst) <= 0
        });
        assert_eq!(
            state.live.load(Ordering::SeqCst),
            0,
            "no waker leaked or dropped twice"
        );
    }
}

#[test]
fn a_waker_that_panics_on_wake_under_many_jobs_keeps_the_pool_serving() {
    waker_panics_on_wake_under_many_jobs(None);
    // With a limit, the wake panic unwinds out of a job inside the pool's
    // queue runner: its room must come back, or the pool would stall.
    waker_panics_on_wake_under_many_jobs(Some(2));
}

fn waker_panics_on_wake_under_many_jobs(max_in_flight: Option<usize>) {
    let pool = pool_without_spin(2, max_in_flight);
    let jobs = scaled(2_000, 50);
    let (waking, wake_state) = test_waker(PANIC_ON_WAKE);
    let mut handles: Vec<_> = (0..jobs).map(|i| pool.execute(move || i * 2)).collect();
    let mut pending: Vec<usize> = (0..handles.len()).collect();
    let mut results = vec![None; handles.len()];
    // Poll everything with the panicking waker, then collect by re-polling.
    let deadline = Instant::now() + LIMIT;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "max_in_flight {max_in_flight:?}: handles hung"
        );
        // A poll may wake its own task (a yield after many handles ready
        // at once): with this waker that panics in the poll, and the
        // handle stays whole for the next one.
        pending.retain(|&i| {
            match std::panic::catch_unwind(AssertUnwindSafe(|| poll_with(&mut handles[i], &waking)))
            {
                Ok(Poll::Ready(result)) => {
                    results[i] = Some(result.expect("no job failed"));
                    false
                }
                Ok(Poll::Pending) | Err(_) => true,
            }
        });
        std::thread::yield_now();
    }
    drop(handles);
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result, Some(i as u64 * 2));
    }
    wait_until_for(LIMIT, "the pool is idle", || {
        pool.metrics().tasks_active() == 0
    });
    assert_eq!(pool.metrics().tasks_completed(), jobs);
    drop(waking);
    // The last job's channel (and the waker copy in it) goes when its
    // compute thread has finished sending, just after the job's accounting:
    // wait for it. A leaked copy keeps `live` above 0 and fails this wait; a
    // copy dropped twice makes it negative.
    // ORDERING: SeqCst: test bookkeeping.
    wait_until_for(LIMIT, "every waker copy was dropped", || {
        wake_state.live.load(Ordering::SeqCst) <= 0
    });
    assert_eq!(
        wake_state.live.load(Ordering::SeqCst),
        0,
        "no waker leaked or dropped twice"
    );
    assert_eq!(futures::executor::block_on(pool.execute(|| 1)).unwrap(), 1);
}

// ---------------------------------------------------------------------
// Panics in awkward places.

#[test]
fn a_panic_inside_scope_spawn_reaches_the_awaiter() {
    let pool = pool(2);
    let siblings = Arc::new(AtomicUsize::new(0));
    run(async move {
        let seen = siblings.clone();
        let result = pool
            .execute_scoped(move |scope| {
                for _ in 0..4 {
                    let seen = seen.clone();
                    // ORDERING: SeqCst: test bookkeeping.
                    scope.spawn(move |_| {
                        let _ = seen.fetch_add(1, Ordering::SeqCst);
                    });
                }
                scope.spawn(|_| panic!("spawned job fails on purpose"));
                "the scope body returned"
            })
            .await;
        let err = result.expect_err("the spawned panic fails the job");
        let ComputeError::Panicked(payload) = err else {
            panic!("a panic, not {err}");
        };
        assert_eq!(payload.message(), "spawned job fails on purpose");
        assert_eq!(
            siblings.load(Ordering::SeqCst),
            4,
            "the other spawns still ran"
        );

        let fifo = pool
            .execute_scoped_fifo(|scope| {
                scope.spawn_fifo(|_| panic!("fifo spawn fails on purpose"))
            })
            .await;
        assert!(fifo.unwrap_err().is_panic());

        // The pool carries on, and rayon's panic handler was never hit.
        assert_eq!(pool.execute(|| 5).await.unwrap(), 5);
        let m = pool.metrics();
        assert_eq!(
            (m.tasks_panicked(), m.escaped_panics(), m.tasks_active()),
            (2, 0, 0),
            "{m}"
        );
    });
}

/// A result whose `Drop` panics.
#[derive(Debug)]
struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("result drop panics on purpose");
        }
    }
}

#[test]
fn dropping_a_handle_whose_finished_result_panics_in_drop_is_contained() {
    let pool = pool(1);
    // Dropped after the job finished: the result is dropped with the
    // handle, and its panic must not escape the handle's `Drop` (a handle
    // dropped while unwinding would otherwise abort the process).
    let handle = pool.execute(|| Bomb);
    wait_until_for(LIMIT, "the job finished", || handle.is_finished());
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(handle)));
    assert!(
        dropped.is_ok(),
        "the result's Drop panic escaped the handle's Drop"
    );

    // The same through `cancel`.
    let mut handle = pool.execute(|| Bomb);
    wait_until_for(LIMIT, "the job finished", || handle.is_finished());
    let cancelled = catch_unwind(AssertUnwindSafe(|| handle.cancel()));
    assert!(
        matches!(cancelled, Ok(false)),
        "cancel contained it and said the job had run"
    );
    assert!(futures::executor::block_on(handle)
        .unwrap_err()
        .is_cancelled());

    // Dropped while it runs: dropped on the compute thread, contained there.
    let (open, wait) = gate();
    let (started_tx, started) = mpsc::channel();
    let handle = pool.execute(move || {
        started_tx.send(()).unwrap();
        wait();
        Bomb
    });
    started.recv_timeout(LIMIT).expect("the job started");
    drop(handle);
    open.send(()).unwrap();

    wait_until_for(LIMIT, "the pool is idle", || {
        pool.metrics().tasks_active() == 0
    });
    let m = pool.metrics();
    assert_eq!(
        m.result_drop_panics(),
        3,
        "every contained drop panic is counted: {m}"
    );
    assert_eq!(m.escaped_panics(), 0, "{m}");
    assert_eq!(futures::executor::block_on(pool.execute(|| 1)).unwrap(), 1);
}

// ---------------------------------------------------------------------
// Re-entrancy and long jobs.

#[test]
fn a_job_that_submits_to_its_own_pool_and_waits_via_execute_sync_cannot_deadlock() {
    // One thread: any nested call that queued and waited would deadlock.
    let pool = pool(1);
    fn nest(pool: &ComputePool, depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        // Borrows `pool` and `depth` from this stack frame.
        let below = pool
            .execute_sync(|| nest(pool, depth - 1))
            .expect("nested call");
        let beside = futures::executor::block_on(pool.execute(move || u64::from(depth)))
            .expect("nested execute");
        let mapped = futures::executor::block_on(pool.par_map(vec![1u64, 2, 3], |x| x * 10))
            .expect("nested par_map");
        below + beside + mapped.iter().sum::<u64>()
    }
    let expected = 1 + (1..=8u64).map(|d| d + 60).sum::<u64>();
    run({
        let pool = pool.clone();
        async move {
            let inner = pool.clone();
            let total = pool.execute(move || nest(&inner, 8)).await.unwrap();
            assert_eq!(total, expected);
            // Many at once, from a blocking thread too.
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let inner = pool.clone();
                    pool.execute(move || nest(&inner, 4))
                })
                .collect();
            let sync = {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || pool.execute_sync(|| nest(&pool, 4)))
            };
            for result in futures::future::join_all(handles).await {
                assert_eq!(result.unwrap(), 1 + (1..=4u64).map(|d| d + 60).sum::<u64>());
            }
            assert!(sync.await.unwrap().is_ok());
        }
    });
    wait_until_for(LIMIT, "the pool is idle", || {
        pool.metrics().tasks_active() == 0
    });
}

#[test]
fn a_job_blocking_far_past_the_slow_threshold_is_counted_slow_and_does_not_stall_others() {
    let threshold = Duration::from_millis(10);
    let blocked_for = threshold * 20;
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        slow_task_threshold: threshold,
        ..Default::default()
    })
    .unwrap();
    run(async move {
        let (open, wait) = gate();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let blocker = pool.execute(move || {
            let since = Instant::now();
            started_tx.send(()).unwrap();
            // Held until the others are done, and at least `blocked_for`.
            wait();
            std::thread::sleep(blocked_for.saturating_sub(since.elapsed()));
        });
        started.await.unwrap();
        // The other thread serves everyone else meanwhile.
        let others: Vec<_> = (0..200u64).map(|i| pool.execute(move || i + 1)).collect();
        let sum: u64 = futures::future::join_all(others)
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        assert_eq!(sum, (1..=200).sum());
        assert!(!blocker.is_finished(), "the blocker is still held");
        open.send(()).unwrap();
        blocker.await.unwrap();

        let m = pool.metrics();
        assert!(m.slow_tasks() >= 1, "the blocker counts as slow: {m}");
        assert!(
            m.max_task_duration_us() >= blocked_for.as_micros() as u64,
            "its compute time is recorded: {m}"
        );
        assert_eq!((m.tasks_completed(), m.tasks_active()), (201, 0), "{m}");
    });
}

// ---------------------------------------------------------------------
// Shutdown under load.

/// Submits `n` jobs behind `threads` blockers; returns the handles and the
/// gates that release the blockers.
struct Loaded {
    blockers: Vec<TaskHandle<()>>,
    gates: Vec<mpsc::Sender<()>>,
    handles: Vec<TaskHandle<u64>>,
    ran: Arc<AtomicU64>,
    ran_after_deadline: Arc<AtomicU64>,
    deadline_passed: Arc<AtomicBool>,
}

fn load(pool: &ComputePool, threads: usize, n: u64) -> Loaded {
    let (started_tx, started) = mpsc::channel();
    let mut blockers = Vec::new();
    let mut gates = Vec::new();
    for _ in 0..threads {
        let (open, wait) = gate();
        let started_tx = started_tx.clone();
        blockers.push(pool.execute(move || {
            started_tx.send(()).unwrap();
            wait();
        }));
        gates.push(open);
    }
    for _ in 0..threads {
        started.recv_timeout(LIMIT).expect("every blocker started");
    }
    let ran = Arc::new(AtomicU64::new(0));
    let ran_after_deadline = Arc::new(AtomicU64::new(0));
    let deadline_passed = Arc::new(AtomicBool::new(false));
    let handles = (0..n)
        .map(|i| {
            let (ran, after, passed) = (
                ran.clone(),
                ran_after_deadline.clone(),
                deadline_passed.clone(),
            );
            pool.execute(move || {
                // ORDERING: SeqCst: test bookkeeping; the flag is set before
                // the blockers are released, which happens-before this load.
                if passed.load(Ordering::SeqCst) {
                    after.fetch_add(1, Ordering::SeqCst);
                }
                ran.fetch_add(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    Loaded {
        blockers,
        gates,
        handles,
        ran,
        ran_after_deadline,
        deadline_passed,
    }
}

/// Hands `handles` to 100 awaiting tasks; resolves to every result, in order.
async fn await_in_100_tasks(handles: Vec<TaskHandle<u64>>) -> Vec<Result<u64, ComputeError>> {
    let per_task = handles.len().div_ceil(100);
    let mut handles = handles.into_iter();
    let mut tasks = Vec::new();
    loop {
        let chunk: Vec<_> = handles.by_ref().take(per_task).collect();
        if chunk.is_empty() {
            break;
        }
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(chunk.len());
            for handle in chunk {
                out.push(handle.await);
            }
            out
        }));
    }
    assert_eq!(tasks.len(), 100, "100 awaiters");
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("an awaiter panicked"));
    }
    all
}

#[test]
fn shutdown_past_its_timeout_with_10_000_queued_jobs_resolves_all_and_runs_none_late() {
    let pool = pool(2);
    run(async move {
        let jobs = scaled(10_000, 200);
        let l = load(&pool, 2, jobs);
        let awaiting = tokio::spawn(await_in_100_tasks(l.handles));
        // The blockers hold both threads: the shutdown cannot go idle.
        let idle = pool.shutdown(Duration::from_millis(50)).await;
        assert!(!idle, "the blockers were still running at the timeout");
        l.deadline_passed.store(true, Ordering::SeqCst);
        assert!(
            pool.execute(|| 0).await.unwrap_err().is_shutdown(),
            "new work is refused"
        );
        for open in &l.gates {
            open.send(()).unwrap();
        }
        for blocker in l.blockers {
            blocker.await.expect("running jobs finish");
        }
        let results = awaiting.await.unwrap();
        assert_eq!(results.len() as u64, jobs);
        for result in results {
            assert!(
                result.unwrap_err().is_shutdown(),
                "queued jobs resolve to Shutdown"
            );
        }
        assert_eq!(l.ran.load(Ordering::SeqCst), 0, "no queued job ran");
        assert_eq!(
            l.ran_after_deadline.load(Ordering::SeqCst),
            0,
            "none ran after the timeout"
        );
        wait_until_for(LIMIT, "the pool is idle", || {
            pool.metrics().tasks_active() == 0
        });
        let m = pool.metrics();
        assert_eq!(m.tasks_cancelled(), jobs, "{m}");
    });
}

#[test]
fn shutdown_within_its_timeout_with_10_000_queued_jobs_runs_them_all_first() {
    let pool = pool(2);
    run(async move {
        let jobs = scaled(10_000, 200);
        let l = load(&pool, 2, jobs);
        let awaiting = tokio::spawn(await_in_100_tasks(l.handles));
        let shutdown = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.shutdown(LIMIT).await })
        };
        // Let the shutdown start, then let the work drain.
        tokio::time::sleep(Duration::from_millis(5)).await;
        for open in &l.gates {
            open.send(()).unwrap();
        }
        let idle = shutdown.await.unwrap();
        l.deadline_passed.store(true, Ordering::SeqCst);
        assert!(idle, "every accepted job finished before the timeout");
        for blocker in l.blockers {
            blocker.await.unwrap();
        }
        let results = awaiting.await.unwrap();
        for (i, result) in results.into_iter().enumerate() {
            assert_eq!(result.unwrap(), i as u64, "accepted jobs run to completion");
        }
        assert_eq!(l.ran.load(Ordering::SeqCst), jobs);
        assert_eq!(
            l.ran_after_deadline.load(Ordering::SeqCst),
            0,
            "none ran after shutdown returned"
        );
        assert_eq!(pool.metrics().tasks_active(), 0);
    });
}

// ---------------------------------------------------------------------
// The pool dropped under its handles.

#[test]
fn dropping_the_pool_while_handles_are_pending_resolves_them_all() {
    run(async {
        for max_in_flight in [None, Some(4)] {
            let pool = ComputePool::new(ComputeConfig {
                num_threads: Some(2),
                max_in_flight,
                ..Default::default()
            })
            .unwrap();
            let (open, wait) = gate();
            let blocker = pool.execute(wait);
            let handles: Vec<_> = (0..1_000u64).map(|i| pool.execute(move || i * 3)).collect();
            let metrics_before = pool.metrics();
            drop(pool);
            open.send(()).unwrap();
            blocker.await.unwrap();
            let results = futures::future::join_all(handles).await;
            for (i, result) in results.into_iter().enumerate() {
                assert_eq!(
                    result.unwrap(),
                    i as u64 * 3,
                    "max_in_flight {max_in_flight:?}: accepted jobs run after the pool is dropped"
                );
            }
            assert_eq!(metrics_before.tasks_total(), 1_001);
        }
    });
}

#[test]
fn the_last_pool_clone_dropped_inside_its_own_job_shuts_it_down_cleanly() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        thread_name_prefix: "lastclone".into(),
        ..Default::default()
    })
    .unwrap();
    let inside = pool.clone();
    let handle = pool.execute(move || {
        let n = inside.num_threads();
        drop(inside); // the last clone, once the test drops its own
        n
    });
    drop(pool);
    assert_eq!(futures::executor::block_on(handle).unwrap(), 2);
    // The threads exit: the pool was torn down from its own thread without
    // a deadlock, and its threads did not leak.
    if threads_named("lastclone").is_some() {
        wait_until_for(LIMIT, "the compute threads exited", || {
            threads_named("lastclone") == Some(0)
        });
    }
}
