//! Streamed replies: moved to the client chunk by chunk as they arrive.

use super::context::CallContext;
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
use std::time::Instant;
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

/// A locally answered stream: decoded at once into one SSE body.
pub fn local(decoder: &mut Decoder, body: &[u8]) -> (Bytes, Option<Usage>, Option<ApiError>) {
    let mut out = Vec::new();
    let (events, mut failed) = decoder.feed(body);
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
    mut guard: CallContext,
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
                        decoder.feed(&data)
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
        if !events.chunks.is_empty() {
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

/// Response model and finish reasons for the trace, from the chunks that finish.
fn note_chunks(span: &tracing::Span, chunks: &[Vec<u8>]) {
    // A chunk that finishes carries `"finish_reason":"stop"` (not `null`); only those are
    // parsed.
    const KEY: &[u8] = b"\"finish_reason\":\"";
    for c in chunks
        .iter()
        .filter(|c| c.windows(KEY.len()).any(|w| w == KEY))
    {
        super::attempt::record_response(span, c);
    }
}
