//! The load generator: a fixed number of workers, each sending the same request in a
//! loop over a pooled keep-alive client until a request count or a deadline is reached.
//! A non-streamed request's latency is the time to its whole body; a streamed one also
//! records the time to its first SSE `data:` event (time to first token).
//!
//! [`hold_streams`] opens many streams against a slow upstream and keeps them open, for
//! memory measurements.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A keep-alive client that keeps up to `max_idle` connections per host.
pub fn client(max_idle: usize) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(max_idle)
        .build(http)
}

#[derive(Debug, Clone, Copy)]
pub enum Stop {
    Requests(u64),
    Duration(Duration),
}

/// One request, sent over and over.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub uri: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Read the reply as SSE: time to first `data:` event, `[DONE]` required.
    pub stream: bool,
    /// A streamed reply must carry at least this many `data:` events (`[DONE]` included).
    pub min_events: u64,
    pub timeout: Duration,
}

impl RequestSpec {
    /// A JSON POST with an optional bearer key.
    pub fn post_json(
        uri: Uri,
        body: impl Into<Bytes>,
        bearer: Option<&str>,
        stream: bool,
    ) -> Result<Self, String> {
        let mut headers = vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        if let Some(key) = bearer {
            let v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|e| format!("bad key: {e}"))?;
            headers.push((http::header::AUTHORIZATION, v));
        }
        Ok(RequestSpec {
            uri,
            headers,
            body: body.into(),
            stream,
            min_events: 0,
            timeout: Duration::from_secs(30),
        })
    }

    fn build(&self) -> Request<Full<Bytes>> {
        let mut req = Request::post(self.uri.clone())
            .body(Full::new(self.body.clone()))
            .expect("valid request");
        let h = req.headers_mut();
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
        req
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub ok: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub elapsed: Duration,
    /// Whole-request latencies of successful requests, ns.
    pub latencies_ns: Vec<u64>,
    /// Times to first SSE event of successful streamed requests, ns.
    pub ttft_ns: Vec<u64>,
    /// SSE `data:` events received in total.
    pub events: u64,
}

const MAX_ERROR_SAMPLES: usize = 5;

impl RunResult {
    pub fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.ok as f64 / s
        } else {
            0.0
        }
    }

    /// Adds another run (of the same target) to this one: counts and samples add up,
    /// and so do the elapsed times, so `rps` stays requests per second of load.
    pub fn merge(&mut self, other: RunResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        for e in other.error_samples {
            if self.error_samples.len() < MAX_ERROR_SAMPLES {
                self.error_samples.push(e);
            }
        }
        self.elapsed += other.elapsed;
        self.latencies_ns.extend(other.latencies_ns);
        self.ttft_ns.extend(other.ttft_ns);
        self.events += other.events;
    }
}

