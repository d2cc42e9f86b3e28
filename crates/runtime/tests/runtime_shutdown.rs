//! `Runtime::shutdown` drains compute work before Tokio goes, reports a
//! missed deadline, and neither it nor a drop panics inside async code.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use compute_runtime::{Runtime, RuntimeConfig};

const LIMIT: Duration = Duration::from_secs(30);

fn config() -> RuntimeConfig {
    RuntimeConfig {
        num_worker_threads: Some(1),
        compute_threads: Some(1),
        ..Default::default()
    }
}

#[test]
fn drains_compute_work_first() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = Runtime::new(config()).unwrap();
        let pool = runtime.compute_pool().unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let job_finished = Arc::clone(&finished);
        let task = runtime.handle().spawn(async move {
            pool.execute(move || {
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                job_finished.store(true, Ordering::SeqCst);
                7
            })
            .await
        });
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let pool = runtime.compute_pool().unwrap();
        assert!(runtime.shutdown(Duration::from_secs(10)), "drained in time");
        assert!(
            finished.load(Ordering::SeqCst),
            "the running job ran to the end"
        );
        assert!(pool.is_shutdown());
        assert_eq!(pool.metrics().tasks_completed(), 1);
        drop(task);
    });
}

#[test]
fn reports_a_missed_deadline() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = Runtime::new(config()).unwrap();
        let pool = runtime.compute_pool().unwrap();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        let blocked = pool.execute(move || {
            started_tx.send(()).unwrap();
            // Bounded, so a bug cannot leave the thread stuck forever.
            let _ = release_rx.recv_timeout(Duration::from_secs(20));
        });
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            !runtime.shutdown(Duration::from_millis(50)),
            "the job is still running"
        );
        release_tx.send(()).unwrap();
        assert!(futures::executor::block_on(blocked).is_ok());
        assert!(pool.execute_sync(|| ()).unwrap_err().is_shutdown());
    });
}

#[test]
fn shutdown_without_a_pool() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = Runtime::new(RuntimeConfig {
            compute_threads: Some(0),
            num_worker_threads: Some(1),
            ..Default::default()
        })
        .unwrap();
        runtime.handle().spawn(async {});
        assert!(runtime.shutdown(Duration::from_secs(5)));
    });
}

#[test]
fn shutdown_and_drop_inside_async_code_do_not_panic() {
    compute_test_support::watchdog_for(LIMIT, || {
        let outer = Runtime::new(config()).unwrap();
        outer.block_on(async {
            let inner = Runtime::new(config()).unwrap();
            inner
                .handle()
                .spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
            assert!(inner.shutdown(Duration::from_millis(100)));
            let dropped = Runtime::new(config()).unwrap();
            dropped
                .handle()
                .spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
            drop(dropped);
        });
    });
}

#[test]
fn plain_drop_stops_everything() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = Runtime::new(config()).unwrap();
        let pool = runtime.compute_pool().unwrap();
        runtime.block_on(async {
            assert_eq!(pool.execute(|| 1).await.unwrap(), 1);
        });
        drop(runtime);
        // The pool handle we kept still works: the runtime let go of it.
        assert_eq!(pool.execute_sync(|| 2).unwrap(), 2);
    });
}

/// `shutdown` called from one of the runtime's own tasks, on an idle
/// runtime, returns promptly however long its timeout: it cannot wait for
/// Tokio to stop, since Tokio would wait for the very worker it runs on.
/// (The watchdog is a hang detector, far above the time this takes.)
#[test]
fn shutdown_from_its_own_task_returns() {
    let drained = compute_test_support::watchdog_for(Duration::from_secs(10), || {
        let runtime = Runtime::new(config()).unwrap();
        let handle = runtime.handle().clone();
        let (tx, rx) = mpsc::channel();
        handle.spawn(async move {
            let _ = tx.send(runtime.shutdown(Duration::from_secs(60)));
        });
        rx.recv().expect("the task ran shutdown to the end")
    });
    assert!(drained);
}

/// The same from one of the runtime's blocking threads (`spawn_blocking`),
/// which Tokio's shutdown also waits for; pending compute work is still
/// drained first.
#[test]
fn shutdown_from_its_own_blocking_thread_returns() {
    let (drained, result) = compute_test_support::watchdog_for(Duration::from_secs(10), || {
        let runtime = Runtime::new(config()).unwrap();
        let pool = runtime.compute_pool().unwrap();
        let job = pool.execute(|| {
            std::thread::sleep(Duration::from_millis(20));
            5
        });
        let handle = runtime.handle().clone();
        let (tx, rx) = mpsc::channel();
        handle.spawn_blocking(move || {
            let _ = tx.send(runtime.shutdown(Duration::from_secs(60)));
        });
        let drained = rx
            .recv()
            .expect("the blocking task ran shutdown to the end");
        (drained, futures::executor::block_on(job))
    });
    assert!(drained);
    assert_eq!(
        result.unwrap(),
        5,
        "queued work finished before shutdown returned"
    );
}

/// Tasks awaiting jobs when the runtime shuts down take the results those
/// jobs sent: none is dropped by Tokio's shutdown between the job's send and
/// the task's next poll. Every job counts itself when it runs; every task
/// counts the result it took; after `shutdown` the two agree.
#[test]
fn every_task_takes_the_result_its_job_sent_before_tokio_stops() {
    use std::sync::atomic::AtomicUsize;
    compute_test_support::watchdog_for(Duration::from_secs(120), || {
        for round in 0..20 {
            let runtime = Runtime::new(RuntimeConfig {
                num_worker_threads: Some(2),
                compute_threads: Some(1),
                ..Default::default()
            })
            .unwrap();
            let pool = runtime.compute_pool().unwrap();
            let ran = Arc::new(AtomicUsize::new(0));
            let taken = Arc::new(AtomicUsize::new(0));
            let (spawned_tx, spawned_rx) = mpsc::channel();
            for _ in 0..50 {
                let (pool, ran, taken) = (pool.clone(), ran.clone(), taken.clone());
                let spawned = spawned_tx.clone();
                runtime.handle().spawn(async move {
                    let job = pool.execute(move || {
                        let until = std::time::Instant::now() + Duration::from_micros(200);
                        while std::time::Instant::now() < until {
                            std::hint::spin_loop();
                        }
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                    spawned.send(()).unwrap();
                    if job.await.is_ok() {
                        taken.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            for _ in 0..50 {
                spawned_rx.recv().unwrap();
            }
            assert!(runtime.shutdown(Duration::from_secs(20)), "round {round}");
            assert_eq!(
                taken.load(Ordering::SeqCst),
                ran.load(Ordering::SeqCst),
                "round {round}: a task was dropped before it took its job's result"
            );
        }
    });
}
