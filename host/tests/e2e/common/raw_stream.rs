//! A mock upstream that answers every request with `200 text/event-stream` and a body of
//! raw bytes chosen by the test — a `head`, then `unit` repeated up to `total` bytes, then
//! a `tail` — written by hand over a socket (close-delimited, no framing of its own), so a
//! test can send what no well-behaved SSE server sends: one line many megabytes long.
//! It counts the body bytes the gateway accepted, to show it stopped reading.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The body of every reply.
#[derive(Debug, Clone)]
pub struct RawBody {
    pub head: Vec<u8>,
    /// Repeated (whole units) until `total` body bytes are reached; each written at once.
    pub unit: Vec<u8>,
    pub total: usize,
    pub tail: Vec<u8>,
}

pub struct RawStreamUpstream {
    addr: SocketAddr,
    sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawStreamUpstream {
    pub async fn start(body: RawBody) -> RawStreamUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw stream mock");
        let addr = listener.local_addr().unwrap();
        let sent: Arc<AtomicUsize> = Arc::default();
        let counter = sent.clone();
        let body = Arc::new(body);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(sock, body.clone(), counter.clone()));
            }
        });
        RawStreamUpstream { addr, sent, task }
    }

    /// The base URL to configure (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Body bytes written so far (over all replies), as far as the socket accepted them.
    pub fn bytes_sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for RawStreamUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `content-length` body), then writes the reply until the
/// body is complete or the gateway closes the connection.
async fn serve(mut sock: TcpStream, body: Arc<RawBody>, sent: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let status = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    if sock.write_all(status).await.is_err() {
        return;
    }
    if !write(&mut sock, &body.head, &sent).await {
        return;
    }
    let mut written = body.head.len();
    while !body.unit.is_empty() && written + body.unit.len() <= body.total {
        if !write(&mut sock, &body.unit, &sent).await {
            return;
        }
        written += body.unit.len();
    }
    if !write(&mut sock, &body.tail, &sent).await {
        return;
    }
    let _ = sock.shutdown().await;
}

/// Writes `piece`, counting it once the socket took it; false when the peer is gone.
async fn write(sock: &mut TcpStream, piece: &[u8], sent: &AtomicUsize) -> bool {
    if sock.write_all(piece).await.is_err() {
        return false;
    }
    sent.fetch_add(piece.len(), Ordering::SeqCst);
    true
}
