//! The client socket as hyper sees it: records when bytes last moved (for the idle and
//! slow-reader checks) and replaces hyper's own body-less error responses with OpenAI-shaped
//! ones.
//!
//! hyper answers a request it cannot parse by itself (400 bad request line or header, 414,
//! 431), before any of our code runs, with a bare `content-length: 0` head. Our own
//! responses always carry `content-type`, so a head with a 400/414/431 status and no
//! `content-type`, written while no request of ours is in flight, is hyper's: it is swapped
//! for the same status with a JSON body and `connection: close` (hyper closes right after).

use crate::error::ApiError;
use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest head hyper writes for its own errors is far below this; a head not complete
/// within it is not one of those.
const HELD_MAX: usize = 1024;

/// The replacements, rendered once at start.
pub struct Canned {
    bad_request: Bytes,
    uri_too_long: Bytes,
    headers_too_large: Bytes,
}

impl Canned {
    pub fn new(max_uri_bytes: usize, max_header_bytes: usize, max_headers: usize) -> Self {
        Canned {
            bad_request: render(&ApiError::MalformedRequest(
                "the request line, a header or the body framing could not be parsed; send \
                 `METHOD /path HTTP/1.1`, headers as `Name: value` without control \
                 characters, and a valid content-length or chunked body",
            )),
            uri_too_long: render(&ApiError::UriTooLong {
                limit: max_uri_bytes,
            }),
            headers_too_large: render(&ApiError::HeadersTooLarge {
                limit: max_header_bytes,
                count: max_headers,
            }),
        }
    }

    fn for_status(&self, status: &[u8]) -> Option<&Bytes> {
        match status {
            b"400" => Some(&self.bad_request),
            b"414" => Some(&self.uri_too_long),
            b"431" => Some(&self.headers_too_large),
            _ => None,
        }
    }
}

/// A whole HTTP/1.1 response carrying `err` as JSON, that closes the connection.
pub fn render(err: &ApiError) -> Bytes {
    render_with(err, "")
}

