//! `compute_runtime::current()` returns the runtime's pool on every kind of
//! thread the runtime owns, and `None` on a thread it does not.

use std::time::Duration;

use compute_runtime::{ComputePool, Runtime, RuntimeConfig};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        num_worker_threads: Some(2),
        compute_threads: Some(1),
        ..Default::default()
    })
    .unwrap()
}

fn is(pool: &ComputePool, found: Option<ComputePool>) -> bool {
    found.is_some_and(|found| found.same_pool(pool))
}

#[test]
fn every_runtime_thread_sees_the_pool() {
    let runtime = runtime();
    let pool = runtime.compute_pool().unwrap();
    assert!(
        compute_runtime::current().is_none(),
        "the test thread is not the runtime's"
    );

    let checks = runtime
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(30), {
                let pool = ComputePool::clone(&pool);
                async move {
                    let mut checks = Vec::new();
                    // The thread inside block_on.
                    checks.push(("block_on", is(&pool, compute_runtime::current())));

                    // Async worker threads: spawn enough tasks that both workers run some.
                    let mut tasks = Vec::new();
                    for _ in 0..16 {
                        tasks.push(tokio::spawn(async {
                            tokio::task::yield_now().await;
                            let name = std::thread::current().name().unwrap_or("").to_owned();
                            (name, compute_runtime::current())
                        }));
                    }
                    for task in tasks {
                        let (name, found) = task.await.unwrap();
                        assert!(name.starts_with("tokio-rt-"), "{name}");
                        checks.push(("worker", is(&pool, found)));
                    }

                    // Blocking threads.
                    let found = tokio::task::spawn_blocking(compute_runtime::current)
                        .await
                        .unwrap();
                    checks.push(("spawn_blocking", is(&pool, found)));

                    // block_in_place on a worker.
                    let found = tokio::spawn(async {
                        tokio::task::block_in_place(compute_runtime::current)
                    })
                    .await
                    .unwrap();
                    checks.push(("block_in_place", is(&pool, found)));

                    // Compute threads.
                    let found = pool.execute(compute_runtime::current).await.unwrap();
                    checks.push(("compute", is(&pool, found)));

                    // An unrelated std thread.
                    let found = std::thread::spawn(compute_runtime::current).join().unwrap();
                    checks.push(("std thread", found.is_none()));
                    checks
                }
            })
            .await
        })
        .expect("context checks hung");

    for (thread, ok) in &checks {
        assert!(ok, "{thread}: {checks:?}");
    }
    assert!(
        compute_runtime::current().is_none(),
        "block_on puts the caller's previous context back"
    );
}

#[test]
fn two_runtimes_see_their_own_pools() {
    compute_test_support::watchdog_for(Duration::from_secs(30), || {
        let first = runtime();
        let second = runtime();
        let first_pool = first.compute_pool().unwrap();
        let second_pool = second.compute_pool().unwrap();
        assert!(!first_pool.same_pool(&second_pool));

        let seen = first.block_on(async {
            tokio::spawn(async { compute_runtime::current() })
                .await
                .unwrap()
        });
        assert!(is(&first_pool, seen));
        let seen = second.block_on(async {
            tokio::task::spawn_blocking(compute_runtime::current)
                .await
                .unwrap()
        });
        assert!(is(&second_pool, seen));

        // block_on nested in a pool's context restores that context afterwards.
        compute_runtime::enter_context(&first_pool);
        let inside = second.block_on(async { compute_runtime::current() });
        assert!(is(&second_pool, inside));
        assert!(is(&first_pool, compute_runtime::current()));
        compute_runtime::leave_context();
    });
}

#[test]
fn no_pool_no_context() {
    compute_test_support::watchdog_for(Duration::from_secs(30), || {
        let runtime = Runtime::new(RuntimeConfig {
            num_worker_threads: Some(1),
            compute_threads: Some(0),
            ..Default::default()
        })
        .unwrap();
        let seen = runtime.block_on(async {
            let worker = tokio::spawn(async { compute_runtime::current().is_none() })
                .await
                .unwrap();
            let blocking = tokio::task::spawn_blocking(|| compute_runtime::current().is_none())
                .await
                .unwrap();
            worker && blocking && compute_runtime::current().is_none()
        });
        assert!(seen);
    });
}
