//! A short load run in each mode: every endpoint gets answers, nothing
//! fails, and the report renders. Bounded in time (a fraction of a second
//! per mode) and sent to loopback only.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{models, runtime_config, with_watchdog};
use compute_demo::compare::{run_comparison, CompareOptions};
use compute_demo::load::{Endpoint, LoadConfig, RequestSize};
use compute_demo::report::RunReport;
use compute_demo::rows::Row;
use compute_demo::server::Limits;

fn quick_options(modes: Vec<Row>) -> CompareOptions {
    CompareOptions {
        modes,
        load: LoadConfig {
            clients: 3,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_millis(10),
            size: RequestSize::Light,
        },
        runtime: runtime_config(),
        runtime_toml: "[runtime]\nnum_worker_threads = 2\ncompute_threads = 2\n".into(),
        limits: Limits::default(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        progress: false,
        lanes: false,
    }
}

#[test]
fn a_quick_run_in_every_mode_answers_every_endpoint() {
    let report = with_watchdog(Duration::from_secs(120), || {
        run_comparison(&quick_options(Row::ALL.to_vec()), models()).expect("the run completes")
    });
    assert_eq!(
        report.modes.iter().map(|m| m.mode).collect::<Vec<_>>(),
        Row::ALL.to_vec()
    );
    for m in &report.modes {
        assert_eq!(
            m.stats.total_errors(),
            0,
            "{}: {:?}",
            m.mode,
            m.stats.first_error
        );
        for endpoint in Endpoint::ALL {
            let e = m.stats.endpoint(endpoint).unwrap();
            assert!(e.requests > 0, "{} {}: no answers", m.mode, endpoint.path());
            assert!(
                e.p50_ms <= e.p99_ms && e.p99_ms <= e.max_ms,
                "{} {e:?}",
                m.mode
            );
        }
    }
    assert_eq!(report.settings.compute_threads, 2);
    assert!(report
        .settings
        .idle_ping
        .as_ref()
        .is_some_and(|p| p.requests > 0));
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let throughput = report
        .modes
        .iter()
        .find(|m| m.mode == Row::PoolThroughput)
        .unwrap();
    assert_eq!(throughput.compute_threads, Some(cpus));
    assert_eq!(throughput.tokio_workers, Some(2));
    assert_eq!(report.settings.tokio_workers, Some(2));
    let table = report.table();
    for mode in Row::ALL {
        assert!(table.contains(&format!("| {mode} ")), "{table}");
    }
    // JSON parsing may round the last digit of a float, so compare counts.
    let back: RunReport = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back.settings, report.settings);
    for (a, b) in back.modes.iter().zip(&report.modes) {
        assert_eq!(a.mode, b.mode);
        assert_eq!(a.stats.total_requests(), b.stats.total_requests());
    }
    assert!(report.to_markdown().contains(&table));
}

#[test]
fn the_load_generator_refuses_non_loopback_targets() {
    let runtime = common::client_runtime();
    let result = runtime.block_on(compute_demo::load::run_load(
        SocketAddr::from(([192, 0, 2, 1], 80)),
        &LoadConfig::default(),
        std::sync::Arc::new(compute_demo::load::Corpus::generate(1, RequestSize::Light)),
        &indicatif::ProgressBar::hidden(),
    ));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("only loopback"), "{err}");
}

#[test]
fn the_lanes_measurement_runs_lanes_on_and_off_and_reports_both() {
    let report = with_watchdog(Duration::from_secs(120), || {
        let mut options = quick_options(vec![Row::Pool]);
        options.lanes = true;
        options.load.duration = Duration::from_secs(1);
        run_comparison(&options, models()).expect("the run completes")
    });
    let lanes = report.lanes.as_ref().expect("the lanes measurement ran");
    assert_eq!(
        lanes.runs.iter().map(|r| r.lanes).collect::<Vec<_>>(),
        [true, false]
    );
    for run in &lanes.runs {
        assert_eq!(run.stats.total_errors(), 0, "{:?}", run.stats.first_error);
        assert_eq!(run.embed_clients, 3);
        assert_eq!(run.tokenize_clients, compute_demo::lanes::TOKENIZE_CLIENTS);
        // Only /tokenize and /embed are sent (and the /ping canary).
        for endpoint in [Endpoint::Tokenize, Endpoint::Embed, Endpoint::Ping] {
            assert!(
                run.stats.endpoint(endpoint).unwrap().requests > 0,
                "lanes {}: no {} answers",
                run.lanes,
                endpoint.path()
            );
        }
        assert_eq!(run.stats.endpoint(Endpoint::Infer).unwrap().requests, 0);
    }
    assert!(lanes.unserved().is_empty());
    let table = lanes.table();
    assert!(
        table.contains("| on: /embed Low ") && table.contains("| off: all High "),
        "{table}"
    );
    let markdown = report.to_markdown();
    assert!(markdown.contains(&table), "{markdown}");
    let block = compute_demo::docs_table::block(&report, &Default::default());
    assert_eq!(
        compute_demo::docs_table::headers_of(&block),
        vec![
            RunReport::columns(),
            compute_demo::lanes::LanesReport::columns()
        ]
    );
    let back: RunReport = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back.lanes.map(|l| l.runs.len()), Some(2));
}

#[test]
fn a_run_without_the_lanes_measurement_has_no_lanes_report() {
    let report = with_watchdog(Duration::from_secs(120), || {
        let mut options = quick_options(vec![Row::Naive]);
        options.load.duration = Duration::from_millis(200);
        run_comparison(&options, models()).expect("the run completes")
    });
    assert!(report.lanes.is_none());
    assert!(!report.to_markdown().contains("on: /embed Low"));
}

#[test]
fn a_client_group_without_a_compute_endpoint_is_refused() {
    use compute_demo::load::{run_mix, ClientGroup, Corpus};
    let runtime = common::client_runtime();
    for endpoints in [vec![], vec![Endpoint::Ping]] {
        let result = runtime.block_on(run_mix(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            &LoadConfig::default(),
            &[ClientGroup {
                clients: 1,
                endpoints,
            }],
            std::sync::Arc::new(Corpus::generate(1, RequestSize::Light)),
            &indicatif::ProgressBar::hidden(),
        ));
        let err = result.unwrap_err().to_string();
        assert!(err.contains("endpoints"), "{err}");
    }
}
