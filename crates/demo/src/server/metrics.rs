//! Counters: HTTP answers per endpoint, and `/metrics` in the Prometheus
//! text format (those counters plus the pool's).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The routes the demo serves, in the order of [`EndpointStats`].
pub const ENDPOINTS: [&str; 5] = ["/tokenize", "/embed", "/infer", "/ping", "/metrics"];

/// HTTP counters per endpoint (plus one slot for unknown routes).
#[derive(Debug, Default)]
pub struct EndpointStats {
    // Index: position in ENDPOINTS, or ENDPOINTS.len() for "other".
    by_class: [[AtomicU64; 3]; ENDPOINTS.len() + 1],
    busy_us: [AtomicU64; ENDPOINTS.len() + 1],
}

impl EndpointStats {
    fn slot(path: Option<&str>) -> usize {
        path.and_then(|p| ENDPOINTS.iter().position(|e| *e == p))
            .unwrap_or(ENDPOINTS.len())
    }

    fn record(&self, path: Option<&str>, status: StatusCode, elapsed: Duration) {
        let slot = Self::slot(path);
        let class = if status.is_success() {
            0
        } else if status.is_client_error() {
            1
        } else {
            2
        };
        // ORDERING: Relaxed: independent tallies, read only for reporting.
        self.by_class[slot][class].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // ORDERING: Relaxed: an independent sum.
        self.busy_us[slot].fetch_add(us, Ordering::Relaxed);
    }

    /// Requests answered on `endpoint` (one of [`ENDPOINTS`], or anything
    /// else for unknown routes): `[2xx, 4xx, 5xx and others]`.
    pub fn counts(&self, endpoint: &str) -> [u64; 3] {
        let slot = Self::slot(Some(endpoint));
        // ORDERING: Relaxed: a report of independent tallies.
        std::array::from_fn(|class| self.by_class[slot][class].load(Ordering::Relaxed))
    }
}

/// Middleware: records every answer in [`EndpointStats`].
pub(crate) async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .stats
        .record(path.as_deref(), response.status(), started.elapsed());
    response
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus_text(&state),
    )
}

/// The Prometheus text exposition of the pool's metrics and the HTTP
/// counters.
pub fn prometheus_text(state: &AppState) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let mode = state.dispatcher.mode();
    family(
        "demo_dispatch_mode",
        "gauge",
        "Where request compute runs (1 for the active mode).",
        &[(format!("{{mode=\"{mode}\"}}"), "1".into())],
    );
    let mut requests = Vec::new();
    for endpoint in ENDPOINTS.iter().copied().chain(["other"]) {
        let counts = state.stats.counts(endpoint);
        for (class, count) in ["2xx", "4xx", "5xx"].iter().zip(counts) {
            requests.push((
                format!("{{endpoint=\"{endpoint}\",status=\"{class}\"}}"),
                count.to_string(),
            ));
        }
    }
    family(
        "demo_http_requests_total",
        "counter",
        "HTTP requests answered, by endpoint and status class.",
        &requests,
    );
    let Some(pool) = &state.pool else {
        return out;
    };
    let m = pool.metrics();
    let plain = |v: String| vec![(String::new(), v)];
    let rows: [(&str, &str, &str, String); 14] = [
        (
            "compute_pool_threads",
            "gauge",
            "Threads in the compute pool.",
            m.num_threads().to_string(),
        ),
        (
            "compute_pool_tasks_total",
            "counter",
            "Jobs accepted by the pool.",
            m.tasks_total().to_string(),
        ),
        (
            "compute_pool_tasks_active",
            "gauge",
            "Jobs queued or running.",
            m.tasks_active().to_string(),
        ),
        (
            "compute_pool_tasks_queued",
            "gauge",
            "Jobs accepted and not started.",
            m.tasks_queued().to_string(),
        ),
        (
            "compute_pool_tasks_running",
            "gauge",
            "Jobs running now.",
            m.tasks_running().to_string(),
        ),
        (
            "compute_pool_tasks_completed_total",
            "counter",
            "Jobs that returned normally.",
            m.tasks_completed().to_string(),
        ),
        (
            "compute_pool_tasks_panicked_total",
            "counter",
            "Jobs that panicked (the panic reached their awaiter).",
            m.tasks_panicked().to_string(),
        ),
        (
            "compute_pool_tasks_cancelled_total",
            "counter",
            "Jobs dropped before they ran.",
            m.tasks_cancelled().to_string(),
        ),
        (
            "compute_pool_tasks_rejected_total",
            "counter",
            "Submissions refused.",
            m.tasks_rejected().to_string(),
        ),
        (
            "compute_pool_slow_tasks_total",
            "counter",
            "Jobs slower than the slow-task threshold.",
            m.slow_tasks().to_string(),
        ),
        (
            "compute_pool_task_duration_avg_microseconds",
            "gauge",
            "Mean compute time per job.",
            format!("{:.1}", m.avg_task_duration_us()),
        ),
        (
            "compute_pool_task_duration_p99_microseconds",
            "gauge",
            "99th percentile of compute time per job (log2 buckets).",
            format!("{:.1}", m.p99_task_duration_us()),
        ),
        (
            "compute_pool_task_duration_max_microseconds",
            "gauge",
            "Longest compute time of a job.",
            m.max_task_duration_us().to_string(),
        ),
        (
            "compute_pool_queue_wait_avg_microseconds",
            "gauge",
            "Mean time a job waited before it started.",
            format!("{:.1}", m.avg_queue_wait_us()),
        ),
    ];
    for (name, kind, help, value) in rows {
        family(name, kind, help, &plain(value));
    }
    out
}
