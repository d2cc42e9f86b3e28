//! Shutdown: new work is refused, accepted work finishes or resolves within
//! the timeout, and no handle hangs; dropping the last clone drains the pool.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputeError, ComputePool};
use support::{pool, wait_until, watchdog, within, Blocker, LIMIT};

#[tokio::test]
async fn new_work_is_refused_after_shutdown() {
    let pool = pool(1);
    assert!(within(pool.shutdown(Duration::from_secs(5))).await);
    assert!(pool.is_shutdown());
    assert!(within(pool.execute(|| 1)).await.unwrap_err().is_shutdown());
    assert!(matches!(
        pool.execute_sync(|| 1),
        Err(ComputeError::Shutdown)
    ));
    assert!(matches!(
        pool.try_execute(|| 1).map(drop),
        Err(ComputeError::Shutdown)
    ));
    assert!(within(pool.par_map(vec![1], |x: i32| x))
        .await
        .unwrap_err()
        .is_shutdown());
    let m = pool.metrics();
    assert_eq!((m.tasks_total(), m.tasks_rejected()), (0, 4));
    // Every clone sees it.
    let clone = pool.clone();
    assert!(within(clone.execute(|| 1)).await.unwrap_err().is_shutdown());
}

#[tokio::test]
async fn accepted_jobs_finish_within_the_timeout() {
    let pool = pool(2);
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let r = ran.clone();
            pool.execute(move || {
                std::thread::sleep(Duration::from_millis(1));
                r.fetch_add(1, Ordering::SeqCst)
            })
        })
        .collect();
    assert!(within(pool.shutdown(LIMIT)).await, "went idle in time");
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    for h in handles {
        assert!(within(h).await.is_ok());
    }
    assert_eq!(pool.metrics().tasks_active(), 0);
}

#[tokio::test]
async fn after_the_timeout_queued_jobs_resolve_shutdown_without_running() {
    let pool = pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let long = pool.execute(move || {
        started_tx.send(()).unwrap();
        release_rx.recv_timeout(LIMIT).unwrap();
        "long"
    });
    started_rx.recv_timeout(LIMIT).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..100)
        .map(|_| {
            let r = ran.clone();
            pool.execute(move || r.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    let idle = within(pool.shutdown(Duration::from_millis(30))).await;
    assert!(!idle, "the long job is still running");
    release_tx.send(()).unwrap();
    assert_eq!(
        within(long).await.unwrap(),
        "long",
        "a running job runs to its end"
    );
    for h in queued {
        assert!(within(h).await.unwrap_err().is_shutdown());
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "none ran after the timeout");
    let m = pool.metrics();
    assert_eq!(m.tasks_cancelled(), 100);
    assert_eq!(m.tasks_active(), 0);
}

#[tokio::test]
async fn a_running_job_sees_the_deadline_through_its_token() {
    let pool = pool(1);
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let job = pool.execute_cancellable(move |token| {
        started_tx.send(()).unwrap();
        let mut spins = 0u64;
        while !token.is_cancelled() {
            spins += 1;
            std::hint::black_box(spins);
        }
        "stopped"
    });
    started_rx.recv_timeout(LIMIT).unwrap();
    assert!(!within(pool.shutdown(Duration::from_millis(10))).await);
    assert_eq!(within(job).await.unwrap(), "stopped");
}

#[tokio::test]
async fn handles_waiting_for_room_resolve_at_the_deadline() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        max_in_flight: Some(1),
        ..Default::default()
    })
    .unwrap();
    let blocker = Blocker::occupy(&pool);
    let waiting: Vec<_> = (0..5)
        .map(|i| tokio::spawn(pool.execute(move || i)))
        .collect();
    tokio::task::yield_now().await;
    assert!(!within(pool.shutdown(Duration::from_millis(20))).await);
    for w in waiting {
        assert!(within(w).await.unwrap().unwrap_err().is_shutdown());
    }
    within(blocker.release()).await.unwrap();
    wait_until("idle", || pool.metrics().tasks_active() == 0);
}

#[test]
fn shutdown_blocking_and_async_shutdown_need_no_runtime() {
    watchdog(|| {
        let pool = pool(1);
        let job = pool.execute(|| std::thread::sleep(Duration::from_millis(5)));
        assert!(futures::executor::block_on(pool.shutdown(LIMIT)));
        futures::executor::block_on(job).unwrap();
        let pool = support::pool(1);
        let job = pool.execute(|| 3);
        assert!(pool.shutdown_blocking(LIMIT));
        assert_eq!(futures::executor::block_on(job).unwrap(), 3);
        // Shutting down twice is fine.
        assert!(pool.shutdown_blocking(LIMIT));
    });
}

#[test]
fn dropping_the_last_clone_lets_queued_jobs_finish() {
    watchdog(|| {
        let pool = pool(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let blocker = Blocker::occupy(&pool);
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let r = ran.clone();
                pool.execute(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        let weak_check = pool.clone();
        drop(pool);
        drop(weak_check);
        let blocker = blocker.release();
        futures::executor::block_on(blocker).unwrap();
        let out = futures::executor::block_on(futures::future::try_join_all(handles)).unwrap();
        assert_eq!(out, (0..20).collect::<Vec<_>>());
        assert_eq!(ran.load(Ordering::SeqCst), 20);
    });
}

#[test]
fn dropping_the_pool_from_inside_a_job_is_fine() {
    watchdog(|| {
        let pool = pool(1);
        let p = pool.clone();
        let handle = pool.execute(move || {
            // This job now holds the last clone and drops it on a compute thread.
            drop(p);
            7
        });
        drop(pool);
        assert_eq!(futures::executor::block_on(handle).unwrap(), 7);
    });
}

#[test]
fn dropping_the_last_clone_runs_jobs_waiting_for_room() {
    watchdog(|| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            max_in_flight: Some(2),
            ..Default::default()
        })
        .unwrap();
        let blocker = Blocker::occupy(&pool);
        let handles: Vec<_> = (0..50).map(|i| pool.execute(move || i)).collect();
        drop(pool);
        futures::executor::block_on(blocker.release()).unwrap();
        let out = futures::executor::block_on(futures::future::try_join_all(handles)).unwrap();
        assert_eq!(out, (0..50).collect::<Vec<_>>());
    });
}