/// Runs `concurrency` workers until `stop`.
pub async fn run(
    client: &HttpClient,
    spec: &Arc<RequestSpec>,
    concurrency: usize,
    stop: Stop,
) -> RunResult {
    let concurrency = concurrency.max(1);
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = match stop {
        Stop::Duration(d) => Some(start + d),
        Stop::Requests(_) => None,
    };
    let limit = match stop {
        Stop::Requests(n) => n,
        Stop::Duration(_) => u64::MAX,
    };
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let spec = spec.clone();
        let issued = issued.clone();
        workers.push(tokio::spawn(async move {
            let mut out = RunResult::default();
            loop {
                if let Some(d) = deadline {
                    if Instant::now() >= d {
                        break;
                    }
                }
                if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                timed(&client, &spec, &mut out).await;
            }
            out
        }));
    }
    let mut total = RunResult::default();
    for w in workers {
        match w.await {
            Ok(r) => total.merge(r),
            Err(e) => record_error(&mut total, format!("worker failed: {e}")),
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// One request on one connection at a time, alternating between targets request by
/// request (rotating which goes first), for `duration`. At concurrency 1 this is the fair
/// comparison on a noisy machine: every disturbance hits all targets alike. Each result's
/// `elapsed` is the sum of its own requests' times.
pub async fn run_interleaved(
    targets: &[(HttpClient, Arc<RequestSpec>)],
    duration: Duration,
) -> Vec<RunResult> {
    let mut out = vec![RunResult::default(); targets.len()];
    let deadline = Instant::now() + duration;
    let mut cycle = 0;
    while Instant::now() < deadline {
        for j in 0..targets.len() {
            let i = (cycle + j) % targets.len();
            let (client, spec) = &targets[i];
            let t0 = Instant::now();
            timed(client, spec, &mut out[i]).await;
            out[i].elapsed += t0.elapsed();
        }
        cycle += 1;
    }
    out
}

/// Sends one request and records its outcome.
async fn timed(client: &HttpClient, spec: &RequestSpec, out: &mut RunResult) {
    let t0 = Instant::now();
    match tokio::time::timeout(spec.timeout, one(client, spec, t0)).await {
        Ok(Ok((ttft, events))) => {
            out.ok += 1;
            out.latencies_ns.push(t0.elapsed().as_nanos() as u64);
            if let Some(t) = ttft {
                out.ttft_ns.push(t);
            }
            out.events += events;
        }
        Ok(Err(e)) => record_error(out, e),
        Err(_) => record_error(out, format!("timed out after {:?}", spec.timeout)),
    }
}

fn record_error(out: &mut RunResult, e: String) {
    out.errors += 1;
    if out.error_samples.len() < MAX_ERROR_SAMPLES {
        out.error_samples.push(e);
    }
}

/// One request: `(time to first event for streams, events)`.
async fn one(
    client: &HttpClient,
    spec: &RequestSpec,
    t0: Instant,
) -> Result<(Option<u64>, u64), String> {
    let resp = client
        .request(spec.build())
        .await
        .map_err(|e| format!("request failed: {}", describe(&e)))?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !spec.stream {
        let bytes = body
            .collect()
            .await
            .map_err(|e| format!("reading body failed: {e}"))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("status {status}: {}", snippet(&bytes)));
        }
        if find(&bytes, b"\"choices\"").is_none() {
            return Err(format!("no choices in reply: {}", snippet(&bytes)));
        }
        return Ok((None, 0));
    }
    if status != StatusCode::OK {
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Err(format!("status {status}: {}", snippet(&bytes)));
    }
    let mut data = Counter::new(b"data:");
    let mut done = Counter::new(b"[DONE]");
    let mut ttft = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("stream broke: {e}"))?;
        if let Some(chunk) = frame.data_ref() {
            data.feed(chunk);
            done.feed(chunk);
            if ttft.is_none() && data.count > 0 {
                ttft = Some(t0.elapsed().as_nanos() as u64);
            }
        }
    }
    if done.count == 0 {
        return Err(format!(
            "stream ended without [DONE] after {} events",
            data.count
        ));
    }
    if data.count < spec.min_events {
        return Err(format!(
            "stream carried {} events, expected at least {}",
            data.count, spec.min_events
        ));
    }
    Ok((ttft, data.count))
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    s.replace('\n', " ")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Counts a pattern across chunk boundaries.
struct Counter {
    pat: &'static [u8],
    carry: Vec<u8>,
    count: u64,
}

