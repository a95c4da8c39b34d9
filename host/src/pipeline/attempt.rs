//! One attempt: the plugin prepares the upstream request, the host sends it, and the
//! plugin reads the reply (whole, or as a stream handed to `stream::pump`).

use super::context::CallContext;
use super::{stream, Served, TraceHeaders};
use crate::error::ApiError;
use crate::inbound::reshape::{Shape, Writer};
use crate::inbound::responses;
use crate::routing::Route;
use crate::server::http::{self, InPlaceBody};
use crate::state::AppState;
use crate::upstream::header_view;
use http_body_util::BodyExt;
use plugin_api::host::Outbound;
use plugin_api::{Call, ErrorClass};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

use tracing_opentelemetry::OpenTelemetrySpanExt;

/// One try with one credential. Its error leaves scrubbed of the key it used (the one
/// choke point for upstream text on the call path: the client body, the call record, the
/// credential's health and the log lines all see the scrubbed text).
#[allow(clippy::too_many_arguments)]
pub async fn attempt(
    state: &Arc<AppState>,
    route: &Arc<Route>,
    call: &Call<'_>,
    shape: &Arc<Shape>,
    ctx: &mut CallContext,
    deadline: Instant,
    trace: &TraceHeaders,
    number: u32,
) -> Result<Served, ApiError> {
    let key: smallvec::SmallVec<[&str; 2]> = call.credential.each_secret().collect();
    try_attempt(
        state, route, call, &key, shape, ctx, deadline, trace, number,
    )
    .await
    .map_err(|e| e.scrubbed(&key))
}

