//! The consumer call path: read and check the body, route by prefix, let the plugin
//! translate, send upstream, translate back — whole or streamed chunk by chunk.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{self, Body, ChannelBody};
use crate::routing::Route;
use crate::state::AppState;
use crate::store::calls::{CallRecord, CallStatus};
use crate::store::now_ms;
use crate::upstream::headers_of;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use plugin_api::host::Decoder;
use plugin_api::{Call, Endpoint, Prepared, ProviderError, Usage};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The few fields the host itself needs; the rest is the plugin's business.
#[derive(Deserialize)]
struct Head {
    model: Option<serde_json::Value>,
    messages: Option<IgnoredAny>,
    input: Option<IgnoredAny>,
    prompt: Option<IgnoredAny>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::BodyTooLarge { limit })
        }
        Err(e) => Err(ApiError::BodyRead(e.to_string())),
    }
}

fn parse_head(body: &[u8]) -> Result<Head, ApiError> {
    serde_json::from_slice::<Head>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidField {
            field: "body",
            message: e.to_string(),
        },
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

/// `prefix/rest` of a model name.
fn split_model(model: &str) -> Option<(&str, &str)> {
    let (prefix, rest) = model.split_once('/')?;
    (!prefix.is_empty() && !rest.is_empty()).then_some((prefix, rest))
}

fn not_found(model: &str, state: &AppState) -> ApiError {
    let table = state.routes.load();
    let known = table.prefixes().join(", ");
    let message = if model.contains('/') {
        format!("model '{model}' not found: no provider serves its prefix; known prefixes: {known}")
    } else {
        format!("model '{model}' not found: use '<provider prefix>/<model>', with a prefix among: {known}")
    };
    ApiError::ModelNotFound { message }
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Images => "images",
    }
}

/// Records the call exactly once: on success, on error, or — when the handler is dropped
/// because the client went away — as cancelled.
pub struct CallGuard {
    state: Arc<AppState>,
    start: Instant,
    rec: Option<CallRecord>,
    ttfb: Option<Duration>,
}

impl CallGuard {
    fn new(
        state: &Arc<AppState>,
        request_id: &str,
        principal: &Principal,
        endpoint: Endpoint,
    ) -> Self {
        CallGuard {
            state: state.clone(),
            start: Instant::now(),
            ttfb: None,
            rec: Some(CallRecord {
                request_id: request_id.to_string(),
                app_id: Some(principal.app_id),
                key_id: Some(principal.key_id),
                provider: String::new(),
                model: String::new(),
                credential_id: None,
                endpoint: endpoint_name(endpoint),
                stream: false,
                status: CallStatus::Cancelled,
                http_status: 499,
                error_class: None,
                error_message: None,
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                cost_micros: 0,
                latency_ms: 0,
                ttfb_ms: None,
                attempts: 0,
                created_at: now_ms(),
            }),
        }
    }

    fn rec(&mut self) -> Option<&mut CallRecord> {
        self.rec.as_mut()
    }

    fn first_byte(&mut self) {
        self.ttfb.get_or_insert_with(|| self.start.elapsed());
    }

    fn usage(&mut self, usage: Option<Usage>) {
        let Some(u) = usage else { return };
        let routes = self.state.routes.load();
        if let Some(rec) = self.rec.as_mut() {
            rec.input_tokens = u.input_tokens;
            rec.output_tokens = u.output_tokens;
            rec.cached_tokens = u.cached_input_tokens;
            rec.cost_micros = routes
                .price(&rec.model)
                .map(|r| r.cost_micros(u.input_tokens, u.output_tokens, u.cached_input_tokens))
                .unwrap_or(0);
        }
    }

    fn finish(&mut self, status: CallStatus, http_status: u16, error: Option<&ApiError>) {
        let Some(mut rec) = self.rec.take() else {
            return;
        };
        rec.status = status;
        rec.http_status = http_status;
        if let Some(e) = error {
            rec.error_class = Some(e.kind().to_string());
            rec.error_message = Some(e.to_string().chars().take(1000).collect());
        }
        rec.latency_ms = self.start.elapsed().as_millis() as u64;
        rec.ttfb_ms = self.ttfb.map(|t| t.as_millis() as u64);
        self.state.calls.record(rec);
    }

    pub fn ok(&mut self) {
        self.first_byte();
        self.finish(CallStatus::Ok, 200, None);
    }

    pub fn fail(&mut self, e: &ApiError) {
        self.finish(CallStatus::Error, e.status(), Some(e));
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.rec.is_some() {
            self.finish(CallStatus::Cancelled, 499, None);
        }
    }
}

