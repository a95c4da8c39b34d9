//! Response bodies and small response builders shared by the handlers.

use crate::error::ApiError;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::Response;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, StreamCut>;

/// A streamed body that failed after it began and has no error event of its own to end
/// with (audio bytes): hyper then ends the response without its last chunk (HTTP/1.1) or
/// resets the stream (HTTP/2), so the client sees a cut, not a finished answer.
#[derive(Debug)]
pub struct StreamCut;

impl std::fmt::Display for StreamCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream stream failed after it began")
    }
}

impl std::error::Error for StreamCut {}

/// Request extension: the client's address as the socket saw it (no `X-Forwarded-For`:
/// aihub has no notion of a trusted proxy), for per-client decisions such as the console's
/// login lockout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub std::net::IpAddr);

/// An internal response header saying the handler already wrote the access-log line;
/// the server takes it off before the response leaves (a header with a static name and
/// value costs nothing, where a response extension allocates its map).
const LOGGED: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-aihub-internal-logged");

pub fn mark_logged<B>(resp: &mut Response<B>) {
    resp.headers_mut()
        .insert(LOGGED, hyper::header::HeaderValue::from_static("1"));
}

/// Whether the handler logged the call; removes the mark.
pub fn take_logged<B>(resp: &mut Response<B>) -> bool {
    resp.headers_mut().remove(LOGGED).is_some()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn build(status: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

pub fn json_bytes(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    build(status, "application/json", full(body))
}

pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(v) => json_bytes(status, v),
        Err(e) => error(&ApiError::Internal(format!("cannot encode response: {e}"))),
    }
}

pub fn error(err: &ApiError) -> Response<Body> {
    let mut resp = json_bytes(err.status(), err.body_bytes());
    if let Some(secs) = err.retry_after_secs() {
        resp.headers_mut()
            .insert(hyper::header::RETRY_AFTER, secs.into());
    }
    resp
}

pub fn event_stream(body: Body) -> Response<Body> {
    let mut resp = build(200, "text/event-stream", body);
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    resp
}

/// A streamed response body fed by a channel. When the client goes away hyper drops the
/// body, the receiver closes, and the producing task sees it and stops the upstream.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, StreamCut>>,
}

impl ChannelBody {
    pub fn new(rx: mpsc::Receiver<Result<Bytes, StreamCut>>) -> Self {
        ChannelBody { rx }
    }
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| b.map(Frame::data)))
    }
}

/// A streamed body whose producer runs in place: polling the body polls the future that
/// makes its frames, so a chunk goes from the upstream read to the client write on the
/// connection's own task, with no channel and no second task to wake. When the client goes
/// away hyper drops the body, and the producer (with the upstream body it reads) with it.
pub struct InPlaceBody {
    frames: Frames,
    /// In a `Mutex` only to be `Sync` (as `Body` must be); reached with `get_mut`, never
    /// locked.
    producer: Option<Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl InPlaceBody {
    /// `make` gets the [`Frames`] its future sends to.
    pub fn new<F>(make: impl FnOnce(Frames) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let frames = Frames::default();
        let producer = Box::pin(make(frames.clone()));
        InPlaceBody {
            frames,
            producer: Some(Mutex::new(producer)),
        }
    }
}

impl HttpBody for InPlaceBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        loop {
            if let Some(frame) = self.frames.pop() {
                return Poll::Ready(Some(frame.map(Frame::data)));
            }
            let Some(producer) = self.producer.as_mut() else {
                return Poll::Ready(None);
            };
            let producer = producer
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match producer.as_mut().poll(cx) {
                Poll::Ready(()) => self.producer = None,
                // Waiting on the upstream (its waker is registered), with nothing queued.
                Poll::Pending if self.frames.is_empty() => return Poll::Pending,
                Poll::Pending => {}
            }
        }
    }
}

/// Where an [`InPlaceBody`]'s producer puts its frames. Only the connection's task touches
/// it (the producer is polled from `poll_frame`), so the lock is never contended.
#[derive(Clone, Default)]
pub struct Frames(Arc<Mutex<VecDeque<Result<Bytes, StreamCut>>>>);

