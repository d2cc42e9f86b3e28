//! What keeps one client, or many, from taking the service down: the
//! [`Limits`], and the middleware that enforces the ones HTTP layers do not
//! (admission before the body is read, head sizes, content encodings, JSON
//! bodies for every error).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::{ApiError, BodyDeadline, RETRY_AFTER_SECS};
use super::AppState;

/// The `max_queued` the demo gives its compute pool when the `[runtime]`
/// configuration does not set one: at most this many compute jobs wait
/// beyond `max_in_flight` (which is, unless set, the pool's compute thread
/// count, see [`admission`]). Past `max_in_flight + max_queued` jobs a
/// compute request gets `503` at once.
///
/// Why 32: a queued job holds its parsed request, and waits behind the
/// others. The largest request the service accepts (1 MiB of text to
/// tokenize) took about 140 ms of compute in a release build on one compute
/// thread, so a full queue drains in about 5 s, well within
/// [`Limits::compute_timeout`]; the load generator's requests take a few
/// milliseconds, and 32 is more than its 16 default clients need.
pub const DEFAULT_MAX_QUEUED: usize = 32;

/// The pool's admission settings as the demo server uses them: `config`
/// with `max_in_flight` set to the compute thread count its plan gives
/// (when unset) and `max_queued` to [`DEFAULT_MAX_QUEUED`] (when unset).
/// The compute jobs held at once, and so the parsed request bodies they
/// hold, are then at most `max_in_flight + max_queued`.
///
/// ```
/// use compute_demo::server::{admission, DEFAULT_MAX_QUEUED};
/// let config = compute_runtime::RuntimeConfig {
///     compute_threads: Some(3),
///     ..Default::default()
/// };
/// let config = admission(&config);
/// assert_eq!(config.max_in_flight, Some(3));
/// assert_eq!(config.max_queued, Some(DEFAULT_MAX_QUEUED));
/// ```
pub fn admission(config: &compute_runtime::RuntimeConfig) -> compute_runtime::RuntimeConfig {
    let mut config = config.clone();
    let threads = config.thread_plan().compute_threads.max(1);
    config.max_in_flight.get_or_insert(threads);
    config.max_queued.get_or_insert(DEFAULT_MAX_QUEUED);
    config
}

/// Limits that keep one request, or a crowd of them, from taking the service
/// down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted; larger ones get `413` (before the
    /// body is read when `Content-Length` announces it).
    pub max_body_bytes: usize,
    /// Most texts in a `/tokenize` batch and rows in an `/infer` batch;
    /// more get `422`.
    pub max_batch: usize,
    /// Longest single text (bytes) in `/tokenize` and `/embed`; longer get `422`.
    pub max_text_bytes: usize,
    /// A request whose compute has not finished by then gets `503` (its job
    /// is dropped, and skipped if it had not started).
    pub compute_timeout: Duration,
    /// Most connections served at once. A connection past it is answered
    /// `503` (without reading its request) and closed within a few seconds,
    /// so idle clients cannot use up the process's file descriptors.
    pub max_connections: usize,
    /// Time a client has to send a request's head: from the connection's
    /// start, and between two requests on a keep-alive connection (so it is
    /// also the idle timeout). Past it the connection is closed.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body (in all, and between two
    /// chunks); past it the answer is `408`.
    pub body_timeout: Duration,
    /// Longest request target (path and query) in bytes; longer gets `414`.
    pub max_uri_bytes: usize,
    /// Largest total of header names and values in bytes; more gets `431`.
    pub max_header_bytes: usize,
    /// Most header lines in a request; more gets `431`.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_batch: 256,
            max_text_bytes: 64 * 1024,
            compute_timeout: Duration::from_secs(30),
            max_connections: 128,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// hyper's read buffer limit while it waits for a complete request head.
/// Heads past the [`Limits`] get a JSON `414`/`431` from [`check_head`]; a
/// head that outgrows this buffer before it is complete is refused by
/// hyper's parser (`431`, no body) and the connection closed.
pub(crate) const HYPER_MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header lines hyper parses (past it: hyper's own `431`).
pub(crate) const HYPER_MAX_HEADERS: usize = 256;

/// The routes whose work goes to the dispatcher.
const COMPUTE_ROUTES: [&str; 3] = ["/tokenize", "/embed", "/infer"];

/// Middleware: `414` for a long target, `431` for a large head, `415` for a
/// compressed body, all before anything else reads the request; and the
/// body deadline for [`JsonBody`](super::api::JsonBody).
pub(crate) async fn check_head(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let limits = &state.limits;
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > limits.max_uri_bytes {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "the request target is {target} bytes, the limit is {}",
                limits.max_uri_bytes
            ),
        )
        .into_response();
    }
    let headers = request.headers();
    let head_bytes = head_size(headers);
    if headers.len() > limits.max_headers || head_bytes > limits.max_header_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{} headers of {head_bytes} bytes, the limits are {} headers and {} bytes",
                headers.len(),
                limits.max_headers,
                limits.max_header_bytes
            ),
        )
        .into_response();
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let name = String::from_utf8_lossy(encoding.as_bytes())
            .trim()
            .to_string();
        if !name.eq_ignore_ascii_case("identity") {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {name:?} is not accepted; send an uncompressed body"),
            )
            .into_response();
        }
    }
    request
        .extensions_mut()
        .insert(BodyDeadline(limits.body_timeout));
    next.run(request).await
}

fn head_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Middleware: a compute request that arrives while the pool already holds
/// `max_in_flight + max_queued` jobs gets `503` before its body is read.
/// (Requests that pass this check and then find no room still get the
/// `503`: the pool answers their `execute` with `Saturated`, after
/// parsing.)
pub(crate) async fn shed_when_saturated(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if COMPUTE_ROUTES.contains(&request.uri().path()) && state.dispatcher.is_saturated() {
        return ApiError::saturated(
            "the service is saturated: max_in_flight + max_queued compute jobs are already running or waiting",
            RETRY_AFTER_SECS,
        )
        .into_response();
    }
    next.run(request).await
}

/// Middleware: gives every error answer that is not JSON yet (axum's `405`,
/// tower-http's `413` and `408`) the `{"error": ".."}` body, keeping its
/// status and headers.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let reason = match status {
        // axum adds the `Allow` header itself.
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than the limit".to_string(),
        StatusCode::REQUEST_TIMEOUT => "the request body did not arrive in time".to_string(),
        other => other.canonical_reason().unwrap_or("error").to_string(),
    };
    let (mut parts, _) = response.into_parts();
    let fresh = ApiError::new(status, reason).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in fresh.headers() {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, fresh.into_body())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The static answer to a connection past [`Limits::max_connections`],
/// written before the connection is closed (no request is read).
pub(crate) fn too_many_connections() -> Vec<u8> {
    let body = r#"{"error":"too many open connections; retry later"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
