//! The route handlers: validate the request, hand its compute to the
//! [`Dispatcher`](crate::dispatch::Dispatcher), shape the answer.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::Json;

use super::api::{
    ApiError, EmbedRequest, EmbedResponse, InferRequest, InferResponse, JsonBody, TokenizeRequest,
    TokenizeResponse,
};
use super::{AppState, Limits};
use compute_runtime::Priority;

use crate::dispatch::DispatchError;
use crate::workloads::{cosine, Models, Tower};

/// `/tokenize` is interactive: its jobs wait in the High lane (`pool` mode,
/// lanes on; see the [`dispatch`](crate::dispatch) module docs).
pub(crate) const TOKENIZE_LANE: Priority = Priority::High;
/// `/embed` is batch work: its jobs wait in the Low lane.
pub(crate) const EMBED_LANE: Priority = Priority::Low;
/// `/infer` is interactive: its jobs wait in the High lane.
pub(crate) const INFER_LANE: Priority = Priority::High;

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

pub(crate) async fn ping() -> &'static str {
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

pub(crate) async fn tokenize(
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
            .in_lane(TOKENIZE_LANE)
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

pub(crate) async fn embed(
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
        state.dispatcher.in_lane(EMBED_LANE).scoped(move |scope| {
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

pub(crate) async fn infer(
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
            .in_lane(INFER_LANE)
            .install(move || models.infer.predict(&rows)),
    )
    .await?;
    Ok(Json(InferResponse { predictions }))
}
