//! Bad `[runtime]` input: each case is a `ConfigError` naming the field and
//! the value, never a panic.

use compute_runtime::{ConfigError, RuntimeConfig};

/// Parses `[runtime]\n{body}` and expects an `Invalid` error for `field`
/// whose value is shown as `value`. Returns the reason.
fn invalid(body: &str, field: &str, value: &str) -> String {
    let text = format!("[runtime]\n{body}\n");
    match RuntimeConfig::from_toml_str(&text) {
        Err(ConfigError::Invalid {
            field: f,
            value: v,
            reason,
        }) => {
            assert_eq!(f, field, "field for {body:?}");
            assert_eq!(v, value, "value for {body:?}");
            let shown = ConfigError::invalid(&f, &v, &reason).to_string();
            assert!(shown.contains(field) && shown.contains(value), "{shown}");
            reason
        }
        other => panic!("{body:?}: expected Invalid, got {other:?}"),
    }
}

#[test]
fn malformed_toml() {
    let err = RuntimeConfig::from_toml_str("[runtime]\nnum_worker_threads = 8 8\n").unwrap_err();
    match &err {
        ConfigError::Parse { field, message } => {
            assert_eq!(field.as_deref(), Some("runtime.num_worker_threads"));
            assert!(message.contains("line 2"), "{message}");
            assert!(message.contains("num_worker_threads = 8 8"), "{message}");
        }
        other => panic!("expected Parse, got {other:?}"),
    }
    assert!(err.to_string().contains("num_worker_threads"));

    let err = RuntimeConfig::from_toml_str("[runtime\ncompute_threads = 2\n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");

    let err = RuntimeConfig::from_toml_str("[runtime]\ncompute_stack_size = \"4MB\n").unwrap_err();
    match err {
        ConfigError::Parse { field, .. } => {
            assert_eq!(field.as_deref(), Some("runtime.compute_stack_size"))
        }
        other => panic!("expected Parse, got {other:?}"),
    }
}

#[test]
fn unknown_key_is_named() {
    let err =
        RuntimeConfig::from_toml_str("[runtime]\nnum_worker_threads = 2\ncompute_thread = 4\n")
            .unwrap_err();
    assert_eq!(
        err,
        ConfigError::UnknownKey {
            key: "runtime.compute_thread".into()
        }
    );
    assert!(err.to_string().contains("runtime.compute_thread"));
}

#[test]
fn unknown_key_through_serde_is_named() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct AppConfig {
        runtime: RuntimeConfig,
    }
    let err = toml::from_str::<AppConfig>("[runtime]\ncompute_thread = 4\n").unwrap_err();
    assert!(err.to_string().contains("compute_thread"), "{err}");
}

#[test]
fn runtime_must_be_a_table() {
    let err = RuntimeConfig::from_toml_str("runtime = 4\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { field, value, .. } if field == "runtime" && value == "4"),
        "{err:?}"
    );
}

#[test]
fn wrong_type() {
    let reason = invalid(
        "compute_threads = \"four\"",
        "runtime.compute_threads",
        "\"four\"",
    );
    assert!(reason.contains("found string"), "{reason}");
    let reason = invalid(
        "num_worker_threads = 2.5",
        "runtime.num_worker_threads",
        "2.5",
    );
    assert!(reason.contains("found float"), "{reason}");
    let reason = invalid(
        "compute_stack_size = true",
        "runtime.compute_stack_size",
        "true",
    );
    assert!(reason.contains("found boolean"), "{reason}");
    invalid(
        "compute_thread_prefix = 7",
        "runtime.compute_thread_prefix",
        "7",
    );
    invalid(
        "slow_task_threshold_ms = [1]",
        "runtime.slow_task_threshold_ms",
        "[1]",
    );
    invalid(
        "max_in_flight = \"lots\"",
        "runtime.max_in_flight",
        "\"lots\"",
    );
}

#[test]
fn negative_thread_count() {
    let reason = invalid(
        "num_worker_threads = -4",
        "runtime.num_worker_threads",
        "-4",
    );
    assert!(reason.contains("negative"), "{reason}");
    let reason = invalid("compute_threads = -1", "runtime.compute_threads", "-1");
    assert!(reason.contains("negative"), "{reason}");
    invalid(
        "slow_task_threshold_ms = -5",
        "runtime.slow_task_threshold_ms",
        "-5",
    );
    invalid("max_in_flight = -2", "runtime.max_in_flight", "-2");
}

#[test]
fn absurd_thread_count() {
    let reason = invalid(
        "compute_threads = 1000000",
        "runtime.compute_threads",
        "1000000",
    );
    assert!(reason.contains("threads allowed"), "{reason}");
    invalid(
        "num_worker_threads = 9223372036854775807",
        "runtime.num_worker_threads",
        "9223372036854775807",
    );
}

#[test]
fn zero_workers_or_zero_in_flight() {
    invalid("num_worker_threads = 0", "runtime.num_worker_threads", "0");
    invalid("max_in_flight = 0", "runtime.max_in_flight", "0");
}