/// Authenticates, then serves the call and records it whatever happens.
pub async fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let principal = state.auth.authenticate(req.headers()).await?;
    let mut guard = CallGuard::new(state, request_id, &principal, endpoint);
    match serve_call(state, req, endpoint, &mut guard).await {
        Ok(Served::Whole(resp, usage)) => {
            guard.usage(usage);
            guard.ok();
            Ok(resp)
        }
        // The stream's pump records the call when it ends.
        Ok(Served::Streaming(resp)) => Ok(resp),
        Err(e) => {
            guard.fail(&e);
            Err(e)
        }
    }
}

enum Served {
    Whole(Response<Body>, Option<Usage>),
    Streaming(Response<Body>),
}

async fn serve_call(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    guard: &mut CallGuard,
) -> Result<Served, ApiError> {
    let body = read_body(req, state.config.server.max_body_bytes).await?;
    let head = parse_head(&body)?;
    let model = match head.model {
        None | Some(serde_json::Value::Null) => return Err(ApiError::MissingField("model")),
        Some(serde_json::Value::String(s)) => s,
        Some(_) => {
            return Err(ApiError::InvalidField {
                field: "model",
                message: "must be a string such as \"echo/echo-1\"".into(),
            })
        }
    };
    let stream = endpoint == Endpoint::Chat && head.stream.unwrap_or(false);
    if let Some(rec) = guard.rec() {
        rec.model = model.chars().take(200).collect();
        rec.stream = stream;
    }
    match endpoint {
        Endpoint::Chat if head.messages.is_none() => {
            return Err(ApiError::MissingField("messages"))
        }
        Endpoint::Embeddings if head.input.is_none() => {
            return Err(ApiError::MissingField("input"))
        }
        Endpoint::Images if head.prompt.is_none() => return Err(ApiError::MissingField("prompt")),
        _ => {}
    }
    let Some((prefix, upstream_model)) = split_model(&model) else {
        return Err(not_found(&model, state));
    };
    let Some(route) = state.routes.load().get(prefix).cloned() else {
        return Err(not_found(&model, state));
    };
    let credential = route.pick_credential().cloned();
    if let Some(rec) = guard.rec() {
        rec.provider = route.prefix.clone();
        rec.credential_id = credential.as_ref().and_then(|c| c.id);
        rec.attempts = 1;
    }
    if route.auth.needs_key() && credential.is_none() {
        return Err(ApiError::NoCredential {
            prefix: route.prefix.clone(),
            hint: match &route.api_key_env {
                Some(env) => format!("; set the {env} environment variable or add a credential through the admin API"),
                None => "; add a credential through the admin API".into(),
            },
        });
    }
    let include_usage = stream
        && head
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    let call = Call {
        endpoint,
        model: upstream_model,
        body: &body,
        api_key: credential.as_ref().map(|c| c.secret.as_str()),
        stream,
        include_usage,
    };
    match route.adapter.prepare(&call).map_err(ApiError::Provider)? {
        Prepared::Local(local) => {
            let headers = [("content-type", local.content_type.as_str())];
            let ok = (200..300).contains(&local.status);
            if stream && ok {
                let mut decoder = route.adapter.stream(&call).map_err(ApiError::Provider)?;
                let (bytes, usage, error) = local_stream(&mut decoder, &local.body);
                guard.usage(usage);
                match error {
                    None => guard.ok(),
                    Some(e) => {
                        guard.first_byte();
                        guard.fail(&e)
                    }
                }
                return Ok(Served::Streaming(http::event_stream(http::full(bytes))));
            }
            let resp = plugin_api::Response {
                status: local.status,
                headers: &headers,
                body: &local.body,
            };
            let reply = route
                .adapter
                .parse(&call, &resp)
                .map_err(ApiError::Provider)?;
            Ok(Served::Whole(
                http::json_bytes(200, reply.body),
                reply.usage,
            ))
        }
        Prepared::Upstream(request) => {
            let resp = state.upstream.send(request).await?;
            let status = resp.status().as_u16();
            guard.first_byte();
            if stream && resp.status().is_success() {
                let decoder = route.adapter.stream(&call).map_err(ApiError::Provider)?;
                let (tx, rx) = mpsc::channel(16);
                let guard = std::mem::replace(guard, CallGuard::detached(state));
                tokio::spawn(pump(
                    state.clone(),
                    route,
                    decoder,
                    resp.into_body(),
                    tx,
                    guard,
                ));
                return Ok(Served::Streaming(http::event_stream(BodyExt::boxed(
                    ChannelBody::new(rx),
                ))));
            }
            let owned = headers_of(&resp);
            let bytes = state.upstream.read_body(resp.into_body()).await?;
            let headers: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let resp = plugin_api::Response {
                status,
                headers: &headers,
                body: &bytes,
            };
            let reply = route
                .adapter
                .parse(&call, &resp)
                .map_err(ApiError::Provider)?;
            Ok(Served::Whole(
                http::json_bytes(200, reply.body),
                reply.usage,
            ))
        }
    }
}

