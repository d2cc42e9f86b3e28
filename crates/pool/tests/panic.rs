//! Panics: contained, reported with their payload, never fatal to the pool.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use compute_pool::ComputeError;
use support::{pool, wait_until, within, LIMIT};

#[tokio::test]
async fn a_panic_reaches_the_awaiter_with_its_message() {
    let pool = pool(1);
    let id = std::hint::black_box(7);
    let err = within(pool.execute(move || -> u32 { panic!("job {id} failed") }))
        .await
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "the compute job panicked: job 7 failed");
    match &err {
        ComputeError::Panicked(payload) => assert_eq!(payload.message(), "job 7 failed"),
        other => panic!("unexpected {other:?}"),
    }
    let payload = err.into_panic().unwrap();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "job 7 failed");
}

#[tokio::test]
async fn non_string_payloads_are_kept() {
    #[derive(Debug, PartialEq)]
    struct Custom(u32);
    let pool = pool(1);
    let err = within(pool.execute(|| std::panic::panic_any(Custom(9))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("non-string"));
    let payload = err.into_panic().unwrap();
    assert_eq!(payload.downcast_ref::<Custom>(), Some(&Custom(9)));
}

#[tokio::test]
async fn the_pool_lives_on_and_rayons_handler_is_not_hit() {
    let pool = pool(1);
    for i in 0..20 {
        let err = within(pool.execute(move || -> () { panic!("n{i}") }))
            .await
            .unwrap_err();
        assert!(err.is_panic());
    }
    let thread = within(pool.execute(|| std::thread::current().name().map(str::to_owned)))
        .await
        .unwrap();
    assert_eq!(
        thread.as_deref(),
        Some("compute-0"),
        "the same thread survives"
    );
    let m = pool.metrics();
    assert_eq!(m.tasks_panicked(), 20);
    assert_eq!(m.tasks_completed(), 1);
    assert_eq!(m.escaped_panics(), 0);
    assert_eq!(m.tasks_active(), 0);
}

#[tokio::test]
async fn resume_unwind_continues_the_panic() {
    let pool = pool(1);
    let err = within(pool.execute(|| -> () { panic!("carry on") }))
        .await
        .unwrap_err();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| err.resume_unwind()));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"carry on"));
}

/// A value whose `Drop` panics and counts.
struct Bomb(Arc<AtomicUsize>);
impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("Bomb::drop");
    }
}

#[tokio::test]
async fn a_panicking_drop_of_an_unawaited_result_is_contained() {
    let pool = pool(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let d = drops.clone();
    let handle = pool.execute(move || {
        started_tx.send(()).unwrap();
        go_rx.recv_timeout(LIMIT).unwrap();
        Bomb(d)
    });
    started_rx.recv_timeout(LIMIT).unwrap();
    drop(handle); // nobody will take the Bomb: it is dropped on the compute thread
    go_tx.send(()).unwrap();
    wait_until("the result was dropped", || {
        pool.metrics().result_drop_panics() == 1
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");
    let m = pool.metrics();
    assert_eq!(m.escaped_panics(), 0);
    wait_until("idle", || pool.metrics().tasks_active() == 0);
    assert_eq!(within(pool.execute(|| 2)).await.unwrap(), 2);
}

#[tokio::test]
async fn panics_under_concurrency_all_reported() {
    let pool = pool(2);
    let handles: Vec<_> = (0..200u32)
        .map(|i| {
            pool.execute(move || {
                assert!(i % 2 == 0, "odd {i}");
                i
            })
        })
        .collect();
    let results = within(futures::future::join_all(handles)).await;
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 100);
    assert_eq!(err.len(), 100);
    assert!(err.iter().all(|e| e.as_ref().unwrap_err().is_panic()));
    let m = pool.metrics();
    assert_eq!(
        (m.tasks_completed(), m.tasks_panicked(), m.tasks_active()),
        (100, 100, 0)
    );
}

#[tokio::test]
async fn a_panicking_capture_of_a_cancelled_job_is_contained() {
    let pool = pool(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let blocker = support::Blocker::occupy(&pool);
    let bomb = Bomb(drops.clone());
    let handle = pool.execute(move || {
        let _keep = &bomb;
        unreachable!("cancelled before it started")
    });
    drop(handle);
    within(blocker.release()).await.unwrap();
    wait_until("the skipped job was dropped", || {
        pool.metrics().result_drop_panics() == 1
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(pool.metrics().escaped_panics(), 0);
    assert_eq!(within(pool.execute(|| 4)).await.unwrap(), 4);
}
