//! `compute_map` and `compute_map_unordered`: order, the concurrency limit,
//! back-pressure, cancellation on drop, per-item panics, the end of the
//! stream, the default limit, and every item exactly once.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// maxima). Each is read after the jobs that write it have finished (their
// results were awaited) or is polled until it reaches a value; SeqCst is
// stronger than that needs.

mod support;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use compute_pool::{ComputeError, ComputeStreamExt};
use futures::stream::{self, FusedStream, Stream, StreamExt};
use support::{pool, within, Blocker};

/// Counts the jobs running at once and keeps the highest count seen.
#[derive(Default)]
struct Running {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Running {
    /// Runs `work` counted as one running job.
    fn count<T>(&self, work: impl FnOnce() -> T) -> T {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        let out = work();
        self.now.fetch_sub(1, Ordering::SeqCst);
        out
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// A stream of `0..n` that counts the items pulled from it.
fn counted(n: usize, pulled: &Arc<AtomicUsize>) -> impl Stream<Item = usize> + Unpin {
    let pulled = Arc::clone(pulled);
    stream::iter(0..n).inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

#[tokio::test]
async fn results_come_in_input_order() {
    let pool = pool(4);
    // Early items are the slowest, so they finish last.
    let out: Vec<usize> = within(
        stream::iter(0..40usize)
            .compute_map(&pool, 8, |i| {
                std::thread::sleep(Duration::from_micros(((40 - i) % 7) as u64 * 300));
                i * 10
            })
            .map(|r| r.expect("no panic"))
            .collect(),
    )
    .await;
    assert_eq!(out, (0..40).map(|i| i * 10).collect::<Vec<_>>());
}

#[tokio::test]
async fn never_more_than_limit_jobs_at_once() {
    let pool = pool(4);
    for limit in [1usize, 2, 3] {
        let running = Arc::new(Running::default());
        let r = Arc::clone(&running);
        let ordered = stream::iter(0..60)
            .compute_map(&pool, limit, move |i: u32| {
                r.count(|| std::thread::sleep(Duration::from_micros(200)));
                i
            })
            .count();
        assert_eq!(within(ordered).await, 60);
        assert!(
            running.max() <= limit,
            "limit {limit}, saw {}",
            running.max()
        );

        let running = Arc::new(Running::default());
        let r = Arc::clone(&running);
        let unordered = stream::iter(0..60)
            .compute_map_unordered(&pool, limit, move |i: u32| {
                r.count(|| std::thread::sleep(Duration::from_micros(200)));
                i
            })
            .count();
        assert_eq!(within(unordered).await, 60);
        assert!(
            running.max() <= limit,
            "limit {limit}, saw {}",
            running.max()
        );
    }
}

/// The most items one job takes (small items ready together share a job):
/// upstream is pulled at most `limit` times this ahead of the consumer.
const MAX_BATCH: usize = 64;

#[tokio::test]
async fn a_slow_consumer_stalls_the_producer() {
    let pool = pool(2);
    let limit = 3;
    for (name, job_len) in [("long items", 200), ("short items", 0)] {
        // Long items get a job each, so `limit` items at most are ahead;
        // short ones may share jobs, `MAX_BATCH` items at most a job.
        let most_ahead = if job_len == 0 {
            limit * MAX_BATCH
        } else {
            limit
        };
        let work = move |i: usize| {
            std::thread::sleep(Duration::from_micros(job_len));
            i
        };
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut ordered = counted(1_000, &pulled).compute_map(&pool, limit, work);
        for consumed in 1..=50 {
            assert_eq!(within(ordered.next()).await.unwrap().unwrap(), consumed - 1);
            // A slow consumer: the jobs finish long before the next pull.
            tokio::time::sleep(Duration::from_micros(100)).await;
            let ahead = pulled.load(Ordering::SeqCst) - consumed;
            assert!(ahead <= most_ahead, "{name}: {ahead} items pulled ahead");
        }

        let pulled = Arc::new(AtomicUsize::new(0));
        let mut unordered = counted(1_000, &pulled).compute_map_unordered(&pool, limit, work);
        for consumed in 1..=50 {
            within(unordered.next()).await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_micros(100)).await;
            let ahead = pulled.load(Ordering::SeqCst) - consumed;
            assert!(ahead <= most_ahead, "{name}: {ahead} items pulled ahead");
        }
    }
}

#[tokio::test]
async fn dropping_the_stream_cancels_jobs_not_started() {
    let pool = pool(1);
    let blocker = Blocker::occupy(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let mut mapped = stream::iter(0..10).compute_map(&pool, 4, move |i: u32| {
        r.fetch_add(1, Ordering::SeqCst);
        i
    });
    // One poll submits four jobs behind the blocker; none can start.
    let waker = futures::task::noop_waker();
    assert!(Pin::new(&mut mapped)
        .poll_next(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(mapped.size_hint(), (10, Some(10)));
    assert_eq!(pool.metrics().tasks_queued(), 4);
    drop(mapped);
    assert_eq!(pool.metrics().tasks_cancelled(), 4);
    within(blocker.release()).await.unwrap();
    // A job submitted after them runs after them: they were skipped.
    within(pool.execute(|| ())).await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.metrics().tasks_active(), 0);
}

#[tokio::test]
async fn a_panic_is_an_error_for_that_item_only() {
    let pool = pool(2);
    let ordered: Vec<Result<u32, ComputeError>> = within(
        stream::iter(0..10u32)
            .compute_map(&pool, None, |i| {
                assert!(i % 4 != 1, "item {i} refuses");
                i
            })
            .collect(),
    )
    .await;
    assert_eq!(ordered.len(), 10);
    for (i, result) in (0..10u32).zip(ordered) {
        match result {
            Ok(value) => assert_eq!(value, i),
            Err(err) => {
                assert_eq!(i % 4, 1, "only items 1, 5 and 9 panic");
                let ComputeError::Panicked(payload) = err else {
                    panic!("item {i}: {err}")
                };
                assert_eq!(payload.message(), format!("item {i} refuses"));
            }
        }
    }

    let unordered: Vec<Result<u32, ComputeError>> = within(
        stream::iter(0..10u32)
            .compute_map_unordered(&pool, None, |i| {
                assert!(i % 4 != 1, "item {i} refuses");
                i
            })
            .collect(),
    )
    .await;
    let (ok, err): (Vec<_>, Vec<_>) = unordered.into_iter().partition(Result::is_ok);
    let mut ok: Vec<u32> = ok.into_iter().map(Result::unwrap).collect();
    ok.sort_unstable();
    assert_eq!(ok, [0, 2, 3, 4, 6, 7, 8]);
    assert_eq!(err.len(), 3);
    assert!(err.iter().all(|e| e.as_ref().unwrap_err().is_panic()));
}

#[tokio::test]
async fn an_empty_stream_ends_at_once() {
    let pool = pool(1);
    let mut ordered = stream::empty::<u32>().compute_map(&pool, None, |i| i);
    assert_eq!(ordered.size_hint(), (0, Some(0)));
    assert!(!ordered.is_terminated());
    assert!(within(ordered.next()).await.is_none());
    assert!(ordered.is_terminated());
    assert!(within(ordered.next()).await.is_none(), "fused");

    let mut unordered = stream::empty::<u32>().compute_map_unordered(&pool, 5, |i| i);
    assert!(within(unordered.next()).await.is_none());
    assert!(unordered.is_terminated());
    assert_eq!(pool.metrics().tasks_total(), 0);
}

#[tokio::test]
async fn the_stream_ends_after_the_last_result() {
    let pool = pool(2);
    let mut mapped = stream::iter(0..5u32).compute_map(&pool, None, |i| i + 1);
    assert_eq!(mapped.size_hint(), (5, Some(5)));
    for expected in 1..=5 {
        assert_eq!(within(mapped.next()).await.unwrap().unwrap(), expected);
        let left = 5 - expected as usize;
        assert_eq!(mapped.size_hint(), (left, Some(left)));
    }
    assert!(mapped.is_terminated());
    assert!(within(mapped.next()).await.is_none());
}

#[tokio::test]
async fn no_limit_means_twice_the_threads() {
    for threads in [1usize, 3] {
        let pool = pool(threads);
        let blockers: Vec<Blocker> = (0..threads).map(|_| Blocker::occupy(&pool)).collect();
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut mapped = counted(100, &pulled).compute_map_unordered(&pool, None, |i| i);
        let waker = futures::task::noop_waker();
        assert!(Pin::new(&mut mapped)
            .poll_next(&mut Context::from_waker(&waker))
            .is_pending());
        // Every thread is blocked: the jobs submitted are all still queued.
        assert_eq!(pulled.load(Ordering::SeqCst), 2 * threads);
        assert_eq!(pool.metrics().tasks_queued(), 2 * threads as u64);
        for blocker in blockers {
            within(blocker.release()).await.unwrap();
        }
        assert_eq!(within(mapped.count()).await, 100);
    }
}

#[tokio::test]
#[should_panic(expected = "Some(0)")]
async fn a_limit_of_zero_panics() {
    let pool = pool(1);
    let _ = stream::iter(0..1u8).compute_map(&pool, 0, |i| i);
}

#[tokio::test]
async fn unordered_yields_every_item_exactly_once() {
    let pool = pool(3);
    let n = 2_000usize;
    let seen: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let mut results =
        counted(n, &Arc::new(AtomicUsize::new(0))).compute_map_unordered(&pool, 7, |i| {
            // Uneven job lengths so the order of completion is mixed.
            if i % 13 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            i
        });
    let mut count = 0;
    while let Some(result) = within(results.next()).await {
        let i = result.unwrap();
        assert!(!seen[i].swap(true, Ordering::SeqCst), "item {i} twice");
        count += 1;
    }
    assert_eq!(count, n);
    assert!(seen.iter().all(|s| s.load(Ordering::SeqCst)));
}

#[tokio::test]
async fn upstream_pending_then_ready_wakes_the_stream() {
    // Items arrive over time through a channel: the adaptor must be woken by
    // upstream when nothing is in flight, and by a job when upstream waits.
    let pool = pool(2);
    let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
    let producer = tokio::spawn(async move {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.unbounded_send(i).unwrap();
        }
    });
    let out: Vec<u32> = within(
        rx.compute_map(&pool, 2, |i| i * 2)
            .map(Result::unwrap)
            .collect(),
    )
    .await;
    assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    producer.await.unwrap();
}

#[test]
fn unpin_send_and_debug() {
    fn unpin_send<T: Unpin + Send>(_: &T) {}
    let pool = pool(1);
    // An upstream that is not `Unpin`.
    let upstream = stream::iter(0..3u8).then(|i| async move { i });
    let mapped = upstream.compute_map(&pool, 2, |i| i);
    unpin_send(&mapped);
    assert_eq!(
        format!("{mapped:?}"),
        "ComputeMap { items_in_flight: 0, limit: 2, upstream_ended: false, .. }"
    );
    // Under any executor.
    let out: Vec<u8> =
        support::watchdog(|| futures::executor::block_on(mapped.map(Result::unwrap).collect()));
    assert_eq!(out, [0, 1, 2]);
}

/// Polls `inner` once per poll and records whether it ever saw a poll after
/// returning `Ready(None)` (which fused streams never need).
struct NoPollAfterEnd<S> {
    inner: S,
    ended: bool,
}

impl<S: Stream + Unpin> Stream for NoPollAfterEnd<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        assert!(!self.ended, "upstream polled after it ended");
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = next {
            self.ended = true;
        }
        next
    }
}

#[tokio::test]
async fn upstream_is_not_polled_after_it_ended() {
    let pool = pool(2);
    let upstream = NoPollAfterEnd {
        inner: stream::iter(0..10u32),
        ended: false,
    };
    let mut mapped = upstream.compute_map(&pool, 4, |i| i);
    let mut n = 0;
    while let Some(r) = within(mapped.next()).await {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, 10);
    assert!(within(mapped.next()).await.is_none());
}

#[tokio::test]
async fn short_items_ready_together_share_jobs() {
    let pool = pool(2);
    let n = 5_000u64;
    let out: Vec<u64> = within(
        stream::iter(0..n)
            .compute_map(&pool, None, |i| i * 3)
            .map(Result::unwrap)
            .collect(),
    )
    .await;
    assert_eq!(out, (0..n).map(|i| i * 3).collect::<Vec<_>>());
    let jobs = pool.metrics().tasks_total();
    assert!(jobs < n / 2, "{jobs} jobs for {n} short items");
}

#[tokio::test]
async fn a_panic_in_a_shared_job_is_an_error_for_that_item_only() {
    let pool = pool(2);
    let n = 3_000u32;
    let results: Vec<Result<u32, ComputeError>> = within(
        stream::iter(0..n)
            .compute_map(&pool, None, |i| {
                assert!(i % 100 != 99, "item {i} refuses");
                i
            })
            .collect(),
    )
    .await;
    assert!(
        pool.metrics().tasks_total() < u64::from(n) / 2,
        "items shared jobs"
    );
    for (i, result) in (0..n).zip(results) {
        if i % 100 == 99 {
            let ComputeError::Panicked(payload) = result.unwrap_err() else {
                panic!("item {i}: not a panic")
            };
            assert_eq!(payload.message(), format!("item {i} refuses"));
        } else {
            assert_eq!(result.unwrap(), i);
        }
    }
    // A panicking item with a job of its own is a panicked job; one that
    // shared a job leaves it completed (the panic is that item's alone).
    assert!(pool.metrics().tasks_panicked() <= u64::from(n / 100));
}

#[tokio::test]
async fn after_shutdown_every_item_is_refused() {
    let pool = pool(2);
    let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
    let mut mapped = rx.compute_map(&pool, None, |i| i);
    // Short items first, so that the adaptor learns to share jobs.
    for i in 0..200 {
        tx.unbounded_send(i).unwrap();
    }
    for i in 0..200 {
        assert_eq!(within(mapped.next()).await.unwrap().unwrap(), i);
    }
    assert!(pool.shutdown_blocking(Duration::from_secs(10)));
    // Ready together: a shared job, refused as a whole; an error per item.
    for i in 0..100 {
        tx.unbounded_send(i).unwrap();
    }
    drop(tx);
    let mut refused = 0;
    while let Some(result) = within(mapped.next()).await {
        assert!(result.unwrap_err().is_shutdown());
        refused += 1;
    }
    assert_eq!(refused, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_wakeup_with_a_producer_on_another_thread() {
    // Upstream is woken from a plain thread that pauses now and then, jobs
    // finish on compute threads: whichever wakes the consumer, it must
    // come. A lost wakeup hangs a round (and fails it under `within`).
    let pool = pool(2);
    for (round, limit) in [1usize, 2, 3, 8].into_iter().enumerate() {
        let (tx, rx) = futures::channel::mpsc::channel::<u32>(4);
        let producer = std::thread::spawn(move || {
            let mut tx = tx;
            for i in 0..2_000u32 {
                futures::executor::block_on(futures::SinkExt::send(&mut tx, i)).unwrap();
                if i % 97 == round as u32 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        });
        let out: Vec<u32> = within(
            rx.compute_map(&pool, limit, |i| {
                if i % 31 == 0 {
                    std::thread::yield_now();
                }
                i
            })
            .map(Result::unwrap)
            .collect(),
        )
        .await;
        assert_eq!(out, (0..2_000).collect::<Vec<_>>());
        producer.join().unwrap();
    }
}
