//! Configuration: defaults, and validation errors naming field and value.

mod support;

use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool, ConfigError};
use support::within;

fn invalid(config: ComputeConfig) -> (String, String, String) {
    match ComputePool::new(config).unwrap_err() {
        err @ ConfigError::Invalid { .. } => {
            let text = err.to_string();
            let ConfigError::Invalid { field, value, .. } = err else {
                unreachable!()
            };
            (field, value, text)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn defaults_follow_the_design() {
    let c = ComputeConfig::default();
    assert_eq!(c.num_threads, None);
    assert_eq!(c.stack_size, None);
    assert_eq!(c.thread_name_prefix, "compute");
    assert_eq!(c.slow_task_threshold, Duration::from_millis(100));
    assert_eq!(c.max_in_flight, None);
    assert_eq!(c.await_spin_limit, Duration::from_micros(200));
    assert_eq!(c.runner_keep_alive, Duration::from_millis(1));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(compute_pool::default_num_threads(), (cores / 2).max(1));
    let pool = ComputePool::with_defaults().unwrap();
    assert_eq!(pool.num_threads(), (cores / 2).max(1));
}

#[test]
fn zero_threads() {
    let (field, value, text) = invalid(ComputeConfig {
        num_threads: Some(0),
        ..Default::default()
    });
    assert_eq!((field.as_str(), value.as_str()), ("num_threads", "0"));
    assert_eq!(text, "num_threads = 0: must be at least 1");
}

#[test]
fn absurd_thread_count() {
    let (field, value, text) = invalid(ComputeConfig {
        num_threads: Some(100_000),
        ..Default::default()
    });
    assert_eq!((field.as_str(), value.as_str()), ("num_threads", "100000"));
    assert!(text.contains("at most 4096"), "{text}");
    // The limit itself is fine to ask for (not built here).
    let ok = ComputeConfig {
        num_threads: Some(4096),
        ..Default::default()
    };
    assert!(ok.validate().is_ok());
}

#[test]
fn tiny_stack() {
    let (field, value, text) = invalid(ComputeConfig {
        stack_size: Some(4096),
        ..Default::default()
    });
    assert_eq!((field.as_str(), value.as_str()), ("stack_size", "4096"));
    assert!(text.contains("64 KiB"), "{text}");
    assert!(ComputeConfig {
        stack_size: Some(64 * 1024),
        ..Default::default()
    }
    .validate()
    .is_ok());
}

#[test]
fn huge_stack() {
    let (field, value, text) = invalid(ComputeConfig {
        stack_size: Some(compute_pool::MAX_STACK_SIZE + 1),
        ..Default::default()
    });
    assert_eq!(
        (field.as_str(), value.as_str()),
        ("stack_size", "1073741825")
    );
    assert!(text.contains("1 GiB"), "{text}");
    assert!(ComputeConfig {
        stack_size: Some(compute_pool::MAX_STACK_SIZE),
        ..Default::default()
    }
    .validate()
    .is_ok());
}

#[test]
fn blank_prefix() {
    let (field, value, text) = invalid(ComputeConfig {
        thread_name_prefix: " \t".into(),
        ..Default::default()
    });
    assert_eq!(
        (field.as_str(), value.as_str()),
        ("thread_name_prefix", "\" \\t\"")
    );
    assert!(text.contains("whitespace"), "{text}");
}

#[test]
fn empty_or_nul_prefix() {
    let (field, _, text) = invalid(ComputeConfig {
        thread_name_prefix: String::new(),
        ..Default::default()
    });
    assert_eq!(field, "thread_name_prefix");
    assert!(text.contains("must not be empty"), "{text}");
    let (field, value, _) = invalid(ComputeConfig {
        thread_name_prefix: "a\0b".into(),
        ..Default::default()
    });
    assert_eq!(field, "thread_name_prefix");
    assert!(value.contains("\\0"), "{value}");
}

#[test]
fn zero_max_in_flight() {
    let (field, value, text) = invalid(ComputeConfig {
        max_in_flight: Some(0),
        ..Default::default()
    });
    assert_eq!((field.as_str(), value.as_str()), ("max_in_flight", "0"));
    assert!(text.starts_with("max_in_flight = 0"), "{text}");
}

#[test]
fn error_type_is_usable() {
    let e = ConfigError::invalid("compute_threads", 0, "must be at least 1");
    assert_eq!(e.to_string(), "compute_threads = 0: must be at least 1");
    assert_eq!(e.clone(), e);
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
    assert!(boxed.to_string().contains("compute_threads"));
    let parse = ConfigError::Parse {
        field: Some("compute_stack_size".into()),
        message: "expected a size".into(),
    };
    assert!(parse.to_string().contains("compute_stack_size"));
    let unknown = ConfigError::UnknownKey {
        key: "compute_treads".into(),
    };
    assert!(unknown.to_string().contains("compute_treads"));
    let build = ConfigError::Build {
        what: "compute pool".into(),
        message: "no threads".into(),
    };
    assert!(build.to_string().contains("compute pool"));
}

#[tokio::test]
async fn the_config_is_applied() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(3),
        thread_name_prefix: "cfg".into(),
        stack_size: Some(1 << 20),
        max_in_flight: Some(8),
        slow_task_threshold: Duration::from_millis(5),
        await_spin_limit: Duration::from_micros(50),
        runner_keep_alive: Duration::from_micros(300),
        low_priority_every: 3,
        low_priority_max_wait: Duration::from_millis(7),
        max_queued: Some(16),
        spin_policy: compute_pool::SpinPolicy::Latency,
        on_thread_start: None,
        blocked_check_interval: Some(Duration::from_millis(20)),
        blocked_threshold: Duration::from_millis(40),
    })
    .unwrap();
    assert_eq!(pool.num_threads(), 3);
    assert_eq!(pool.config().low_priority_every, 3);
    assert_eq!(pool.config().max_in_flight, Some(8));
    let names = within(pool.install(|| {
        use rayon::prelude::*;
        let mut names: Vec<String> = (0..300)
            .into_par_iter()
            .map(|_| {
                std::thread::sleep(Duration::from_micros(100));
                std::thread::current().name().unwrap().to_owned()
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }))
    .await
    .unwrap();
    assert!(!names.is_empty() && names.len() <= 3);
    assert!(
        names
            .iter()
            .all(|n| ["cfg-0", "cfg-1", "cfg-2"].contains(&n.as_str())),
        "{names:?}"
    );
}

#[test]
fn await_spin_limit_is_bounded() {
    let (field, value, text) = invalid(ComputeConfig {
        await_spin_limit: compute_pool::MAX_AWAIT_SPIN * 2,
        ..Default::default()
    });
    assert_eq!(
        (field.as_str(), value.as_str()),
        ("await_spin_limit", "20ms")
    );
    assert!(text.contains("at most 10ms"), "{text}");
    let off = ComputeConfig {
        await_spin_limit: Duration::ZERO,
        ..Default::default()
    };
    assert!(off.validate().is_ok());
}

#[test]
fn runner_keep_alive_is_bounded() {
    let (field, value, text) = invalid(ComputeConfig {
        runner_keep_alive: compute_pool::MAX_RUNNER_KEEP_ALIVE + Duration::from_millis(1),
        ..Default::default()
    });
    assert_eq!(
        (field.as_str(), value.as_str()),
        ("runner_keep_alive", "101ms")
    );
    assert!(text.contains("at most 100ms"), "{text}");
    let off = ComputeConfig {
        runner_keep_alive: Duration::ZERO,
        ..Default::default()
    };
    assert!(off.validate().is_ok());
}
