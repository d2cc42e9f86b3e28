//! Three typical `[runtime]` tables (a high-throughput service, a batch
//! job, a mixed service; the first is shown in `docs/configuration.md`)
//! parse and give the numbers they say, through `from_toml_str` and
//! through serde.

use compute_runtime::RuntimeConfig;

const MIB: usize = 1024 * 1024;

const HIGH_THROUGHPUT: &str = r#"
# Many concurrent requests, moderate compute per request
[runtime]
num_worker_threads = 16
compute_threads = 8
compute_stack_size = "4MB"
"#;

const BATCH: &str = r#"
# Few concurrent tasks, heavy compute per batch
[runtime]
num_worker_threads = 4
compute_threads = 12
compute_stack_size = "8MB"
"#;

const MIXED: &str = r#"
# Balance between async I/O and compute
[runtime]
num_worker_threads = 8
compute_threads = 6
compute_stack_size = "2MB"
"#;

const SIZING: &str = r#"
[runtime]
# Tokio threads: optimize for concurrent async tasks
num_worker_threads = 8  # Usually number of cores

# Rayon threads: optimize for CPU saturation
compute_threads = 4     # Often cores/2 to avoid oversubscription
"#;

fn expect(text: &str, workers: usize, compute: usize, stack: Option<usize>) {
    let config = RuntimeConfig::from_toml_str(text).unwrap();
    assert_eq!(config.num_worker_threads, Some(workers));
    assert_eq!(config.compute_threads, Some(compute));
    assert_eq!(config.compute_stack_size, stack);
    assert_eq!(config.compute_thread_prefix, None);
    assert_eq!(config.slow_task_threshold_ms, None);
    assert_eq!(config.max_in_flight, None);
    config.validate().unwrap();
}

#[test]
fn high_throughput_service() {
    expect(HIGH_THROUGHPUT, 16, 8, Some(4 * MIB));
}

#[test]
fn batch_processing_system() {
    expect(BATCH, 4, 12, Some(8 * MIB));
}

#[test]
fn mixed_workload() {
    expect(MIXED, 8, 6, Some(2 * MIB));
}

#[test]
fn thread_pool_sizing_section() {
    expect(SIZING, 8, 4, None);
}

/// Deserializing `RuntimeConfig` inside an application's own struct gives
/// the same values as `from_toml_str`.
#[test]
fn serde_path_agrees() {
    #[derive(serde::Deserialize)]
    struct AppConfig {
        runtime: RuntimeConfig,
    }
    for text in [HIGH_THROUGHPUT, BATCH, MIXED, SIZING] {
        let app: AppConfig = toml::from_str(text).unwrap();
        assert_eq!(app.runtime, RuntimeConfig::from_toml_str(text).unwrap());
    }
}

#[test]
fn optional_keys_and_other_tables() {
    let text = r#"
        title = "my service"

        [server]
        port = 8080

        [runtime]
        compute_threads = 3
        compute_stack_size = 2_097_152
        compute_thread_prefix = "crunch"
        slow_task_threshold_ms = 25
        max_in_flight = 512
        await_spin_us = 40
        runner_keep_alive_us = 500
        low_priority_every = 4
        low_priority_max_wait_ms = 250
        max_queued = 64
        latency_mode = true
        blocked_check_interval_ms = 0
        blocked_threshold_ms = 80
    "#;
    let config = RuntimeConfig::from_toml_str(text).unwrap();
    assert_eq!(
        config,
        RuntimeConfig {
            num_worker_threads: None,
            compute_threads: Some(3),
            compute_stack_size: Some(2 * MIB),
            compute_thread_prefix: Some("crunch".into()),
            slow_task_threshold_ms: Some(25),
            max_in_flight: Some(512),
            await_spin_us: Some(40),
            runner_keep_alive_us: Some(500),
            low_priority_every: Some(4),
            low_priority_max_wait_ms: Some(250),
            max_queued: Some(64),
            latency_mode: Some(true),
            blocked_check_interval_ms: Some(0),
            blocked_threshold_ms: Some(80),
        }
    );
    assert_eq!(config.compute_config(3).low_priority_every, 4);
    assert_eq!(
        config.compute_config(3).blocked_check_interval,
        None,
        "0 switches it off"
    );
    assert_eq!(
        config.compute_config(3).blocked_threshold,
        std::time::Duration::from_millis(80)
    );
    assert_eq!(
        config.compute_config(3).spin_policy,
        compute_runtime::SpinPolicy::Latency
    );
    assert_eq!(
        config.compute_config(3).low_priority_max_wait,
        std::time::Duration::from_millis(250)
    );
    let compute = config.compute_config(3);
    assert_eq!(compute.num_threads, Some(3));
    assert_eq!(compute.stack_size, Some(2 * MIB));
    assert_eq!(compute.thread_name_prefix, "crunch");
    assert_eq!(
        compute.slow_task_threshold,
        std::time::Duration::from_millis(25)
    );
    assert_eq!(compute.max_in_flight, Some(512));
    assert_eq!(
        compute.await_spin_limit,
        std::time::Duration::from_micros(40)
    );
    assert_eq!(
        compute.runner_keep_alive,
        std::time::Duration::from_micros(500)
    );
}

#[test]
fn every_size_spelling() {
    for (written, bytes) in [
        ("\"4MB\"", 4 * MIB),
        ("\"4 MiB\"", 4 * MIB),
        ("\"512KiB\"", 512 * 1024),
        ("\"512 kb\"", 512 * 1024),
        ("\"2 MiB\"", 2 * MIB),
        ("\"8 MB\"", 8 * MIB),
        ("\"1.5M\"", 3 * MIB / 2),
        ("\"1GiB\"", 1024 * MIB),
        ("\"65536\"", 65536),
        ("1048576", MIB),
    ] {
        let text = format!("[runtime]\ncompute_stack_size = {written}\n");
        let config = RuntimeConfig::from_toml_str(&text).unwrap();
        assert_eq!(config.compute_stack_size, Some(bytes), "{written}");
    }
}

#[test]
fn no_runtime_table_gives_defaults() {
    assert_eq!(
        RuntimeConfig::from_toml_str("").unwrap(),
        RuntimeConfig::default()
    );
    assert_eq!(
        RuntimeConfig::from_toml_str("[server]\nport = 1\n").unwrap(),
        RuntimeConfig::default()
    );
}

#[test]
fn compute_threads_zero_is_allowed() {
    let config = RuntimeConfig::from_toml_str("[runtime]\ncompute_threads = 0\n").unwrap();
    assert_eq!(config.compute_threads, Some(0));
    let plan = config.thread_plan_for(4);
    assert_eq!((plan.worker_threads, plan.compute_threads), (4, 0));
}