impl CallGuard {
    /// A guard that records nothing (left behind when the real one moves into a stream).
    fn detached(state: &Arc<AppState>) -> Self {
        CallGuard {
            state: state.clone(),
            start: Instant::now(),
            rec: None,
            ttfb: None,
        }
    }
}

/// A locally answered stream: decoded at once into one SSE body.
fn local_stream(decoder: &mut Decoder, body: &[u8]) -> (Bytes, Option<Usage>, Option<ApiError>) {
    let mut out = Vec::new();
    let mut done = false;
    let mut usage = None;
    let (events, mut failed) = decoder.feed(body);
    out.extend_from_slice(&http::sse_frames(&events.chunks));
    done |= events.done;
    usage = events.usage.or(usage);
    if failed.is_none() {
        let (events, error) = decoder.finish();
        out.extend_from_slice(&http::sse_frames(&events.chunks));
        done |= events.done;
        usage = events.usage.or(usage);
        failed = error;
    }
    let failed = match failed {
        Some(e) => Some(ApiError::Provider(e)),
        None if !done => Some(cut_stream()),
        None => None,
    };
    match &failed {
        None => out.extend_from_slice(http::SSE_DONE),
        Some(e) => out.extend_from_slice(&http::sse_error(e)),
    }
    (Bytes::from(out), usage, failed)
}

fn cut_stream() -> ApiError {
    ApiError::Provider(ProviderError::upstream(
        "the upstream stream ended before it was complete",
    ))
}

/// Moves an upstream stream to the client as it arrives. Ends with `[DONE]` only when the
/// plugin saw the upstream finish properly; otherwise with an error event.
async fn pump(
    state: Arc<AppState>,
    route: Arc<Route>,
    mut decoder: Decoder,
    mut body: Incoming,
    tx: mpsc::Sender<Bytes>,
    mut guard: CallGuard,
) {
    let idle = state.upstream.idle_timeout;
    let mut done = false;
    let mut usage: Option<Usage> = None;
    let mut ended = false;
    let outcome: Result<(), ApiError> = loop {
        let (events, error) = if ended {
            decoder.finish()
        } else {
            let frame = tokio::select! {
                f = tokio::time::timeout(idle, body.frame()) => f,
                _ = tx.closed() => {
                    tracing::info!(provider = %route.prefix, "client went away; upstream stream cancelled");
                    guard.usage(usage);
                    return; // the guard records the call as cancelled
                }
            };
            match frame {
                Err(_) => break Err(ApiError::UpstreamTimeout(idle.as_millis() as u64)),
                Ok(None) => {
                    ended = true;
                    continue;
                }
                Ok(Some(Err(e))) => {
                    break Err(ApiError::Provider(ProviderError::upstream(format!(
                        "the upstream connection failed mid-stream: {e}"
                    ))))
                }
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => decoder.feed(&data),
                    Err(_) => continue,
                },
            }
        };
        done |= events.done;
        usage = events.usage.or(usage);
        if !events.chunks.is_empty() && tx.send(http::sse_frames(&events.chunks)).await.is_err() {
            guard.usage(usage);
            return;
        }
        if let Some(e) = error {
            break Err(ApiError::Provider(e));
        }
        if ended {
            break if done { Ok(()) } else { Err(cut_stream()) };
        }
    };
    guard.usage(usage);
    match outcome {
        Ok(()) => {
            let _ = tx.send(Bytes::from_static(http::SSE_DONE)).await;
            guard.ok();
        }
        Err(e) => {
            tracing::warn!(provider = %route.prefix, error = %e, "stream failed after it began");
            let _ = tx.send(http::sse_error(&e)).await;
            guard.fail(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_split_keeps_the_rest_whole() {
        assert_eq!(
            split_model("openrouter/openai/gpt-4o"),
            Some(("openrouter", "openai/gpt-4o"))
        );
        assert_eq!(split_model("echo/echo-1"), Some(("echo", "echo-1")));
        assert_eq!(split_model("gpt-4o"), None);
        assert_eq!(split_model("/x"), None);
        assert_eq!(split_model("x/"), None);
    }

    #[test]
    fn head_errors_are_classified() {
        assert!(matches!(
            parse_head(b"{not json"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_head(br#"{"stream":"yes"}"#),
            Err(ApiError::InvalidField { .. })
        ));
        assert!(matches!(
            parse_head(b"[1]"),
            Err(ApiError::InvalidField { .. })
        ));
        let h = parse_head(br#"{"model":"a/b","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert_eq!(h.stream, Some(true));
    }
}
