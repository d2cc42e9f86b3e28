//! Every way a job enters the pool is admitted and settled by the ledger
//! exactly once: after a job through any entry path, the pool is idle, so
//! shutdown returns at once instead of sitting out its timeout; and a job
//! the pool refuses is dropped with any panic from its captures contained.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputeError, ComputePool};
use support::{pool, watchdog, LIMIT};

/// Shutdown with a long timeout: `true` unless a job leaked in the ledger
/// (then it would wait the whole `LIMIT / 2` and say `false`).
fn idle_at_once(pool: &ComputePool) -> bool {
    pool.shutdown_blocking(LIMIT / 2)
}

#[test]
fn shutdown_finds_the_pool_idle_after_a_job_through_each_entry_path() {
    type Path = fn(&ComputePool);
    let paths: [(&str, Path); 9] = [
        ("execute", |p| {
            futures::executor::block_on(p.execute(|| 1)).unwrap();
        }),
        ("install", |p| {
            futures::executor::block_on(p.install(|| 1)).unwrap();
        }),
        ("join", |p| {
            futures::executor::block_on(p.join(|| 1, || 2)).unwrap();
        }),
        ("execute_scoped", |p| {
            futures::executor::block_on(p.execute_scoped(|s| s.spawn(|_| ()))).unwrap();
        }),
        ("try_execute", |p| {
            futures::executor::block_on(p.try_execute(|| 1).unwrap()).unwrap();
        }),
        ("execute_sync", |p| {
            p.execute_sync(|| 1).unwrap();
        }),
        ("execute_here", |p| {
            p.execute_here(|| 1).unwrap();
        }),
        ("nested calls", |p| {
            let inner = p.clone();
            p.execute_sync(move || {
                inner.execute_sync(|| 1).unwrap()
                    + futures::executor::block_on(inner.execute(|| 1)).unwrap()
                    + inner.execute_here(|| 1).unwrap()
            })
            .unwrap();
        }),
        ("execute_adaptive", |p| {
            // Enough calls of one site that it goes inline after warming up.
            for i in 0..64u64 {
                futures::executor::block_on(p.execute_adaptive(move || i)).unwrap();
            }
        }),
    ];
    for (name, path) in paths {
        let pool = pool(2);
        let run = pool.clone();
        watchdog(move || path(&run));
        let m = pool.metrics();
        assert_eq!(m.tasks_active(), 0, "{name}: {m}");
        assert!(idle_at_once(&pool), "{name}: shutdown waited for a job");
    }
}

#[test]
fn shutdown_finds_the_pool_idle_after_cancelled_and_bounded_jobs() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        max_in_flight: Some(1),
        ..Default::default()
    })
    .unwrap();
    let blocker = support::Blocker::occupy(&pool);
    assert!(matches!(
        pool.try_execute(|| ()),
        Err(ComputeError::Saturated)
    ));
    let mut queued = pool.execute(|| ());
    assert!(queued.cancel(), "queued behind the blocker");
    drop(pool.execute(|| ()));
    futures::executor::block_on(blocker.release()).unwrap();
    assert!(idle_at_once(&pool));
    assert_eq!(pool.metrics().tasks_rejected(), 1);
}

/// A capture whose `Drop` panics, counting its drops.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        // ORDERING: SeqCst: read after the call that dropped it returned.
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a capture that panics when dropped");
    }
}

#[test]
fn a_refused_job_is_dropped_with_a_panicking_capture_contained() {
    let pool = pool(1);
    pool.shutdown_blocking(Duration::from_secs(10));
    let drops = Arc::new(AtomicUsize::new(0));
    let bomb = || Bomb(drops.clone());

    let b = bomb();
    let handle = pool.execute(move || drop(b));
    let refused = futures::executor::block_on(handle);
    assert!(refused.unwrap_err().is_shutdown(), "execute");

    let b = bomb();
    assert!(matches!(
        pool.try_execute(move || drop(b)),
        Err(ComputeError::Shutdown)
    ));

    let b = bomb();
    assert!(pool
        .execute_sync(move || drop(b))
        .unwrap_err()
        .is_shutdown());

    let b = bomb();
    assert!(pool
        .execute_here(move || drop(b))
        .unwrap_err()
        .is_shutdown());

    let b = bomb();
    let zero = pool.parallel_batch(vec![1u8], 0, move |chunk: &[u8]| {
        let _ = &b;
        chunk.to_vec()
    });
    assert!(matches!(
        futures::executor::block_on(zero),
        Err(ComputeError::InvalidArgument(_))
    ));

    // ORDERING: SeqCst, see `Bomb`.
    assert_eq!(
        drops.load(Ordering::SeqCst),
        5,
        "every refused job was dropped"
    );
    let m = pool.metrics();
    assert_eq!(m.result_drop_panics(), 5, "{m}");
    assert_eq!(m.tasks_rejected(), 4, "{m}");
    assert_eq!(m.tasks_total(), 0, "{m}");
}