#[test]
fn unknown_size_unit() {
    let reason = invalid(
        "compute_stack_size = \"4XB\"",
        "runtime.compute_stack_size",
        "\"4XB\"",
    );
    assert!(reason.contains("XB"), "{reason}");
    invalid(
        "compute_stack_size = \"MB\"",
        "runtime.compute_stack_size",
        "\"MB\"",
    );
    invalid(
        "compute_stack_size = \"-4MB\"",
        "runtime.compute_stack_size",
        "\"-4MB\"",
    );
    invalid(
        "compute_stack_size = -4",
        "runtime.compute_stack_size",
        "-4",
    );
}

#[test]
fn tiny_or_huge_stack() {
    let reason = invalid(
        "compute_stack_size = \"4KB\"",
        "runtime.compute_stack_size",
        "\"4KB\"",
    );
    assert!(reason.contains("too small"), "{reason}");
    invalid(
        "compute_stack_size = 100",
        "runtime.compute_stack_size",
        "100",
    );
    let reason = invalid(
        "compute_stack_size = \"64GB\"",
        "runtime.compute_stack_size",
        "\"64GB\"",
    );
    assert!(reason.contains("1 GiB"), "{reason}");
}

#[test]
fn bad_prefix() {
    invalid(
        "compute_thread_prefix = \"\"",
        "runtime.compute_thread_prefix",
        "\"\"",
    );
    invalid(
        "compute_thread_prefix = \"a\\u0000b\"",
        "runtime.compute_thread_prefix",
        "\"a\\u0000b\"",
    );
}

#[test]
fn hand_built_config_is_validated() {
    let config = RuntimeConfig {
        compute_stack_size: Some(1024),
        ..Default::default()
    };
    let err = config.validate().unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { field, value, .. }
            if field == "runtime.compute_stack_size" && value == "1024"),
        "{err:?}"
    );
    let config = RuntimeConfig {
        num_worker_threads: Some(0),
        ..Default::default()
    };
    assert!(config.validate().is_err());
    assert!(RuntimeConfig::default().validate().is_ok());
}

#[test]
fn await_spin_out_of_range() {
    let reason = invalid("await_spin_us = 20000", "runtime.await_spin_us", "20000");
    assert!(reason.contains("10000"), "{reason}");
    let reason = invalid("await_spin_us = -1", "runtime.await_spin_us", "-1");
    assert!(reason.contains("negative"), "{reason}");
}

#[test]
fn runner_keep_alive_out_of_range() {
    let reason = invalid(
        "runner_keep_alive_us = 100001",
        "runtime.runner_keep_alive_us",
        "100001",
    );
    assert!(reason.contains("100000"), "{reason}");
    let reason = invalid(
        "runner_keep_alive_us = -5",
        "runtime.runner_keep_alive_us",
        "-5",
    );
    assert!(reason.contains("negative"), "{reason}");
}

#[test]
fn blank_prefix() {
    let reason = invalid(
        "compute_thread_prefix = \"  \"",
        "runtime.compute_thread_prefix",
        "\"  \"",
    );
    assert!(reason.contains("whitespace"), "{reason}");
}

/// Range errors come from the pool's own validator and still name the
/// setting's key and the value as written (here a size string, not bytes).
#[test]
fn pool_rules_name_the_key_and_written_value() {
    let reason = invalid(
        "compute_stack_size = \"2GB\"",
        "runtime.compute_stack_size",
        "\"2GB\"",
    );
    assert!(reason.contains("at most"), "{reason}");
    let pool = compute_runtime::ComputeConfig {
        stack_size: Some(2 << 30),
        ..Default::default()
    };
    let ConfigError::Invalid {
        reason: pool_reason,
        ..
    } = pool.validate().unwrap_err()
    else {
        panic!("expected Invalid");
    };
    assert_eq!(reason, pool_reason, "one rule, one message");
}

#[test]
fn hand_built_values_are_shown_as_held() {
    for (config, field, value) in [
        (
            RuntimeConfig {
                await_spin_us: Some(20_000),
                ..Default::default()
            },
            "runtime.await_spin_us",
            "20000",
        ),
        (
            RuntimeConfig {
                compute_threads: Some(5000),
                ..Default::default()
            },
            "runtime.compute_threads",
            "5000",
        ),
        (
            RuntimeConfig {
                num_worker_threads: Some(5000),
                ..Default::default()
            },
            "runtime.num_worker_threads",
            "5000",
        ),
        (
            RuntimeConfig {
                compute_thread_prefix: Some("a\0b".into()),
                ..Default::default()
            },
            "runtime.compute_thread_prefix",
            "\"a\\0b\"",
        ),
        (
            RuntimeConfig {
                max_in_flight: Some(0),
                ..Default::default()
            },
            "runtime.max_in_flight",
            "0",
        ),
    ] {
        match config.validate() {
            Err(ConfigError::Invalid {
                field: f, value: v, ..
            }) => {
                assert_eq!((f.as_str(), v.as_str()), (field, value));
            }
            other => panic!("{config:?}: expected Invalid, got {other:?}"),
        }
    }
    let off = RuntimeConfig {
        compute_threads: Some(0),
        ..Default::default()
    };
    assert!(off.validate().is_ok(), "0 compute threads means no pool");
}
