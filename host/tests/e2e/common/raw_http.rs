//! Raw-socket HTTP/1.1 for the tests that send what a proper client never would (slow
//! heads, bad framing, bodies shorter than their content-length).

use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect to aihub")
}

/// A parsed response: status, lower-cased header lines, body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `error` object of an OpenAI-shaped body (panics with the raw text otherwise).
    pub fn error(&self) -> Value {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        });
        crate::common::assert_error_shape(&v)
    }
}

/// Reads one response with a content-length body (what the error paths send), within
/// `within`. `None` if the connection closed or timed out first.
pub async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<RawResponse> {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let body_start = end + 4;
            while buf.len() < body_start + len {
                let n = read_some(stream, &mut chunk, deadline).await?;
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(RawResponse {
                status,
                headers,
                body: buf[body_start..body_start + len].to_vec(),
            });
        }
        let n = read_some(stream, &mut chunk, deadline).await?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn read_some(stream: &mut TcpStream, chunk: &mut [u8], deadline: Instant) -> Option<usize> {
    let left = deadline.checked_duration_since(Instant::now())?;
    match tokio::time::timeout(left, stream.read(chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => None,
        Ok(Ok(n)) => Some(n),
    }
}

/// Sends `request` and reads the answer.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut s = connect(addr).await;
    s.write_all(request).await.expect("send request");
    read_response(&mut s, Duration::from_secs(10))
        .await
        .expect("a response before the connection closed")
}

/// Whether the server closes `stream` (EOF or reset) within `within`; bytes it sends
/// meanwhile are discarded.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 4096];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}
