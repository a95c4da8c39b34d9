//! A mock OpenAI upstream, as fast as it can be: bodies are built once, the request body
//! is scanned (not parsed) for `"stream"` and `"model"`.
//!
//! `POST .../chat/completions` answers a JSON completion with usage, or, with
//! `"stream": true`, an SSE stream of N content chunks, a usage chunk and `data: [DONE]`.
//! Defaults come from the command line; a request may override them with headers
//! (`x-mock-chunks`, `x-mock-chunk-delay-ms`, `x-mock-latency-ms`) or with a suffix on its
//! model name, which survives any gateway that passes the model on:
//! `gpt-4o-mini@chunks=2,delay_ms=120000,latency_ms=0`.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Sleep;

/// What a request gets unless it asks otherwise.
#[derive(Debug, Clone, Copy)]
pub struct MockConfig {
    /// Content chunks of a streamed reply.
    pub chunks: usize,
    /// Pause between two content chunks.
    pub chunk_delay: Duration,
    /// Pause before the response head.
    pub latency: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            chunks: 20,
            chunk_delay: Duration::ZERO,
            latency: Duration::ZERO,
        }
    }
}

const MAX_CHUNKS: usize = 10_000;
const PROMPT_TOKENS: usize = 24;
const COMPLETION_TOKENS: usize = 12;

struct Shared {
    cfg: MockConfig,
    completion: Bytes,
    default_frames: Arc<Vec<Bytes>>,
    models: Bytes,
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, cfg: MockConfig) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        cfg,
        completion: completion_body(),
        default_frames: Arc::new(sse_frames(cfg.chunks)),
        models: Bytes::from_static(
            br#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"mock"}]}"#,
        ),
    });
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("mock-upstream: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, shared.clone()));
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Opts {
    chunks: usize,
    delay: Duration,
    latency: Duration,
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if parts.method == Method::POST && path.ends_with("/chat/completions") {
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "unreadable body")),
        };
        let mut opts = Opts {
            chunks: shared.cfg.chunks,
            delay: shared.cfg.chunk_delay,
            latency: shared.cfg.latency,
        };
        apply_headers(&parts.headers, &mut opts);
        if let Some(model) = find_string_value(&bytes, b"\"model\"") {
            apply_model_suffix(model, &mut opts);
        }
        if !opts.latency.is_zero() {
            tokio::time::sleep(opts.latency).await;
        }
        if find_bool_true(&bytes, b"\"stream\"") {
            let frames = if opts.chunks == shared.cfg.chunks {
                shared.default_frames.clone()
            } else {
                Arc::new(sse_frames(opts.chunks))
            };
            let body = MockBody::Sse(SseBody {
                frames,
                next: 0,
                content_chunks: opts.chunks,
                delay: opts.delay,
                sleep: None,
            });
            return Ok(Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(body)
                .expect("static response"));
        }
        return Ok(json(StatusCode::OK, shared.completion.clone()));
    }
    match (&parts.method, path) {
        (&Method::GET, "/healthz") => {
            Ok(json(StatusCode::OK, Bytes::from_static(b"{\"ok\":true}")))
        }
        (&Method::GET, p) if p.ends_with("/models") => {
            Ok(json(StatusCode::OK, shared.models.clone()))
        }
        _ => Ok(error(StatusCode::NOT_FOUND, "no such route on the mock")),
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<MockBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(MockBody::Full(Some(body)))
        .expect("static response")
}

fn error(status: StatusCode, msg: &str) -> Response<MockBody> {
    let body = serde_json::json!({"error": {"message": msg, "type": "mock_error", "code": null}});
    json(status, Bytes::from(body.to_string()))
}

fn apply_headers(headers: &http::HeaderMap, opts: &mut Opts) {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(n) = num("x-mock-chunks") {
        opts.chunks = (n as usize).clamp(1, MAX_CHUNKS);
    }
    if let Some(ms) = num("x-mock-chunk-delay-ms") {
        opts.delay = Duration::from_millis(ms);
    }
    if let Some(ms) = num("x-mock-latency-ms") {
        opts.latency = Duration::from_millis(ms);
    }
}

