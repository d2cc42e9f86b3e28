//! The HTTP service: axum routes, request validation, and the server's
//! lifecycle on a `compute_runtime::Runtime`.
//!
//! | route | compute |
//! |---|---|
//! | `POST /tokenize` | `{"texts": [..], "return_ids": true}`: the batch is tokenized with `par_iter` inside [`Dispatcher::install`] |
//! | `POST /embed` | `{"text": "..", "context": ".."}`: two embedding towers spawned side by side on a rayon scope ([`Dispatcher::scoped`]), combined by whichever finishes last |
//! | `POST /infer` | `{"inputs": [[64 floats], ..]}`: a batch through a dense network with nested `par_chunks` |
//! | `GET /ping` | none: the canary for I/O latency |
//! | `GET /metrics` | none: pool and HTTP counters in the Prometheus text format |
//!
//! Bad input is answered, never fatal: malformed JSON is `400`, a body over
//! [`Limits::max_body_bytes`] is `413`, an unknown route `404`, a batch over
//! [`Limits::max_batch`] (or a row of the wrong width) `422`; every error body
//! is `{"error": "<reason>"}`. A panic in the compute becomes a `500` for that
//! request only.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use compute_pool::ComputePool;
use compute_runtime::{Runtime, RuntimeConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dispatch::{DispatchError, Dispatcher, Mode};
use crate::workloads::{cosine, Models, Prediction, TokenId, Tower};

/// Limits that keep one request from taking the service down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted; larger ones get `413`.
    pub max_body_bytes: usize,
    /// Most texts in a `/tokenize` batch and rows in an `/infer` batch;
    /// more get `422`.
    pub max_batch: usize,
    /// Longest single text (bytes) in `/tokenize` and `/embed`; longer get `422`.
    pub max_text_bytes: usize,
    /// A request whose compute has not finished by then gets `503` (its job
    /// is dropped, and skipped if it had not started).
    pub compute_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_batch: 256,
            max_text_bytes: 64 * 1024,
            compute_timeout: Duration::from_secs(30),
        }
    }
}

/// Body of `POST /tokenize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    /// The texts to tokenize (1 to [`Limits::max_batch`]).
    pub texts: Vec<String>,
    /// Whether to return the token ids (default) or only their counts.
    #[serde(default = "default_true")]
    pub return_ids: bool,
}

fn default_true() -> bool {
    true
}

/// Answer of `POST /tokenize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizeResponse {
    /// Number of tokens of each text, in request order.
    pub counts: Vec<usize>,
    /// Sum of `counts`.
    pub total_tokens: usize,
    /// The token ids of each text (absent when `return_ids` was false).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokens: Option<Vec<Vec<TokenId>>>,
}

/// Body of `POST /embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// The text to embed.
    pub text: String,
    /// Its context (may be empty).
    #[serde(default)]
    pub context: String,
}

/// Answer of `POST /embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// The combined, unit-length embedding.
    pub embedding: Vec<f32>,
    /// Tokens in `text`.
    pub text_tokens: usize,
    /// Tokens in `context`.
    pub context_tokens: usize,
    /// Cosine similarity of the text and context embeddings.
    pub similarity: f32,
}

/// Body of `POST /infer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Input rows, each exactly as wide as the network's input.
    pub inputs: Vec<Vec<f32>>,
}

/// Answer of `POST /infer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferResponse {
    /// One prediction per input row, in order.
    pub predictions: Vec<Prediction>,
}

/// An error answer: a status and a reason, sent as `{"error": reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why, in words.
    pub reason: String,
}

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
        }
    }

    fn unprocessable(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason)
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Why the request failed.
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.reason })).into_response()
    }
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> ApiError {
        let status = match e {
            DispatchError::Cancelled(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// A JSON body extractor with the demo's error answers: `413` past the body
/// limit, `400` naming the position of any JSON or shape error. Any content
/// type is accepted, so `curl -d` works as is.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "request body is larger than the limit".to_string())
            } else {
                ApiError::new(
                    status,
                    format!("cannot read the request body: {}", rejection.body_text()),
                )
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))
    }
}

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
    pub pool: Option<Arc<ComputePool>>,
}

/// Builds the router with all routes, the body limit, the counters and the
/// JSON `404` fallback.
pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/tokenize", post(tokenize))
        .route("/embed", post(embed))
        .route("/infer", post(infer))
        .route("/ping", get(ping))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
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

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

async fn ping() -> &'static str {
    "pong"
}

