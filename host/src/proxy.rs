//! The consumer call path: read and check the body, route by prefix, let the plugin
//! translate, send upstream, translate back — whole or streamed chunk by chunk.

use crate::error::ApiError;
use crate::http::{self, Body, ChannelBody};
use crate::routing::Route;
use crate::state::AppState;
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
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
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

pub async fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
) -> Result<Response<Body>, ApiError> {
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
    match endpoint {
        Endpoint::Chat if head.messages.is_none() => return Err(ApiError::MissingField("messages")),
        Endpoint::Embeddings if head.input.is_none() => return Err(ApiError::MissingField("input")),
        Endpoint::Images if head.prompt.is_none() => return Err(ApiError::MissingField("prompt")),
        _ => {}
    }
    let Some((prefix, upstream_model)) = split_model(&model) else {
        return Err(not_found(&model, state));
    };
    let Some(route) = state.routes.load().get(prefix).cloned() else {
        return Err(not_found(&model, state));
    };
    if route.auth.needs_key() && route.api_key.is_none() {
        return Err(ApiError::NoCredential {
            prefix: route.prefix.clone(),
            hint: match &route.api_key_env {
                Some(env) => format!("; set the {env} environment variable"),
                None => "; set api_key_env for it in [[providers]]".into(),
            },
        });
    }
    let stream = endpoint == Endpoint::Chat && head.stream.unwrap_or(false);
    let include_usage = stream && head.stream_options.and_then(|o| o.include_usage).unwrap_or(false);
    let call = Call {
        endpoint,
        model: upstream_model,
        body: &body,
        api_key: route.api_key.as_deref(),
        stream,
        include_usage,
    };
    match route.adapter.prepare(&call).map_err(ApiError::Provider)? {
        Prepared::Local(local) => {
            let headers = [("content-type", local.content_type.as_str())];
            let ok = (200..300).contains(&local.status);
            if stream && ok {
                let mut decoder = route.adapter.stream(&call).map_err(ApiError::Provider)?;
                return Ok(http::event_stream(http::full(local_stream(&mut decoder, &local.body))));
            }
            let resp = plugin_api::Response {
                status: local.status,
                headers: &headers,
                body: &local.body,
            };
            let reply = route.adapter.parse(&call, &resp).map_err(ApiError::Provider)?;
            Ok(http::json_bytes(200, reply.body))
        }
        Prepared::Upstream(request) => {
            let resp = state.upstream.send(request).await?;
            let status = resp.status().as_u16();
            if stream && resp.status().is_success() {
                let decoder = route.adapter.stream(&call).map_err(ApiError::Provider)?;
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(pump(state.clone(), route, decoder, resp.into_body(), tx));
                return Ok(http::event_stream(BodyExt::boxed(ChannelBody::new(rx))));
            }
            let owned = headers_of(&resp);
            let bytes = state.upstream.read_body(resp.into_body()).await?;
            let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let resp = plugin_api::Response {
                status,
                headers: &headers,
                body: &bytes,
            };
            let reply = route.adapter.parse(&call, &resp).map_err(ApiError::Provider)?;
            Ok(http::json_bytes(200, reply.body))
        }
    }
}

/// A locally answered stream: decoded at once into one SSE body.
fn local_stream(decoder: &mut Decoder, body: &[u8]) -> Bytes {
    let mut out = Vec::new();
    let mut done = false;
    for step in [decoder.feed(body), decoder.finish()] {
        match step {
            Ok(events) => {
                out.extend_from_slice(&http::sse_frames(&events.chunks));
                done |= events.done;
            }
            Err(e) => {
                out.extend_from_slice(&http::sse_error(&ApiError::Provider(e)));
                return Bytes::from(out);
            }
        }
    }
    if done {
        out.extend_from_slice(http::SSE_DONE);
    } else {
        out.extend_from_slice(&http::sse_error(&cut_stream()));
    }
    Bytes::from(out)
}

fn cut_stream() -> ApiError {
    ApiError::Provider(ProviderError::upstream("the upstream stream ended before it was complete"))
}

/// Moves an upstream stream to the client as it arrives. Ends with `[DONE]` only when the
/// plugin saw the upstream finish properly; otherwise with an error event.
async fn pump(
    state: Arc<AppState>,
    route: Arc<Route>,
    mut decoder: Decoder,
    mut body: Incoming,
    tx: mpsc::Sender<Bytes>,
) {
    let idle = state.upstream.idle_timeout;
    let mut done = false;
    let mut usage: Option<Usage> = None;
    let outcome: Result<(), ApiError> = loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(idle, body.frame()) => f,
            _ = tx.closed() => {
                tracing::info!(provider = %route.prefix, "client went away; upstream stream cancelled");
                return;
            }
        };
        let events = match frame {
            Err(_) => break Err(ApiError::UpstreamTimeout(idle.as_millis() as u64)),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => {
                break Err(ApiError::Provider(ProviderError::upstream(format!(
                    "the upstream connection failed mid-stream: {e}"
                ))))
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => decoder.feed(&data),
                Err(_) => continue,
            },
        };
        match events {
            Ok(events) => {
                done |= events.done;
                usage = events.usage.or(usage);
                if !events.chunks.is_empty() && tx.send(http::sse_frames(&events.chunks)).await.is_err() {
                    return;
                }
            }
            Err(e) => break Err(ApiError::Provider(e)),
        }
    };
    let end = match outcome {
        Ok(()) => match decoder.finish() {
            Ok(events) => {
                done |= events.done;
                usage = events.usage.or(usage);
                if !events.chunks.is_empty() && tx.send(http::sse_frames(&events.chunks)).await.is_err() {
                    return;
                }
                if done {
                    Bytes::from_static(http::SSE_DONE)
                } else {
                    http::sse_error(&cut_stream())
                }
            }
            Err(e) => http::sse_error(&ApiError::Provider(e)),
        },
        Err(e) => {
            tracing::warn!(provider = %route.prefix, error = %e, "stream failed after it began");
            http::sse_error(&e)
        }
    };
    let _ = tx.send(end).await;
    if let Some(u) = usage {
        tracing::debug!(provider = %route.prefix, input = u.input_tokens, output = u.output_tokens, "stream usage");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_split_keeps_the_rest_whole() {
        assert_eq!(split_model("openrouter/openai/gpt-4o"), Some(("openrouter", "openai/gpt-4o")));
        assert_eq!(split_model("echo/echo-1"), Some(("echo", "echo-1")));
        assert_eq!(split_model("gpt-4o"), None);
        assert_eq!(split_model("/x"), None);
        assert_eq!(split_model("x/"), None);
    }

    #[test]
    fn head_errors_are_classified() {
        assert!(matches!(parse_head(b"{not json"), Err(ApiError::InvalidJson(_))));
        assert!(matches!(parse_head(br#"{"stream":"yes"}"#), Err(ApiError::InvalidField { .. })));
        assert!(matches!(parse_head(b"[1]"), Err(ApiError::InvalidField { .. })));
        let h = parse_head(br#"{"model":"a/b","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert_eq!(h.stream, Some(true));
    }
}
