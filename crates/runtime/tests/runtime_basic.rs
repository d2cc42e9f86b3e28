//! `Runtime::new`: thread counts, names, `compute_threads = 0`, handles, and
//! bad configs as errors.

use std::time::Duration;

use compute_runtime::{ConfigError, Runtime, RuntimeConfig};

const LIMIT: Duration = Duration::from_secs(30);

fn small(workers: usize, compute: usize) -> RuntimeConfig {
    RuntimeConfig {
        num_worker_threads: Some(workers),
        compute_threads: Some(compute),
        ..Default::default()
    }
}

#[test]
fn counts_names_and_work() {
    compute_test_support::watchdog_for(LIMIT, || {
        let config = RuntimeConfig {
            compute_thread_prefix: Some("crunch".into()),
            compute_stack_size: Some(1 << 20),
            ..small(2, 2)
        };
        let runtime = Runtime::new(config.clone()).unwrap();
        let plan = runtime.thread_plan();
        assert_eq!((plan.worker_threads, plan.compute_threads), (2, 2));
        assert_eq!(runtime.config(), &config);
        let pool = runtime.compute_pool().unwrap();
        assert_eq!(pool.num_threads(), 2);

        let (tokio_name, compute_name) = runtime.block_on(async move {
            let tokio_name =
                tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
                    .await
                    .unwrap();
            let compute_name = pool
                .execute(|| std::thread::current().name().map(str::to_owned))
                .await
                .unwrap();
            (tokio_name, compute_name)
        });
        assert!(tokio_name.unwrap().starts_with("tokio-rt-"));
        assert!(compute_name.unwrap().starts_with("crunch-"));

        let debug = format!("{runtime:?}");
        assert!(debug.contains("worker_threads: 2"), "{debug}");
        assert!(debug.contains("crunch"), "{debug}");
        assert!(runtime.shutdown(Duration::from_secs(5)));
    });
}

#[test]
fn handle_spawns_onto_the_runtime() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = Runtime::new(small(1, 1)).unwrap();
        let task = runtime.handle().spawn(async { 6 * 7 });
        assert_eq!(runtime.block_on(task).unwrap(), 42);
        // Timers and the blocking pool are enabled.
        let slept = runtime.block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::task::spawn_blocking(|| 1).await.unwrap()
        });
        assert_eq!(slept, 1);
    });
}

#[test]
fn compute_threads_zero_means_no_pool() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = Runtime::new(RuntimeConfig {
            compute_threads: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert!(runtime.compute_pool().is_none());
        assert_eq!(runtime.thread_plan().compute_threads, 0);
        assert!(runtime.thread_plan().worker_threads >= 1);
        let seen = runtime.block_on(async {
            let here = compute_runtime::current().is_none();
            let worker = tokio::spawn(async { compute_runtime::current().is_none() })
                .await
                .unwrap();
            here && worker
        });
        assert!(seen);
        assert!(format!("{runtime:?}").contains("compute_pool: None"));
        assert!(runtime.shutdown(Duration::from_secs(5)));
    });
}

#[test]
fn defaults_build() {
    compute_test_support::watchdog_for(LIMIT, || {
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let plan = runtime.thread_plan();
        assert_eq!(plan, RuntimeConfig::default().thread_plan());
        assert_eq!(plan.oversubscription(), None);
        assert_eq!(
            runtime.compute_pool().unwrap().num_threads(),
            plan.compute_threads
        );
    });
}

/// One default thread-count rule: a pool built with defaults and the pool
/// of a runtime built with defaults have the same number of threads.
#[test]
fn default_pool_and_default_runtime_agree() {
    compute_test_support::watchdog_for(LIMIT, || {
        let pool = compute_runtime::ComputePool::with_defaults().unwrap();
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let runtime_pool = runtime.compute_pool().unwrap();
        assert_eq!(pool.num_threads(), runtime_pool.num_threads());
        assert_eq!(pool.num_threads(), compute_runtime::default_num_threads());
        assert_eq!(
            runtime.thread_plan().compute_threads,
            compute_runtime::default_num_threads_for(compute_runtime::physical_cores())
        );
        assert!(runtime.shutdown(Duration::from_secs(10)));
    });
}

#[test]
fn from_toml_and_env() {
    compute_test_support::watchdog_for(LIMIT, || {
        let config = RuntimeConfig::from_toml_str(
            "[runtime]\nnum_worker_threads = 2\ncompute_threads = 2\ncompute_stack_size = \"2MB\"\n",
        )
        .unwrap()
        .from_env_with(|name| (name == compute_runtime::settings::env::COMPUTE_THREADS).then(|| "1".into()))
        .unwrap();
        let runtime = Runtime::new(config).unwrap();
        assert_eq!(runtime.compute_pool().unwrap().num_threads(), 1);
    });
}

#[test]
fn bad_configs_are_errors() {
    let err = Runtime::new(small(0, 1)).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { field, value, .. }
            if field == "runtime.num_worker_threads" && value == "0"),
        "{err:?}"
    );
    let err = Runtime::new(RuntimeConfig {
        compute_stack_size: Some(100),
        ..small(1, 1)
    })
    .unwrap_err();
    assert!(err.to_string().contains("compute_stack_size"), "{err}");
    let err = Runtime::new(small(1, 100_000)).unwrap_err();
    assert!(err.to_string().contains("100000"), "{err}");
    let err = Runtime::new(RuntimeConfig {
        compute_thread_prefix: Some(String::new()),
        ..small(1, 1)
    })
    .unwrap_err();
    assert!(err.to_string().contains("compute_thread_prefix"), "{err}");
}

#[test]
fn runtime_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Runtime>();
    assert_send_sync::<RuntimeConfig>();
    assert_send_sync::<ConfigError>();
}
