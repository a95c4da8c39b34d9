//! The consumer call path: authenticate, read and check the body, resolve the model to
//! targets, and try them — each with up to `max_attempts` credentials — until one
//! answers. The plugin translates both ways; the host owns the I/O.
//!
//! Retries happen only before anything was sent to the client: on a rate limit, a 5xx,
//! a connect error, a timeout, or a refused key. A client error (400-class) is never
//! retried, and once a stream has begun it is never restarted.

mod guard;
mod head;
mod stream;

pub use head::read_body;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::health::Outcome;
use crate::http::{self, Body, ChannelBody};
use crate::routing::{Route, RouteCredential};
use crate::state::AppState;
use crate::upstream::headers_of;
use guard::CallGuard;
use head::{model_of, parse_head};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use plugin_api::{Call, Endpoint, ErrorClass, Prepared, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Authenticates, then serves the call and records it whatever happens.
pub async fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let principal: Principal = state.auth.authenticate(req.headers()).await?;
    let mut guard = CallGuard::new(state, request_id, &principal, endpoint);
    match serve_call(state, req, endpoint, &mut guard).await {
        Ok(Served::Whole(resp, usage)) => {
            guard.usage(usage);
            guard.ok();
            Ok(resp)
        }
        // The stream records the call when it ends.
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

fn not_found(model: &str, state: &AppState) -> ApiError {
    let table = state.routes.load();
    let known = table.prefixes().join(", ");
    let message = if model.contains('/') {
        format!("model '{model}' not found: no provider serves its prefix; known prefixes: {known}")
    } else {
        format!(
            "model '{model}' not found: no alias and no provider catalog has it; use '<provider prefix>/<model>', with a prefix among: {known}"
        )
    };
    ApiError::ModelNotFound { message }
}

/// What an attempt's failure says about the credential used.
pub fn outcome_of(e: &ApiError) -> Outcome {
    match e {
        ApiError::Provider(p) => match p.class {
            ErrorClass::Auth => Outcome::AuthFailed(p.message.chars().take(500).collect()),
            ErrorClass::RateLimited => Outcome::RateLimited {
                retry_after: p.retry_after_ms.map(Duration::from_millis),
                message: p.message.chars().take(500).collect(),
            },
            ErrorClass::Upstream | ErrorClass::Timeout => {
                Outcome::Failed(p.message.chars().take(500).collect())
            }
            ErrorClass::BadRequest | ErrorClass::Internal => Outcome::Neutral,
        },
        ApiError::UpstreamConnect(m) => Outcome::Failed(m.chars().take(500).collect()),
        ApiError::UpstreamTimeout(_) => Outcome::Failed(e.to_string()),
        _ => Outcome::Neutral,
    }
}

fn retryable(e: &ApiError) -> bool {
    !matches!(outcome_of(e), Outcome::Neutral | Outcome::Success)
}

/// Notes an attempt's outcome on the credential, persisting state changes.
pub fn note(state: &Arc<AppState>, cred: &RouteCredential, outcome: &Outcome, model: &str) {
    if let Some(p) = cred.health.record(outcome, model, &state.policy) {
        tracing::info!(credential = %cred.name, state = p.state, "credential state changed");
        if let Some(id) = cred.id {
            let st = state.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) =
                    st.store
                        .set_credential_state(id, p.state, p.until_ms, p.last_error.as_deref())
                {
                    tracing::warn!(credential = id, error = %e, "cannot persist credential state");
                }
            });
        }
    }
}

