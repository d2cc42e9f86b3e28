//! An `execute` costs one allocation, the bridge channel, when its job
//! waits in the run queue (plus a share of the queue's blocks, one per 63
//! jobs: a small job sits in the queue's slot), and at most two when it has
//! to start a runner (rayon boxes the runner task) or its job is too big for
//! a slot (then it is boxed); and no more bytes than the naive bridge (rayon
//! `spawn` + a tokio oneshot) spends on the same job. Counted with a counting
//! global allocator (its own test binary).

mod support;

use compute_test_support::alloc::{Counting, Snapshot};
use support::watchdog;

/// The counters are process-wide: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn one_allocation_per_execute_queued_behind_a_running_job() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(|| {
        let pool = warmed_up_pool();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = pool.execute(move || wait.recv().unwrap());
        const N: u64 = 2000;
        let mut handles = Vec::with_capacity(N as usize);
        // Submitted only: the jobs wait behind the blocker, in the queue.
        let per_job = per_call(
            |spent| spent.allocations,
            N,
            |i| {
                let captured = (i, 4u64);
                handles.push(pool.execute(move || captured.0 * 3 + captured.1));
            },
        );
        release.send(()).unwrap();
        futures::executor::block_on(blocker).unwrap();
        for (i, handle) in (0..N).zip(handles) {
            assert_eq!(futures::executor::block_on(handle).unwrap(), i * 3 + 4);
        }
        eprintln!("{per_job:.3} allocations per queued execute");
        // The channel, and the queue's blocks (1/63); the job, with two
        // words of captures, sits in the queue's slot.
        assert!(per_job <= 1.05, "{per_job} allocations per queued execute");
    });
}

#[test]
fn at_most_two_allocations_per_execute() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(|| {
        let pool = warmed_up_pool();
        let per_job = per_call(
            |spent| spent.allocations,
            2000,
            |i| {
                let v = futures::executor::block_on(pool.execute(move || i * 2)).unwrap();
                assert_eq!(v, i * 2);
            },
        );
        eprintln!("{per_job:.3} allocations per execute");
        // Slack for the queue's blocks (1/63) and rare allocations elsewhere
        // (rayon's deque growth, parking).
        assert!(per_job <= 2.05, "{per_job} allocations per execute");
    });
}

/// A one-thread pool past its first jobs (thread-locals, the executor,
/// lazily built state), so what is counted next is the steady state.
fn warmed_up_pool() -> compute_pool::ComputePool {
    let pool = support::pool(1);
    for _ in 0..100 {
        futures::executor::block_on(pool.execute(|| 1u64)).unwrap();
    }
    pool
}

/// How much `tally` (allocations or bytes) grows per call of `call`, over
/// `n` calls made on this thread.
fn per_call(tally: impl Fn(Snapshot) -> u64, n: u64, mut call: impl FnMut(u64)) -> f64 {
    let before = Snapshot::now();
    for i in 0..n {
        call(i);
    }
    tally(Snapshot::now().since(before)) as f64 / n as f64
}

#[test]
fn no_more_bytes_per_execute_than_the_naive_bridge() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(|| {
        let pool = support::pool(1);
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        // A job that captures nothing, so the bridges' own bytes show.
        let job = || std::hint::black_box(42u64);
        let ours = |_| {
            assert_eq!(futures::executor::block_on(pool.execute(job)).unwrap(), 42);
        };
        let naive = |_| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            rayon.spawn(move || {
                let _ = tx.send(std::panic::catch_unwind(job));
            });
            assert_eq!(futures::executor::block_on(rx).unwrap().unwrap(), 42);
        };
        // Warm up both (thread-locals, lazily built state), then measure.
        per_call(|spent| spent.bytes, 100, ours);
        per_call(|spent| spent.bytes, 100, naive);
        let ours = per_call(|spent| spent.bytes, 2000, ours);
        let naive = per_call(|spent| spent.bytes, 2000, naive);
        eprintln!("bytes per execute: ours {ours:.1}, naive bridge {naive:.1}");
        // Slack for rare allocations elsewhere (rayon's deque growth, parking).
        assert!(
            ours <= naive + 0.5,
            "ours {ours} bytes, naive bridge {naive}"
        );
    });
}