impl Counter {
    fn new(pat: &'static [u8]) -> Self {
        Counter {
            pat,
            carry: Vec::with_capacity(pat.len()),
            count: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let keep = self.pat.len() - 1;
        // Matches that start in the carried tail (shorter than the pattern, so never a
        // whole match on its own) and end in this chunk.
        if !self.carry.is_empty() {
            let mut joined = self.carry.clone();
            joined.extend_from_slice(&chunk[..chunk.len().min(keep)]);
            self.count += joined
                .windows(self.pat.len())
                .filter(|w| *w == self.pat)
                .count() as u64;
        }
        self.count += chunk
            .windows(self.pat.len())
            .filter(|w| *w == self.pat)
            .count() as u64;
        if chunk.len() >= keep {
            self.carry.clear();
            self.carry.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.carry.extend_from_slice(chunk);
            let excess = self.carry.len().saturating_sub(keep);
            self.carry.drain(..excess);
        }
    }
}

/// Streams held open by [`hold_streams`].
pub struct HeldStreams {
    cancel: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Streams whose first event arrived.
    pub ready: Arc<AtomicUsize>,
    /// Streams that failed, or ended while they should have been held.
    pub failed: Arc<AtomicUsize>,
    pub error_samples: Arc<std::sync::Mutex<Vec<String>>>,
}

impl HeldStreams {
    /// Waits until every stream has its first event or has failed, or `timeout` passes.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ready.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Drops every stream (the client disconnects) and waits for the tasks, bounded.
    pub async fn close(self, timeout: Duration) {
        let _ = self.cancel.send(true);
        let _ = tokio::time::timeout(timeout, async {
            for t in self.tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

/// Opens `n` concurrent streams of `spec` (which should ask a slow upstream for a long
/// stream) and keeps reading them until closed.
pub fn hold_streams(client: &HttpClient, spec: &Arc<RequestSpec>, n: usize) -> HeldStreams {
    let (cancel, rx) = watch::channel(false);
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let error_samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let client = client.clone();
        let spec = spec.clone();
        let mut rx = rx.clone();
        let ready = ready.clone();
        let failed = failed.clone();
        let samples = error_samples.clone();
        tasks.push(tokio::spawn(async move {
            let fail = |e: String| {
                failed.fetch_add(1, Ordering::Relaxed);
                let mut s = samples.lock().expect("not poisoned");
                if s.len() < MAX_ERROR_SAMPLES {
                    s.push(e);
                }
            };
            let resp = tokio::select! {
                r = client.request(spec.build()) => r,
                _ = rx.changed() => return,
            };
            let resp = match resp {
                Ok(r) if r.status() == StatusCode::OK => r,
                Ok(r) => return fail(format!("status {}", r.status())),
                Err(e) => return fail(format!("request failed: {}", describe(&e))),
            };
            let mut body = resp.into_body();
            let mut data = Counter::new(b"data:");
            let mut counted = false;
            loop {
                tokio::select! {
                    _ = rx.changed() => return,
                    f = body.frame() => match f {
                        Some(Ok(frame)) => {
                            if let Some(chunk) = frame.data_ref() {
                                data.feed(chunk);
                            }
                            if !counted && data.count > 0 {
                                counted = true;
                                ready.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some(Err(e)) => {
                            if counted {
                                ready.fetch_sub(1, Ordering::Relaxed);
                            }
                            return fail(format!("stream broke: {e}"));
                        }
                        None => {
                            if counted {
                                ready.fetch_sub(1, Ordering::Relaxed);
                            }
                            return fail("stream ended while held".into());
                        }
                    }
                }
            }
        }));
    }
    HeldStreams {
        cancel,
        tasks,
        ready,
        failed,
        error_samples,
    }
}

/// The chat request every target gets (only the model differs between scenarios).
pub fn chat_body(model: &str, stream: bool) -> String {
    let mut v = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello to the benchmark in one short sentence."}
        ],
        "max_tokens": 64,
        "temperature": 0
    });
    if stream {
        v["stream"] = true.into();
        v["stream_options"] = serde_json::json!({"include_usage": true});
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn counts_across_boundaries() {
        let mut c = Counter::new(b"data:");
        for chunk in [
            &b"data: a\n\nda"[..],
            b"t",
            b"a: b\n\ndata: [DONE]",
            b"d",
            b"ata:",
        ] {
            c.feed(chunk);
        }
        assert_eq!(c.count, 4);
        let mut whole = Counter::new(b"data:");
        whole.feed(b"data: a\n\ndata: b\n\ndata: [DONE]data:");
        assert_eq!(whole.count, 4);
    }
}
