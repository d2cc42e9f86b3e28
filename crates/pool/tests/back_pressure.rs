//! Back-pressure: with `max_in_flight = Some(n)`, at most n jobs are queued
//! or running; submitters wait in order; `try_execute` answers `Saturated`.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputeError, ComputePool};
use support::{watchdog, within, Blocker};

fn bounded(threads: usize, max_in_flight: usize) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        max_in_flight: Some(max_in_flight),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn try_execute_is_saturated_when_full() {
    let pool = bounded(1, 2);
    let blocker = Blocker::occupy(&pool);
    let queued = pool.try_execute(|| 1).unwrap();
    let err = pool.try_execute(|| 2).map(drop).unwrap_err();
    assert!(matches!(err, ComputeError::Saturated), "{err:?}");
    assert!(err.to_string().contains("saturated"));
    assert_eq!(pool.metrics().tasks_rejected(), 1);
    within(blocker.release()).await.unwrap();
    assert_eq!(within(queued).await.unwrap(), 1);
    // Room again.
    assert_eq!(within(pool.try_execute(|| 3).unwrap()).await.unwrap(), 3);
}

#[tokio::test]
async fn unbounded_try_execute_never_saturates() {
    let pool = support::pool(1);
    let blocker = Blocker::occupy(&pool);
    let handles: Vec<_> = (0..100)
        .map(|i| pool.try_execute(move || i).unwrap())
        .collect();
    within(blocker.release()).await.unwrap();
    let out = within(futures::future::try_join_all(handles))
        .await
        .unwrap();
    assert_eq!(out, (0..100).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_n_in_flight() {
    // More threads than permits, so the permits are what limits.
    const N: usize = 2;
    let pool = bounded(4, N);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let pool = pool.clone();
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let f = in_flight.clone();
                let peak = peak.clone();
                let r = pool
                    .execute(move || {
                        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::hint::black_box((0..2000u64).sum::<u64>());
                        f.fetch_sub(1, Ordering::SeqCst);
                        t * 100 + i
                    })
                    .await
                    .unwrap();
                assert_eq!(r, t * 100 + i);
            }
        }));
    }
    for task in tasks {
        within(task).await.unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=N).contains(&peak), "{peak} jobs ran at once");
    let m = pool.metrics();
    assert_eq!(m.tasks_completed(), 8 * 40);
    assert_eq!(m.tasks_active(), 0);
}

#[tokio::test]
async fn a_job_waits_for_room_even_with_idle_threads() {
    let pool = bounded(3, 1);
    let blocker = Blocker::occupy(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let waiting = tokio::spawn(pool.execute(move || r.fetch_add(1, Ordering::SeqCst)));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "two threads idle, but no permit"
    );
    within(blocker.release()).await.unwrap();
    within(waiting).await.unwrap().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn waiting_submitters_are_served_in_order() {
    let pool = bounded(1, 1);
    let blocker = Blocker::occupy(&pool);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let o = order.clone();
        let handle = pool.execute(move || o.lock().unwrap().push(i));
        tasks.push(tokio::spawn(handle));
    }
    assert_eq!(pool.metrics().tasks_queued(), 20);
    within(blocker.release()).await.unwrap();
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_waiting_handle_that_is_dropped_never_runs() {
    let pool = bounded(1, 1);
    let blocker = Blocker::occupy(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let mut waiting = pool.execute(move || r.fetch_add(1, Ordering::SeqCst));
    assert!(futures::poll!(&mut waiting).is_pending());
    assert_eq!(pool.metrics().tasks_active(), 2);
    drop(waiting);
    let m = pool.metrics();
    assert_eq!((m.tasks_active(), m.tasks_cancelled()), (1, 1));
    within(blocker.release()).await.unwrap();
    within(pool.execute(|| ())).await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.metrics().tasks_active(), 0);
}

#[tokio::test]
async fn cancel_of_a_waiting_handle() {
    let pool = bounded(1, 1);
    let blocker = Blocker::occupy(&pool);
    let mut waiting = pool.execute(|| 1);
    assert!(waiting.cancel());
    assert!(within(waiting).await.unwrap_err().is_cancelled());
    within(blocker.release()).await.unwrap();
    assert_eq!(pool.metrics().tasks_active(), 0);
}

#[tokio::test]
async fn handles_may_be_awaited_in_any_order() {
    let pool = bounded(1, 1);
    let blocker = Blocker::occupy(&pool);
    let handles: Vec<_> = (0..10).map(|i| pool.execute(move || i)).collect();
    within(blocker.release()).await.unwrap();
    // Await the last first: nothing depends on the others being polled.
    for (i, h) in handles.into_iter().enumerate().rev() {
        assert_eq!(within(h).await.unwrap(), i);
    }
    assert_eq!(pool.metrics().tasks_active(), 0);
}

#[test]
fn a_waiting_job_runs_even_if_its_handle_is_never_polled() {
    watchdog(|| {
        let pool = bounded(1, 1);
        let blocker = Blocker::occupy(&pool);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let handle = pool.execute(move || r.fetch_add(1, Ordering::SeqCst));
        drop(blocker.release());
        support::wait_until("the queued job ran", || ran.load(Ordering::SeqCst) == 1);
        assert!(handle.is_finished());
        drop(handle);
    });
}

#[test]
fn queued_submissions_need_no_tokio_runtime() {
    watchdog(|| {
        let pool = bounded(1, 1);
        let handles: Vec<_> = (0..50u32).map(|i| pool.execute(move || i * 2)).collect();
        let out = futures::executor::block_on(futures::future::try_join_all(handles)).unwrap();
        assert_eq!(out, (0..50u32).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(pool.metrics().tasks_active(), 0);
    });
}

#[tokio::test]
async fn permits_come_back_after_panics_and_cancellations() {
    let pool = bounded(1, 2);
    for _ in 0..10 {
        assert!(within(pool.execute(|| -> () { panic!("x") }))
            .await
            .unwrap_err()
            .is_panic());
        let blocker = Blocker::occupy(&pool);
        drop(pool.execute(|| ()));
        within(blocker.release()).await.unwrap();
    }
    // A job queued behind the cancelled ones has run, so they have been
    // skipped and both permits are free again.
    within(pool.execute(|| ())).await.unwrap();
    let a = pool
        .try_execute(|| std::thread::sleep(Duration::from_millis(1)))
        .unwrap();
    let b = pool.try_execute(|| ()).unwrap();
    within(a).await.unwrap();
    within(b).await.unwrap();
    assert_eq!(pool.metrics().tasks_active(), 0);
}
