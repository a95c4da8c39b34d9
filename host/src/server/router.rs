//! Path dispatch. A handful of fixed paths: a match is clearer than a router crate.

use crate::error::ApiError;
use crate::server::http::Body;

use crate::inbound::Format;
use crate::pipeline::handle;
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use plugin_api::Endpoint;
use std::sync::Arc;

pub async fn dispatch(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    // A clone of the parsed target shares its bytes (the request moves on below).
    let uri = req.uri().clone();
    let full_path = uri.path().trim_end_matches('/');
    let path = if full_path.is_empty() { "/" } else { full_path };
    let method = req.method().clone();
    // The seed system's paths are served by the same handlers.
    let consumer = path
        .strip_prefix("/v1")
        .or_else(|| path.strip_prefix("/api/v2"));
    match (consumer, path) {
        (Some("/chat/completions"), _) if method == Method::POST => {
            handle(state, req, Endpoint::Chat, Format::OpenAiChat, request_id).await
        }
        (Some("/embeddings"), _) if method == Method::POST => {
            handle(
                state,
                req,
                Endpoint::Embeddings,
                Format::OpenAiChat,
                request_id,
            )
            .await
        }
        (Some("/images/generations"), _) if method == Method::POST => {
            handle(state, req, Endpoint::Images, Format::OpenAiChat, request_id).await
        }
        (Some("/audio/transcriptions"), _) if method == Method::POST => {
            let e = Endpoint::AudioTranscriptions;
            handle(state, req, e, Format::OpenAiChat, request_id).await
        }
        (Some("/audio/translations"), _) if method == Method::POST => {
            let e = Endpoint::AudioTranslations;
            handle(state, req, e, Format::OpenAiChat, request_id).await
        }
        (Some("/audio/speech"), _) if method == Method::POST => {
            let e = Endpoint::AudioSpeech;
            handle(state, req, e, Format::OpenAiChat, request_id).await
        }
        (Some("/messages"), _) if method == Method::POST => {
            handle(
                state,
                req,
                Endpoint::Chat,
                Format::AnthropicMessages,
                request_id,
            )
            .await
        }
        (Some("/responses"), _) if method == Method::POST => {
            handle(
                state,
                req,
                Endpoint::Chat,
                Format::OpenAiResponses,
                request_id,
            )
            .await
        }
        (Some("/completions"), _) if method == Method::POST => {
            handle(
                state,
                req,
                Endpoint::Chat,
                Format::OpenAiCompletions,
                request_id,
            )
            .await
        }
        (Some("/messages/count_tokens"), _) if method == Method::POST => {
            state.auth.authenticate(req.headers()).await?;
            let limit = state.config.server.max_body_bytes;
            crate::inbound::anthropic::count_tokens(req, limit).await
        }
        (Some(p), _) if p.starts_with("/responses/") && p.len() > "/responses/".len() => {
            let id = &p["/responses/".len()..];
            if id.contains('/') {
                return Err(ApiError::NotFound {
                    method: method.to_string(),
                    path: path.to_string(),
                });
            }
            let delete = match method {
                Method::GET => false,
                Method::DELETE => true,
                _ => return Err(not_allowed(&method, path)),
            };
            let who = state.auth.authenticate(req.headers()).await?;
            crate::inbound::responses::by_id(state, who.app_id, id, delete).await
        }
        (Some("/credits"), _) if method == Method::GET => {
            let who = state.auth.authenticate(req.headers()).await?;
            let balance = crate::billing::balance(state, who.app_id).await?;
            let held = state.credits.held(who.app_id).await?;
            let mut o = crate::billing::view::balances(balance, held);
            o.insert("currency".into(), "credits".into());
            Ok(super::http::json(200, &o))
        }
        (Some("/models"), _) if method == Method::GET => {
            let start = std::time::Instant::now();
            state.auth.authenticate(req.headers()).await?;
            let auth = start.elapsed().as_secs_f64() * 1000.0;
            let mut resp = if req.headers().contains_key("anthropic-version") {
                crate::inbound::models::list_anthropic(state)
            } else {
                crate::inbound::models::list(state)
            };
            let total = start.elapsed().as_secs_f64() * 1000.0;
            if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
                "auth;dur={auth:.3}, total;dur={total:.3}"
            )) {
                resp.headers_mut().insert("server-timing", v);
            }
            Ok(resp)
        }
        (
            Some(
                "/chat/completions"
                | "/embeddings"
                | "/images/generations"
                | "/models"
                | "/credits"
                | "/messages"
                | "/responses"
                | "/completions"
                | "/messages/count_tokens"
                | "/audio/transcriptions"
                | "/audio/translations"
                | "/audio/speech",
            ),
            _,
        ) => Err(not_allowed(&method, path)),
        (_, "/api/billing/stripe") if method == Method::POST => {
            crate::billing::stripe::webhook(state, req).await
        }
        (_, "/api/billing/stripe") => Err(not_allowed(&method, path)),
        (_, "/healthz") if method == Method::GET => Ok(super::probes::healthz()),
        (_, "/metrics") if method == Method::GET => metrics(state, &req),
        (_, "/readyz") if method == Method::GET => Ok(super::probes::readyz(state).await),
        (_, "/healthz" | "/readyz" | "/metrics") => Err(not_allowed(&method, path)),
        (_, p) if p.starts_with("/api/admin/") => {
            crate::admin::dispatch(state, req, &method, p).await
        }
        // The console: its API, the public pricing list, and the SPA for any other path.
        _ => match crate::console::dispatch(state, req, path, request_id).await {
            Some(r) => r,
            None => Err(ApiError::NotFound {
                method: method.to_string(),
                path: path.to_string(),
            }),
        },
    }
}

/// Paths whose clients expect Anthropic's error shape and `request-id` header.
pub fn speaks_anthropic(path: &str) -> bool {
    ["/v1/messages", "/api/v2/messages"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

pub(crate) fn not_allowed(method: &Method, path: &str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_string(),
    }
}

/// `GET /metrics` in the Prometheus text format, behind a token when one is configured.
fn metrics(state: &AppState, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let cfg = &state.config.metrics;
    if !cfg.enabled {
        return Err(ApiError::NotFound {
            method: "GET".into(),
            path: "/metrics".into(),
        });
    }
    if let Some(token) = &cfg.token {
        // Compared through hashes, in constant time, like the admin token.
        let presented = crate::auth::bearer(req.headers()).unwrap_or("");
        let hash = crate::admin::token::hash;
        let ok: bool =
            subtle::ConstantTimeEq::ct_eq(&hash(presented)[..], &hash(token.expose())[..]).into();
        if !ok {
            return Err(ApiError::Unauthorized(
                "metrics need 'Authorization: Bearer <metrics token>'".into(),
            ));
        }
    }
    let m = &state.metrics;
    m.call_log_queue.set(state.calls.depth());
    m.call_log_dropped.set(state.calls.dropped() as i64);
    m.call_log_written.set(state.calls.written() as i64);
    let health = state.calls.health();
    m.database_up.set(i64::from(health.down_since().is_none()));
    let (total, seen) = (health.cached_auths(), m.outage_auths.get());
    if total > seen {
        m.outage_auths.inc_by(total - seen);
    }
    if let Some((bytes, entries)) = state.cache.store.size() {
        m.cache_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        m.cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }
    state.sync_plugin_metrics();
    let mut resp = Response::new(crate::server::http::full(m.render()));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    Ok(resp)
}
