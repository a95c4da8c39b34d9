//! The consumer call path: authenticate, read and check the body, resolve the model to
//! targets, and try them — each with up to `max_attempts` credentials — until one
//! answers. The plugin translates both ways; the host owns the I/O.
//!
//! Retries happen only before anything was sent to the client: on a rate limit, a 5xx,
//! a connect error, a timeout, or a refused key. A client error (400-class) is never
//! retried, and once a stream has begun it is never restarted.

mod guard;
mod stream;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::inbound::openai::{model_of, parse_head, read_body};
use crate::resilience::credential_health::Outcome;
use crate::routing::{Route, RouteCredential};
use crate::server::http::{self, Body, ChannelBody};
use crate::state::AppState;
use crate::upstream::headers_of;
use guard::CallGuard;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use plugin_api::{Call, Credential, Endpoint, ErrorClass, Prepared, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context a client sent, kept for the upstream request.
#[derive(Clone, Default)]
struct TraceHeaders {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

fn operation(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Images => "image_generation",
    }
}

/// Authenticates, then serves the call and accounts for it whatever happens. Errors
/// after authentication come back as responses (with `Server-Timing`), already logged.
pub async fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let start = Instant::now();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let trace = TraceHeaders {
        traceparent: header("traceparent"),
        tracestate: header("tracestate"),
    };
    let op = operation(endpoint);
    let span = tracing::info_span!(
        "gen_ai",
        otel.name = op,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = op,
        gen_ai.system = tracing::field::Empty,
        gen_ai.request.model = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        aihub.request_id = request_id,
        aihub.app = tracing::field::Empty,
    );
    if state.telemetry_enabled {
        let _ = span.set_parent(crate::observability::telemetry::extract(req.headers()));
    }
    let principal: Principal = match state
        .auth
        .authenticate(req.headers())
        .instrument(tracing::info_span!(parent: &span, "auth"))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            span.record("error.type", e.kind());
            span.record("otel.status_code", "ERROR");
            let mut resp = http::error(&e);
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
                "auth;dur={ms:.3}, total;dur={ms:.3}"
            )) {
                resp.headers_mut().insert("server-timing", v);
            }
            // The envelope logs it (no call record: the caller is unknown).
            return Ok(resp);
        }
    };
    span.record("aihub.app", principal.app_name.as_str());
    let mut guard = CallGuard::new(state, request_id, &principal, endpoint, span.clone(), start);
    guard.timings.auth = start.elapsed();
    guard.capture_content = state.telemetry_enabled && state.config.telemetry.capture_content;
    let result = serve_call(state, req, endpoint, &mut guard, &trace)
        .instrument(span.clone())
        .await;
    let mut resp = match result {
        Ok(Served::Whole(resp, usage)) => {
            guard.usage(usage);
            guard.ok();
            resp
        }
        // The stream accounts for the call when it ends.
        Ok(Served::Streaming(resp)) => resp,
        Err(e) => {
            guard.fail(&e);
            http::error(&e)
        }
    };
    if let Ok(v) = hyper::header::HeaderValue::from_str(&guard.server_timing()) {
        resp.headers_mut().insert("server-timing", v);
    }
    resp.extensions_mut().insert(http::Logged);
    Ok(resp)
}

enum Served {
    Whole(Response<Body>, Option<Usage>),
    Streaming(Response<Body>),
}

