//! Environment variables override the `[runtime]` table. The lookups go
//! through `from_env_with`, so no test touches the real process environment.

use std::collections::HashMap;

use compute_runtime::settings::env;
use compute_runtime::{ConfigError, RuntimeConfig};

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

const FILE: &str =
    "[runtime]\nnum_worker_threads = 8\ncompute_threads = 6\ncompute_stack_size = \"2MB\"\n";

#[test]
fn names_follow_the_keys() {
    assert_eq!(
        env::ALL,
        [
            "COMPUTE_RUNTIME_NUM_WORKER_THREADS",
            "COMPUTE_RUNTIME_COMPUTE_THREADS",
            "COMPUTE_RUNTIME_COMPUTE_STACK_SIZE",
            "COMPUTE_RUNTIME_COMPUTE_THREAD_PREFIX",
            "COMPUTE_RUNTIME_SLOW_TASK_THRESHOLD_MS",
            "COMPUTE_RUNTIME_MAX_IN_FLIGHT",
            "COMPUTE_RUNTIME_AWAIT_SPIN_US",
            "COMPUTE_RUNTIME_RUNNER_KEEP_ALIVE_US",
            "COMPUTE_RUNTIME_LOW_PRIORITY_EVERY",
            "COMPUTE_RUNTIME_LOW_PRIORITY_MAX_WAIT_MS",
            "COMPUTE_RUNTIME_MAX_QUEUED",
            "COMPUTE_RUNTIME_LATENCY_MODE",
            "COMPUTE_RUNTIME_BLOCKED_CHECK_INTERVAL_MS",
            "COMPUTE_RUNTIME_BLOCKED_THRESHOLD_MS",
        ]
    );
}

#[test]
fn env_overrides_the_file() {
    let file = RuntimeConfig::from_toml_str(FILE).unwrap();
    let config = file
        .clone()
        .from_env_with(lookup(&[
            (env::COMPUTE_THREADS, "3"),
            (env::COMPUTE_STACK_SIZE, "512 KiB"),
            (env::COMPUTE_THREAD_PREFIX, "crunch"),
            (env::SLOW_TASK_THRESHOLD_MS, "40"),
            (env::MAX_IN_FLIGHT, "64"),
        ]))
        .unwrap();
    assert_eq!(config.num_worker_threads, Some(8), "untouched by env");
    assert_eq!(config.compute_threads, Some(3));
    assert_eq!(config.compute_stack_size, Some(512 * 1024));
    assert_eq!(config.compute_thread_prefix.as_deref(), Some("crunch"));
    assert_eq!(config.slow_task_threshold_ms, Some(40));
    assert_eq!(config.max_in_flight, Some(64));

    let unchanged = file.clone().from_env_with(lookup(&[])).unwrap();
    assert_eq!(unchanged, file);
}

#[test]
fn empty_variables_are_ignored() {
    let file = RuntimeConfig::from_toml_str(FILE).unwrap();
    let config = file
        .clone()
        .from_env_with(lookup(&[
            (env::NUM_WORKER_THREADS, ""),
            (env::COMPUTE_THREADS, "  "),
        ]))
        .unwrap();
    assert_eq!(config, file);
}

#[test]
fn compute_off_from_env() {
    let config = RuntimeConfig::default()
        .from_env_with(lookup(&[
            (env::COMPUTE_THREADS, "0"),
            (env::NUM_WORKER_THREADS, " 2 "),
        ]))
        .unwrap();
    assert_eq!(config.compute_threads, Some(0));
    assert_eq!(config.num_worker_threads, Some(2));
}

#[test]
fn invalid_values_name_the_variable_and_value() {
    for (name, value) in [
        (env::NUM_WORKER_THREADS, "eight"),
        (env::NUM_WORKER_THREADS, "-1"),
        (env::NUM_WORKER_THREADS, "0"),
        (env::COMPUTE_THREADS, "99999"),
        (env::COMPUTE_STACK_SIZE, "4XB"),
        (env::COMPUTE_STACK_SIZE, "1KB"),
        (env::SLOW_TASK_THRESHOLD_MS, "1.5"),
        (env::MAX_IN_FLIGHT, "0"),
        (env::COMPUTE_THREAD_PREFIX, "a\0b"),
    ] {
        let err = RuntimeConfig::default()
            .from_env_with(lookup(&[(name, value)]))
            .unwrap_err();
        match &err {
            ConfigError::Invalid {
                field, value: v, ..
            } => {
                assert_eq!(field, name);
                assert_eq!(v, &value.escape_debug().to_string());
            }
            other => panic!("{name}={value:?}: expected Invalid, got {other:?}"),
        }
        assert!(err.to_string().contains(name), "{err}");
    }
}

/// The real `from_env` reads the process environment; with none of our
/// variables set (no test here sets them) it changes nothing.
#[test]
fn real_environment_without_our_variables() {
    if env::ALL.iter().any(|name| std::env::var_os(name).is_some()) {
        return; // someone runs the tests with overrides set on purpose
    }
    let file = RuntimeConfig::from_toml_str(FILE).unwrap();
    assert_eq!(file.clone().from_env().unwrap(), file);
}

/// A range error about a value that came from the environment names the
/// variable, even when the file set other keys; a bad value from the file
/// that the environment replaces is no error.
#[test]
fn range_errors_name_the_variable() {
    for (name, value) in [
        (env::AWAIT_SPIN_US, "20000"),
        (env::RUNNER_KEEP_ALIVE_US, "100001"),
        (env::COMPUTE_STACK_SIZE, "2GB"),
        (env::NUM_WORKER_THREADS, "5000"),
    ] {
        let err = RuntimeConfig::from_toml_str(FILE)
            .unwrap()
            .from_env_with(lookup(&[(name, value)]))
            .unwrap_err();
        match &err {
            ConfigError::Invalid {
                field, value: v, ..
            } => {
                assert_eq!(field, name);
                assert_eq!(v, value);
            }
            other => panic!("{name}={value:?}: expected Invalid, got {other:?}"),
        }
    }
    let hand_built = RuntimeConfig {
        await_spin_us: Some(20_000),
        ..Default::default()
    };
    let fixed = hand_built
        .from_env_with(lookup(&[(env::AWAIT_SPIN_US, "100")]))
        .unwrap();
    assert_eq!(fixed.await_spin_us, Some(100));
}
