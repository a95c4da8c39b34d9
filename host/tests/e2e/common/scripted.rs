//! A scriptable mock upstream for the resilience tests: plain HTTP/1.1 spoken by hand
//! over tokio sockets, so that a reply can do what a well-behaved server never does —
//! hang, close the connection without answering, stall or cut a stream — and so that the
//! mock can tell when the gateway closed a connection (and when).
//!
//! The reply to each request is chosen by a closure over the request (its index, its
//! connection, its `Authorization` header, its body).

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the mock does with one request.
#[derive(Debug, Clone)]
pub enum Act {
    /// A whole JSON reply with this status and these extra headers.
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    /// Never answer; keep the connection open until the gateway closes it.
    Hang,
    /// Close the connection at once, without a status line.
    Close,
    /// A `200 text/event-stream` reply (chunked): each of `events` as one
    /// `data: ...\n\n` event after `delay`, then `end`.
    Stream {
        events: Vec<String>,
        delay: Duration,
        end: StreamEnd,
    },
}

/// How a scripted stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `data: [DONE]` and the chunked terminator; the connection stays usable.
    Done,
    /// Nothing more is sent; the mock waits for the gateway to close the connection.
    Stall,
    /// The connection is closed without `[DONE]` or the chunked terminator.
    Cut,
}

impl Act {
    /// `200` with an OpenAI completion whose content is `content`.
    pub fn ok(content: &str) -> Act {
        Act::json(200, openai_completion("gpt-x", content, 5, 2))
    }

    pub fn json(status: u16, body: Value) -> Act {
        Act::Reply {
            status,
            headers: vec![],
            body,
        }
    }

    /// `status` with an OpenAI error body carrying `message`.
    pub fn error(status: u16, message: &str) -> Act {
        let typ = match status {
            401 | 403 => "invalid_request_error",
            429 => "requests",
            _ => "server_error",
        };
        Act::json(
            status,
            json!({"error": {"message": message, "type": typ, "param": null, "code": null}}),
        )
    }