#[allow(clippy::too_many_arguments)]
async fn try_attempt(
    state: &Arc<AppState>,
    route: &Arc<Route>,
    call: &Call<'_>,
    key: &[&str],
    shape: &Arc<Shape>,
    ctx: &mut CallContext,
    deadline: Instant,
    trace: &TraceHeaders,
    number: u32,
) -> Result<Served, ApiError> {
    let left = || deadline.saturating_duration_since(Instant::now());
    // The plugin got the canonical call for a client of another format: its reply is
    // made back into the client's format here.
    let translated = call.format != ctx.format;
    let writer = || {
        if translated {
            shape.writer()
        } else {
            Writer::Chat
        }
    };
    let t = Instant::now();
    let prepared = {
        let _s = tracing::info_span!("plugin.prepare").entered();
        route
            .adapter
            .prepare_shared(call)
            .map_err(ApiError::Provider)
    };
    ctx.timings.plugin += t.elapsed();
    match prepared? {
        Outbound::Local(local) => {
            let headers = [("content-type", local.content_type.as_str())];
            let raw = bytes::Bytes::from(local.body);
            if call.stream && (200..300).contains(&local.status) {
                let mut decoder = route.adapter.stream(call).map_err(ApiError::Provider)?;
                let mut w = writer();
                let (bytes, usage, error) = stream::local(&mut decoder, &raw, ctx.format, &mut w);
                if error.is_none() {
                    if let Some(r) = w.final_response() {
                        responses::keep(state, shape, &route.prefix, false, &r).await;
                    }
                }
                if let (None, Some(slot)) = (&error, ctx.cache.take()) {
                    let ct = Some("text/event-stream");
                    super::cache::fill(state, slot, bytes.clone(), ct, true, usage);
                }
                let mut g = ctx.take_for_stream(&route.metrics(&state.metrics).time_to_first_token);
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
            parse(state, route, call, shape, &resp, &raw, ctx).await
        }
        Outbound::Upstream(request) => {
            // Whatever credential the plugin put in the request (operator-set static
            // headers included) is scrubbed from what the upstream says back; the call's
            // own credential is scrubbed by `attempt` already.
            let sent = crate::redact::sent_secrets(request.headers(), key);
            let sent: Vec<&str> = sent.iter().map(String::as_str).collect();
            let scrub = |e: ApiError| e.scrubbed(&sent);
            let span = tracing::info_span!(
                "upstream",
                otel.name = request.method(),
                otel.kind = "client",
                http.request.method = request.method(),
                server.address = tracing::field::Empty,
                url.path = tracing::field::Empty,
                http.response.status_code = tracing::field::Empty,
                aihub.attempt = i64::from(number),
            );
            // Parsed only for a span something records.
            if !span.is_disabled() {
                let (host, path) = split_url(request.url());
                span.record("server.address", host.as_str());
                span.record("url.path", path.as_str());
            }
            // The trace context: the host's headers, sent after the plugin's.
            let mut extra = Vec::new();
            if state.telemetry_enabled {
                crate::observability::telemetry::inject(&span.context(), &mut extra);
            } else if let Some(tp) = &trace.traceparent {
                extra.push(("traceparent".into(), tp.clone()));
                if let Some(ts) = &trace.tracestate {
                    extra.push(("tracestate".into(), ts.clone()));
                }
            }
            let t = Instant::now();
            let sent_result = state
                .upstream
                .send(request, &extra, route.timeouts.first_byte.min(left()))
                .instrument(span.clone())
                .await;
            ctx.timings.upstream += t.elapsed();
            let handles = route.metrics(&state.metrics);
            handles.upstream_duration.observe(t.elapsed().as_secs_f64());
            let resp = sent_result.map_err(scrub)?;
            let status = resp.status().as_u16();
            span.record("http.response.status_code", i64::from(status));
            if call.stream && resp.status().is_success() {
                // Audio streams as the bytes it is, under the upstream's content type.
                let binary = call.endpoint == plugin_api::Endpoint::AudioSpeech;
                let content_type = resp.headers().get(hyper::header::CONTENT_TYPE).cloned();
                let decoder = route.adapter.stream(call).map_err(ApiError::Provider)?;
                let mut upstream = stream::UpstreamStream::new(
                    decoder,
                    resp.into_body(),
                    route.timeouts.idle,
                    state.config.upstream.max_response_bytes,
                );
                if binary {
                    upstream.forward_eagerly();
                }
                // An error mid-stream is scrubbed of the keys this attempt sent, too.
                upstream.keep_secrets(sent.iter().copied().chain(key.iter().copied()));
                // Nothing has reached the client yet: a stream that fails before its first
                // output is an attempt that failed, and may be retried on the next key.
                let first = upstream
                    .peek(deadline, ctx.started())
                    .instrument(span.clone())
                    .await
                    .map_err(scrub)?;
                let stream_ctx = ctx.take_for_stream(&handles.time_to_first_token);
                let (writer, shape) = (writer(), shape.clone());
                let (state, route) = (state.clone(), route.clone());
                let body = BodyExt::boxed(InPlaceBody::new(move |frames| {
                    let out = stream::Out {
                        frames,
                        binary,
                        writer,
                        shape,
                    };
                    stream::pump(state, route, upstream, first, out, stream_ctx, deadline)
                        .instrument(span)
                }));
                if binary {
                    let mut resp = hyper::Response::new(body);
                    if let Some(ct) = content_type {
                        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
                    }
                    return Ok(Served::Streaming(resp));
                }
                return Ok(Served::Streaming(http::event_stream(body)));
            }
            let (head, body) = resp.into_parts();
            let bytes = state
                .upstream
                .read_body(body, route.timeouts.idle.min(left()))
                .instrument(span)
                .await
                .map_err(scrub)?;
            ctx.first_byte();
            let headers = header_view(&head.headers);
            let resp = plugin_api::Response {
                status,
                headers: &headers,
                body: &bytes,
            };
            parse(state, route, call, shape, &resp, &bytes, ctx)
                .await
                .map_err(scrub)
        }
    }
}

/// `raw` is `resp.body` as shared bytes: a pass-through reply sends it on uncopied.
async fn parse(
    state: &Arc<AppState>,
    route: &Route,
    call: &Call<'_>,
    shape: &Shape,
    resp: &plugin_api::Response<'_>,
    raw: &bytes::Bytes,
    ctx: &mut CallContext,
) -> Result<Served, ApiError> {
    let t = Instant::now();
    let reply = {
        let _s = tracing::info_span!("plugin.parse").entered();
        route.adapter.parse(call, resp).map_err(ApiError::Provider)
    };
    ctx.timings.plugin += t.elapsed();
    let reply = reply.map_err(|e| unreadable_success(e, resp))?;
    // Pass-through (plugin ABI 2): the upstream's bytes and content type, unchanged.
    let (body, content_type) = if reply.pass_through {
        (raw.clone(), resp.header("content-type"))
    } else {
        (reply.body, None)
    };
    if !ctx.span.is_disabled() {
        record_response(&ctx.span, &body);
    }
    if ctx.capture_content {
        capture(&ctx.span, "gen_ai.output.messages", &body, "choices");
    }
    if matches!(
        call.endpoint,
        plugin_api::Endpoint::AudioTranscriptions | plugin_api::Endpoint::AudioTranslations
    ) {
        ctx.media.millis = transcribed_millis(&body);
    }
    if call.endpoint == plugin_api::Endpoint::Images {
        ctx.media.images = images_returned(&body);
    }
    let translated = call.format != ctx.format;
    let (body, content_type) = if translated {
        let shaped = shape
            .whole(&body)
            .map_err(|message| ApiError::UnreadableReply {
                status: resp.status,
                message,
            })?;
        (bytes::Bytes::from(shaped), None)
    } else {
        (body, content_type)
    };
    responses::keep(state, shape, &route.prefix, !translated, &body).await;
    if let Some(slot) = ctx.cache.take() {
        let usage = reply.usage;
        super::cache::fill(state, slot, body.clone(), content_type, false, usage);
    }
    let mut out = http::json_bytes(200, body);
    if let Some(ct) = content_type.and_then(|v| hyper::header::HeaderValue::from_str(v).ok()) {
        out.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    Ok(Served::Whole(out, reply.usage))
}

/// How many images an image reply carries (its `data` entries), for per-image prices.
fn images_returned(body: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Reply {
        data: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Reply>(body).map_or(0, |r| r.data.len() as u64)
}

/// The audio length a transcription reply reports: `usage.seconds` (`"type":
/// "duration"`), else `verbose_json`'s `duration`; 0 for text formats that say neither.
fn transcribed_millis(body: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Usage {
        seconds: Option<f64>,
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        usage: Option<Usage>,
        duration: Option<f64>,
    }
    let Ok(r) = serde_json::from_slice::<Reply>(body) else {
        return 0;
    };
    let seconds = r
        .usage
        .and_then(|u| u.seconds)
        .or(r.duration)
        .unwrap_or(0.0);
    if seconds.is_finite() && seconds > 0.0 {
        // Bounded: a day of audio at most.
        (seconds.min(86_400.0) * 1000.0).round() as u64
    } else {
        0
    }
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
pub(super) fn capture(span: &tracing::Span, attribute: &'static str, body: &[u8], field: &str) {
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
    use crate::resilience::credential_health::Outcome;
    use crate::resilience::retry::{outcome_of, retryable};
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
}