async fn serve_call(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    guard: &mut CallGuard,
) -> Result<Served, ApiError> {
    let body = read_body(req, state.config.server.max_body_bytes).await?;
    let head = parse_head(&body)?;
    let model = model_of(&head)?;
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
    let include_usage = stream
        && head
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    let targets = state.routes.load().resolve(&model);
    if targets.is_empty() {
        return Err(not_found(&model, state));
    }
    let r = &state.config.resilience;
    let deadline = guard.started() + Duration::from_millis(r.total_timeout_ms);
    let mut last_error: Option<ApiError> = None;
    let mut failures = 0u32;
    let n_targets = targets.len();
    for (t, (route, upstream_model)) in targets.into_iter().enumerate() {
        let served = format!("{}/{}", route.prefix, upstream_model);
        if let Some(rec) = guard.rec() {
            if rec.model != served {
                rec.requested_model
                    .get_or_insert_with(|| model.chars().take(200).collect());
                rec.model = served.clone();
            }
            rec.provider = route.prefix.clone();
        }
        let deadline = deadline.min(guard.started() + route.timeouts.total);
        let mut tried: Vec<usize> = Vec::new();
        for _ in 0..r.max_attempts {
            let picked = route.pick_credential(&tried).map(|(i, c)| (i, c.clone()));
            if route.auth.needs_key() && picked.is_none() {
                // After a failed attempt its own error says more than "no key left".
                if tried.is_empty() || last_error.is_none() {
                    last_error = Some(no_credential(&route));
                }
                break; // next target
            }
            if failures > 0 {
                let wait = stream::backoff(
                    failures,
                    Duration::from_millis(r.backoff_base_ms),
                    Duration::from_millis(r.backoff_max_ms),
                );
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            if let Some(rec) = guard.rec() {
                rec.attempts += 1;
                rec.credential_id = picked.as_ref().and_then(|(_, c)| c.id);
                if let Some(id) = picked.as_ref().and_then(|(_, c)| c.id) {
                    rec.credentials_tried.push(id);
                }
            }
            if let Some((i, _)) = &picked {
                tried.push(*i);
            }
            let cred = picked.map(|(_, c)| c);
            let call = Call {
                endpoint,
                model: &upstream_model,
                body: &body,
                api_key: cred.as_ref().map(|c| c.secret.as_str()),
                stream,
                include_usage,
            };
            match attempt(state, &route, &call, guard, deadline).await {
                Ok(served) => {
                    if let Some(c) = &cred {
                        note(state, c, &Outcome::Success, &upstream_model);
                    }
                    return Ok(served);
                }
                Err(e) => {
                    let outcome = outcome_of(&e);
                    if let Some(c) = &cred {
                        note(state, c, &outcome, &upstream_model);
                    }
                    if !retryable(&e) {
                        return Err(e);
                    }
                    tracing::info!(provider = %route.prefix, error = %e, "attempt failed; retrying");
                    failures += 1;
                    // A provider that cannot be reached is down for every key: fail over.
                    let unreachable = matches!(e, ApiError::UpstreamConnect(_));
                    last_error = Some(e);
                    if Instant::now() >= deadline || (unreachable && t + 1 < n_targets) {
                        break;
                    }
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| not_found(&model, state)))
}

/// Why no credential of `route` can take a call now. When every key is only cooling
/// down after rate limits, that is a rate limit for the client too, with a `Retry-After`.
fn no_credential(route: &Route) -> ApiError {
    if route.credentials.is_empty() {
        return ApiError::NoCredential {
            prefix: route.prefix.clone(),
            hint: match &route.api_key_env {
                Some(env) => format!("; set the {env} environment variable or add a credential through the admin API"),
                None => "; add a credential through the admin API".into(),
            },
        };
    }
    let views: Vec<_> = route.credentials.iter().map(|c| c.health.view()).collect();
    let now = crate::store::now_ms();
    if views.iter().all(|v| v.state == "cooling_down") {
        let wait_ms = views.iter().filter_map(|v| v.until).min().map(|u| (u - now).max(0) as u64);
        return ApiError::Provider(
            plugin_api::ProviderError::rate_limited(
                format!("every key of provider '{}' is cooling down after rate limits", route.prefix),
                wait_ms.or(Some(1000)),
            )
            .with_code("rate_limit_exceeded"),
        );
    }
    ApiError::NoHealthyCredential {
        prefix: route.prefix.clone(),
    }
}

/// One try with one credential.
async fn attempt(
    state: &Arc<AppState>,
    route: &Arc<Route>,
    call: &Call<'_>,
    guard: &mut CallGuard,
    deadline: Instant,
) -> Result<Served, ApiError> {
    let left = || deadline.saturating_duration_since(Instant::now());
    match route.adapter.prepare(call).map_err(ApiError::Provider)? {
        Prepared::Local(local) => {
            let headers = [("content-type", local.content_type.as_str())];
            if call.stream && (200..300).contains(&local.status) {
                let mut decoder = route.adapter.stream(call).map_err(ApiError::Provider)?;
                let (bytes, usage, error) = stream::local(&mut decoder, &local.body);
                guard.usage(usage);
                guard.first_byte();
                match error {
                    None => guard.ok(),
                    Some(e) => guard.fail(&e),
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
                .parse(call, &resp)
                .map_err(ApiError::Provider)?;
            Ok(Served::Whole(
                http::json_bytes(200, reply.body),
                reply.usage,
            ))
        }
        Prepared::Upstream(request) => {
            let resp = state
                .upstream
                .send(request, route.timeouts.first_byte.min(left()))
                .await?;
            let status = resp.status().as_u16();
            if call.stream && resp.status().is_success() {
                let decoder = route.adapter.stream(call).map_err(ApiError::Provider)?;
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(stream::pump(
                    route.clone(),
                    decoder,
                    resp.into_body(),
                    tx,
                    guard.take(),
                    deadline,
                ));
                return Ok(Served::Streaming(http::event_stream(BodyExt::boxed(
                    ChannelBody::new(rx),
                ))));
            }
            let owned = headers_of(&resp);
            let bytes = state
                .upstream
                .read_body(resp.into_body(), route.timeouts.idle.min(left()))
                .await?;
            guard.first_byte();
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
                .parse(call, &resp)
                .map_err(ApiError::Provider)?;
            Ok(Served::Whole(
                http::json_bytes(200, reply.body),
                reply.usage,
            ))
        }
    }
}