    /// Adds a response header (only to [`Act::Reply`]).
    pub fn header(self, k: &str, v: &str) -> Act {
        match self {
            Act::Reply {
                status,
                mut headers,
                body,
            } => {
                headers.push((k.to_string(), v.to_string()));
                Act::Reply {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }

    /// A stream of OpenAI chunks, one per piece of content, then `end`. With
    /// [`StreamEnd::Done`] a finish chunk precedes `[DONE]`.
    pub fn stream(pieces: &[&str], delay: Duration, end: StreamEnd) -> Act {
        let chunk = |delta: Value, finish: Value| {
            json!({
                "id": "chatcmpl-scripted",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000u64,
                "model": "gpt-x",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
            .to_string()
        };
        let mut events: Vec<String> = pieces
            .iter()
            .map(|p| chunk(json!({"content": p}), Value::Null))
            .collect();
        if end == StreamEnd::Done {
            events.push(chunk(json!({}), json!("stop")));
        }
        Act::Stream { events, delay, end }
    }
}

/// One request the scripted mock received.
#[derive(Debug, Clone)]
pub struct ScriptedRequest {
    /// 0-based, over every request the mock received.
    pub index: usize,
    /// The connection it came on (index into [`ScriptedUpstream::conns`]).
    pub conn: usize,
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ScriptedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The bearer token of `Authorization`, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Content of the last message (tests put a marker there to tell their own requests
    /// from the gateway's background checks).
    pub fn last_content(&self) -> String {
        self.json()["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

/// Who closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    /// The gateway (end of file or a reset on the mock's side).
    Peer,
    /// The mock itself ([`Act::Close`], [`StreamEnd::Cut`]).
    Mock,
}

/// One connection the mock accepted.
#[derive(Debug, Clone)]
pub struct ConnRecord {
    pub id: usize,
    pub opened: Instant,
    pub closed: Option<Instant>,
    pub closed_by: Option<Closer>,
    pub requests: usize,
}

type ScriptHandler = Arc<dyn Fn(&ScriptedRequest) -> Act + Send + Sync>;

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<ScriptedRequest>>,
    conns: Mutex<Vec<ConnRecord>>,
    next_index: AtomicUsize,
    events_sent: AtomicUsize,
}

pub struct ScriptedUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedUpstream {
    /// Starts a mock that answers each request as `script(&request)` says.
    pub async fn start(
        script: impl Fn(&ScriptedRequest) -> Act + Send + Sync + 'static,
    ) -> ScriptedUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind scripted upstream");
        let addr = listener.local_addr().unwrap();
        let shared: Arc<Shared> = Arc::default();
        let script: ScriptHandler = Arc::new(script);
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let id = {
                    let mut conns = sh.conns.lock().unwrap();
                    let id = conns.len();
                    conns.push(ConnRecord {
                        id,
                        opened: Instant::now(),
                        closed: None,
                        closed_by: None,
                        requests: 0,
                    });
                    id
                };
                tokio::spawn(serve_scripted(sock, id, script.clone(), sh.clone()));
            }
        });
        ScriptedUpstream { addr, shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<ScriptedRequest> {
        let mut v = self.shared.requests.lock().unwrap().clone();
        v.sort_by_key(|r| r.index);
        v
    }

    pub fn calls(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Requests that sent `Authorization: Bearer <secret>`.
    pub fn requests_with_key(&self, secret: &str) -> Vec<ScriptedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.bearer() == Some(secret))
            .collect()
    }

    pub fn conns(&self) -> Vec<ConnRecord> {
        self.shared.conns.lock().unwrap().clone()
    }

    /// SSE events written so far, over all streams.
    pub fn events_sent(&self) -> usize {
        self.shared.events_sent.load(Ordering::SeqCst)
    }

    /// Waits until connection `id` is closed; `None` if it is still open after `timeout`.
    pub async fn wait_conn_closed(&self, id: usize, timeout: Duration) -> Option<ConnRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.conns().into_iter().find(|c| c.id == id) {
                if c.closed.is_some() {
                    return Some(c);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until at least `n` requests arrived; returns them.
    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<ScriptedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let reqs = self.requests();
            if reqs.len() >= n || Instant::now() > deadline {
                return reqs;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Reads until the peer closes (or resets) the connection; whatever arrives is dropped.
async fn wait_eof(sock: &mut TcpStream) {
    let mut scratch = [0u8; 4096];
    loop {
        match sock.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; `false` at end of file or on an error.
async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match sock.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

type Head = (String, String, Vec<(String, String)>);

/// Reads one request (head and body, `Content-Length` or chunked) from `sock`, keeping
/// any bytes beyond it in `buf`. `None` when the connection ended first.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Head, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if !fill(sock, buf).await {
            return None;
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head_text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                if !fill(sock, buf).await {
                    return None;
                }
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                if !fill(sock, buf).await {
                    return None;
                }
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            if !fill(sock, buf).await {
                return None;
            }
        }
        buf.drain(..len).collect()
    };
    Some(((method, path, headers), body))
}

fn chunk_of(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

async fn serve_scripted(mut sock: TcpStream, id: usize, script: ScriptHandler, sh: Arc<Shared>) {
    let mut buf = Vec::new();
    let closer = 'conn: loop {
        let Some(((method, path, headers), body)) = read_request(&mut sock, &mut buf).await else {
            break Closer::Peer;
        };
        let req = ScriptedRequest {
            index: sh.next_index.fetch_add(1, Ordering::SeqCst),
            conn: id,
            at: Instant::now(),
            method,
            path,
            headers,
            body,
        };
        let act = script(&req);
        sh.requests.lock().unwrap().push(req);
        if let Some(c) = sh.conns.lock().unwrap().get_mut(id) {
            c.requests += 1;
        }
        match act {
            Act::Reply {
                status,
                headers,
                body,
            } => {
                let body = body.to_string();
                let mut head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                    reason(status),
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                head.push_str(&body);
                if sock.write_all(head.as_bytes()).await.is_err() {
                    break Closer::Peer;
                }
            }
            Act::Hang => {
                wait_eof(&mut sock).await;
                break Closer::Peer;
            }
            Act::Close => break Closer::Mock,
            Act::Stream { events, delay, end } => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                            cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    break Closer::Peer;
                }
                for data in events {
                    if !delay.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = wait_eof(&mut sock) => break 'conn Closer::Peer,
                        }
                    }
                    let frame = chunk_of(format!("data: {data}\n\n").as_bytes());
                    if sock.write_all(&frame).await.is_err() {
                        break 'conn Closer::Peer;
                    }
                    sh.events_sent.fetch_add(1, Ordering::SeqCst);
                }
                match end {
                    StreamEnd::Done => {
                        let mut tail = chunk_of(b"data: [DONE]\n\n");
                        tail.extend_from_slice(b"0\r\n\r\n");
                        if sock.write_all(&tail).await.is_err() {
                            break Closer::Peer;
                        }
                    }
                    StreamEnd::Stall => {
                        wait_eof(&mut sock).await;
                        break Closer::Peer;
                    }
                    StreamEnd::Cut => {
                        // Let the gateway read what was sent, then close mid-body.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        break Closer::Mock;
                    }
                }
            }
        }
    };
    let closed_at = Instant::now();
    let _ = sock.shutdown().await;
    drop(sock);
    if let Some(c) = sh.conns.lock().unwrap().get_mut(id) {
        c.closed = Some(closed_at);
        c.closed_by = Some(closer);
    }
}
