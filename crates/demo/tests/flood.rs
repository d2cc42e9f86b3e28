//! The overload flood at a small scale: 20 clients at once, each with one
//! 64 KiB `/tokenize`, against a pool server with a short queue. The counts
//! add up to the clients, the answers are all `200` or `503`, and the
//! process's resident memory is read. No timing is asserted.

mod common;

use std::time::Duration;

use common::{models, runtime_config, with_watchdog};
use compute_demo::flood::{run_flood, FloodOptions, FloodReport};
use compute_runtime::RuntimeConfig;

#[test]
fn a_small_flood_counts_every_client_once_and_reads_memory() {
    let report = with_watchdog(Duration::from_secs(180), || {
        run_flood(
            &FloodOptions {
                clients: 20,
                body_bytes: 64 * 1024,
                request_timeout: Duration::from_secs(60),
                runtime: RuntimeConfig {
                    max_in_flight: Some(1),
                    max_queued: Some(2),
                    ..runtime_config()
                },
                ..FloodOptions::default()
            },
            models(),
        )
        .expect("the flood runs")
    });
    assert_eq!(report.total(), 20, "{report:?}");
    assert_eq!(report.clients, 20);
    assert!(report.body_bytes <= 64 * 1024 && report.body_bytes > 60 * 1024);
    assert_eq!(
        (report.max_in_flight, report.max_queued),
        (Some(1), Some(2))
    );
    // 20 connections are within the connection limit, and every request is
    // either computed or refused by admission control.
    assert_eq!(report.connection_limit, 0, "{report:?}");
    assert_eq!(report.other + report.unanswered, 0, "{report:?}");
    assert!(report.ok >= 1, "{report:?}");
    assert_eq!(report.saturated_p50_ms.is_some(), report.saturated > 0);
    if cfg!(target_os = "linux") {
        let idle = report.idle.expect("VmRSS before the flood");
        let after = report.after.expect("VmRSS and VmHWM after the flood");
        assert!(idle.rss_kib > 0, "{idle:?}");
        assert!(after.peak_kib >= after.rss_kib, "{after:?}");
    }
    let summary = report.summary();
    assert!(summary.contains("(20 in all)"), "{summary}");
    let back: FloodReport = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    // JSON may round the last digit of a float: compare the counts.
    assert_eq!(
        (back.ok, back.saturated, back.total(), back.after),
        (report.ok, report.saturated, report.total(), report.after)
    );
}

#[test]
fn the_flood_refuses_bad_settings() {
    let err = run_flood(
        &FloodOptions {
            clients: 0,
            ..FloodOptions::default()
        },
        models(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("clients = 0"), "{err}");
}