fn not_found(model: &str, state: &AppState) -> ApiError {
    let table = state.routing.load();
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

/// What an attempt's failure says about the credential used. The message kept (it
/// becomes the credential's `last_error`) is scrubbed and short.
///
/// A success status with an unreadable body is neutral: the key got through and the
/// upstream did the work; ejecting the key would not help, and retrying would re-bill.
pub fn outcome_of(e: &ApiError) -> Outcome {
    let brief =
        |m: &str| -> String { crate::redact::scrub_patterns(m).chars().take(500).collect() };
    match e {
        ApiError::Provider(p) => match p.class {
            ErrorClass::Auth => Outcome::AuthFailed(brief(&p.message)),
            ErrorClass::RateLimited => Outcome::RateLimited {
                retry_after: p.retry_after_ms.map(Duration::from_millis),
                message: brief(&p.message),
            },
            ErrorClass::Upstream | ErrorClass::Timeout => Outcome::Failed(brief(&p.message)),
            ErrorClass::BadRequest | ErrorClass::Internal => Outcome::Neutral,
        },
        ApiError::UpstreamConnect(m) => Outcome::Failed(brief(m)),
        ApiError::UpstreamTimeout(_) | ApiError::StreamStalled(_) => Outcome::Failed(e.to_string()),
        _ => Outcome::Neutral,
    }
}

fn retryable(e: &ApiError) -> bool {
    !matches!(outcome_of(e), Outcome::Neutral | Outcome::Success)
}

/// Notes an attempt's outcome on the credential, persisting state changes.
pub fn note(
    state: &Arc<AppState>,
    route: &Route,
    cred: &RouteCredential,
    outcome: &Outcome,
    model: &str,
) {
    if let Some(p) = cred.health.record(outcome, model, &state.policy) {
        tracing::info!(provider = %route.prefix, credential = %cred.name, state = p.state, "credential state changed");
        state
            .metrics
            .credential_states
            .get_or_create(&crate::observability::metrics::StateLabels {
                provider: route.prefix.clone(),
                state: p.state.to_string(),
            })
            .inc();
        if let Some(id) = cred.id {
            persist_credential_state(state, id, &p);
        }
    }
}

/// Stores a credential's new health state in the background, so it survives a restart.
pub fn persist_credential_state(
    state: &Arc<AppState>,
    id: i64,
    p: &crate::resilience::credential_health::Persist,
) {
    let providers = state.stores.providers.clone();
    let (name, until, error) = (p.state.to_string(), p.until_ms, p.last_error.clone());
    tokio::spawn(async move {
        if let Err(e) = providers.set_credential_state(id, name, until, error).await {
            tracing::warn!(credential = id, error = %e, "cannot persist credential state");
        }
    });
}

async fn serve_call(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    guard: &mut CallGuard,
    trace: &TraceHeaders,
) -> Result<Served, ApiError> {
    let client_headers = crate::plugin_host::call_context::client_headers(req.headers());
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
    if !guard.span.is_disabled() {
        let span_name = format!("{} {model}", operation(endpoint));
        if state.telemetry_enabled {
            // tracing-opentelemetry applies `otel.name` only while the OTel span is
            // unstarted; the child `auth` span has started it, so rename it directly.
            use opentelemetry::trace::TraceContextExt;
            guard.span.context().span().update_name(span_name.clone());
        }
        guard.span.record("otel.name", span_name.as_str());
        guard.span.record("gen_ai.request.model", model.as_str());
    }
    if guard.capture_content {
        capture(&guard.span, "gen_ai.input.messages", &body, "messages");
    }
    let route_start = Instant::now();
    let targets = {
        let _s = tracing::info_span!("route").entered();
        state.routing.load().resolve(&model)
    };
    guard.timings.route = route_start.elapsed();
    if targets.is_empty() {
        return Err(not_found(&model, state));
    }
    let r = &state.config.resilience;
    let deadline = guard.started() + Duration::from_millis(r.total_timeout_ms);
    let mut last_error: Option<ApiError> = None;
    let mut failures = 0u32;
    let n_targets = targets.len();
    let client_headers: Vec<(&str, &str)> = client_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (t, (route, upstream_model)) in targets.into_iter().enumerate() {
        if t > 0 {
            let left_provider = guard.rec().map(|r| r.provider.clone()).unwrap_or_default();
            state
                .metrics
                .failovers
                .get_or_create(&crate::observability::metrics::ProviderLabels {
                    provider: left_provider,
                })
                .inc();
        }
        let served = format!("{}/{}", route.prefix, upstream_model);
        guard.known_model = route.models.iter().any(|m| m.id == upstream_model);
        guard.span.record("gen_ai.system", route.plugin.as_str());
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
            let picked = {
                let _s = tracing::info_span!("credential.select").entered();
                route.pick_credential(&tried).map(|(i, c)| (i, c.clone()))
            };
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
                credential: cred
                    .as_ref()
                    .map_or(Credential::None, |c| Credential::ApiKey(c.secret.as_str())),
                headers: &client_headers,
                now_unix_ms: crate::plugin_host::call_context::now_unix_ms(),
                stream,
                include_usage,
                ..Call::new(endpoint, &upstream_model, &body)
            };
            let number = guard.rec().map(|r| r.attempts).unwrap_or(1);
            match attempt(state, &route, &call, guard, deadline, trace, number).await {
                Ok(served) => {
                    if let Some(c) = &cred {
                        note(state, &route, c, &Outcome::Success, &upstream_model);
                    }
                    return Ok(served);
                }
                Err(e) => {
                    guard.attempt_failed(&e);
                    let outcome = outcome_of(&e);
                    if let Some(c) = &cred {
                        note(state, &route, c, &outcome, &upstream_model);
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
        let wait_ms = views
            .iter()
            .filter_map(|v| v.until)
            .min()
            .map(|u| (u - now).max(0) as u64);
        return ApiError::Provider(
            plugin_api::ProviderError::rate_limited(
                format!(
                    "every key of provider '{}' is cooling down after rate limits",
                    route.prefix
                ),
                wait_ms.or(Some(1000)),
            )
            .with_code("rate_limit_exceeded"),
        );
    }
    ApiError::NoHealthyCredential {
        prefix: route.prefix.clone(),
    }
}

/// One try with one credential. Its error leaves scrubbed of the key it used (the one
/// choke point for upstream text on the call path: the client body, the call record, the
/// credential's health and the log lines all see the scrubbed text).
async fn attempt(
    state: &Arc<AppState>,
    route: &Arc<Route>,
    call: &Call<'_>,
    guard: &mut CallGuard,
    deadline: Instant,
    trace: &TraceHeaders,
    number: u32,
) -> Result<Served, ApiError> {
    let key: Vec<&str> = call.credential.secrets();
    try_attempt(state, route, call, guard, deadline, trace, number)
        .await
        .map_err(|e| e.scrubbed(&key))
}

async fn try_attempt(
    state: &Arc<AppState>,
    route: &Arc<Route>,
    call: &Call<'_>,
    guard: &mut CallGuard,
    deadline: Instant,
    trace: &TraceHeaders,
    number: u32,
) -> Result<Served, ApiError> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let t = Instant::now();
    let prepared = {
        let _s = tracing::info_span!("plugin.prepare").entered();
        route.adapter.prepare(call).map_err(ApiError::Provider)
    };
    guard.timings.plugin += t.elapsed();
    match prepared? {
        Prepared::Local(local) => {
            let headers = [("content-type", local.content_type.as_str())];
            let raw = bytes::Bytes::from(local.body);
            if call.stream && (200..300).contains(&local.status) {
                let mut decoder = route.adapter.stream(call).map_err(ApiError::Provider)?;
                let (bytes, usage, error) = stream::local(&mut decoder, &raw);
                let mut g = guard.take_for_stream();
                g.usage(usage);
                g.first_byte();
                match error {
                    None => g.ok(),
                    Some(e) => g.fail(&e),
                }
                return Ok(Served::Streaming(http::event_stream(http::full(bytes))));
            }
            let resp = plugin_api::Response {
                status: local.status,
                headers: &headers,
                body: &raw,
            };
            parse(route, call, &resp, &raw, guard)
        }
        Prepared::Upstream(mut request) => {
            // Whatever credential the plugin put in the request (operator-set static
            // headers included) is scrubbed from what the upstream says back.
            let sent = crate::redact::sent_secrets(&request.headers);
            let sent: Vec<&str> = sent.iter().map(String::as_str).collect();
            let scrub = |e: ApiError| e.scrubbed(&sent);
            let (host, path) = split_url(&request.url);
            let span = tracing::info_span!(
                "upstream",
                otel.name = request.method.as_str(),
                otel.kind = "client",
                http.request.method = request.method.as_str(),
                server.address = host.as_str(),
                url.path = path.as_str(),
                http.response.status_code = tracing::field::Empty,
                aihub.attempt = i64::from(number),
            );
            if state.telemetry_enabled {
                crate::observability::telemetry::inject(&span.context(), &mut request.headers);
            } else if let Some(tp) = &trace.traceparent {
                request.headers.push(("traceparent".into(), tp.clone()));
                if let Some(ts) = &trace.tracestate {
                    request.headers.push(("tracestate".into(), ts.clone()));
                }
            }
            let t = Instant::now();
            let sent_result = state
                .upstream
                .send(request, route.timeouts.first_byte.min(left()))
                .instrument(span.clone())
                .await;
            guard.timings.upstream += t.elapsed();
            state
                .metrics
                .upstream_duration
                .get_or_create(&crate::observability::metrics::ProviderLabels {
                    provider: route.prefix.clone(),
                })
                .observe(t.elapsed().as_secs_f64());
            let resp = sent_result.map_err(scrub)?;
            let status = resp.status().as_u16();
            span.record("http.response.status_code", i64::from(status));
            if call.stream && resp.status().is_success() {
                let decoder = route.adapter.stream(call).map_err(ApiError::Provider)?;
                let (tx, rx) = mpsc::channel(16);
                let stream_guard = guard.take_for_stream();
                tokio::spawn(
                    stream::pump(
                        state.clone(),
                        route.clone(),
                        decoder,
                        resp.into_body(),
                        tx,
                        stream_guard,
                        deadline,
                    )
                    .instrument(span),
                );
                return Ok(Served::Streaming(http::event_stream(BodyExt::boxed(
                    ChannelBody::new(rx),
                ))));
            }
            let owned = headers_of(&resp);
            let bytes = state
                .upstream
                .read_body(resp.into_body(), route.timeouts.idle.min(left()))
                .instrument(span)
                .await
                .map_err(scrub)?;
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
            parse(route, call, &resp, &bytes, guard).map_err(scrub)
        }
    }
}

/// `raw` is `resp.body` as shared bytes: a pass-through reply sends it on uncopied.
fn parse(
    route: &Route,
    call: &Call<'_>,
    resp: &plugin_api::Response<'_>,
    raw: &bytes::Bytes,
    guard: &mut CallGuard,
) -> Result<Served, ApiError> {
    let t = Instant::now();
    let reply = {
        let _s = tracing::info_span!("plugin.parse").entered();
        route.adapter.parse(call, resp).map_err(ApiError::Provider)
    };
    guard.timings.plugin += t.elapsed();
    let reply = reply.map_err(|e| unreadable_success(e, resp))?;
    // Pass-through (plugin ABI 2): the upstream's bytes and content type, unchanged.
    let (body, content_type) = if reply.pass_through {
        (raw.clone(), resp.header("content-type"))
    } else {
        (reply.body, None)
    };
    if !guard.span.is_disabled() {
        record_response(&guard.span, &body);
    }
    if guard.capture_content {
        capture(&guard.span, "gen_ai.output.messages", &body, "choices");
    }
    let mut out = http::json_bytes(200, body);
    if let Some(ct) = content_type.and_then(|v| hyper::header::HeaderValue::from_str(v).ok()) {
        out.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    Ok(Served::Whole(out, reply.usage))
}

/// A plugin's "unreadable reply" for a 2xx the upstream did not mark as an error: the
/// upstream did (and billed) the work, so this must not be retried on another key.
fn unreadable_success(e: ApiError, resp: &plugin_api::Response<'_>) -> ApiError {
    let ApiError::Provider(p) = &e else {
        return e;
    };
    let reported_error = || {
        serde_json::from_slice::<serde_json::Value>(resp.body)
            .ok()
            .is_some_and(|v| v.get("error").is_some_and(|x| !x.is_null()))
    };
    if (200..300).contains(&resp.status) && p.class == ErrorClass::Upstream && !reported_error() {
        return ApiError::UnreadableReply {
            status: resp.status,
            message: p.message.clone(),
        };
    }
    e
}

/// `gen_ai.response.model` and finish reasons from a reply or a stream chunk (both carry
/// `model` and `choices[].finish_reason`); read only when traced.
pub(super) fn record_response(span: &tracing::Span, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Choice {
        finish_reason: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        model: Option<String>,
        #[serde(default)]
        choices: Vec<Choice>,
    }
    if let Ok(r) = serde_json::from_slice::<Reply>(body) {
        if let Some(m) = r.model {
            span.record("gen_ai.response.model", m.as_str());
        }
        let reasons: Vec<String> = r
            .choices
            .into_iter()
            .filter_map(|c| c.finish_reason)
            .collect();
        if !reasons.is_empty() {
            set_finish_reasons(span, reasons);
        }
    }
}

/// Host and path of a URL, for span attributes (the query may carry credentials).
fn split_url(url: &str) -> (String, String) {
    match url.parse::<hyper::Uri>() {
        Ok(u) => (
            u.host().unwrap_or_default().to_string(),
            u.path().to_string(),
        ),
        Err(_) => (String::new(), String::new()),
    }
}

/// `gen_ai.response.finish_reasons` as the string array the semantic conventions ask for
/// (a `tracing` field can only carry a scalar).
fn set_finish_reasons(span: &tracing::Span, reasons: Vec<String>) {
    let values: Vec<opentelemetry::StringValue> = reasons.into_iter().map(Into::into).collect();
    span.set_attribute(
        "gen_ai.response.finish_reasons",
        opentelemetry::Value::Array(values.into()),
    );
}

/// Puts one JSON field of a body into the span as text (capped), for operators who turned
/// `telemetry.capture_content` on.
fn capture(span: &tracing::Span, attribute: &'static str, body: &[u8], field: &str) {
    const MAX: usize = 16 * 1024;
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let mut text = v.get(field).map(|f| f.to_string()).unwrap_or_default();
    if text.len() > MAX {
        let mut cut = MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    span.set_attribute(attribute, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::ProviderError;

    fn resp(status: u16, body: &[u8]) -> plugin_api::Response<'_> {
        plugin_api::Response {
            status,
            headers: &[],
            body,
        }
    }

    #[test]
    fn an_unreadable_success_is_neither_retried_nor_held_against_the_key() {
        let unreadable = || ApiError::Provider(ProviderError::upstream("unreadable reply"));
        let e = unreadable_success(unreadable(), &resp(200, b"not json"));
        assert!(
            matches!(e, ApiError::UnreadableReply { status: 200, .. }),
            "{e:?}"
        );
        assert_eq!(e.status(), 502);
        assert!(!retryable(&e));
        assert_eq!(outcome_of(&e), Outcome::Neutral);
        // A 2xx the upstream itself marked as an error, and a 5xx, stay retryable.
        let e = unreadable_success(unreadable(), &resp(200, br#"{"error":{"message":"x"}}"#));
        assert!(matches!(e, ApiError::Provider(_)) && retryable(&e), "{e:?}");
        let e = unreadable_success(unreadable(), &resp(500, b"oops"));
        assert!(matches!(e, ApiError::Provider(_)) && retryable(&e), "{e:?}");
    }

    #[test]
    fn outcome_messages_are_scrubbed_and_short() {
        let e = ApiError::Provider(ProviderError::auth(format!(
            "bad key Bearer sk-abcdefghijklmnop {}",
            "x".repeat(1000)
        )));
        let Outcome::AuthFailed(m) = outcome_of(&e) else {
            panic!("not an auth failure")
        };
        assert!(m.starts_with("bad key Bearer [redacted] "), "{m}");
        assert_eq!(m.chars().count(), 500);
    }
}
