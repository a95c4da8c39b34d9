//! When a connection is closed for wasting a slot: no first request in time, idle too long,
//! or a client that stopped reading. Also the in-flight bookkeeping that keeps a connection
//! with a running request (a quiet stream included) from counting as idle.

use crate::server::http::Body;
use crate::server::io::ConnState;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// After an idle connection was asked to close gracefully, how long it may take.
const GRACEFUL_CLOSE_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_ms: u64,
    pub idle_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do; check again at this connection time (ms, see [`ConnState::now_ms`]).
    Wait(u64),
    /// Stop taking requests and close once the current ones are done.
    Graceful,
    /// Drop the connection now.
    Close,
}

/// `graceful_at`: when a graceful close was already asked for, if it was.
pub fn decide(conn: &ConnState, now: u64, t: Timeouts, graceful_at: Option<u64>) -> Action {
    let inflight = conn.inflight();
    let mut wake = u64::MAX;
    if conn.requests() == 0 && inflight == 0 {
        // Silent sockets and slow-loris heads, HTTP/2 prefaces included (hyper's own head
        // timeout starts only once it knows the connection is HTTP/1).
        if now >= t.header_ms {
            return Action::Close;
        }
        wake = t.header_ms;
    }
    let blocked = conn.write_blocked_ms();
    if blocked != 0 {
        // The client stopped reading what it asked for.
        if now >= blocked + t.idle_ms {
            return Action::Close;
        }
        wake = wake.min(blocked + t.idle_ms);
    }
    if inflight > 0 {
        return Action::Wait(wake.min(now + t.idle_ms));
    }
    if let Some(g) = graceful_at {
        if now >= g + GRACEFUL_CLOSE_MS {
            return Action::Close;
        }
        return Action::Wait(wake.min(g + GRACEFUL_CLOSE_MS));
    }
    let last = conn.last_io_ms();
    if now >= last + t.idle_ms {
        return Action::Graceful;
    }
    Action::Wait(wake.min(last + t.idle_ms))
}

/// `server.body_read_timeout_ms`, set once at start. Process-wide so that reading a body
/// (`inbound::openai::read_body`) needs neither a per-request extension nor a new parameter.
static BODY_READ_TIMEOUT_MS: AtomicU64 = AtomicU64::new(60_000);

pub fn set_body_read_timeout(t: Duration) {
    BODY_READ_TIMEOUT_MS.store(t.as_millis().max(1) as u64, Ordering::Relaxed);
}

pub fn body_read_timeout() -> Duration {
    Duration::from_millis(BODY_READ_TIMEOUT_MS.load(Ordering::Relaxed))
}

/// Counts one request as in flight until its response body is done or dropped.
pub struct InFlight(Arc<ConnState>);

impl InFlight {
    pub fn new(conn: Arc<ConnState>) -> Self {
        conn.request_started();
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that releases its request's [`InFlight`] when it ends. Not boxed again:
/// it is the service's body type.
pub struct TrackedBody {
    inner: Body,
    guard: Option<InFlight>,
}

impl TrackedBody {
    pub fn new(inner: Body, guard: InFlight) -> Self {
        TrackedBody {
            inner,
            guard: Some(guard),
        }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = crate::server::http::StreamCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            this.guard = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_ms: 1_000,
        idle_ms: 5_000,
    };

    #[test]
    fn no_first_request_in_time_closes() {
        let c = ConnState::new();
        assert_eq!(decide(&c, 10, T, None), Action::Wait(1_000));
        assert_eq!(decide(&c, 1_000, T, None), Action::Close);
    }

    #[test]
    fn idle_after_a_request_is_closed_gracefully_then_hard() {
        let c = ConnState::new();
        let g = InFlight::new(c.clone());
        // A request in flight, however quiet, is left alone.
        assert!(matches!(decide(&c, 60_000, T, None), Action::Wait(_)));
        drop(g);
        let last = c.last_io_ms();
        assert_eq!(decide(&c, last + 1, T, None), Action::Wait(last + 5_000));
        assert_eq!(decide(&c, last + 5_000, T, None), Action::Graceful);
        let at = last + 5_000;
        assert_eq!(
            decide(&c, at + 1, T, Some(at)),
            Action::Wait(at + GRACEFUL_CLOSE_MS)
        );
        assert_eq!(
            decide(&c, at + GRACEFUL_CLOSE_MS, T, Some(at)),
            Action::Close
        );
    }
}