impl Frames {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Result<Bytes, StreamCut>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pop(&self) -> Option<Result<Bytes, StreamCut>> {
        self.queue().pop_front()
    }

    fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    /// Queues a frame, then yields once so the body hands it to the client before the
    /// producer reads on: at most one frame waits here, and a client that does not read
    /// stops the upstream being read (backpressure, as a full channel gave).
    pub async fn send(&self, frame: Result<Bytes, StreamCut>) {
        self.queue().push_back(frame);
        YieldOnce(false).await
    }
}

/// Pending once, without a wake-up: the body polls its producer again as soon as it has
/// passed the queued frame on.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// One SSE `data:` event per JSON chunk, framed into a single buffer.
pub fn sse_frames(chunks: &[Vec<u8>]) -> Bytes {
    let len: usize = chunks.iter().map(|c| c.len() + 8).sum();
    let mut buf = Vec::with_capacity(len);
    for c in chunks {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(c);
        buf.extend_from_slice(b"\n\n");
    }
    Bytes::from(buf)
}

pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// The event that ends a stream that failed after it began (no `[DONE]` follows).
pub fn sse_error(err: &ApiError) -> Bytes {
    let mut buf = b"data: ".to_vec();
    buf.extend_from_slice(&err.body_bytes());
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Waker;

    fn poll(body: &mut InPlaceBody) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(body).poll_frame(&mut cx)
    }

    fn data(p: Poll<Option<Result<Frame<Bytes>, StreamCut>>>) -> Option<Bytes> {
        match p {
            Poll::Ready(Some(Ok(f))) => f.into_data().ok(),
            other => panic!(
                "expected a data frame, got {:?}",
                other.map(|o| o.is_some())
            ),
        }
    }

    #[test]
    fn frames_leave_one_at_a_time_in_order_then_the_body_ends() {
        let queued = Arc::new(Mutex::new(Vec::new()));
        let seen = queued.clone();
        let mut body = InPlaceBody::new(move |frames| async move {
            for s in ["a", "b", "c"] {
                frames.send(Ok(Bytes::from_static(s.as_bytes()))).await;
                // The frame sent is handed on before the producer goes on.
                seen.lock().unwrap().push(frames.is_empty());
            }
            frames.send(Err(StreamCut)).await;
        });
        assert_eq!(data(poll(&mut body)).unwrap(), "a");
        assert_eq!(data(poll(&mut body)).unwrap(), "b");
        assert_eq!(data(poll(&mut body)).unwrap(), "c");
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Err(StreamCut)))));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert_eq!(*queued.lock().unwrap(), vec![true, true, true]);
    }

    #[test]
    fn a_producer_waiting_on_its_source_leaves_the_body_pending() {
        let (tx, rx) = tokio::sync::oneshot::channel::<&'static str>();
        let mut body = InPlaceBody::new(move |frames| async move {
            frames.send(Ok(Bytes::from_static(b"first"))).await;
            if let Ok(s) = rx.await {
                frames.send(Ok(Bytes::from_static(s.as_bytes()))).await;
            }
        });
        assert_eq!(data(poll(&mut body)).unwrap(), "first");
        assert!(poll(&mut body).is_pending());
        assert!(poll(&mut body).is_pending());
        tx.send("second").unwrap();
        assert_eq!(data(poll(&mut body)).unwrap(), "second");
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
    }

    #[test]
    fn dropping_the_body_drops_the_producer() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let mut body = InPlaceBody::new(move |frames| async move {
            let _flag = flag;
            frames.send(Ok(Bytes::from_static(b"x"))).await;
            std::future::pending::<()>().await;
        });
        assert_eq!(data(poll(&mut body)).unwrap(), "x");
        assert!(poll(&mut body).is_pending());
        assert!(!dropped.load(Ordering::SeqCst));
        drop(body);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the client went away: the producer stops"
        );
    }
}
