//! One consumer call, as a sequence of phases, each a function with a documented
//! contract in its own file. All of them share one [`CallContext`] (the call record, its
//! timings and span):
//!
//! 1. `authenticate` — the app key names the app, or 401/403 (no record).
//! 2. read — the inbound format reads and checks the body into a [`CanonicalCall`].
//! 3. `resolve` — the model becomes ordered targets, or 404.
//! 4. `admit` — rate limits may refuse with 429, credit holds with 402.
//! 5. `cache` — a cached answer may serve the call (no cache yet).
//! 6. `attempts` — the targets are tried, each attempt (`attempt`) one key; streams are
//!    moved to the client by `stream`.
//! 7. `account` — the call is recorded once, whatever happened.
//!
//! Later features add a phase body, not a branch in the middle of the call path.

mod account;
mod admit;
mod attempt;
mod attempts;
mod authenticate;
mod cache;
mod context;
mod resolve;
mod stream;

pub use context::CallContext;

use crate::error::ApiError;
use crate::inbound::{self, openai, CanonicalCall, Format};
use crate::server::http::Body;
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::{Request, Response};
use plugin_api::{Endpoint, Usage};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context a client sent, kept for the upstream request.
#[derive(Clone, Default)]
pub(crate) struct TraceHeaders {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

fn operation(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Images => "image_generation",
        Endpoint::AudioTranscriptions => "transcription",
        Endpoint::AudioTranslations => "translation",
        Endpoint::AudioSpeech => "speech",
    }
}

/// What the attempts produced: a whole reply (accounted here) or a stream that accounts
/// for itself when it ends.
pub(crate) enum Served {
    Whole(Response<Body>, Option<Usage>),
    Streaming(Response<Body>),
}

/// Runs the phases for one consumer call. Errors after authentication come back as
/// responses (with `Server-Timing`), already accounted and logged.
pub async fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    format: Format,
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
    let span = call_span(endpoint, request_id);
    if state.telemetry_enabled {
        let _ = span.set_parent(crate::observability::telemetry::extract(req.headers()));
    }
    let principal =
        match authenticate::authenticate(state, format, req.headers(), &span, start).await {
            Ok(p) => p,
            Err(resp) => return Ok(resp),
        };
    let mut ctx = CallContext::new(state, request_id, &principal, endpoint, span.clone(), start);
    ctx.format = format;
    if let Some(rec) = ctx.rec() {
        rec.format = format.as_str();
    }
    ctx.timings.auth = start.elapsed();
    ctx.capture_content = state.telemetry_enabled && state.config.telemetry.capture_content;
    let who = Caller {
        request_id,
        app_id: principal.app_id,
    };
    let result = serve(state, req, endpoint, &mut ctx, &trace, &who)
        .instrument(span)
        .await;
    Ok(account::finish(&mut ctx, format, result))
}

/// Who made the call, for formats that keep state per app or show ids.
struct Caller<'a> {
    request_id: &'a str,
    app_id: i64,
}

/// Reads the call in the client's format.
async fn read(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    format: Format,
    who: &Caller<'_>,
) -> Result<CanonicalCall, ApiError> {
    let limit = state.config.server.max_body_bytes;
    match format {
        Format::OpenAiChat => openai::read_call(req, endpoint, limit).await,
        Format::AnthropicMessages => {
            let id = format!("msg_{}", who.request_id.replace('-', ""));
            inbound::anthropic::read_call(req, limit, id).await
        }
        Format::OpenAiResponses => inbound::responses::read_call(state, req, who.app_id).await,
        Format::OpenAiCompletions => inbound::completions::read_call(req, limit).await,
    }
}

/// Phases 2 to 6.
async fn serve(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    ctx: &mut CallContext,
    trace: &TraceHeaders,
    who: &Caller<'_>,
) -> Result<Served, ApiError> {
    let call = read(state, req, endpoint, ctx.format, who).await?;
    if let Some(rec) = ctx.rec() {
        rec.model = clip(&call.model, 200).to_string();
        rec.stream = call.stream;
    }
    if endpoint == Endpoint::AudioSpeech {
        ctx.media.characters = spoken_characters(&call);
    }
    if matches!(
        endpoint,
        Endpoint::AudioTranscriptions | Endpoint::AudioTranslations
    ) {
        // A file upload: nothing in it to describe or capture.
        let targets = resolve::resolve(state, ctx, &call.model)?;
        admit::admit(state, ctx, &call, targets.first()).await?;
        return attempts::run(state, ctx, &call, targets, trace).await;
    }
    describe(state, ctx, &call);
    let targets = resolve::resolve(state, ctx, &call.model)?;
    admit::admit(state, ctx, &call, targets.first()).await?;
    if let Some(served) = cache::lookup(state, ctx, &call, targets.first()).await? {
        return Ok(served);
    }
    attempts::run(state, ctx, &call, targets, trace).await
}

/// The characters of a speech call's `input` (what per-character rates price).
fn spoken_characters(call: &CanonicalCall) -> u64 {
    #[derive(serde::Deserialize)]
    struct Speech<'a> {
        #[serde(borrow)]
        input: Option<std::borrow::Cow<'a, str>>,
    }
    let Ok(body) = &call.body else { return 0 };
    serde_json::from_slice::<Speech<'_>>(body)
        .ok()
        .and_then(|s| s.input)
        .map_or(0, |s| s.chars().count() as u64)
}

/// Names the call's span after its operation and model, and captures the prompt when
/// the operator asked for content in traces.
fn describe(state: &AppState, ctx: &mut CallContext, call: &CanonicalCall) {
    if !ctx.span.is_disabled() {
        let span_name = format!("{} {}", operation(call.endpoint), call.model);
        if state.telemetry_enabled {
            // tracing-opentelemetry applies `otel.name` only while the OTel span is
            // unstarted; the child `auth` span has started it, so rename it directly.
            use opentelemetry::trace::TraceContextExt;
            ctx.span.context().span().update_name(span_name.clone());
        }
        ctx.span.record("otel.name", span_name.as_str());
        ctx.span.record("gen_ai.request.model", call.model.as_str());
    }
    if ctx.capture_content {
        if let Ok(body) = &call.body {
            attempt::capture(&ctx.span, "gen_ai.input.messages", body, "messages");
        }
    }
}

/// `s` cut to at most `chars` characters (a record keeps no more of a client's model).
pub(crate) fn clip(s: &str, chars: usize) -> &str {
    s.char_indices().nth(chars).map_or(s, |(i, _)| &s[..i])
}

fn call_span(endpoint: Endpoint, request_id: &str) -> tracing::Span {
    let op = operation(endpoint);
    tracing::info_span!(
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
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(super::clip("gpt-4o", 200), "gpt-4o");
        assert_eq!(super::clip("ééé", 2), "éé");
        assert_eq!(super::clip("", 3), "");
    }
}
