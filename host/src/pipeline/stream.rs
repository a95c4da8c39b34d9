//! Streamed replies: moved to the client chunk by chunk as they arrive.

use super::context::CallContext;
use crate::error::ApiError;
use crate::inbound::reshape::{Shape, Writer};
use crate::inbound::{Format, Render};
use crate::observability::metrics::GaugeGuard;
use crate::routing::Route;
use crate::server::http::Frames;
use crate::state::AppState;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use plugin_api::host::Decoder;
use plugin_api::{ProviderError, StreamOutput, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
pub fn local(
    decoder: &mut Decoder,
    body: &Bytes,
    format: Format,
    writer: &mut Writer,
) -> (Bytes, Option<Usage>, Option<ApiError>) {
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
        let mut bytes = body.clone();
        if let Some(e) = &failed {
            let mut with_error = body.to_vec();
            with_error.extend_from_slice(b"\n\n");
            with_error.extend_from_slice(&format.stream_error(e));
            bytes = Bytes::from(with_error);
        }
        return (bytes, end.usage.or(events.usage), failed);
    }
    out.extend_from_slice(&writer.chunks(&events.chunks));
    let mut done = events.done;
    let mut usage = events.usage;
    if failed.is_none() {
        let (events, error) = decoder.finish();
        out.extend_from_slice(&writer.chunks(&events.chunks));
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
        None => out.extend_from_slice(&writer.done()),
        Some(e) => out.extend_from_slice(&writer.fail(e)),
    }
    (Bytes::from(out), usage, failed)
}

/// What reading an upstream stream gave next.
pub enum Next {
    /// Decoded output; an error, when there is one, comes after the output.
    Output(StreamOutput, Option<ProviderError>),
    /// The stream failed (timeout, connection, size) with nothing more decoded.
    Failed(ApiError),
}

/// An upstream stream being read: its body, the plugin's decoder, the byte budget.
pub struct UpstreamStream {
    decoder: Decoder,
    body: Incoming,
    idle: Duration,
    /// Bounds one stream's total, as `read_body` bounds a whole reply: a decoder may hold
    /// what it is sent, so a stream that never ends must not be read forever.
    max_bytes: usize,
    received: usize,
    ended: bool,
    /// The keys the attempt sent: scrubbed from any error the stream ends with.
    secrets: Vec<String>,
    /// Pass-through (plugin ABI 2): the upstream's bytes go to the client as they are,
    /// `[DONE]` included; the decoder only reports usage, the end and errors.
    pass_through: bool,
    /// Upstream bytes read but not yet sent (pass-through only).
    raw: Vec<Bytes>,
    /// The first bytes count as output (a body of bytes, not events: nothing in it would
    /// ever say more).
    eager: bool,
}

impl UpstreamStream {
    pub fn new(decoder: Decoder, body: Incoming, idle: Duration, max_bytes: usize) -> Self {
        UpstreamStream {
            pass_through: decoder.pass_through(),
            raw: Vec::new(),
            decoder,
            body,
            idle,
            max_bytes,
            received: 0,
            ended: false,
            secrets: Vec::new(),
            eager: false,
        }
    }

    /// Bytes go to the client as soon as they arrive (audio).
    pub fn forward_eagerly(&mut self) {
        self.eager = true;
    }

    fn eager_bytes_waiting(&self) -> bool {
        self.eager && !self.raw.is_empty()
    }

    pub fn keep_secrets<'a>(&mut self, secrets: impl IntoIterator<Item = &'a str>) {
        self.secrets.extend(secrets.into_iter().map(String::from));
    }

    /// `e` without the keys this stream's attempt sent.
    pub fn scrub(&self, e: ApiError) -> ApiError {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        e.scrubbed(&secrets)
    }

    pub fn pass_through(&self) -> bool {
        self.pass_through
    }

    /// Upstream bytes to forward as they are (pass-through), in order.
    pub fn take_raw(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.raw)
    }

    /// The upstream body ended (the decoder has been finished).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Reads until the decoder has something to say, the body ends, or it fails.
    pub async fn next(&mut self, deadline: Instant, started: Instant) -> Next {
        loop {
            if self.ended {
                let (out, error) = self.decoder.finish();
                return Next::Output(out, error);
            }
            let limit = (Instant::now() + self.idle).min(deadline);
            match tokio::time::timeout_at(limit.into(), self.body.frame()).await {
                Err(_) => {
                    return Next::Failed(if limit == deadline {
                        // The whole call's deadline, not a silence.
                        let total = deadline.saturating_duration_since(started);
                        ApiError::UpstreamTimeout(total.as_millis() as u64)
                    } else {
                        ApiError::StreamStalled(self.idle.as_millis() as u64)
                    });
                }
                Ok(None) => self.ended = true,
                Ok(Some(Err(e))) => {
                    return Next::Failed(ApiError::Provider(ProviderError::upstream(format!(
                        "the upstream connection failed mid-stream: {e}"
                    ))))
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.received = self.received.saturating_add(data.len());
                        if self.received > self.max_bytes {
                            return Next::Failed(too_large(self.max_bytes));
                        }
                        let (out, error) = self.decoder.feed(&data);
                        if self.pass_through {
                            self.raw.push(data);
                        }
                        return Next::Output(out, error);
                    }
                }
            }
        }
    }

    /// Reads until the first output the client would see (a chunk, usage, the end) or the
    /// first failure. An upstream whose stream fails before it showed anything failed
    /// like a call that never streamed: the caller can still retry it elsewhere.
    pub async fn peek(&mut self, deadline: Instant, started: Instant) -> Result<Next, ApiError> {
        loop {
            match self.next(deadline, started).await {
                Next::Failed(e) => return Err(e),
                Next::Output(out, Some(e)) if out.chunks.is_empty() => {
                    return Err(ApiError::Provider(e))
                }
                Next::Output(out, None)
                    if out.chunks.is_empty()
                        && out.usage.is_none()
                        && !out.done
                        && !self.ended
                        && !self.eager_bytes_waiting() =>
                {
                    continue
                }
                shown => return Ok(shown),
            }
        }
    }
}

