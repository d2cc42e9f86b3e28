//! `ComputeConfig::on_thread_start`: a `ThreadHook` runs once on each
//! compute thread as it starts, before any job; a panicking hook is
//! contained and counted.

mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use compute_pool::{ComputeConfig, ComputePool, ThreadHook};
use support::{wait_until, watchdog};

thread_local! {
    /// Set by the hook on the thread it runs on.
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

fn pool_with(threads: usize, hook: ThreadHook) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        on_thread_start: Some(hook),
        ..Default::default()
    })
    .expect("a valid config")
}

#[test]
fn the_hook_runs_once_on_each_thread_before_its_jobs() {
    watchdog(|| {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let hook = ThreadHook::new({
            let threads = Arc::clone(&threads);
            move || {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                threads.lock().unwrap().push(name);
                HOOKED.with(|hooked| hooked.set(true));
            }
        });
        let pool = pool_with(3, hook);
        wait_until("every thread ran the hook", || {
            threads.lock().unwrap().len() == 3
        });

        let mut seen = threads.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            ["compute-0", "compute-1", "compute-2"],
            "once per thread, on it"
        );

        // Every job, on whichever thread, runs after that thread's hook.
        let handles: Vec<_> = (0..32)
            .map(|_| pool.execute(|| HOOKED.with(Cell::get)))
            .collect();
        for handle in handles {
            assert!(futures::executor::block_on(handle).unwrap());
        }
        assert!(!HOOKED.with(Cell::get), "not on the submitting thread");
        assert_eq!(threads.lock().unwrap().len(), 3, "no thread ran it twice");
    });
}

#[test]
fn a_panicking_hook_is_contained_and_counted() {
    watchdog(|| {
        let calls = Arc::new(AtomicUsize::new(0));
        let hook = ThreadHook::new({
            let calls = Arc::clone(&calls);
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("the hook failed");
            }
        });
        let pool = pool_with(2, hook);
        wait_until("both threads counted the hook's panic", || {
            pool.metrics().escaped_panics() == 2
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // The threads serve the pool all the same.
        let on_pool = pool.execute_sync({
            let pool = pool.clone();
            move || pool.is_worker_thread() && compute_pool::current().is_some()
        });
        assert!(on_pool.unwrap());
        let sum = futures::executor::block_on(pool.execute(|| (1..=10).sum::<u32>()));
        assert_eq!(sum.unwrap(), 55);
        let metrics = pool.metrics();
        assert_eq!(
            (metrics.tasks_completed(), metrics.tasks_panicked()),
            (2, 0)
        );
        assert!(pool.shutdown_blocking(support::LIMIT));
    });
}

#[test]
fn a_config_with_a_hook_compares_and_prints() {
    let hook = ThreadHook::new(|| ());
    let config = ComputeConfig {
        on_thread_start: Some(hook.clone()),
        ..Default::default()
    };
    assert_eq!(ComputeConfig::default().on_thread_start, None);
    assert_eq!(config, config.clone(), "a clone shares the hook");
    assert_eq!(
        config,
        ComputeConfig {
            on_thread_start: Some(hook.clone()),
            ..Default::default()
        }
    );
    assert_ne!(
        config,
        ComputeConfig {
            on_thread_start: Some(ThreadHook::new(|| ())),
            ..Default::default()
        },
        "another function, even an identical one, is another hook"
    );
    assert_ne!(config, ComputeConfig::default());
    assert!(config.validate().is_ok());

    let text = format!("{config:?}");
    assert!(
        text.contains("on_thread_start: Some(ThreadHook(0x"),
        "{text}"
    );
    assert_eq!(format!("{hook:?}"), format!("{:?}", hook.clone()));
    assert!(format!("{:?}", ComputeConfig::default()).contains("on_thread_start: None"));

    // The pool keeps the hook it was built with.
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        ..config.clone()
    })
    .unwrap();
    assert_eq!(pool.config().on_thread_start, Some(hook));
}
