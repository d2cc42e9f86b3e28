//! Size classes: small runs inline, medium uses `block_in_place` on a
//! multi-thread runtime and falls back correctly elsewhere, large awaits
//! `execute`. All return our `Result` and contain panics.

use std::time::Duration;

use compute_runtime::{ComputeConfig, ComputeError, ComputePool, SizeClass, SizeClassExt};

fn pool(threads: usize) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        thread_name_prefix: "sized".into(),
        ..Default::default()
    })
    .unwrap()
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `body` on a 2-worker multi-thread runtime under a watchdog thread:
/// `run_medium` blocks its worker (`block_in_place`), where a Tokio timeout
/// in the same task could not fire.
fn on_multi_thread<F: std::future::Future + Send + 'static>(body: F)
where
    F::Output: Send + 'static,
{
    compute_test_support::watchdog_for(LIMIT, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(body)
    });
}

#[test]
fn each_class_runs_where_it_says() {
    on_multi_thread(async {
        let pool = pool(1);
        let caller = thread_name();

        let small = pool.run_small(thread_name).await.unwrap();
        assert_eq!(small, caller, "small runs on the calling thread");
        assert_eq!(
            pool.metrics().tasks_total(),
            1,
            "small is accounted as a job of the pool, though it ran here"
        );

        let medium = pool.run_medium(thread_name).await.unwrap();
        assert!(medium.starts_with("sized-"), "{medium}");

        let large = pool.run_large(thread_name).await.unwrap();
        assert!(large.starts_with("sized-"), "{large}");
        assert_eq!(pool.metrics().tasks_completed(), 3);

        for (class, on_pool) in [
            (SizeClass::Small, false),
            (SizeClass::Medium, true),
            (SizeClass::Large, true),
        ] {
            let name = pool.run_sized(class, thread_name).await.unwrap();
            assert_eq!(name.starts_with("sized-"), on_pool, "{class:?}: {name}");
        }
    });
}

#[test]
fn panics_are_errors_in_every_class() {
    on_multi_thread(async {
        let pool = pool(1);
        for class in [SizeClass::Small, SizeClass::Medium, SizeClass::Large] {
            let err = pool
                .run_sized(class, || -> u8 { panic!("boom in a job") })
                .await
                .unwrap_err();
            match err {
                ComputeError::Panicked(payload) => assert_eq!(payload.message(), "boom in a job"),
                other => panic!("{class:?}: expected Panicked, got {other:?}"),
            }
        }
        // The pool lives on.
        assert_eq!(pool.run_large(|| 5).await.unwrap(), 5);
    });
}

/// `block_in_place` panics on a current-thread runtime; `run_medium` must
/// not call it there.
#[test]
fn medium_on_a_current_thread_runtime() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool = pool(1);
            let name = pool.run_medium(thread_name).await.unwrap();
            assert!(name.starts_with("sized-"), "{name}");
            // Other tasks on this single thread still run while it waits.
            let (a, b) = tokio::join!(
                pool.run_medium(|| {
                    std::thread::sleep(Duration::from_millis(5));
                    1
                }),
                async { 2 }
            );
            assert_eq!((a.unwrap(), b), (1, 2));
        });
    });
}

/// Inside a `LocalSet` on a current-thread runtime: same fallback.
#[test]
fn medium_in_a_local_set() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let pool = pool(1);
        let value = local.block_on(&runtime, async move {
            tokio::task::spawn_local(async move { pool.run_medium(|| 3).await })
                .await
                .unwrap()
        });
        assert_eq!(value.unwrap(), 3);
    });
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Inside a `LocalSet` driven by `block_on` of a multi-thread runtime,
/// where `block_in_place` panics: the job is awaited instead, both in the
/// set's own future and in a `spawn_local` task.
#[test]
fn medium_in_a_local_set_on_a_multi_thread_runtime() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = multi_thread_runtime();
        let local = tokio::task::LocalSet::new();
        let pool = pool(1);
        let task_pool = pool.clone();
        let (direct, spawned) = local.block_on(&runtime, async move {
            let direct = pool.run_medium(thread_name).await.unwrap();
            let spawned = tokio::task::spawn_local(async move {
                task_pool.run_sized(SizeClass::Medium, || 8).await
            })
            .await
            .unwrap();
            (direct, spawned)
        });
        assert!(direct.starts_with("sized-"), "{direct}");
        assert_eq!(spawned.unwrap(), 8);
    });
}