/// Where a stream's output goes: the client's body, through the writer that makes the
/// plugin's chunks into the client's format.
pub struct Out {
    pub frames: Frames,
    /// The body is not an event stream (audio): a failure cuts it instead of ending it
    /// with an error event.
    pub binary: bool,
    pub writer: Writer,
    /// For keeping a streamed Responses reply once it ends.
    pub shape: Arc<Shape>,
}

/// Moves an upstream stream to the client, starting with what `peek` read. Ends with
/// `[DONE]` only when the plugin saw the upstream finish properly; otherwise with an
/// error event. Runs inside the client's body (`InPlaceBody`): a client that goes away
/// drops it, and with it the upstream body, which closes the upstream connection; the
/// context then records the call as cancelled, with the usage seen so far.
pub async fn pump(
    state: Arc<AppState>,
    route: Arc<Route>,
    mut upstream: UpstreamStream,
    first: Next,
    out: Out,
    mut ctx: CallContext,
    deadline: Instant,
) {
    let Out {
        frames,
        binary,
        mut writer,
        shape,
    } = out;
    let _open = GaugeGuard::new(&state.metrics.streams);
    // What the client got, for a cache slot to keep once the stream ended properly.
    let mut kept = ctx.cache.take().map(|slot| (slot, Vec::new()));
    let traced = !ctx.span.is_disabled();
    let pass_through = upstream.pass_through();
    let mut done = false;
    let mut usage: Option<Usage> = None;
    let mut next = Some(first);
    let mut gone = ClientGone(Some(&route.prefix));
    let outcome: Result<(), ApiError> = loop {
        let step = match next.take() {
            Some(step) => step,
            None => upstream.next(deadline, ctx.started()).await,
        };
        let (events, error) = match step {
            Next::Failed(e) => break Err(e),
            Next::Output(events, error) => (events, error),
        };
        done |= events.done;
        usage = events.usage.or(usage);
        ctx.seen_usage(usage);
        if traced {
            note_chunks(&ctx.span, &events.chunks);
        }
        if pass_through {
            for raw in upstream.take_raw() {
                ctx.first_byte();
                keep(&mut kept, &raw);
                frames.send(Ok(raw)).await;
            }
        } else if !events.chunks.is_empty() {
            let bytes = writer.chunks(&events.chunks);
            if !bytes.is_empty() {
                ctx.first_byte();
                keep(&mut kept, &bytes);
                frames.send(Ok(bytes)).await;
            }
        }
        if let Some(e) = error {
            break Err(ApiError::Provider(e));
        }
        if upstream.ended() {
            break if done { Ok(()) } else { Err(cut_stream()) };
        }
    };
    gone.0 = None;
    let outcome = outcome.map_err(|e| upstream.scrub(e));
    // Closes the upstream connection before the client is told.
    drop(upstream);
    ctx.usage(usage);
    match outcome {
        Ok(()) => {
            if !pass_through {
                let end = writer.done();
                if let Some(r) = writer.final_response() {
                    crate::inbound::responses::keep(&state, &shape, &route.prefix, false, &r).await;
                }
                keep(&mut kept, &end);
                frames.send(Ok(end)).await;
            }
            if let Some((slot, body)) = kept {
                let ct = Some("text/event-stream");
                super::cache::fill(&state, slot, Bytes::from(body), ct, true, usage);
            }
            ctx.ok();
        }
        Err(e) => {
            tracing::warn!(provider = %route.prefix, error = %e, "stream failed after it began");
            if binary {
                frames.send(Err(crate::server::http::StreamCut)).await;
            } else if pass_through {
                // The upstream's bytes may have stopped mid-event: close it first.
                frames.send(Ok(Bytes::from_static(b"\n\n"))).await;
                frames.send(Ok(ctx.format.stream_error(&e))).await;
            } else {
                frames.send(Ok(writer.fail(&e))).await;
            }
            ctx.fail(&e);
        }
    }
}

/// Logs, when the pump is dropped before the upstream stream ended, that the client went
/// away (the provider it names is cleared once the stream has ended).
struct ClientGone<'a>(Option<&'a str>);

impl Drop for ClientGone<'_> {
    fn drop(&mut self) {
        if let Some(provider) = self.0 {
            tracing::info!(provider, "client went away; upstream stream cancelled");
        }
    }
}

/// Adds what the client was sent to what a cache slot will keep; an answer that outgrows
/// the slot is not kept at all.
fn keep(kept: &mut Option<(crate::cache::Slot, Vec<u8>)>, bytes: &[u8]) {
    if let Some((slot, buf)) = kept {
        if buf.len() + bytes.len() > slot.max_bytes {
            *kept = None;
        } else {
            buf.extend_from_slice(bytes);
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
