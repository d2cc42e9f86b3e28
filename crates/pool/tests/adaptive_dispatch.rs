//! Adaptive dispatch: tiny jobs end up inline, 2 ms jobs stay on the pool,
//! a slow inline run is counted as a misprediction and moves the site to
//! the pool, and the metrics show each decision.

use std::time::{Duration, Instant};

use compute_pool::adaptive::WARMUP_CALLS;
use compute_pool::{ComputeConfig, ComputeError, ComputePool};

const LIMIT: Duration = Duration::from_secs(60);

fn pool() -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        ..Default::default()
    })
    .unwrap()
}

/// Keeps the CPU busy for `d` (a compute job, not a sleep).
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_jobs_go_inline() {
    tokio::time::timeout(LIMIT, async {
        let pool = pool();
        let mut sum = 0u64;
        for i in 0..200u64 {
            sum += pool.execute_adaptive(move || i + 1).await.unwrap();
        }
        assert_eq!(sum, (1..=200).sum());
        let m = pool.metrics();
        assert_eq!(m.adaptive_inline() + m.adaptive_offloaded(), 200);
        assert!(m.adaptive_offloaded() >= WARMUP_CALLS, "{m:?}");
        assert!(
            m.adaptive_inline() > 0,
            "tiny jobs never went inline: {m:?}"
        );
        // Inline runs are jobs of the pool too: counted, like offloaded ones.
        assert_eq!(m.tasks_completed(), 200);
    })
    .await
    .expect("hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_millisecond_jobs_are_offloaded() {
    tokio::time::timeout(LIMIT, async {
        let pool = pool();
        for _ in 0..20 {
            let on_pool = pool
                .execute_adaptive(|| {
                    spin(Duration::from_millis(2));
                    pool_thread()
                })
                .await
                .unwrap();
            assert!(on_pool, "a 2 ms job ran inline");
        }
        let m = pool.metrics();
        assert_eq!(m.adaptive_offloaded(), 20, "{m:?}");
        assert_eq!(m.adaptive_inline(), 0, "{m:?}");
        assert_eq!(m.adaptive_mispredicted(), 0, "{m:?}");
    })
    .await
    .expect("hung");
}

fn pool_thread() -> bool {
    compute_pool::current().is_some()
}

/// One closure type whose jobs are tiny until `slow` is set.
fn job(slow: bool) -> impl FnOnce() -> bool + Send + 'static {
    move || {
        if slow {
            spin(Duration::from_millis(2));
        }
        pool_thread()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_inline_run_is_a_misprediction() {
    tokio::time::timeout(LIMIT, async {
        let pool = pool();
        // Tiny jobs until the site has gone inline, then a 2 ms job, which
        // runs inline: a miss. On a busy machine a tiny inline run may be
        // preempted past the threshold itself and send the site back to
        // the pool before the 2 ms job: then start over.
        let mut attempt = 0;
        let (before, after) = loop {
            attempt += 1;
            assert!(
                attempt <= 20,
                "the 2 ms job never ran inline: {:?}",
                pool.metrics()
            );
            let mut inline = false;
            for _ in 0..1000 {
                if !pool.execute_adaptive(job(false)).await.unwrap() {
                    inline = true;
                    break;
                }
            }
            assert!(inline, "tiny jobs never went inline: {:?}", pool.metrics());
            let before = pool.metrics();
            if !pool.execute_adaptive(job(true)).await.unwrap() {
                break (before, pool.metrics());
            }
        };
        assert_eq!(
            after.adaptive_mispredicted(),
            before.adaptive_mispredicted() + 1,
            "{after:?}"
        );
        assert_eq!(after.adaptive_inline(), before.adaptive_inline() + 1);

        // That one sample moves the site to the pool.
        assert!(pool.execute_adaptive(job(false)).await.unwrap());
        assert_eq!(
            pool.metrics().adaptive_offloaded(),
            after.adaptive_offloaded() + 1
        );
        let estimate = compute_pool::adaptive_estimate(&job(false)).unwrap();
        assert!(
            estimate >= compute_pool::adaptive::INLINE_THRESHOLD,
            "{estimate:?}"
        );
    })
    .await
    .expect("hung");
}

#[tokio::test(flavor = "current_thread")]
async fn panics_are_errors_inline_and_offloaded() {
    tokio::time::timeout(LIMIT, async {
        let pool = pool();
        let mut panics = 0;
        for i in 0..200u32 {
            let result = pool
                .execute_adaptive(move || {
                    if i % 50 == 49 {
                        panic!("job {i}");
                    }
                    i
                })
                .await;
            match result {
                Ok(v) => assert_eq!(v, i),
                Err(ComputeError::Panicked(payload)) => {
                    assert_eq!(payload.message(), format!("job {i}"));
                    panics += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(panics, 4);
        // Nothing leaked in the pool's accounting.
        assert_eq!(pool.metrics().tasks_active(), 0);
    })
    .await
    .expect("hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_a_site() {
    tokio::time::timeout(LIMIT, async {
        let pool = pool();
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut sum = 0;
                for i in 0..100u64 {
                    sum += pool.execute_adaptive(move || t * 1000 + i).await.unwrap();
                }
                sum
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        let expected: u64 = (0..8u64)
            .flat_map(|t| (0..100u64).map(move |i| t * 1000 + i))
            .sum();
        assert_eq!(total, expected);
        let m = pool.metrics();
        assert_eq!(m.adaptive_inline() + m.adaptive_offloaded(), 800);
    })
    .await
    .expect("hung");
}

#[tokio::test(flavor = "current_thread")]
async fn a_shut_down_pool_refuses_inline_sites_too() {
    tokio::time::timeout(LIMIT, async {
        let pool = pool();
        // One closure value, copied: every call is the same site.
        let tiny = || 1u32;
        let mut went_inline = false;
        for _ in 0..1000 {
            pool.execute_adaptive(tiny).await.unwrap();
            if pool.metrics().adaptive_inline() > 0 {
                went_inline = true;
                break;
            }
        }
        assert!(went_inline, "{:?}", pool.metrics());
        assert!(pool.shutdown(Duration::from_secs(10)).await);
        let inline_before = pool.metrics().adaptive_inline();
        let err = pool.execute_adaptive(tiny).await.unwrap_err();
        assert!(err.is_shutdown(), "{err:?}");
        assert_eq!(
            pool.metrics().adaptive_inline(),
            inline_before,
            "nothing ran inline"
        );
    })
    .await
    .expect("hung");
}