/// Runs dispatched compute with the request's time limit.
async fn with_timeout<R>(
    limits: &Limits,
    work: impl std::future::Future<Output = Result<R, DispatchError>>,
) -> Result<R, ApiError> {
    match tokio::time::timeout(limits.compute_timeout, work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the computation did not finish within {:?}",
                limits.compute_timeout
            ),
        )),
    }
}

fn check_batch(field: &str, len: usize, limits: &Limits) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::unprocessable(format!(
            "{field}: the batch is empty"
        )));
    }
    if len > limits.max_batch {
        return Err(ApiError::unprocessable(format!(
            "{field}: {len} items, the limit is {}",
            limits.max_batch
        )));
    }
    Ok(())
}

fn check_text(field: &str, text: &str, limits: &Limits) -> Result<(), ApiError> {
    if text.len() > limits.max_text_bytes {
        return Err(ApiError::unprocessable(format!(
            "{field}: {} bytes, the limit is {}",
            text.len(),
            limits.max_text_bytes
        )));
    }
    Ok(())
}

async fn tokenize(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    check_batch("texts", request.texts.len(), &state.limits)?;
    for (i, text) in request.texts.iter().enumerate() {
        check_text(&format!("texts[{i}]"), text, &state.limits)?;
    }
    let models = state.models.clone();
    let TokenizeRequest { texts, return_ids } = request;
    let tokens = with_timeout(
        &state.limits,
        state
            .dispatcher
            .install(move || models.tokenizer.encode_batch(&texts)),
    )
    .await?;
    let counts: Vec<usize> = tokens.iter().map(Vec::len).collect();
    Ok(Json(TokenizeResponse {
        total_tokens: counts.iter().sum(),
        counts,
        tokens: return_ids.then_some(tokens),
    }))
}

/// The two halves of an embedding, filled in by the two scope tasks; the
/// task that completes the pair combines them.
#[derive(Default)]
struct EmbedSlots {
    text: Option<(usize, Vec<f32>)>,
    context: Option<(usize, Vec<f32>)>,
    combined: Option<EmbedResponse>,
}

impl EmbedSlots {
    fn deliver(
        slots: &Mutex<EmbedSlots>,
        models: &Models,
        tower: Tower,
        tokens: usize,
        embedding: Vec<f32>,
    ) {
        // A poisoned lock means the other task panicked after storing; the
        // data is still consistent, so carry on.
        let mut slots = slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match tower {
            Tower::Text => slots.text = Some((tokens, embedding)),
            Tower::Context => slots.context = Some((tokens, embedding)),
        }
        if let (Some((text_tokens, text)), Some((context_tokens, context))) =
            (&slots.text, &slots.context)
        {
            let combined = EmbedResponse {
                embedding: models.embed.combine(text, context),
                text_tokens: *text_tokens,
                context_tokens: *context_tokens,
                similarity: cosine(text, context),
            };
            slots.combined = Some(combined);
        }
    }
}

async fn embed(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<EmbedRequest>,
) -> Result<Json<EmbedResponse>, ApiError> {
    check_text("text", &request.text, &state.limits)?;
    check_text("context", &request.context, &state.limits)?;
    let models = state.models.clone();
    // The scope's tasks must own what they use (`'static`): a job handed to
    // another thread cannot borrow the handler's locals. Each task writes
    // its own slot; the scope ends only when both have finished.
    let slots = Arc::new(Mutex::new(EmbedSlots::default()));
    let task_slots = slots.clone();
    let EmbedRequest { text, context } = request;
    with_timeout(
        &state.limits,
        state.dispatcher.scoped(move |scope| {
            for (tower, input) in [(Tower::Text, text), (Tower::Context, context)] {
                let models = models.clone();
                let slots = task_slots.clone();
                scope.spawn(move |_| {
                    let tokens = models.tokenizer.encode(&input);
                    let embedding = models.embed.embed(tower, &tokens);
                    EmbedSlots::deliver(&slots, &models, tower, tokens.len(), embedding);
                });
            }
        }),
    )
    .await?;
    let combined = slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .combined
        .take();
    combined.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an embedding task produced no result",
        )
    })
}

