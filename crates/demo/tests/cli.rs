//! The binary: bad flags are clear errors, and a tiny run writes its
//! results. Three clients, so each compute endpoint is hit from the start
//! (each client begins at a different one), with `--quick`'s light requests
//! for 2 s, long enough for an unoptimised build on a busy machine.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::with_watchdog;

fn demo(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    with_watchdog(Duration::from_secs(120), move || {
        Command::new(env!("CARGO_BIN_EXE_compute-demo"))
            .args(&args)
            .env_remove("COMPUTE_RUNTIME_COMPUTE_THREADS")
            .output()
            .expect("the binary runs")
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
