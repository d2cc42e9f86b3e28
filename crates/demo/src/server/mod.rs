//! The HTTP service: axum routes, request validation, limits, and the
//! server's lifecycle on a `compute_runtime::Runtime`.
//!
//! | route | compute |
//! |---|---|
//! | `POST /tokenize` | `{"texts": [..], "return_ids": true}`: the batch is tokenized with `par_iter` inside [`Dispatcher::install`] |
//! | `POST /embed` | `{"text": "..", "context": ".."}`: two embedding towers spawned side by side on a rayon scope ([`Dispatcher::scoped`]), combined by whichever finishes last |
//! | `POST /infer` | `{"inputs": [[64 floats], ..]}`: a batch through a dense network with nested `par_chunks` |
//! | `GET /ping` | none: the canary for I/O latency |
//! | `GET /metrics` | none: pool and HTTP counters in the Prometheus text format |
//!
//! Bad input is answered, never fatal, and every error body is
//! `{"error": "<reason>"}`: malformed JSON is `400`, a body over
//! [`Limits::max_body_bytes`] is `413`, an unknown route `404`, a wrong
//! method `405`, a body too slow to arrive `408`, a long target `414`, a
//! compressed body `415`, a batch over [`Limits::max_batch`] (or a row of
//! the wrong width) `422`, a large head `431`. A panic in the compute
//! becomes a `500` for that request only. In `pool` mode a compute request
//! that finds the pool full (`max_in_flight` jobs running and `max_queued`
//! waiting, see [`admission`]) gets `503` with `Retry-After` at once: the
//! pool's `execute` answers `Saturated` without running the job.
//!
//! - [`api`]: request and answer bodies, errors, the JSON extractor;
//! - `handlers`: the routes;
//! - [`limits`]: the limits and the middleware enforcing them;
//! - [`metrics`]: the counters and `/metrics`;
//! - [`lifecycle`]: starting, serving and stopping.

pub mod api;
mod handlers;
pub mod lifecycle;
pub mod limits;
pub mod metrics;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use compute_runtime::ComputePool;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::dispatch::Dispatcher;
use crate::workloads::Models;

pub use api::{
    ApiError, EmbedRequest, EmbedResponse, ErrorBody, InferRequest, InferResponse, JsonBody,
    TokenizeRequest, TokenizeResponse, RETRY_AFTER_SECS,
};
pub use lifecycle::{DemoServer, ServerError, ServerOptions, StopSignal, SHUTDOWN_GRACE};
pub use limits::{admission, Limits, DEFAULT_MAX_QUEUED};
pub use metrics::{prometheus_text, EndpointStats, ENDPOINTS};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where compute runs.
    pub dispatcher: Dispatcher,
    /// The models.
    pub models: Arc<Models>,
    /// Request limits.
    pub limits: Limits,
    /// HTTP counters.
    pub stats: Arc<EndpointStats>,
    /// The runtime's compute pool, for `/metrics` (present in every mode
    /// unless `compute_threads = 0`; only `pool` mode sends work to it).
    pub pool: Option<ComputePool>,
}

/// Builds the router: all routes, the JSON `404` fallback, and the layers,
/// from the outside in: JSON bodies for every error, the counters, head
/// checks (`414`, `431`, `415`), the body limit (`413`, at once when
/// `Content-Length` is too large), the body timeout (`408`), and shedding
/// when the pool is saturated (`503`).
pub fn router(state: AppState) -> Router {
    let limits = &state.limits;
    Router::new()
        .route("/tokenize", post(handlers::tokenize))
        .route("/embed", post(handlers::embed))
        .route("/infer", post(handlers::infer))
        .route("/ping", get(handlers::ping))
        .route("/metrics", get(metrics::metrics))
        .fallback(handlers::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::shed_when_saturated,
        ))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::check_head,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .layer(middleware::from_fn(limits::json_errors))
        .with_state(state)
}
