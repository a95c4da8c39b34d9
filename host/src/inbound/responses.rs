//! OpenAI Responses (`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`): reading
//! the call with the conversation it follows, keeping responses per app, and the error
//! event of a native stream. The translation itself is in the `formats` crate.

use super::openai::read_body_of;
use super::reshape::{ResponsesCall, Shape};
use super::{CanonicalCall, Format, Native};
use crate::error::ApiError;
use crate::server::http::{self, Body};
use crate::state::AppState;
use crate::store::responses::StoredResponse;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use plugin_api::Endpoint;
use std::sync::Arc;

/// Reads a Responses call and finds the conversation its `previous_response_id` follows.
/// A response this app's aihub translated can only be followed by translation; one an
/// upstream holds itself (pass-through) by that upstream, or by translation of what
/// aihub kept of it.
pub async fn read_call(
    state: &AppState,
    req: Request<Incoming>,
    app_id: i64,
) -> Result<CanonicalCall, ApiError> {
    let (parts, body) = req.into_parts();
    let limit = state.config.server.max_body_bytes;
    let body = read_body_of(&parts.headers, parts.version, body, limit).await?;
    let request = formats::responses::parse(&body).map_err(super::invalid)?;
    let mut native = Some(Native {
        body: body.clone(),
        only_prefix: None,
    });
    let mut history = None;
    let chat = match &request.previous_response_id {
        None => request.to_chat(None),
        Some(id) => match previous(state, app_id, id).await? {
            Some(p) => {
                native = p.native.then(|| Native {
                    body,
                    only_prefix: Some(p.provider.clone()),
                });
                history = p.conversation.map(String::into_bytes);
                match &history {
                    // What aihub kept of it cannot be put in chat terms.
                    None if p.native => Err(formats::Invalid::new(
                        "previous_response_id",
                        format!(
                            "response '{id}' is held by provider '{}' and can only be continued there",
                            p.provider
                        ),
                    )),
                    _ => request.to_chat(history.as_deref()),
                }
            }
            // Not kept here: only an upstream that holds responses itself may know it.
            None => Err(formats::Invalid::new(
                "previous_response_id",
                format!(
                    "no response '{id}' is kept for this app: it expired, was deleted, was made with store: false, or belongs to another app"
                ),
            )),
        },
    };
    let meta = formats::responses::Meta {
        id: new_id(state),
        created_at: (crate::store::now_ms() / 1000).max(0) as u64,
        model: request.model.clone(),
    };
    Ok(CanonicalCall {
        format: Format::OpenAiResponses,
        endpoint: Endpoint::Chat,
        body: chat.map(|c| Bytes::from(c.body)),
        native,
        model: request.model.clone(),
        stream: request.stream,
        include_usage: request.stream,
        headers: parts.headers,
        shape: Arc::new(Shape::Responses(Box::new(ResponsesCall {
            req: request,
            meta,
            history,
            app_id,
        }))),
    })
}

async fn previous(
    state: &AppState,
    app_id: i64,
    id: &str,
) -> Result<Option<StoredResponse>, ApiError> {
    state
        .stores
        .responses
        .get_response(app_id, id.to_string())
        .await
        .map_err(|e| ApiError::Internal(format!("could not read stored responses: {e}")))
}

/// `resp_` and 48 hex digits, like OpenAI's.
fn new_id(state: &AppState) -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique per process either way: the request-id counter.
        return format!(
            "resp_{}",
            state
                .new_request_id()
                .to_str()
                .unwrap_or_default()
                .replace('-', "")
        );
    }
    format!("resp_{}", hex::encode(bytes))
}

/// Keeps a finished response for this app, unless the client said `store: false` or the
/// operator keeps none. `native`: the upstream produced it. Awaited before the client
/// sees the end of the response, so a follow-up right after it finds it.
pub async fn keep(state: &AppState, shape: &Shape, provider: &str, native: bool, body: &[u8]) {
    let Some(record) = record(state, shape, provider, native, body) else {
        return;
    };
    if let Err(e) = state.stores.responses.save_response(record).await {
        tracing::warn!(error = %e, "could not keep a response for previous_response_id");
    }
}

fn record(
    state: &AppState,
    shape: &Shape,
    provider: &str,
    native: bool,
    body: &[u8],
) -> Option<StoredResponse> {
    let Shape::Responses(call) = shape else {
        return None;
    };
    let days = state.config.responses.retention_days;
    if !call.req.store || days == 0 {
        return None;
    }
    let value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let id = value.get("id").and_then(|v| v.as_str()).map(String::from)?;
    let conversation = formats::responses::conversation(&call.req, call.history.as_deref(), body)
        .ok()
        .and_then(|c| String::from_utf8(c).ok());
    let now = crate::store::now_ms();
    Some(StoredResponse {
        id,
        app_id: call.app_id,
        model: call.req.model.clone(),
        provider: provider.to_string(),
        native,
        body: String::from_utf8_lossy(body).into_owned(),
        conversation,
        created_at: now,
        expires_at: now.saturating_add(i64::from(days) * 86_400_000),
    })
}

/// `GET /v1/responses/{id}` and `DELETE /v1/responses/{id}`, for the calling app only.
pub async fn by_id(
    state: &AppState,
    app_id: i64,
    id: &str,
    delete: bool,
) -> Result<Response<Body>, ApiError> {
    let missing = || ApiError::ResourceNotFound(format!("response '{id}'"));
    if delete {
        let gone = state
            .stores
            .responses
            .delete_response(app_id, id.to_string())
            .await
            .map_err(|e| ApiError::Internal(format!("could not delete the response: {e}")))?;
        if !gone {
            return Err(missing());
        }
        return Ok(http::json(
            200,
            &serde_json::json!({"id": id, "object": "response", "deleted": true}),
        ));
    }
    let found = previous(state, app_id, id).await?.ok_or_else(missing)?;
    Ok(http::json_bytes(200, Bytes::from(found.body)))
}

/// The `error` event that ends a natively streamed response that failed after it began.
pub fn stream_error(e: &ApiError) -> Bytes {
    let v = serde_json::json!({
        "type": "error",
        "code": e.client_code(),
        "message": e.client_message(),
        "param": null,
    });
    let mut out = Vec::new();
    formats::sse_event(Some("error"), &v, &mut out);
    Bytes::from(out)
}
