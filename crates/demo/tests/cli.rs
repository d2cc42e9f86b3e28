//! The binary: bad flags are clear errors, and a tiny run writes its
//! results. Three clients, so each compute endpoint is hit from the start
//! (each client begins at a different one), with `--quick`'s light requests
//! for 2 s, long enough for an unoptimised build on a busy machine.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::with_watchdog;

fn demo(args: &[&str]) -> Output {
    demo_with_env(args, &[])
}

/// Runs the binary with `args` and the `COMPUTE_RUNTIME_*` variables set to
/// `env` only.
fn demo_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    with_watchdog(Duration::from_secs(120), move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_compute-demo"));
        command.args(&args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("COMPUTE_RUNTIME_") {
                command.env_remove(name);
            }
        }
        command.envs(env).output().expect("the binary runs")
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_flag_values_are_clear_errors() {
    let cases: [(&[&str], &str); 6] = [
        (&["--clients", "0"], "--clients"),
        (&["--clients", "many"], "--clients"),
        (&["--mode", "fast"], "--mode"),
        (&["--duration", "5x"], "--duration"),
        (&["--listen", "not-an-address"], "--listen"),
        (&["--serve", "--quick"], "--quick"),
    ];
    for (args, named) in cases {
        let output = demo(args);
        assert!(!output.status.success(), "{args:?} should fail");
        let text = stderr(&output);
        assert!(text.contains(named), "{args:?}: {text}");
    }
}

#[test]
fn bad_config_files_name_the_file_and_the_field() {
    let dir = std::env::temp_dir().join(format!("compute-demo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[runtime]\ncompute_threads = \"lots\"\n").unwrap();
    let output = demo(&["--config", bad.to_str().unwrap(), "--quick"]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("bad.toml") && text.contains("compute_threads"),
        "{text}"
    );

    let missing = dir.join("missing.toml");
    let output = demo(&["--config", missing.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("missing.toml"),
        "{}",
        stderr(&output)
    );

    let output = demo(&["--listen", "192.0.2.1:0", "--quick"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("loopback"), "{}", stderr(&output));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tiny_run_prints_the_table_and_writes_json_and_markdown() {
    let dir = std::env::temp_dir().join(format!("compute-demo-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("results");
    let output = demo(&[
        "--mode",
        "pool,naive",
        "--clients",
        "3",
        "--quick",
        "--duration",
        "2s",
        "--quiet",
        "--out",
        base.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr(&output));
    assert!(
        stdout.contains("| pool ") && stdout.contains("| naive "),
        "{stdout}"
    );
    assert!(!stdout.contains("| inline "), "{stdout}");
    let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
    let report: compute_demo::report::RunReport = serde_json::from_str(&json).unwrap();
    assert_eq!(report.modes.len(), 2);
    let markdown = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(markdown.contains("| pool "), "{markdown}");

    // An explicit extension writes just that format.
    let only_json = dir.join("only.json");
    let output = demo(&[
        "--mode",
        "pool",
        "--clients",
        "3",
        "--quick",
        "--duration",
        "2s",
        "-q",
        "--out",
        only_json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(only_json.exists());
    assert!(!dir.join("only.json.md").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2() {
    let cases: [&[&str]; 4] = [
        &["--serve", "--mode", "pool,naive"],
        &["--listen", "192.0.2.1:0", "--quick"],
        &["--clients", "0"],
        &["--duration", "5ms"],
    ];
    for args in cases {
        let output = demo(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn config_errors_say_where_the_value_came_from() {
    let dir = std::env::temp_dir().join(format!("compute-demo-origin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[runtme]\ncompute_threads = 1\n").unwrap();
    // A bad environment override is blamed on the variable, not the file;
    // the misspelt table is warned about first.
    let output = demo_with_env(
        &["--config", typo.to_str().unwrap(), "--quick"],
        &[("COMPUTE_RUNTIME_COMPUTE_THREADS", "many")],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("environment variable: COMPUTE_RUNTIME_COMPUTE_THREADS = many"),
        "{text}"
    );
    assert!(!text.contains("typo.toml: COMPUTE_RUNTIME"), "{text}");
    assert!(
        text.contains("[runtme]") && text.contains("did you mean [runtime]"),
        "{text}"
    );
    // Without --config the same variable is still blamed on itself.
    let output = demo_with_env(&["--quick"], &[("COMPUTE_RUNTIME_MAX_IN_FLIGHT", "0")]);
    let text = stderr(&output);
    assert!(
        text.contains("environment variable: COMPUTE_RUNTIME_MAX_IN_FLIGHT"),
        "{text}"
    );
    assert!(!text.contains("embedded default"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_host_name_and_the_shortest_duration_work() {
    let output = demo(&[
        "--listen",
        "localhost:0",
        "--mode",
        "pool",
        "--clients",
        "1",
        "--quick",
        "--duration",
        "10ms",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("| pool "));
}

#[test]
fn a_tiny_flood_prints_its_counts() {
    let output = demo(&[
        "--flood",
        "--clients",
        "5",
        "--flood-body-kib",
        "16",
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr(&output));
    assert!(stdout.contains("flood: 5 clients"), "{stdout}");
    assert!(stdout.contains("(5 in all)"), "{stdout}");
    assert!(stdout.contains("resident memory"), "{stdout}");
    assert!(stdout.contains("/ping canary"), "{stdout}");
    assert!(stdout.contains("late arrivals (20 x"), "{stdout}");
}
