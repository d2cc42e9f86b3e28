//! Counters: HTTP answers and their durations per endpoint, and `/metrics`
//! in the OpenMetrics text format (those, plus the pool's from
//! `compute-pool`'s `prometheus` feature).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::AppState;

/// The routes the demo serves, in the order of [`EndpointStats`].
pub const ENDPOINTS: [&str; 5] = ["/tokenize", "/embed", "/infer", "/ping", "/metrics"];

/// The label of an answer's endpoint: one of [`ENDPOINTS`], or `other`.
type EndpointLabel = [(&'static str, &'static str); 1];

/// The request-duration histograms, one per endpoint.
type Durations = Family<EndpointLabel, Histogram, fn() -> Histogram>;

/// HTTP counters per endpoint (plus one slot for unknown routes), and the
/// request-duration histograms.
#[derive(Debug)]
pub struct EndpointStats {
    // Index: position in ENDPOINTS, or ENDPOINTS.len() for "other".
    by_class: [[AtomicU64; 3]; ENDPOINTS.len() + 1],
    durations: Durations,
}

impl Default for EndpointStats {
    fn default() -> Self {
        EndpointStats {
            by_class: Default::default(),
            // 100 µs to about 6.5 s, doubling.
            durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1e-4, 2.0, 17))
            }),
        }
    }
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
        let endpoint = ENDPOINTS.get(slot).copied().unwrap_or("other");
        self.durations
            .get_or_create(&[("endpoint", endpoint)])
            .observe(elapsed.as_secs_f64());
    }

    /// Requests answered on `endpoint` (one of [`ENDPOINTS`], or anything
    /// else for unknown routes): `[2xx, 4xx, 5xx and others]`.
    pub fn counts(&self, endpoint: &str) -> [u64; 3] {
        let slot = Self::slot(Some(endpoint));
        // ORDERING: Relaxed: a report of independent tallies.
        std::array::from_fn(|class| self.by_class[slot][class].load(Ordering::Relaxed))
    }
}

/// Middleware: records every answer in [`EndpointStats`], with how long it
/// took from the request's arrival at this layer to its answer's head.
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
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        prometheus_text(&state),
    )
}

/// The demo's own figures, read at each scrape: the dispatch mode and the
/// answers per endpoint and status class.
#[derive(Debug)]
struct DemoCollector {
    mode: String,
    stats: Arc<EndpointStats>,
}

impl Collector for DemoCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut mode = encoder.encode_descriptor(
            "demo_dispatch_mode",
            "Where request compute runs (1 for the active mode).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(mode.encode_family(&[("mode", self.mode.as_str())])?)?;
        let mut requests = encoder.encode_descriptor(
            "demo_http_requests",
            "HTTP requests answered, by endpoint and status class.",
            None,
            MetricType::Counter,
        )?;
        for endpoint in ENDPOINTS.iter().copied().chain(["other"]) {
            let counts = self.stats.counts(endpoint);
            for (class, count) in ["2xx", "4xx", "5xx"].into_iter().zip(counts) {
                let labels = [("endpoint", endpoint), ("status", class)];
                ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The OpenMetrics text exposition of the HTTP figures and the pool's
/// metrics (labelled `pool="compute"`).
///
/// A registry is built for each scrape: everything in it is read at that
/// moment (the demo's counters and the pool by collectors, the request
/// durations from the histograms they share with the middleware).
pub fn prometheus_text(state: &AppState) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(DemoCollector {
        mode: state.dispatcher.mode().to_string(),
        stats: Arc::clone(&state.stats),
    }));
    registry.register_with_unit(
        "demo_http_request_duration",
        "Time from a request's arrival to its answer, by endpoint.",
        Unit::Seconds,
        state.stats.durations.clone(),
    );
    if let Some(pool) = &state.pool {
        pool.register_metrics(&mut registry, "compute");
    }
    let mut out = String::new();
    // Writing to a String cannot fail, nor can the collectors.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