/// A `LocalSet` run by `Handle::block_on` on a blocking thread of a
/// multi-thread runtime (`spawn_blocking`), and one run so inside
/// `block_in_place` on a worker: `run_medium` works in both.
#[test]
fn medium_in_a_local_set_off_the_workers() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = multi_thread_runtime();
        let pool = pool(1);
        let (on_blocking, in_block_in_place) = runtime.block_on(async move {
            let blocking_pool = pool.clone();
            let on_blocking = tokio::task::spawn_blocking(move || {
                let local = tokio::task::LocalSet::new();
                tokio::runtime::Handle::current().block_on(local.run_until(async move {
                    tokio::task::spawn_local(async move { blocking_pool.run_medium(|| 9).await })
                        .await
                        .unwrap()
                }))
            })
            .await
            .unwrap();
            let in_block_in_place = tokio::spawn(async move {
                tokio::task::block_in_place(|| {
                    let local = tokio::task::LocalSet::new();
                    tokio::runtime::Handle::current()
                        .block_on(local.run_until(async move { pool.run_medium(|| 10).await }))
                })
            })
            .await
            .unwrap();
            (on_blocking, in_block_in_place)
        });
        assert_eq!(on_blocking.unwrap(), 9);
        assert_eq!(in_block_in_place.unwrap(), 10);
    });
}

/// On a worker of a multi-thread runtime `run_medium` steps aside with
/// `block_in_place`: the worker's core goes to a new thread while the job
/// runs (an awaited job would start no thread).
#[test]
fn medium_on_a_worker_steps_aside() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    compute_test_support::watchdog_for(LIMIT, || {
        let started = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&started);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(move || {
                // ORDERING: SeqCst, a count read from the test's thread.
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        let pool = pool(1);
        let value = runtime.block_on(async move {
            tokio::spawn(async move { pool.run_medium(|| 11).await })
                .await
                .unwrap()
        });
        assert_eq!(value.unwrap(), 11);
        // The thread that took the core over runs its start hook on its
        // own time, perhaps after the task is done: wait for it.
        compute_test_support::wait_until("the worker handed its core to another thread", || {
            // ORDERING: SeqCst, see the start hook.
            started.load(Ordering::SeqCst) >= 2
        });
    });
}

/// Outside Tokio altogether (another executor).
#[test]
fn medium_outside_tokio() {
    compute_test_support::watchdog_for(LIMIT, || {
        let pool = pool(1);
        let value = futures::executor::block_on(pool.run_medium(|| 4)).unwrap();
        assert_eq!(value, 4);
    });
}

/// Inside `block_on` of a multi-thread runtime and on its blocking threads
/// (no worker to step aside), `run_medium` awaits the job.
#[test]
fn medium_in_block_on_and_on_blocking_threads() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let pool = pool(1);
        let in_block_on = runtime.block_on(pool.run_medium(|| 5)).unwrap();
        assert_eq!(in_block_on, 5);
        let pool2 = pool.clone();
        let on_blocking = runtime
            .block_on(async move {
                tokio::task::spawn_blocking(move || {
                    futures::executor::block_on(pool2.run_medium(|| 6))
                })
                .await
            })
            .unwrap()
            .unwrap();
        assert_eq!(on_blocking, 6);
    });
}

/// Called from the pool's only thread, medium runs inline instead of
/// waiting for a thread that is itself.
#[test]
fn medium_from_inside_the_pool_does_not_deadlock() {
    compute_test_support::watchdog_for(LIMIT, || {
        let pool = pool(1);
        let inner = pool.clone();
        let value = pool
            .execute_sync(move || futures::executor::block_on(inner.run_medium(|| 7)))
            .unwrap()
            .unwrap();
        assert_eq!(value, 7);
    });
}

#[test]
fn classes_by_expected_duration() {
    assert_eq!(SizeClass::for_duration(Duration::ZERO), SizeClass::Small);
    assert_eq!(
        SizeClass::for_duration(Duration::from_micros(99)),
        SizeClass::Small
    );
    assert_eq!(
        SizeClass::for_duration(SizeClass::SMALL_LIMIT),
        SizeClass::Medium
    );
    assert_eq!(
        SizeClass::for_duration(SizeClass::MEDIUM_LIMIT),
        SizeClass::Medium
    );
    assert_eq!(
        SizeClass::for_duration(Duration::from_micros(1001)),
        SizeClass::Large
    );
    assert_eq!(
        SizeClass::for_duration(Duration::from_secs(3600)),
        SizeClass::Large
    );
}

/// Many medium jobs at once on a small multi-thread runtime: all complete,
/// and the runtime keeps serving other tasks.
#[test]
fn many_medium_jobs_at_once() {
    on_multi_thread(async {
        let pool = pool(2);
        let mut tasks = Vec::new();
        for i in 0..32u64 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                pool.run_medium(move || (0..10_000u64).map(|x| x ^ i).sum::<u64>())
                    .await
            }));
        }
        let ticker = tokio::spawn(async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        for (i, task) in tasks.into_iter().enumerate() {
            let expected: u64 = (0..10_000u64).map(|x| x ^ i as u64).sum();
            assert_eq!(task.await.unwrap().unwrap(), expected);
        }
        ticker.await.unwrap();
    });
}