async fn infer(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<InferRequest>,
) -> Result<Json<InferResponse>, ApiError> {
    check_batch("inputs", request.inputs.len(), &state.limits)?;
    let width = state.models.infer.input_width();
    for (i, row) in request.inputs.iter().enumerate() {
        if row.len() != width {
            return Err(ApiError::unprocessable(format!(
                "inputs[{i}]: {} values, expected {width}",
                row.len()
            )));
        }
        if let Some(j) = row.iter().position(|x| !x.is_finite()) {
            return Err(ApiError::unprocessable(format!(
                "inputs[{i}][{j}]: not a finite number"
            )));
        }
    }
    let models = state.models.clone();
    let rows = request.inputs;
    let predictions = with_timeout(
        &state.limits,
        state
            .dispatcher
            .install(move || models.infer.predict(&rows)),
    )
    .await?;
    Ok(Json(InferResponse { predictions }))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
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

/// Errors starting or stopping a [`DemoServer`].
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The `[runtime]` configuration was refused.
    #[error("runtime configuration: {0}")]
    Config(#[from] compute_pool::ConfigError),
    /// The dispatcher could not be built.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server task failed or did not stop in time.
    #[error("server: {0}")]
    Serve(String),
}

/// What a [`DemoServer`] is built from.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where compute runs.
    pub mode: Mode,
    /// The runtime's threads.
    pub runtime: RuntimeConfig,
    /// Address to bind (port 0: the OS picks one).
    pub listen: SocketAddr,
    /// Request limits.
    pub limits: Limits,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            mode: Mode::Pool,
            runtime: RuntimeConfig::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::default(),
        }
    }
}

/// A running demo server with its own `compute_runtime::Runtime`.
///
/// Start it from synchronous code (not inside an async task: it owns a Tokio
/// runtime, which cannot be dropped there). [`shutdown`](DemoServer::shutdown)
/// stops it gracefully within a bounded time; dropping it does the same.
pub struct DemoServer {
    runtime: Option<Runtime>,
    addr: SocketAddr,
    state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoServer")
            .field("addr", &self.addr)
            .field("mode", &self.state.dispatcher.mode())
            .finish_non_exhaustive()
    }
}

/// How long a graceful shutdown may take before the server task is aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl DemoServer {
    /// Builds the runtime, binds the address and starts serving.
    pub fn start(options: ServerOptions, models: Arc<Models>) -> Result<DemoServer, ServerError> {
        let runtime = Runtime::new(options.runtime.clone())?;
        let pool = runtime.compute_pool();
        let compute_threads = match (&pool, options.runtime.compute_threads) {
            (Some(pool), _) => pool.num_threads(),
            (None, Some(n)) => n,
            (None, None) => 1,
        };
        let dispatcher = Dispatcher::new(options.mode, pool.clone(), compute_threads)?;
        let state = AppState {
            dispatcher,
            models,
            limits: options.limits.clone(),
            stats: Arc::new(EndpointStats::default()),
            pool,
        };
        let std_listener =
            std::net::TcpListener::bind(options.listen).map_err(|source| ServerError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = std_listener
            .local_addr()
            .map_err(|source| ServerError::Bind {
                addr: options.listen,
                source,
            })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Bind { addr, source })?;
        let handle = runtime.handle().clone();
        let listener = {
            let _entered = handle.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|source| ServerError::Bind { addr, source })?
        };
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        let task = handle.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.await;
                })
                .await
        });
        Ok(DemoServer {
            runtime: Some(runtime),
            addr,
            state,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dispatch mode.
    pub fn mode(&self) -> Mode {
        self.state.dispatcher.mode()
    }

    /// The shared handler state (counters, pool, models).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The runtime's Tokio handle.
    pub fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }

    /// Blocks until Ctrl-C (SIGINT), then shuts down.
    pub fn serve_until_ctrl_c(self) -> Result<(), ServerError> {
        if let Some(runtime) = &self.runtime {
            runtime
                .block_on(tokio::signal::ctrl_c())
                .map_err(|e| ServerError::Serve(format!("waiting for Ctrl-C: {e}")))?;
        }
        self.shutdown()
    }

    /// Stops accepting connections, lets open ones finish (at most
    /// 5 seconds, then aborts them) and shuts the runtime down.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ServerError> {
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let mut result = Ok(());
        if let Some(mut task) = self.task.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Inside an async context (a drop in a task) we cannot block
                // on the graceful shutdown: stop serving at once.
                task.abort();
            } else {
                result = runtime.block_on(async {
                    match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                        Ok(Ok(Ok(()))) => Ok(()),
                        Ok(Ok(Err(e))) => Err(ServerError::Serve(e.to_string())),
                        Ok(Err(e)) => Err(ServerError::Serve(format!("server task failed: {e}"))),
                        Err(_) => {
                            task.abort();
                            Ok(())
                        }
                    }
                });
            }
        }
        // Ordered: the pool drains first while Tokio still runs, then Tokio
        // stops; both bounded by the grace period.
        runtime.shutdown(SHUTDOWN_GRACE);
        result
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
