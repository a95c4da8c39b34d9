//! Streamed replies: moved to the client chunk by chunk as they arrive.

use super::guard::CallGuard;
use crate::error::ApiError;
use crate::observability::metrics::GaugeGuard;
use crate::routing::Route;
use crate::server::http;
use crate::state::AppState;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use plugin_api::host::Decoder;
use plugin_api::{ProviderError, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn cut_stream() -> ApiError {
    ApiError::Provider(ProviderError::upstream(
        "the upstream stream ended before it was complete",
    ))
}

/// A stream that sent more than `upstream.max_response_bytes` in all.
fn too_large(limit: usize) -> ApiError {
    ApiError::Provider(ProviderError::upstream(format!(
        "the upstream stream exceeded {limit} bytes (upstream.max_response_bytes); it was stopped"
    )))
}

/// A locally answered stream: decoded at once into one SSE body (or, from a pass-through
/// decoder, sent as it is).
pub fn local(decoder: &mut Decoder, body: &Bytes) -> (Bytes, Option<Usage>, Option<ApiError>) {
    let pass_through = decoder.pass_through();
    let mut out = Vec::new();
    let (events, mut failed) = decoder.feed(body);
    if pass_through {
        let (end, error) = decoder.finish();
        let failed = match failed.or(error) {
            Some(e) => Some(ApiError::Provider(e)),
            None if !(events.done || end.done) => Some(cut_stream()),
            None => None,
        };
        return (body.clone(), end.usage.or(events.usage), failed);
    }
    out.extend_from_slice(&http::sse_frames(&events.chunks));
    let mut done = events.done;
    let mut usage = events.usage;
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

/// Moves an upstream stream to the client. Ends with `[DONE]` only when the plugin saw
/// the upstream finish properly; otherwise with an error event. A client that goes away
/// drops the upstream body at once, which closes the upstream connection.
pub async fn pump(
    state: Arc<AppState>,
    route: Arc<Route>,
    mut decoder: Decoder,
    mut body: Incoming,
    tx: mpsc::Sender<Bytes>,
    mut guard: CallGuard,
    deadline: Instant,
) {
    let _open = GaugeGuard::new(&state.metrics.streams);
    let traced = !guard.span.is_disabled();
    let idle = route.timeouts.idle;
    // Bounds one stream's total, as `read_body` bounds a whole reply: a decoder may hold
    // what it is sent, so a stream that never ends must not be read forever.
    let max_bytes = state.config.upstream.max_response_bytes;
    let mut received: usize = 0;
    let mut done = false;
    let mut usage: Option<Usage> = None;
    let mut ended = false;
    // Pass-through (plugin ABI 2): the upstream's bytes go to the client as they are,
    // `[DONE]` included; the decoder only reports usage, the end and errors.
    let pass_through = decoder.pass_through();
    let outcome: Result<(), ApiError> = loop {
        let (events, error) = if ended {
            decoder.finish()
        } else {
            let now = Instant::now();
            let limit = (now + idle).min(deadline);
            let frame = tokio::select! {
                f = tokio::time::timeout_at(limit.into(), body.frame()) => f,
                _ = tx.closed() => {
                    tracing::info!(provider = %route.prefix, "client went away; upstream stream cancelled");
                    guard.usage(usage);
                    return; // the guard records the call as cancelled
                }
            };
            match frame {
                Err(_) => {
                    break Err(if limit == deadline {
                        // The whole call's deadline, not a silence.
                        let total = deadline.saturating_duration_since(guard.started());
                        ApiError::UpstreamTimeout(total.as_millis() as u64)
                    } else {
                        ApiError::StreamStalled(idle.as_millis() as u64)
                    });
                }
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
                    Ok(data) => {
                        received = received.saturating_add(data.len());
                        if received > max_bytes {
                            break Err(too_large(max_bytes));
                        }
                        let decoded = decoder.feed(&data);
                        if pass_through {
                            guard.first_byte();
                            if tx.send(data).await.is_err() {
                                guard.usage(decoded.0.usage.or(usage));
                                return;
                            }
                        }
                        decoded
                    }
                    Err(_) => continue,
                },
            }
        };
        done |= events.done;
        usage = events.usage.or(usage);
        if traced {
            note_chunks(&guard.span, &events.chunks);
        }
        if !events.chunks.is_empty() && !pass_through {
            guard.first_byte();
            if tx.send(http::sse_frames(&events.chunks)).await.is_err() {
                guard.usage(usage);
                return;
            }
        }
        if let Some(e) = error {
            break Err(ApiError::Provider(e));
        }
        if ended {
            break if done { Ok(()) } else { Err(cut_stream()) };
        }
    };
    // Closes the upstream connection before the client is told.
    drop(body);
    guard.usage(usage);
    match outcome {
        Ok(()) => {
            if !pass_through {
                let _ = tx.send(Bytes::from_static(http::SSE_DONE)).await;
            }
            guard.ok();
        }
        Err(e) => {
            tracing::warn!(provider = %route.prefix, error = %e, "stream failed after it began");
            if pass_through {
                // The upstream's bytes may have stopped mid-event: close it first.
                let _ = tx.send(Bytes::from_static(b"\n\n")).await;
            }
            let _ = tx.send(http::sse_error(&e)).await;
            guard.fail(&e);
        }
    }
}

/// Jittered exponential backoff before attempt `n` (1-based count of failures so far).
pub fn backoff(n: u32, base: Duration, max: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max);
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let frac = u32::from_le_bytes(r) as f64 / u32::MAX as f64;
    // Half fixed, half random: spreads retries without ever retrying instantly.
    exp.mul_f64(0.5 + frac / 2.0)
}

/// Response model and finish reasons for the trace, from the chunks that finish.
fn note_chunks(span: &tracing::Span, chunks: &[Vec<u8>]) {
    // A chunk that finishes carries `"finish_reason":"stop"` (not `null`); only those are
    // parsed.
    const KEY: &[u8] = b"\"finish_reason\":\"";
    for c in chunks
        .iter()
        .filter(|c| c.windows(KEY.len()).any(|w| w == KEY))
    {
        super::record_response(span, c);
    }
}
