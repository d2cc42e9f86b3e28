//! The overload flood at a small scale: 20 clients at once, each with one
//! 64 KiB `/tokenize`, against a pool server with a short queue. The counts
//! add up to the clients, the answers are all `200` or `503`, the process's
//! resident memory is read, the `/ping` canary is answered and every late
//! arrival is counted once. With the pool held full by jobs of the test's
//! own, every request and every late arrival gets the saturated `503`. No
//! timing is asserted.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{models, runtime_config, start_bounded, with_watchdog};
use compute_demo::dispatch::Mode;
use compute_demo::flood::{run_flood, run_flood_on, FloodOptions, FloodReport, ProbesReport};
use compute_demo::server::Limits;
use compute_runtime::RuntimeConfig;

/// The canary was answered `200` every time, and stopped only when the
/// flood ended.
fn assert_canary_answered(probes: &ProbesReport) {
    let canary = &probes.canary;
    assert!(canary.sent > 0, "{probes:?}");
    assert_eq!(canary.ok, canary.sent, "{probes:?}");
    assert_eq!(canary.failure, None, "{probes:?}");
    assert!(
        canary.p50_ms.is_some() && canary.max_ms.is_some(),
        "{probes:?}"
    );
}

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
    // The probes: the canary's connection was never refused, and each of
    // the 20 late arrivals (the default) counts once, as `200` or as the
    // saturated `503` with `Retry-After`.
    assert_canary_answered(&report.probes);
    let late = &report.probes.late;
    assert_eq!((late.sent, late.total()), (20, 20), "{late:?}");
    assert_eq!(late.other + late.unanswered, 0, "{late:?}");
    assert!(late.after_flood <= late.sent, "{late:?}");
    assert_eq!(late.saturated_p50_ms.is_some(), late.saturated > 0);
    assert!(late.body_bytes <= 1024 && late.body_bytes > 900, "{late:?}");
    if cfg!(target_os = "linux") {
        let idle = report.idle.expect("VmRSS before the flood");
        let after = report.after.expect("VmRSS and VmHWM after the flood");
        assert!(idle.rss_kib > 0, "{idle:?}");
        assert!(after.peak_kib >= after.rss_kib, "{after:?}");
    }
    let summary = report.summary();
    assert!(summary.contains("(20 in all)"), "{summary}");
    assert!(summary.contains("/ping canary"), "{summary}");
    assert!(summary.contains("late arrivals (20 x"), "{summary}");
    let back: FloodReport = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    // JSON may round the last digit of a float: compare the counts.
    assert_eq!(
        (back.ok, back.saturated, back.total(), back.after),
        (report.ok, report.saturated, report.total(), report.after)
    );
    assert_eq!(
        (back.probes.canary.sent, back.probes.late.saturated),
        (report.probes.canary.sent, report.probes.late.saturated)
    );
}

#[test]
fn with_the_pool_held_full_every_request_and_late_arrival_is_refused() {
    let report = with_watchdog(Duration::from_secs(180), || {
        let server = start_bounded(Mode::Pool, Limits::default(), Some(1), Some(2));
        // One job running and two queued, each waiting for the test: the
        // pool holds max_in_flight + max_queued jobs until they are let go.
        let pool = server.state().pool.clone().expect("pool mode has a pool");
        let (release, wait) = mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        let jobs: Vec<_> = (0..3)
            .map(|_| {
                let wait = wait.clone();
                pool.execute(move || {
                    let _ = wait
                        .lock()
                        .map(|w| w.recv_timeout(Duration::from_secs(120)));
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.state().dispatcher.is_saturated() {
            assert!(Instant::now() < deadline, "the pool did not fill");
            std::thread::sleep(Duration::from_millis(2));
        }
        let report = run_flood_on(
            &server,
            &FloodOptions {
                clients: 5,
                body_bytes: 16 * 1024,
                request_timeout: Duration::from_secs(60),
                late_requests: 5,
                ..FloodOptions::default()
            },
        )
        .expect("the flood runs");
        drop(release);
        drop(jobs);
        server.shutdown().expect("the server stops");
        report
    });
    assert_eq!(
        (report.max_in_flight, report.max_queued),
        (Some(1), Some(2))
    );
    assert_eq!((report.saturated, report.total()), (5, 5), "{report:?}");
    assert!(report.probes.pool_was_full, "{report:?}");
    assert_canary_answered(&report.probes);
    let late = &report.probes.late;
    assert_eq!(
        (late.sent, late.saturated, late.after_flood),
        (5, 5, 0),
        "{late:?}"
    );
    assert!(late.saturated_p50_ms.is_some() && late.saturated_max_ms.is_some());
}

#[test]
fn probes_on_a_pool_that_never_fills_run_after_the_flood_and_say_so() {
    // One client holds at most one job, never max_in_flight + max_queued.
    let report = with_watchdog(Duration::from_secs(180), || {
        run_flood(
            &FloodOptions {
                clients: 1,
                body_bytes: 1024,
                request_timeout: Duration::from_secs(60),
                runtime: RuntimeConfig {
                    max_in_flight: Some(1),
                    max_queued: Some(2),
                    ..runtime_config()
                },
                late_requests: 3,
                ..FloodOptions::default()
            },
            models(),
        )
        .expect("the flood runs")
    });
    assert_eq!((report.ok, report.total()), (1, 1), "{report:?}");
    assert!(!report.probes.pool_was_full, "{report:?}");
    assert_canary_answered(&report.probes);
    let late = &report.probes.late;
    assert_eq!(
        (late.sent, late.after_flood, late.ok),
        (3, 3, 3),
        "{late:?}"
    );
    let summary = report.summary();
    assert!(summary.contains("the pool never filled"), "{summary}");
    assert!(
        summary.contains("3 of them sent after the flood"),
        "{summary}"
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
    let err = run_flood(
        &FloodOptions {
            late_requests: 65,
            ..FloodOptions::default()
        },
        models(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("late_requests = 65"), "{err}");
}
