//! The wire format: request and answer bodies, the JSON error answer, and
//! the JSON body extractor with the service's error statuses.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dispatch::DispatchError;
use crate::workloads::{Prediction, TokenId};

/// Body of `POST /tokenize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    /// The texts to tokenize (1 to [`Limits::max_batch`](super::Limits::max_batch)).
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
    /// Seconds for a `Retry-After` header (sent with `503` when the service
    /// is saturated).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status` and `reason`, without `Retry-After`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub(crate) fn unprocessable(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason)
    }

    /// `503` with `Retry-After`: the service has no room for the request now.
    pub fn saturated(reason: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
        }
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
        let mut response = (self.status, Json(ErrorBody { error: self.reason })).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Seconds a client is told to wait (`Retry-After`) after a `503` for lack
/// of room.
pub const RETRY_AFTER_SECS: u64 = 1;

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> ApiError {
        match e {
            DispatchError::Saturated(_) => ApiError::saturated(e.to_string(), RETRY_AFTER_SECS),
            DispatchError::Cancelled(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// A JSON body extractor with the demo's error answers: `413` past the body
/// limit, `408` when the body does not arrive in time, `415` for a body that
/// is compressed or starts with a byte-order mark, `400` naming the position
/// of any JSON or shape error. Any content type is accepted, so `curl -d`
/// works as is.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// The UTF-8 byte-order mark, which JSON (RFC 8259) forbids in a message.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// The first two bytes of a gzip stream.
const GZIP_MAGIC: &[u8] = b"\x1F\x8B";

/// How long [`JsonBody`] waits for the whole body, set per router from
/// `Limits::body_timeout` (a request extension; the default when absent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline(pub Duration);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let deadline = req
            .extensions()
            .get::<BodyDeadline>()
            .map_or(super::Limits::default().body_timeout, |d| d.0);
        let read = tokio::time::timeout(deadline, Bytes::from_request(req, state)).await;
        let bytes = match read {
            Err(_) => return Err(body_timeout(deadline)),
            Ok(Ok(bytes)) => bytes,
            Ok(Err(rejection)) => {
                let status = rejection.status();
                return Err(if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(status, "request body is larger than the limit")
                } else if caused_by_timeout(&rejection) {
                    body_timeout(deadline)
                } else {
                    ApiError::new(
                        status,
                        format!("cannot read the request body: {}", rejection.body_text()),
                    )
                });
            }
        };
        if bytes.starts_with(UTF8_BOM) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body starts with a UTF-8 byte-order mark; send JSON without one",
            ));
        }
        if bytes.starts_with(GZIP_MAGIC) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body is gzip-compressed; send uncompressed JSON",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))
    }
}

fn body_timeout(deadline: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body did not arrive within {deadline:?}"),
    )
}

/// Whether a body error comes from tower-http's body timeout.
fn caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        next = e.source();
    }
    false
}
