//! Cancellation: a dropped or cancelled handle stops a job that has not
//! started; a running job can watch its `CancelToken`.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use support::{pool, wait_until, within, Blocker, LIMIT};

#[tokio::test]
async fn dropping_before_start_means_it_never_runs() {
    let pool = pool(1);
    let blocker = Blocker::occupy(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let queued = pool.execute(move || r.store(true, Ordering::SeqCst));
    assert_eq!(pool.metrics().tasks_queued(), 1);
    drop(queued);
    // Accounted at once, while the job is still in rayon's queue.
    let m = pool.metrics();
    assert_eq!(m.tasks_cancelled(), 1);
    assert_eq!(m.tasks_active(), 1, "only the blocker is active");
    within(blocker.release()).await.unwrap();
    // The queued job is reached, sees it was cancelled, and does nothing.
    within(pool.execute(|| ())).await.unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    let m = pool.metrics();
    assert_eq!(m.tasks_active(), 0);
    assert_eq!(m.tasks_cancelled(), 1);
    assert_eq!(m.tasks_completed(), 2);
}

#[tokio::test]
async fn cancel_before_start_resolves_cancelled() {
    let pool = pool(1);
    let blocker = Blocker::occupy(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut queued = pool.execute(move || r.store(true, Ordering::SeqCst));
    assert!(!queued.is_finished());
    assert!(queued.cancel(), "stopped before it started");
    assert!(queued.is_finished());
    let err = within(queued).await.unwrap_err();
    assert!(err.is_cancelled());
    within(blocker.release()).await.unwrap();
    within(pool.execute(|| ())).await.unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(pool.metrics().tasks_active(), 0);
}

#[tokio::test]
async fn cancel_while_running_lets_it_finish() {
    let pool = pool(1);
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let mut running = pool.execute(move || {
        started_tx.send(()).unwrap();
        go_rx.recv_timeout(LIMIT).unwrap();
        f.store(true, Ordering::SeqCst);
        vec![1u8; 100]
    });
    started_rx.recv_timeout(LIMIT).unwrap();
    assert!(!running.cancel(), "it had already started");
    go_tx.send(()).unwrap();
    assert!(within(running).await.unwrap_err().is_cancelled());
    wait_until("the job finished", || pool.metrics().tasks_active() == 0);
    assert!(finished.load(Ordering::SeqCst));
    let m = pool.metrics();
    assert_eq!((m.tasks_completed(), m.tasks_cancelled()), (1, 0));
}

#[tokio::test]
async fn timeout_drop_stops_a_cooperative_loop_early() {
    let pool = pool(1);
    let iterations = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();
    let (it, running) = (iterations.clone(), started.clone());
    let handle = pool.execute_cancellable(move |token| {
        running.store(true, Ordering::SeqCst);
        let mut i = 0u64;
        // Without cancellation this would run for about an hour.
        while i < 1_000_000_000_000 && !token.is_cancelled() {
            i += 1;
            std::hint::black_box(i);
        }
        it.store(i, Ordering::SeqCst);
        done_tx.send(token.is_cancelled()).unwrap();
        i
    });
    // A job dropped before it starts never runs: time out a running one
    // (a slow machine, or valgrind, may take 20 ms to start it).
    wait_until("started", || started.load(Ordering::SeqCst));
    let timed_out = tokio::time::timeout(Duration::from_millis(20), handle).await;
    assert!(timed_out.is_err(), "the loop cannot finish in 20 ms");
    // The timeout dropped the handle: the loop notices and stops.
    let saw_cancel = done_rx.recv_timeout(LIMIT).expect("the loop did not stop");
    assert!(saw_cancel);
    let n = iterations.load(Ordering::SeqCst);
    assert!(n > 0 && n < 1_000_000_000_000);
    wait_until("idle", || pool.metrics().tasks_active() == 0);
    // It ran (and completed, from the pool's point of view); nobody took the value.
    assert_eq!(pool.metrics().tasks_completed(), 1);
}

#[tokio::test]
async fn token_is_usable_inside_parallel_iterators() {
    use rayon::prelude::*;
    let pool = pool(2);
    let out = within(pool.execute_cancellable(|token| {
        (0..1000u32)
            .into_par_iter()
            .filter(|_| !token.is_cancelled())
            .count()
    }))
    .await
    .unwrap();
    assert_eq!(out, 1000);
}

#[tokio::test]
async fn many_dropped_handles_leave_nothing_active() {
    let pool = pool(2);
    let blocker = Blocker::occupy(&pool);
    for i in 0..1000u32 {
        let h = pool.execute(move || i);
        if i % 3 == 0 {
            drop(h);
        } else {
            // Dropped later, after some may have started.
            tokio::spawn(async move {
                let _ = h.await;
            });
        }
    }
    within(blocker.release()).await.unwrap();
    let p = pool.clone();
    within(async move {
        while p.metrics().tasks_active() != 0 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let m = pool.metrics();
    assert_eq!(m.tasks_total(), 1001);
    assert_eq!(m.tasks_completed() + m.tasks_cancelled(), 1001);
    assert!(m.tasks_cancelled() >= 1);
}

#[tokio::test]
async fn is_finished_turns_true_when_done() {
    let pool = pool(1);
    let handle = pool.execute(|| 5);
    let p = pool.clone();
    within(async {
        while !handle.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert_eq!(p.metrics().tasks_completed(), 1);
    assert_eq!(within(handle).await.unwrap(), 5);
}