/// [`render`] with extra header lines (each ending in CRLF).
pub fn render_with(err: &ApiError, extra_headers: &str) -> Bytes {
    let body = err.body_bytes();
    let status = hyper::StatusCode::from_u16(err.status())
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// What is known about one connection, shared by its socket, its requests and its watchdog.
pub struct ConnState {
    epoch: Instant,
    /// Milliseconds since `epoch` when bytes last moved either way.
    last_io_ms: AtomicU64,
    /// Since when a write has been waiting for the client to read (0: not waiting).
    write_blocked_ms: AtomicU64,
    /// Requests whose response has not been fully handed to hyper.
    inflight: AtomicU32,
    /// Requests dispatched so far.
    requests: AtomicU64,
}

impl ConnState {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnState {
            epoch: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
            inflight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// Milliseconds since the connection was accepted; never 0 so 0 can mean "unset".
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    fn touch(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn last_io_ms(&self) -> u64 {
        self.last_io_ms.load(Ordering::Relaxed)
    }

    pub fn write_blocked_ms(&self) -> u64 {
        self.write_blocked_ms.load(Ordering::Relaxed)
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Acquire)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.touch();
    }

    pub fn request_finished(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        self.touch();
    }
}

/// Sans-IO part of the error rewriting: decides, write by write, whether bytes pass, are
/// held (a head that might be hyper's is still incomplete) or are replaced.
#[derive(Default)]
pub struct Rewriter {
    held: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// Write the caller's buffer as it is.
    Direct,
    /// Taken in; nothing to write yet.
    Held,
    /// Write these bytes instead of the caller's buffer (it counts as written).
    Emit(Bytes),
}

enum Verdict {
    Undecided,
    Pass,
    Replace(Bytes, usize),
}

impl Rewriter {
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// `armed`: no request of ours is in flight, so a response head now may be hyper's.
    pub fn on_write(&mut self, buf: &[u8], armed: bool, canned: &Canned) -> Out {
        if self.held.is_empty() {
            if !armed || buf.first() != Some(&b'H') {
                return Out::Direct;
            }
            return match verdict(buf, canned) {
                Verdict::Pass => Out::Direct,
                Verdict::Undecided => {
                    self.held.extend_from_slice(buf);
                    Out::Held
                }
                Verdict::Replace(b, head_len) => Out::Emit(with_rest(b, &buf[head_len..])),
            };
        }
        self.held.extend_from_slice(buf);
        match verdict(&self.held, canned) {
            Verdict::Undecided => Out::Held,
            Verdict::Pass => Out::Emit(Bytes::from(std::mem::take(&mut self.held))),
            Verdict::Replace(b, head_len) => {
                let out = with_rest(b, &self.held[head_len..]);
                self.held.clear();
                Out::Emit(out)
            }
        }
    }

    /// hyper flushes only when it has nothing more to write now: whatever is held goes out.
    pub fn on_flush(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| Bytes::from(std::mem::take(&mut self.held)))
    }
}

fn with_rest(replacement: Bytes, rest: &[u8]) -> Bytes {
    if rest.is_empty() {
        return replacement;
    }
    let mut v = replacement.to_vec();
    v.extend_from_slice(rest);
    Bytes::from(v)
}

fn verdict(buf: &[u8], canned: &Canned) -> Verdict {
    const PREFIX: &[u8] = b"HTTP/1.";
    // "HTTP/1.x NNN "
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Verdict::Pass;
    }
    if buf.len() < 13 {
        return Verdict::Undecided;
    }
    if !matches!(buf[7], b'0' | b'1') || buf[8] != b' ' || buf[12] != b' ' {
        return Verdict::Pass;
    }
    let Some(replacement) = canned.for_status(&buf[9..12]) else {
        return Verdict::Pass;
    };
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() < HELD_MAX {
            Verdict::Undecided
        } else {
            Verdict::Pass
        };
    };
    let head = &buf[..end + 2];
    let has = |name: &[u8]| {
        head.windows(name.len())
            .any(|w| w.eq_ignore_ascii_case(name))
    };
    if has(b"\r\ncontent-type:") || !has(b"\r\ncontent-length: 0\r\n") {
        return Verdict::Pass;
    }
    Verdict::Replace(replacement.clone(), end + 4)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The client socket wrapped for hyper.
pub struct ConnIo<S> {
    inner: S,
    conn: Arc<ConnState>,
    canned: Arc<Canned>,
    rewriter: Rewriter,
    /// Bytes accepted from hyper and not yet written to the socket.
    out: Bytes,
}

