//! The happy path of every endpoint, and the same answers in every mode
//! (the workload code does not depend on where it runs).

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{call, post, start, with_watchdog};
use compute_demo::dispatch::Mode;
use compute_demo::server::{EmbedResponse, InferResponse, TokenizeResponse};
use compute_demo::workloads::{EMBED_DIM, INFER_CLASSES, INFER_INPUT};

const TOKENIZE: &str =
    r#"{"texts": ["hello", "hello world", "", "Tokio runs I/O; Rayon runs compute. ☕"]}"#;
const EMBED: &str = r#"{"text": "the pool keeps I/O fast", "context": "a service that tokenizes, embeds and infers"}"#;

fn infer_body() -> String {
    let rows: Vec<Vec<f32>> = (0..5)
        .map(|r| {
            (0..INFER_INPUT)
                .map(|i| ((r * 31 + i * 7) % 13) as f32 / 13.0 - 0.5)
                .collect()
        })
        .collect();
    serde_json::json!({ "inputs": rows }).to_string()
}

/// Calls the three compute endpoints once and returns the parsed answers.
fn compute_answers(mode: Mode) -> (TokenizeResponse, EmbedResponse, InferResponse) {
    let server = start(mode);
    let addr = server.addr();

    let (status, body) = post(addr, "/tokenize", TOKENIZE);
    assert_eq!(status, StatusCode::OK, "{mode} /tokenize: {body}");
    let tokens: TokenizeResponse = serde_json::from_str(&body).unwrap();

    let (status, body) = post(addr, "/embed", EMBED);
    assert_eq!(status, StatusCode::OK, "{mode} /embed: {body}");
    let embedding: EmbedResponse = serde_json::from_str(&body).unwrap();

    let (status, body) = post(addr, "/infer", &infer_body());
    assert_eq!(status, StatusCode::OK, "{mode} /infer: {body}");
    let predictions: InferResponse = serde_json::from_str(&body).unwrap();

    let (status, body) = call(addr, Method::GET, "/ping", None);
    assert_eq!((status, body.as_str()), (StatusCode::OK, "pong"));

    let (status, metrics) = call(addr, Method::GET, "/metrics", None);
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains(&format!("demo_dispatch_mode{{mode=\"{mode}\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("demo_http_requests_total{endpoint=\"/embed\",status=\"2xx\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("demo_http_request_duration_seconds_count{endpoint=\"/embed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE demo_http_request_duration_seconds histogram"),
        "{metrics}"
    );
    let pool_jobs = metrics
        .lines()
        .find(|l| l.starts_with("compute_pool_tasks_total{pool=\"compute\"} "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no compute_pool_tasks_total in {metrics}"));
    if mode == Mode::Pool {
        assert_eq!(pool_jobs, 3, "one pool job per compute request: {metrics}");
        assert!(
            metrics.contains("compute_pool_tasks_active{pool=\"compute\"} 0"),
            "{metrics}"
        );
        assert!(
            metrics.contains("compute_pool_task_duration_seconds_count{pool=\"compute\"} 3"),
            "{metrics}"
        );
    } else {
        assert_eq!(pool_jobs, 0, "{mode} does not use the pool: {metrics}");
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok(),
            "not a Prometheus sample: {line}"
        );
    }
    server.shutdown().unwrap();
    (tokens, embedding, predictions)
}

fn check_answers(
    tokens: &TokenizeResponse,
    embedding: &EmbedResponse,
    predictions: &InferResponse,
) {
    // cl100k_base: "hello" is 15339, " world" is 1917.
    let ids = tokens.tokens.as_ref().unwrap();
    assert_eq!(ids[0], vec![15339]);
    assert_eq!(ids[1], vec![15339, 1917]);
    assert!(ids[2].is_empty());
    assert_eq!(tokens.counts, ids.iter().map(Vec::len).collect::<Vec<_>>());
    assert_eq!(tokens.total_tokens, tokens.counts.iter().sum::<usize>());

    assert_eq!(embedding.embedding.len(), EMBED_DIM);
    let norm: f32 = embedding
        .embedding
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");
    assert!(embedding.text_tokens > 3 && embedding.context_tokens > 5);
    assert!((-1.0..=1.0).contains(&embedding.similarity));

    assert_eq!(predictions.predictions.len(), 5);
    for p in &predictions.predictions {
        assert_eq!(p.probabilities.len(), INFER_CLASSES);
        let sum: f32 = p.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        let best = p.probabilities.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(p.probabilities[p.class], best);
    }
}

#[test]
fn every_endpoint_answers_and_every_mode_computes_the_same() {
    with_watchdog(Duration::from_secs(180), || {
        let reference = compute_answers(Mode::Pool);
        check_answers(&reference.0, &reference.1, &reference.2);
        for mode in [Mode::Inline, Mode::SpawnBlocking, Mode::Naive] {
            let answers = compute_answers(mode);
            check_answers(&answers.0, &answers.1, &answers.2);
            assert_eq!(answers.0, reference.0, "{mode} /tokenize differs from pool");
            assert_eq!(answers.1, reference.1, "{mode} /embed differs from pool");
            assert_eq!(answers.2, reference.2, "{mode} /infer differs from pool");
        }
    });
}

#[test]
fn tokenize_can_return_counts_only() {
    with_watchdog(Duration::from_secs(60), || {
        let server = start(Mode::Pool);
        let (status, body) = post(
            server.addr(),
            "/tokenize",
            r#"{"texts": ["hello world"], "return_ids": false}"#,
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: TokenizeResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(answer.counts, vec![2]);
        assert!(answer.tokens.is_none());
        assert!(!body.contains("\"tokens\":"), "{body}");
        server.shutdown().unwrap();
    });
}

#[test]
fn concurrent_requests_on_one_connection_each_and_pool_metrics_settle() {
    with_watchdog(Duration::from_secs(120), || {
        let server = start(Mode::Pool);
        let addr = server.addr();
        let answers = common::client_runtime().block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..8 {
                tasks.spawn(async move {
                    let mut client = compute_demo::client::HttpClient::connect(addr)
                        .await
                        .unwrap();
                    let mut ok = 0;
                    for j in 0..4 {
                        let body = format!(r#"{{"texts": ["request {i} {j}", "more text"]}}"#);
                        let (status, _) = client
                            .post("/tokenize", body, common::REQUEST_TIMEOUT)
                            .await
                            .unwrap();
                        ok += usize::from(status == StatusCode::OK);
                    }
                    ok
                });
            }
            let mut total = 0;
            while let Some(done) = tasks.join_next().await {
                total += done.unwrap();
            }
            total
        });
        assert_eq!(answers, 32);
        let pool = server.state().pool.clone().unwrap();
        let metrics = pool.metrics();
        assert_eq!(metrics.tasks_total(), 32);
        assert_eq!(metrics.tasks_active(), 0);
        assert_eq!(metrics.tasks_panicked(), 0);
        server.shutdown().unwrap();
    });
}
