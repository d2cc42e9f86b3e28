use compute_pool::ConfigError;

use super::size::parse_size;
use super::table::SETTINGS;
use super::{env, RuntimeConfig, ThreadPlan};

#[test]
fn the_table_follows_the_names() {
    let envs: Vec<&str> = SETTINGS.iter().map(|setting| setting.env).collect();
    assert_eq!(envs, env::ALL);
    for setting in &SETTINGS {
        let expected = format!("COMPUTE_RUNTIME_{}", setting.key.to_ascii_uppercase());
        assert_eq!(setting.env, expected);
    }
}

#[test]
fn sizes_are_powers_of_1024() {
    assert_eq!(parse_size("4MB"), Ok(4 << 20));
    assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert_eq!(parse_size("512 kb"), Ok(512 << 10));
    assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
    assert_eq!(parse_size("8 MB"), Ok(8 << 20));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("1.5M"), Ok(3 << 19));
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("65_536 B"), Ok(65536));
    assert_eq!(parse_size(" 12 "), Ok(12));
}

#[test]
fn bad_sizes_say_why() {
    assert!(parse_size("4XB").unwrap_err().contains("unknown unit `XB`"));
    assert!(parse_size("-4MB").unwrap_err().contains("negative"));
    assert!(parse_size("").is_err());
    assert!(parse_size("MB").is_err());
    assert!(parse_size("1.2.3MB").is_err());
    assert!(parse_size("99999999999999999999999999999999999999999GB")
        .unwrap_err()
        .contains("too large"));
}

#[test]
fn defaults_fit_the_budget_for_every_core_count() {
    for cores in 1..=256 {
        let plan = RuntimeConfig::default().thread_plan_for(cores);
        assert_eq!(plan.worker_threads, cores);
        assert!(plan.compute_threads >= 1);
        assert_eq!(plan.oversubscription(), None, "{cores} cores: {plan:?}");
    }
}

#[test]
fn unvalidated_huge_counts_do_not_overflow() {
    let plan = RuntimeConfig {
        num_worker_threads: Some(usize::MAX),
        ..Default::default()
    }
    .thread_plan_for(4);
    assert_eq!(plan.compute_threads, 1);
    assert_eq!(plan.total(), usize::MAX, "saturates");
    assert_eq!(plan.oversubscription(), Some(usize::MAX - plan.budget()));
    let plan = ThreadPlan {
        worker_threads: usize::MAX,
        compute_threads: usize::MAX,
        physical_cores: usize::MAX,
    };
    assert_eq!(plan.total(), usize::MAX);
    assert!(plan.oversubscription().is_some(), "{plan:?}");
}

#[test]
fn one_count_set_sizes_the_other_to_fit() {
    let plan = RuntimeConfig {
        compute_threads: Some(4),
        ..Default::default()
    }
    .thread_plan_for(4);
    assert_eq!((plan.worker_threads, plan.compute_threads), (2, 4));
    let plan = RuntimeConfig {
        num_worker_threads: Some(6),
        ..Default::default()
    }
    .thread_plan_for(4);
    assert_eq!((plan.worker_threads, plan.compute_threads), (6, 1));
    assert_eq!(plan.oversubscription(), Some(1));
    let plan = RuntimeConfig {
        compute_threads: Some(0),
        ..Default::default()
    }
    .thread_plan_for(4);
    assert_eq!((plan.worker_threads, plan.compute_threads), (4, 0));
}

#[test]
fn syntax_errors_name_the_key_on_their_line() {
    let text = "[other]\nx = 1\n[runtime]\ncompute_threads = = 4\n";
    let err = RuntimeConfig::from_toml_str(text).unwrap_err();
    match err {
        ConfigError::Parse { field, message } => {
            assert_eq!(
                field.as_deref(),
                Some("runtime.compute_threads"),
                "{message}"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}
