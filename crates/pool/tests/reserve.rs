//! Awaitable admission: with `max_queued` the pool holds at most
//! `max_in_flight + max_queued` jobs; `execute` past that is `Saturated`
//! without running; `reserve` waits for a place, first come first served,
//! cancel-safe; an unused permit gives its place back; shutdown wakes the
//! reservers with `Err(Shutdown)`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputeError, ComputePool, Reserve};
use futures::FutureExt;
use support::{within, Blocker};

/// One thread, one job in flight, `queued` more waiting at most.
fn bounded(queued: usize) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        max_in_flight: Some(1),
        max_queued: Some(queued),
        ..Default::default()
    })
    .unwrap()
}

/// Polls `reserve` once with a no-op waker.
fn poll_once(reserve: &mut Reserve) -> Poll<Result<compute_pool::Permit, ComputeError>> {
    reserve.poll_unpin(&mut Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test]
async fn execute_past_the_capacity_is_saturated_without_running() {
    within(async {
        let pool = bounded(2);
        let blocker = Blocker::occupy(&pool);
        let ran = Arc::new(AtomicUsize::new(0));
        let count = |ran: &Arc<AtomicUsize>| {
            let ran = ran.clone();
            // ORDERING: SeqCst: read after the jobs were awaited.
            move || ran.fetch_add(1, Ordering::SeqCst)
        };
        let queued: Vec<_> = (0..2).map(|_| pool.execute(count(&ran))).collect();
        let refused = pool.execute(count(&ran));
        assert!(matches!(refused.await, Err(ComputeError::Saturated)));
        blocker.release().await.unwrap();
        for handle in queued {
            handle.await.unwrap();
        }
        // ORDERING: SeqCst, see above.
        assert_eq!(ran.load(Ordering::SeqCst), 2, "the refused job never ran");
        assert_eq!(pool.metrics().tasks_rejected(), 1);
        pool.execute(|| ()).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn reservers_are_served_first_come_first_served() {
    within(async {
        let pool = bounded(0);
        let blocker = Blocker::occupy(&pool);
        let mut reservers: Vec<Reserve> = (0..4).map(|_| pool.reserve()).collect();
        for reserve in &mut reservers {
            assert!(
                poll_once(reserve).is_pending(),
                "no place while the blocker runs"
            );
        }
        blocker.release().await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Served in the order they queued, each place passed on as the
        // previous job ends.
        for (i, reserve) in reservers.into_iter().enumerate() {
            let permit = reserve.await.unwrap();
            let order = order.clone();
            permit
                .execute(move || order.lock().unwrap().push(i))
                .await
                .unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    })
    .await;
}

#[tokio::test]
async fn a_dropped_permit_gives_its_place_back() {
    within(async {
        let pool = bounded(0);
        let permit = pool.reserve().await.unwrap();
        assert!(matches!(
            pool.execute(|| ()).await,
            Err(ComputeError::Saturated)
        ));
        let mut next = pool.reserve();
        assert!(poll_once(&mut next).is_pending());
        drop(permit);
        let permit = next
            .await
            .expect("the place passed to the waiting reserver");
        assert_eq!(permit.execute(|| 5).await.unwrap(), 5);
        assert_eq!(pool.metrics().tasks_active(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_reserve_dropped_while_it_waits_leaks_nothing() {
    within(async {
        let pool = bounded(0);
        let blocker = Blocker::occupy(&pool);
        let mut gone = pool.reserve();
        assert!(poll_once(&mut gone).is_pending());
        let mut next = pool.reserve();
        assert!(poll_once(&mut next).is_pending());
        drop(gone);
        blocker.release().await.unwrap();
        // The dropped reserver left the queue: the place goes to the next.
        let permit = next.await.unwrap();
        drop(permit);
        // And no place was lost: one reservation is again granted at once.
        let mut again = pool.reserve();
        assert!(poll_once(&mut again).is_ready());
        assert_eq!(pool.metrics().tasks_active(), 0);
    })
    .await;
}

#[tokio::test]
async fn shutdown_wakes_the_reservers() {
    within(async {
        let pool = bounded(0);
        let blocker = Blocker::occupy(&pool);
        let waiting: Vec<_> = (0..3).map(|_| tokio::spawn(pool.reserve())).collect();
        tokio::task::yield_now().await;
        let closer = pool.clone();
        let shutdown = tokio::spawn(async move { closer.shutdown(Duration::from_secs(30)).await });
        for reserver in waiting {
            assert!(reserver.await.unwrap().unwrap_err().is_shutdown());
        }
        blocker.release().await.unwrap();
        assert!(shutdown.await.unwrap());
        assert!(pool.reserve().await.unwrap_err().is_shutdown());
    })
    .await;
}

#[tokio::test]
async fn a_fast_producer_that_reserves_stays_within_the_bound() {
    within(async {
        let pool = bounded(4);
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for i in 0..500u64 {
            let permit = pool.reserve().await.unwrap();
            // ORDERING: SeqCst: test bookkeeping, read after every job ends.
            let now = live.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let live = live.clone();
            handles.push(permit.execute(move || {
                live.fetch_sub(1, Ordering::SeqCst);
                i
            }));
            // Keep memory bounded on our side too: drop finished handles.
            if handles.len() > 16 {
                let done = handles.remove(0);
                done.await.unwrap();
            }
        }
        for handle in handles {
            handle.await.unwrap();
        }
        // ORDERING: SeqCst, see above.
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            peak <= 5,
            "at most max_in_flight + max_queued jobs at once: {peak}"
        );
        assert_eq!(
            pool.metrics().tasks_rejected(),
            0,
            "reserving never saturates"
        );
    })
    .await;
}

#[tokio::test]
async fn calls_that_wait_in_place_are_never_refused_for_room() {
    within(async {
        let pool = bounded(0);
        let _held = pool.reserve().await.unwrap(); // the pool is full
        assert!(matches!(
            pool.execute(|| ()).await,
            Err(ComputeError::Saturated)
        ));
        assert_eq!(pool.execute_here(|| 1).unwrap(), 1);
        let blocking = pool.clone();
        let sync = tokio::task::spawn_blocking(move || blocking.execute_sync(|| 2))
            .await
            .unwrap();
        assert_eq!(sync.unwrap(), 2);
        assert_eq!(pool.metrics().tasks_active(), 0);
    })
    .await;
}

#[test]
fn a_nested_call_from_a_job_is_never_refused_for_room() {
    support::watchdog(|| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            max_in_flight: Some(1),
            max_queued: Some(0),
            ..Default::default()
        })
        .unwrap();
        let inner = pool.clone();
        // The job holds the one place; its nested calls run inline.
        let nested = pool.execute(move || {
            let sum = futures::executor::block_on(inner.execute(|| 20)).unwrap();
            sum + inner.execute_sync(|| 22).unwrap()
        });
        assert_eq!(futures::executor::block_on(nested).unwrap(), 42);
    });
}