/// `name@chunks=2,delay_ms=100,latency_ms=5`; unknown keys are ignored.
fn apply_model_suffix(model: &[u8], opts: &mut Opts) {
    let Some(at) = model.iter().position(|&b| b == b'@') else {
        return;
    };
    let Ok(params) = std::str::from_utf8(&model[at + 1..]) else {
        return;
    };
    for kv in params.split(',') {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<u64>() else {
            continue;
        };
        match k.trim() {
            "chunks" => opts.chunks = (v as usize).clamp(1, MAX_CHUNKS),
            "delay_ms" => opts.delay = Duration::from_millis(v),
            "latency_ms" => opts.latency = Duration::from_millis(v),
            _ => {}
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn skip_ws_colon(rest: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < rest.len() && matches!(rest[i], b' ' | b'\t' | b'\n' | b'\r' | b':') {
        i += 1;
    }
    &rest[i..]
}

/// The raw (unescaped) string value of the first `key` in a JSON object body.
fn find_string_value<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = find(body, key)?;
    let rest = skip_ws_colon(&body[at + key.len()..]);
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    Some(&rest[..end])
}

fn find_bool_true(body: &[u8], key: &[u8]) -> bool {
    match find(body, key) {
        Some(at) => skip_ws_colon(&body[at + key.len()..]).starts_with(b"true"),
        None => false,
    }
}

fn completion_body() -> Bytes {
    let v = serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from the mock upstream, benchmark!"},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS
        },
        "system_fingerprint": "fp_mock"
    });
    Bytes::from(v.to_string())
}

/// `chunks` content events (the first carries the role, the last the finish reason), a
/// usage event and `[DONE]`: `chunks + 2` frames.
pub fn sse_frames(chunks: usize) -> Vec<Bytes> {
    let mut frames = Vec::with_capacity(chunks + 2);
    for i in 0..chunks {
        let delta = if i == 0 {
            serde_json::json!({"role": "assistant", "content": format!("tok{i} ")})
        } else {
            serde_json::json!({"content": format!("tok{i} ")})
        };
        let finish = if i + 1 == chunks {
            serde_json::json!("stop")
        } else {
            serde_json::Value::Null
        };
        let v = serde_json::json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000u64,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        frames.push(Bytes::from(format!("data: {v}\n\n")));
    }
    let usage = serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000u64,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": chunks,
            "total_tokens": PROMPT_TOKENS + chunks
        }
    });
    frames.push(Bytes::from(format!("data: {usage}\n\n")));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

/// A whole body, or prebuilt SSE frames paced by a timer.
pub enum MockBody {
    Full(Option<Bytes>),
    Sse(SseBody),
}

pub struct SseBody {
    frames: Arc<Vec<Bytes>>,
    next: usize,
    content_chunks: usize,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Sse(s) => {
                if s.next >= s.frames.len() {
                    return Poll::Ready(None);
                }
                // The pause goes between content chunks; usage and [DONE] follow the last one.
                if !s.delay.is_zero() && s.next >= 1 && s.next < s.content_chunks {
                    let sleep = s
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(s.delay)));
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    s.sleep = None;
                }
                let frame = s.frames[s.next].clone();
                s.next += 1;
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Sse(s) => s.next >= s.frames.len(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Sse(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_stream_and_model() {
        let body = br#"{"model":"gpt-4o-mini@chunks=3,delay_ms=7","stream_options":{"include_usage":true},"stream" : true}"#;
        assert!(find_bool_true(body, b"\"stream\""));
        assert!(!find_bool_true(br#"{"stream":false}"#, b"\"stream\""));
        assert!(!find_bool_true(
            br#"{"stream_options":{"x":true}}"#,
            b"\"stream\""
        ));
        let model = find_string_value(body, b"\"model\"").unwrap();
        let mut o = Opts {
            chunks: 20,
            delay: Duration::ZERO,
            latency: Duration::ZERO,
        };
        apply_model_suffix(model, &mut o);
        assert_eq!(o.chunks, 3);
        assert_eq!(o.delay, Duration::from_millis(7));
    }

    #[test]
    fn frames_end_with_usage_and_done() {
        let f = sse_frames(4);
        assert_eq!(f.len(), 6);
        assert!(std::str::from_utf8(&f[0])
            .unwrap()
            .contains("\"role\":\"assistant\""));
        assert!(std::str::from_utf8(&f[4]).unwrap().contains("\"usage\""));
        assert_eq!(&f[5][..], b"data: [DONE]\n\n");
    }
}