impl<S> ConnIo<S> {
    pub fn new(inner: S, conn: Arc<ConnState>, canned: Arc<Canned>) -> Self {
        ConnIo {
            inner,
            conn,
            canned,
            rewriter: Rewriter::default(),
            out: Bytes::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> ConnIo<S> {
    fn write_inner(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => {
                let _ = self.conn.write_blocked_ms.compare_exchange(
                    0,
                    self.conn.now_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => {
                self.conn.write_blocked_ms.store(0, Ordering::Relaxed);
                self.conn.touch();
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let out = self.out.clone();
            let n = ready!(self.write_inner(cx, &out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    fn must_inspect(&self, first: Option<&u8>) -> bool {
        self.rewriter.is_holding() || (first == Some(&b'H') && self.conn.inflight() == 0)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.conn.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if !this.must_inspect(buf.first()) {
            return this.write_inner(cx, buf);
        }
        let armed = this.conn.inflight() == 0;
        match this.rewriter.on_write(buf, armed, &this.canned) {
            Out::Direct => this.write_inner(cx, buf),
            Out::Held => Poll::Ready(Ok(buf.len())),
            Out::Emit(b) => {
                this.out = b;
                // Written later, by the next write or the flush hyper always sends.
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let first = bufs.iter().find(|b| !b.is_empty());
        if let Some(first) = first.filter(|b| this.must_inspect(b.first())) {
            // hyper puts a whole head in one slice; only that slice is looked at, and the
            // usual case (our own response) still goes out in one vectored write.
            let armed = this.conn.inflight() == 0;
            match this.rewriter.on_write(first, armed, &this.canned) {
                Out::Direct => {}
                Out::Held => return Poll::Ready(Ok(first.len())),
                Out::Emit(b) => {
                    this.out = b;
                    return Poll::Ready(Ok(first.len()));
                }
            }
        }
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => {
                let _ = this.conn.write_blocked_ms.compare_exchange(
                    0,
                    this.conn.now_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => {
                this.conn.write_blocked_ms.store(0, Ordering::Relaxed);
                this.conn.touch();
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if let Some(b) = this.rewriter.on_flush() {
            this.out = b;
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if let Some(b) = this.rewriter.on_flush() {
            this.out = b;
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 20:00:00 GMT\r\n\r\n";
    const OURS_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    const OURS_200: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

    fn canned() -> Canned {
        Canned::new(8192, 65536, 100)
    }

    /// Feeds `input` as writes split at `cuts`, then a flush; returns what reached the wire.
    fn run(input: &[u8], cuts: &[usize], armed: bool) -> Vec<u8> {
        let c = canned();
        let mut r = Rewriter::default();
        let mut wire = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            let piece = &input[start..end];
            start = end;
            match r.on_write(piece, armed, &c) {
                Out::Direct => wire.extend_from_slice(piece),
                Out::Held => {}
                Out::Emit(b) => wire.extend_from_slice(&b),
            }
        }
        if let Some(b) = r.on_flush() {
            wire.extend_from_slice(&b);
        }
        wire
    }

    #[test]
    fn hyper_error_is_replaced_at_every_split() {
        let want = canned().bad_request.clone();
        assert!(want.starts_with(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json"));
        assert_eq!(run(HYPER_400, &[], true), want);
        for i in 1..HYPER_400.len() {
            assert_eq!(run(HYPER_400, &[i], true), want, "split at {i}");
            for j in i + 1..HYPER_400.len() {
                assert_eq!(run(HYPER_400, &[i, j], true), want, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn each_status_gets_its_message() {
        for (status, code) in [
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            let out = run(head.as_bytes(), &[], true);
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {}", &status[..3])),
                "{text}"
            );
            assert!(text.contains("connection: close"), "{text}");
            let body = text.split("\r\n\r\n").nth(1).unwrap();
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["error"]["code"], code);
        }
    }

    #[test]
    fn our_responses_pass_unchanged_at_every_split() {
        for input in [
            OURS_400,
            OURS_200,
            b"0\r\n\r\n".as_slice(),
            b"H",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        ] {
            for i in 0..=input.len() {
                assert_eq!(run(input, &[i], true), input, "split at {i}");
            }
        }
        // While a request of ours is in flight nothing is inspected.
        assert_eq!(run(HYPER_400, &[], false), HYPER_400);
    }

    #[tokio::test]
    async fn conn_io_rewrites_on_the_wire_and_passes_vectored_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let canned = Arc::new(canned());
        let want = canned.bad_request.clone();
        for cut in [1, 5, 13, 30, HYPER_400.len() - 1] {
            let (a, mut b) = tokio::io::duplex(64 * 1024);
            let mut io = ConnIo::new(a, ConnState::new(), canned.clone());
            io.write_all(&HYPER_400[..cut]).await.unwrap();
            io.write_all(&HYPER_400[cut..]).await.unwrap();
            io.flush().await.unwrap();
            io.shutdown().await.unwrap();
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, want, "cut {cut}");
        }
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let mut io = ConnIo::new(a, ConnState::new(), canned.clone());
        let slices = [
            io::IoSlice::new(OURS_200),
            io::IoSlice::new(b"5\r\nhello\r\n"),
        ];
        let n = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write_vectored(cx, &slices))
            .await
            .unwrap();
        assert_eq!(
            n,
            OURS_200.len() + 10,
            "one vectored write for our own response"
        );
        io.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert!(got.starts_with(OURS_200) && got.ends_with(b"hello\r\n"));
    }

    #[test]
    fn a_long_unfinished_head_is_let_through() {
        let mut input = b"HTTP/1.1 400 Bad Request\r\nx: ".to_vec();
        input.extend_from_slice(&[b'a'; 2000]);
        assert_eq!(run(&input, &[30, 700], true), input);
    }
}
