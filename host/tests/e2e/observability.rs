//! Observability (issue 7), end to end on the real binary: OTLP trace export to an
//! in-test collector (HTTP/protobuf and gRPC), W3C `traceparent` continued from the client
//! and passed to the upstream, `/metrics` parsed with a Prometheus text parser and
//! counted exactly, `Server-Timing` and `x-request-id`, the access log (text and JSON),
//! and a scan of spans, metrics and logs for secrets and message text.

use crate::common;

use bytes::Bytes;
use common::*;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY_ENV: &str = "OBS_MOCK_KEY";
/// The model the mock upstream reports in its replies (`gen_ai.response.model`).
const RESPONSE_MODEL: &str = "gpt-4o-mini-2024-07-18";

// ---------------------------------------------------------------------------------------
// An in-test OTLP collector: OTLP/HTTP (protobuf) and OTLP/gRPC on one socket
// ---------------------------------------------------------------------------------------

/// One export request the collector received.
#[derive(Debug, Clone)]
struct Export {
    path: String,
    headers: Vec<(String, String)>,
    /// The protobuf message as sent (gRPC framing removed).
    raw: Vec<u8>,
    request: ExportTraceServiceRequest,
}

impl Export {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A span as exported, with its resource's attributes.
#[derive(Debug, Clone)]
struct Exported {
    span: Span,
    resource: Vec<KeyValue>,
}

impl Exported {
    fn trace_id(&self) -> String {
        hex::encode(&self.span.trace_id)
    }
    fn span_id(&self) -> String {
        hex::encode(&self.span.span_id)
    }
    fn parent_id(&self) -> String {
        hex::encode(&self.span.parent_span_id)
    }
    fn name(&self) -> &str {
        &self.span.name
    }
    fn kind(&self) -> i32 {
        self.span.kind
    }
    fn attr(&self, key: &str) -> Option<&any_value::Value> {
        find_attr(&self.span.attributes, key)
    }
    fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr(key)? {
            any_value::Value::StringValue(s) => Some(s),
            _ => None,
        }
    }
    fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            any_value::Value::IntValue(i) => Some(*i),
            _ => None,
        }
    }
    fn status_code(&self) -> i32 {
        self.span.status.as_ref().map(|s| s.code).unwrap_or(0)
    }
    /// Every string the span carries: name, attribute keys and values, events, links,
    /// status message and its resource's attributes.
    fn strings(&self) -> Vec<String> {
        let mut out = vec![self.span.name.clone()];
        kv_strings(&self.span.attributes, &mut out);
        for e in &self.span.events {
            out.push(e.name.clone());
            kv_strings(&e.attributes, &mut out);
        }
        for l in &self.span.links {
            out.push(l.trace_state.clone());
            kv_strings(&l.attributes, &mut out);
        }
        out.push(self.span.trace_state.clone());
        if let Some(s) = &self.span.status {
            out.push(s.message.clone());
        }
        kv_strings(&self.resource, &mut out);
        out
    }
    fn describe(&self) -> String {
        let attrs: BTreeMap<&str, String> = self
            .span
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), show_value(kv.value.as_ref())))
            .collect();
        format!(
            "{:?} kind={} trace={} id={} parent={} status={} attrs={attrs:?}",
            self.span.name,
            self.span.kind,
            self.trace_id(),
            self.span_id(),
            self.parent_id(),
            self.status_code(),
        )
    }
}

fn find_attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn show_value(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => format!("{s:?}"),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(|v| show_value(Some(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(other) => format!("{other:?}"),
        None => "<none>".into(),
    }
}

fn any_strings(v: &AnyValue, out: &mut Vec<String>) {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => out.push(s.clone()),
        Some(any_value::Value::ArrayValue(a)) => {
            for v in &a.values {
                any_strings(v, out);
            }
        }
        Some(any_value::Value::KvlistValue(l)) => kv_strings(&l.values, out),
        Some(any_value::Value::BytesValue(b)) => out.push(String::from_utf8_lossy(b).into()),
        _ => {}
    }
}

fn kv_strings(kvs: &[KeyValue], out: &mut Vec<String>) {
    for kv in kvs {
        out.push(kv.key.clone());
        if let Some(v) = &kv.value {
            any_strings(v, out);
        }
    }
}

type CollectorBody = BoxBody<Bytes, Infallible>;

struct Collector {
    addr: SocketAddr,
    exports: Arc<Mutex<Vec<Export>>>,
    /// Requests that could not be decoded, with why.
    bad: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Listens on 127.0.0.1; answers OTLP/HTTP (`POST /v1/traces`, protobuf) over HTTP/1
    /// and OTLP/gRPC (`TraceService/Export`) over HTTP/2 without TLS.
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP collector");
        let addr = listener.local_addr().unwrap();
        let exports: Arc<Mutex<Vec<Export>>> = Arc::default();
        let bad: Arc<Mutex<Vec<String>>> = Arc::default();
        let (ex, bd) = (exports.clone(), bad.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (ex, bd) = (ex.clone(), bd.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let (ex, bd) = (ex.clone(), bd.clone());
                        async move { Ok::<_, Infallible>(collect(req, ex, bd).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
                });
            }
        });
        Collector {
            addr,
            exports,
            bad,
            task,
        }
    }

    fn http_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn exports(&self) -> Vec<Export> {
        self.exports.lock().unwrap().clone()
    }

    fn bad(&self) -> Vec<String> {
        self.bad.lock().unwrap().clone()
    }

    fn spans(&self) -> Vec<Exported> {
        let mut out = Vec::new();
        for e in self.exports() {
            for rs in e.request.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push(Exported {
                            span,
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Polls until `done` holds for the spans received so far; panics after `timeout`.
    async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Exported]) -> bool,
    ) -> Vec<Exported> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() > deadline {
                panic!(
                    "the collector did not get {what} within {timeout:?}; {} exports, \
                     undecodable: {:?}; spans:\n{}",
                    self.exports().len(),
                    self.bad(),
                    spans
                        .iter()
                        .map(|s| format!("  {}", s.describe()))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn collect(
    req: hyper::Request<Incoming>,
    exports: Arc<Mutex<Vec<Export>>>,
    bad: Arc<Mutex<Vec<String>>>,
) -> hyper::Response<CollectorBody> {
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let grpc = ctype.starts_with("application/grpc");
    let raw = if grpc {
        // Length-prefixed message: 1 byte compressed flag, 4 bytes big-endian length.
        if body.len() < 5 || body[0] != 0 {
            bad.lock()
                .unwrap()
                .push(format!("gRPC {path}: bad frame ({} bytes)", body.len()));
            return grpc_reply(13);
        }
        let n = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body[5..(5 + n).min(body.len())].to_vec()
    } else {
        body
    };
    match ExportTraceServiceRequest::decode(raw.as_slice()) {
        Ok(request) => exports.lock().unwrap().push(Export {
            path: path.clone(),
            headers,
            raw,
            request,
        }),
        Err(e) => {
            bad.lock()
                .unwrap()
                .push(format!("{path} ({ctype}): cannot decode: {e}"));
            return if grpc {
                grpc_reply(3)
            } else {
                hyper::Response::builder()
                    .status(400)
                    .body(Full::new(Bytes::new()).boxed())
                    .unwrap()
            };
        }
    }
    if grpc {
        return grpc_reply(0);
    }
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/x-protobuf")
        .body(
            Full::new(Bytes::from(
                ExportTraceServiceResponse::default().encode_to_vec(),
            ))
            .boxed(),
        )
        .unwrap()
}

/// A unary gRPC reply: an empty `ExportTraceServiceResponse`, then `grpc-status`.
fn grpc_reply(status: u32) -> hyper::Response<CollectorBody> {
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("grpc-status", status.to_string().parse().unwrap());
    let msg = ExportTraceServiceResponse::default().encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = if status == 0 {
        vec![
            Ok(Frame::data(Bytes::from(framed))),
            Ok(Frame::trailers(trailers)),
        ]
    } else {
        vec![Ok(Frame::trailers(trailers))]
    };
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Collects failed checks and reports them all at once.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, got: T, want: T, what: &str) {
        if got != want {
            self.0
                .push(format!("{what}: expected {want:?}, got {got:?}"));
        }
    }
    /// An integer attribute, typed as OTLP `IntValue` (the semantic conventions' `int`).
    fn int(&mut self, span: &Exported, key: &str, want: i64, what: &str) {
        if span.attr_int(key) != Some(want) {
            self.0.push(format!(
                "{what}: expected {key} = IntValue({want}), got {}",
                typed(span, key)
            ));
        }
    }
    fn finish(self, context: impl FnOnce() -> String) {
        if !self.0.is_empty() {
            panic!(
                "{} check(s) failed:\n  - {}\n{}",
                self.0.len(),
                self.0.join("\n  - "),
                context()
            );
        }
    }
}

fn trace_id_hex() -> String {
    format!("{}{}", random_hex(), random_hex())
}

fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

/// `(version, trace id, parent id, flags)` of a `traceparent` value.
fn parse_traceparent(v: &str) -> Option<(String, String, String, String)> {
    let parts: Vec<&str> = v.split('-').collect();
    if parts.len() != 4 || parts[1].len() != 32 || parts[2].len() != 16 || parts[3].len() != 2 {
        return None;
    }
    Some((
        parts[0].into(),
        parts[1].into(),
        parts[2].into(),
        parts[3].into(),
    ))
}

fn describe_all(spans: &[Exported]) -> String {
    spans
        .iter()
        .map(|s| format!("  {}", s.describe()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The call span: the one carrying `gen_ai.operation.name`.
fn gen_ai_span(spans: &[Exported]) -> Option<&Exported> {
    spans
        .iter()
        .find(|s| s.attr("gen_ai.operation.name").is_some())
}

/// The upstream attempt span(s): named `upstream`, or an HTTP client span (the host
/// names it after the method, as the HTTP semantic conventions ask).
fn upstream_spans(spans: &[Exported]) -> Vec<&Exported> {
    spans
        .iter()
        .filter(|s| {
            s.name() == "upstream"
                || (s.kind() == SpanKind::Client as i32 && s.attr("http.request.method").is_some())
        })
        .collect()
}

fn is_descendant(spans: &[Exported], span: &Exported, ancestor_id: &str) -> bool {
    let mut parent = span.parent_id();
    for _ in 0..32 {
        if parent == ancestor_id {
            return true;
        }
        match spans.iter().find(|s| s.span_id() == parent) {
            Some(p) => parent = p.parent_id(),
            None => return false,
        }
    }
    false
}

/// Whether `gen_ai.response.finish_reasons` is a string array (as the semantic
/// conventions type it) holding `reason`.
fn finish_reasons_hold(span: &Exported, reason: &str) -> bool {
    match span.attr("gen_ai.response.finish_reasons") {
        Some(any_value::Value::ArrayValue(a)) => a
            .values
            .iter()
            .any(|v| matches!(&v.value, Some(any_value::Value::StringValue(s)) if s == reason)),
        _ => false,
    }
}

/// How an attribute was exported, for failure messages (`IntValue(11)`, `StringValue("11")`).
fn typed(span: &Exported, key: &str) -> String {
    match span.attr(key) {
        Some(v) => format!("{v:?}"),
        None => "<absent>".into(),
    }
}

fn mock_reply_for(rec: &Recorded) -> MockReply {
    let body = rec.json();
    let model = body["model"].as_str().unwrap_or("").to_string();
    if model.contains("fail") {
        return MockReply::openai_error(
            400,
            "the mock refuses this model",
            "invalid_request_error",
        );
    }
    if body["stream"] == json!(true) {
        MockReply::sse(
            openai_stream_chunks(RESPONSE_MODEL, &["Hel", "lo"], Some((9, 3))),
            Duration::from_millis(2),
            SseEnd::Done,
        )
    } else {
        MockReply::json(
            200,
            openai_completion(RESPONSE_MODEL, "Hi from the mock", 11, 4),
        )
    }
}

fn telemetry_config(endpoint: &str, protocol: &str, headers: &[(&str, &str)]) -> String {
    let mut s =
        format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\notlp_protocol = \"{protocol}\"\n");
    if !headers.is_empty() {
        s.push_str("\n[telemetry.otlp_headers]\n");
        for (k, v) in headers {
            s.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
    }
    s
}

/// Parses `Server-Timing` into `name -> dur` (ms); `None` entries have no `dur`.
fn server_timing(resp: &reqwest::Response) -> Option<BTreeMap<String, Option<f64>>> {
    let v = resp.headers().get("server-timing")?.to_str().ok()?;
    let mut out = BTreeMap::new();
    for entry in v.split(',') {
        let mut parts = entry.trim().split(';');
        let name = parts.next()?.trim().to_string();
        let dur = parts
            .filter_map(|p| p.trim().strip_prefix("dur="))
            .find_map(|d| d.parse::<f64>().ok());
        out.insert(name, dur);
    }
    Some(out)
}

fn check_server_timing(c: &mut Checks, resp: &reqwest::Response, what: &str) {
    c.check(
        resp.headers().get("x-aihub-internal-logged").is_none(),
        || format!("{what}: the internal logged mark reached the client"),
    );
    let raw = resp
        .headers()
        .get("server-timing")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    match server_timing(resp) {
        None => c.check(false, || {
            format!("{what}: no (parseable) Server-Timing header; got {raw:?}")
        }),
        Some(t) => {
            for name in ["auth", "route", "plugin", "upstream", "total"] {
                match t.get(name) {
                    Some(Some(d)) if *d >= 0.0 && d.is_finite() => {}
                    other => c.check(false, || {
                        format!("{what}: Server-Timing entry {name:?} with dur=<ms> missing or bad ({other:?}); header {raw:?}")
                    }),
                }
            }
            if let (Some(Some(total)), Some(Some(auth))) = (t.get("total"), t.get("auth")) {
                c.check(total >= auth, || {
                    format!("{what}: Server-Timing total {total} < auth {auth}: {raw:?}")
                });
            }
        }
    }
}

// ---- metrics ----

struct Metrics {
    text: String,
    scrape: prometheus_parse::Scrape,
}

impl Metrics {
    /// The value of the sample `name` whose labels are exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .and_then(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    fn has(&self, name: &str) -> bool {
        self.scrape.samples.iter().any(|s| s.metric == name)
    }
}

/// Checks that every line of `text` is valid Prometheus/OpenMetrics text, and returns
/// the lines that are not (a Prometheus text parser skips what it cannot read).
fn invalid_exposition_lines(text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let word = rest.split_whitespace().next().unwrap_or("");
            if !matches!(word, "HELP" | "TYPE" | "UNIT" | "EOF") {
                bad.push(line.to_string());
            }
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => {
                bad.push(line.to_string());
                continue;
            }
        };
        let value_ok = value.parse::<f64>().is_ok() || matches!(value, "+Inf" | "-Inf" | "NaN");
        let name = series.split('{').next().unwrap_or("");
        let labels_ok = match series.find('{') {
            None => true,
            Some(i) => series.ends_with('}') && i < series.len() - 1,
        };
        if !(value_ok && name_ok(name) && labels_ok) {
            bad.push(line.to_string());
        }
    }
    bad
}

async fn scrape(server: &TestServer, token: Option<&str>) -> Metrics {
    let mut req = http_client().get(server.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("GET /metrics");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "GET /metrics: {text}");
    let bad = invalid_exposition_lines(&text);
    assert!(
        bad.is_empty(),
        "/metrics has lines that are not Prometheus text: {bad:#?}"
    );
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("prometheus_parse reads /metrics");
    assert!(
        !scrape.samples.is_empty(),
        "prometheus_parse found no samples in /metrics:\n{text}"
    );
    Metrics { text, scrape }
}

fn stderr_log(server: &TestServer) -> String {
    std::fs::read_to_string(server.data_dir().join("stderr.log")).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// 1 + 2: OTLP/HTTP span tree continuing the client's trace; traceparent to the upstream
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn otlp_http_exports_the_span_tree_of_a_call_in_the_clients_trace() {
    let collector = Collector::start().await;
    let mock = MockUpstream::start(mock_reply_for).await;
    let otlp_header = format!("otlp-hdr-{}", random_hex());
    let config = format!(
        "{}{}",
        telemetry_config(
            &collector.http_endpoint(),
            "http",
            &[("x-collector-token", &otlp_header)]
        ),
        mock_provider_config("mock", &mock, KEY_ENV)
    );
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(config)
            .env(KEY_ENV, format!("sk-test-{}", random_hex()))
            .env("OTEL_BSP_SCHEDULE_DELAY", "300"),
    )
    .await;

    // A non-stream call in the client's trace.
    let trace = trace_id_hex();
    let client_span = random_hex();
    let rid = format!("obs-{}", random_hex());
    let resp = server
        .client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", traceparent(&trace, &client_span))
        .header("tracestate", "vendor=obs1")
        .header("x-request-id", &rid)
        .json(&chat_body("mock/gpt-4o-mini", "hello there"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}");

    let spans = collector
        .wait_for("the call's spans", Duration::from_secs(15), |all| {
            let t: Vec<Exported> = all
                .iter()
                .filter(|s| s.trace_id() == trace)
                .cloned()
                .collect();
            gen_ai_span(&t).is_some() && t.iter().any(|s| s.name() == "call_log.record")
        })
        .await;
    let t: Vec<Exported> = spans
        .iter()
        .filter(|s| s.trace_id() == trace)
        .cloned()
        .collect();
    let mut c = Checks::default();

    // The export itself.
    let exports = collector.exports();
    c.check(exports.iter().all(|e| e.path == "/v1/traces"), || {
        format!(
            "exports went to {:?}, not the configured /v1/traces",
            exports.iter().map(|e| &e.path).collect::<Vec<_>>()
        )
    });
    c.check(
        exports
            .iter()
            .all(|e| e.header("content-type") == Some("application/x-protobuf")),
        || {
            format!(
                "OTLP/HTTP content-type: {:?}",
                exports
                    .iter()
                    .map(|e| e.header("content-type"))
                    .collect::<Vec<_>>()
            )
        },
    );
    c.check(
        exports
            .iter()
            .all(|e| e.header("x-collector-token") == Some(otlp_header.as_str())),
        || "the configured [telemetry.otlp_headers] were not sent with every export".into(),
    );
    c.check(collector.bad().is_empty(), || {
        format!("undecodable exports: {:?}", collector.bad())
    });

    // The call span.
    let g = gen_ai_span(&t).expect("waited for it").clone();
    c.eq(g.name(), "chat mock/gpt-4o-mini", "call span name");
    c.eq(g.kind(), SpanKind::Server as i32, "call span kind (SERVER)");
    c.eq(
        g.parent_id(),
        client_span.clone(),
        "call span's parent = the client's span id",
    );
    c.eq(
        g.attr_str("gen_ai.operation.name"),
        Some("chat"),
        "gen_ai.operation.name",
    );
    c.eq(g.attr_str("gen_ai.system"), Some("openai"), "gen_ai.system");
    let req_model = g.attr_str("gen_ai.request.model").map(String::from);
    c.check(
        matches!(
            req_model.as_deref(),
            Some("mock/gpt-4o-mini") | Some("gpt-4o-mini")
        ),
        || format!("gen_ai.request.model: got {req_model:?}"),
    );
    c.eq(
        g.attr_str("gen_ai.response.model"),
        Some(RESPONSE_MODEL),
        "gen_ai.response.model",
    );
    c.int(
        &g,
        "gen_ai.usage.input_tokens",
        11,
        "gen_ai.usage.input_tokens",
    );
    c.int(
        &g,
        "gen_ai.usage.output_tokens",
        4,
        "gen_ai.usage.output_tokens",
    );
    c.check(finish_reasons_hold(&g, "stop"), || {
        format!(
            "gen_ai.response.finish_reasons: expected a string array holding \"stop\", got {}",
            typed(&g, "gen_ai.response.finish_reasons")
        )
    });
    c.int(
        &g,
        "http.response.status_code",
        200,
        "http.response.status_code",
    );
    c.eq(
        g.attr_str("aihub.request_id"),
        Some(rid.as_str()),
        "aihub.request_id",
    );
    c.eq(g.attr_str("aihub.app"), Some("test"), "aihub.app");
    c.check(g.attr("error.type").is_none(), || {
        "error.type set on a successful call".into()
    });
    c.check(g.status_code() != StatusCode::Error as i32, || {
        "status ERROR on a successful call".into()
    });
    c.check(
        g.resource
            .iter()
            .any(|kv| kv.key == "service.name" && show_value(kv.value.as_ref()) == "\"aihub\""),
        || "resource attribute service.name = \"aihub\" missing".into(),
    );

    // The child spans: one trace, all under the call span.
    for name in [
        "auth",
        "route",
        "credential.select",
        "plugin.prepare",
        "plugin.parse",
        "call_log.record",
    ] {
        match t.iter().find(|s| s.name() == name) {
            None => c.check(false, || format!("no {name:?} span in the client's trace")),
            Some(s) => c.check(is_descendant(&t, s, &g.span_id()), || {
                format!("{name:?} span is not under the call span: {}", s.describe())
            }),
        }
    }
    let ups = upstream_spans(&t);
    c.eq(ups.len(), 1, "upstream attempt spans in the trace");
    if let Some(up) = ups.first() {
        c.eq(
            up.kind(),
            SpanKind::Client as i32,
            "upstream span kind (CLIENT)",
        );
        c.check(is_descendant(&t, up, &g.span_id()), || {
            format!(
                "upstream span is not under the call span: {}",
                up.describe()
            )
        });
        c.eq(
            up.attr_str("http.request.method"),
            Some("POST"),
            "upstream http.request.method",
        );
        c.int(
            up,
            "http.response.status_code",
            200,
            "upstream http.response.status_code",
        );
    }
    // Nothing of this call escaped into another trace.
    let elsewhere: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.trace_id() != trace && s.attr_str("aihub.request_id") == Some(&rid))
        .collect();
    c.check(elsewhere.is_empty(), || {
        format!("spans of the call outside the client's trace: {elsewhere:#?}")
    });

    // 2: the upstream saw traceparent continuing the trace, from one of aihub's spans.
    let reqs = mock.requests();
    c.eq(reqs.len(), 1, "upstream requests");
    if let Some(up_req) = reqs.first() {
        let tp = up_req.header("traceparent").map(String::from);
        match tp.as_deref().and_then(parse_traceparent) {
            None => c.check(false, || {
                format!("upstream traceparent missing or malformed: {tp:?}")
            }),
            Some((version, tid, parent, flags)) => {
                c.eq(version.as_str(), "00", "upstream traceparent version");
                c.eq(tid.clone(), trace.clone(), "upstream traceparent trace id");
                c.eq(flags.as_str(), "01", "upstream traceparent flags (sampled)");
                c.check(parent != client_span, || {
                    "the upstream traceparent's parent is the client's span, not aihub's".into()
                });
                c.check(t.iter().any(|s| s.span_id() == parent), || {
                    format!("upstream traceparent parent {parent} is none of aihub's spans")
                });
                if let Some(up) = ups.first() {
                    c.eq(
                        parent.clone(),
                        up.span_id(),
                        "upstream traceparent parent = the upstream attempt span",
                    );
                }
            }
        }
        c.eq(
            up_req.header("tracestate"),
            Some("vendor=obs1"),
            "upstream tracestate",
        );
    }
    let mut context = format!("spans of the first trace:\n{}", describe_all(&t));

    // A streamed call: its span gets usage and finish reasons from the stream.
    let trace2 = trace_id_hex();
    let mut req = chat_body("mock/gpt-4o-mini", "stream please");
    req["stream"] = json!(true);
    let resp = server
        .client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", traceparent(&trace2, &random_hex()))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sse = collect_sse(resp).await;
    assert!(sse.done, "{sse:?}");
    let spans = collector
        .wait_for(
            "the streamed call's spans",
            Duration::from_secs(15),
            |all| {
                let t: Vec<Exported> = all
                    .iter()
                    .filter(|s| s.trace_id() == trace2)
                    .cloned()
                    .collect();
                gen_ai_span(&t).is_some() && t.iter().any(|s| s.name() == "call_log.record")
            },
        )
        .await;
    let t2: Vec<Exported> = spans
        .into_iter()
        .filter(|s| s.trace_id() == trace2)
        .collect();
    let g2 = gen_ai_span(&t2).unwrap();
    c.eq(
        g2.name(),
        "chat mock/gpt-4o-mini",
        "streamed call span name",
    );
    c.int(
        g2,
        "gen_ai.usage.input_tokens",
        9,
        "streamed gen_ai.usage.input_tokens",
    );
    c.int(
        g2,
        "gen_ai.usage.output_tokens",
        3,
        "streamed gen_ai.usage.output_tokens",
    );
    c.eq(
        g2.attr_str("gen_ai.response.model"),
        Some(RESPONSE_MODEL),
        "streamed gen_ai.response.model",
    );
    c.check(finish_reasons_hold(g2, "stop"), || {
        format!(
            "streamed gen_ai.response.finish_reasons: expected a string array holding \"stop\", got {}",
            typed(g2, "gen_ai.response.finish_reasons")
        )
    });
    let ups = upstream_spans(&t2);
    c.eq(ups.len(), 1, "streamed call: upstream attempt spans");
    if let Some(up) = ups.first() {
        c.eq(
            up.kind(),
            SpanKind::Client as i32,
            "streamed upstream span kind",
        );
    }
    context.push_str(&format!(
        "\nspans of the streamed trace:\n{}",
        describe_all(&t2)
    ));

    // A failed call (the upstream refuses it): error.type and an ERROR status.
    let trace3 = trace_id_hex();
    let resp = server
        .client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", traceparent(&trace3, &random_hex()))
        .json(&chat_body("mock/fail-model", "hi"))
        .send()
        .await
        .unwrap();
    let status3 = resp.status().as_u16();
    assert!(status3 >= 400, "the mock refused the call: got {status3}");
    let spans = collector
        .wait_for("the failed call's span", Duration::from_secs(15), |all| {
            let t: Vec<Exported> = all
                .iter()
                .filter(|s| s.trace_id() == trace3)
                .cloned()
                .collect();
            gen_ai_span(&t).is_some()
        })
        .await;
    let t3: Vec<Exported> = spans
        .into_iter()
        .filter(|s| s.trace_id() == trace3)
        .collect();
    let g3 = gen_ai_span(&t3).unwrap();
    c.eq(g3.name(), "chat mock/fail-model", "failed call span name");
    c.check(
        g3.attr_str("error.type").is_some_and(|e| !e.is_empty()),
        || "failed call: error.type missing".into(),
    );
    c.eq(
        g3.status_code(),
        StatusCode::Error as i32,
        "failed call: span status ERROR",
    );
    c.int(
        g3,
        "http.response.status_code",
        i64::from(status3),
        "failed call: http.response.status_code",
    );
    context.push_str(&format!(
        "\nspans of the failed trace:\n{}",
        describe_all(&t3)
    ));

    // Without a client traceparent: a new trace, still propagated to the upstream.
    let before = mock.calls();
    let resp = server
        .post_chat(&chat_body("mock/gpt-4o-mini", "no trace from me"))
        .await;
    assert_eq!(resp.status(), 200);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), before + 1);
    let tp = reqs[before].header("traceparent").map(String::from);
    let (_, tid, parent, _) = tp
        .as_deref()
        .and_then(parse_traceparent)
        .unwrap_or_else(|| panic!("no traceparent to the upstream for an untraced client: {tp:?}"));
    let spans = collector
        .wait_for(
            "the untraced call's spans",
            Duration::from_secs(15),
            |all| {
                all.iter()
                    .any(|s| s.trace_id() == tid && s.attr("gen_ai.operation.name").is_some())
            },
        )
        .await;
    let t4: Vec<Exported> = spans.into_iter().filter(|s| s.trace_id() == tid).collect();
    let g4 = gen_ai_span(&t4).unwrap();
    c.check(
        g4.span.parent_span_id.is_empty() || g4.parent_id() == "0000000000000000",
        || {
            format!(
                "a call without traceparent is a root span: {}",
                g4.describe()
            )
        },
    );
    c.check(t4.iter().any(|s| s.span_id() == parent), || {
        format!("the upstream traceparent's parent {parent} is none of the untraced call's spans")
    });
    context.push_str(&format!(
        "\nspans of the untraced call:\n{}",
        describe_all(&t4)
    ));

    // SIGTERM: the server still stops promptly with the exporter running.
    server.sigterm();
    let exit = server.wait_exit(Duration::from_secs(20)).await;
    c.check(exit.is_some_and(|s| s.success()), || {
        format!("aihub with OTLP export did not stop cleanly on SIGTERM: {exit:?}")
    });
    c.finish(|| format!("{context}\n{}", server.logs()));
}

// ---------------------------------------------------------------------------------------
// 3: without telemetry, the client's traceparent is passed on unchanged
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn without_telemetry_traceparent_is_passed_to_the_upstream_unchanged() {
    let mock = MockUpstream::start(mock_reply_for).await;
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(OPENAI)
            .config(mock_provider_config("mock", &mock, KEY_ENV))
            .env(KEY_ENV, format!("sk-test-{}", random_hex())),
    )
    .await;
    let tp = traceparent(&trace_id_hex(), &random_hex());
    for stream in [false, true] {
        let mut req = chat_body("mock/gpt-4o-mini", "hi");
        req["stream"] = json!(stream);
        let resp = server
            .client()
            .post(server.url("/v1/chat/completions"))
            .header("traceparent", &tp)
            .header("tracestate", "vendor=abc,other=1")
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "stream={stream}");
        let _ = resp.bytes().await;
    }
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(
            r.header("traceparent"),
            Some(tp.as_str()),
            "upstream request {i}: traceparent"
        );
        assert_eq!(
            r.header("tracestate"),
            Some("vendor=abc,other=1"),
            "upstream request {i}: tracestate"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4: /metrics
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_counters_move_by_exactly_the_calls_made() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let before = scrape(&server, None).await;
    assert!(
        before.text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );

    let ok = [
        ("endpoint", "chat"),
        ("provider", "echo"),
        ("model", "echo/echo-1"),
        ("status", "ok"),
    ];
    let err_labels = [
        ("endpoint", "chat"),
        ("provider", "none"),
        ("model", "other"),
        ("status", "error"),
    ];
    let tok = |dir: &'static str| {
        [
            ("app", "test"),
            ("provider", "echo"),
            ("model", "echo/echo-1"),
            ("direction", dir),
        ]
    };
    let v0 =
        |m: &Metrics, name: &str, labels: &[(&str, &str)]| m.value(name, labels).unwrap_or(0.0);

    let (mut input, mut output) = (0u64, 0u64);
    for i in 0..5 {
        let body = json!({
            "model": "echo/echo-1",
            "messages": [
                {"role": "system", "content": "count me"},
                {"role": "user", "content": format!("call number {i} {}", "word ".repeat(i))}
            ]
        });
        let resp = server.post_chat(&body).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        input += v["usage"]["prompt_tokens"].as_u64().expect("usage");
        output += v["usage"]["completion_tokens"].as_u64().expect("usage");
    }
    for i in 0..2 {
        let mut body = chat_body(
            "echo/echo-1",
            &format!("streamed words {i} {}", "x ".repeat(i)),
        );
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let resp = server.post_chat(&body).await;
        assert_eq!(resp.status(), 200);
        let sse = collect_sse(resp).await;
        assert!(sse.done, "{sse:?}");
        let usage = sse.usage_chunks();
        assert_eq!(usage.len(), 1, "{sse:?}");
        input += usage[0]["usage"]["prompt_tokens"].as_u64().unwrap();
        output += usage[0]["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let unknown_model = format!("nope/label-canary-{}", random_hex());
    let resp = server.post_chat(&chat_body(&unknown_model, "hi")).await;
    assert_eq!(resp.status(), 404);

    // The stream's accounting happens when it ends, just after the last byte.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let m = scrape(&server, None).await;
        if v0(&m, "aihub_calls_total", &ok) - v0(&before, "aihub_calls_total", &ok) >= 7.0
            || Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mut c = Checks::default();
    let delta =
        |name: &str, labels: &[(&str, &str)]| v0(&after, name, labels) - v0(&before, name, labels);
    c.eq(
        delta("aihub_calls_total", &ok),
        7.0,
        "aihub_calls_total{endpoint=chat,provider=echo,model=echo/echo-1,status=ok} delta",
    );
    c.eq(
        delta("aihub_calls_total", &err_labels),
        1.0,
        "aihub_calls_total{endpoint=chat,provider=none,model=other,status=error} delta",
    );
    let total_calls: f64 = after
        .scrape
        .samples
        .iter()
        .filter(|s| s.metric == "aihub_calls_total")
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .sum::<f64>()
        - before
            .scrape
            .samples
            .iter()
            .filter(|s| s.metric == "aihub_calls_total")
            .filter_map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => {
                    Some(v)
                }
                _ => None,
            })
            .sum::<f64>();
    c.eq(
        total_calls,
        8.0,
        "aihub_calls_total summed over all series, delta",
    );
    c.eq(
        delta("aihub_tokens_total", &tok("input")),
        input as f64,
        "aihub_tokens_total{direction=input} delta = the usage returned",
    );
    c.eq(
        delta("aihub_tokens_total", &tok("output")),
        output as f64,
        "aihub_tokens_total{direction=output} delta = the usage returned",
    );
    c.eq(
        delta(
            "aihub_call_duration_seconds_count",
            &[("endpoint", "chat"), ("provider", "echo"), ("status", "ok")],
        ),
        7.0,
        "aihub_call_duration_seconds_count{chat,echo,ok} delta",
    );
    c.eq(
        delta(
            "aihub_time_to_first_token_seconds_count",
            &[("provider", "echo")],
        ),
        2.0,
        "aihub_time_to_first_token_seconds_count{provider=echo} delta (2 streams)",
    );
    c.check(after.has("aihub_plugin_loads_total"), || {
        "aihub_plugin_loads_total missing (the echo plugin was loaded)".into()
    });
    c.check(after.has("aihub_inflight_requests"), || {
        "aihub_inflight_requests gauge missing".into()
    });
    c.check(after.has("aihub_active_streams"), || {
        "aihub_active_streams gauge missing".into()
    });
    c.eq(
        after.value("aihub_active_streams", &[]),
        Some(0.0),
        "aihub_active_streams after every stream ended",
    );
    for family in [
        "aihub_call_log_queue_depth",
        "aihub_call_log_dropped_records",
    ] {
        c.check(after.has(family), || format!("{family} missing"));
    }
    c.check(!after.text.contains(&unknown_model), || {
        "an unknown model name (raw user input) became a metric label".into()
    });
    c.check(!after.text.contains("label-canary"), || {
        "raw user input in the metrics".into()
    });
    c.finish(|| format!("/metrics after:\n{}", after.text));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_token_is_required_when_configured() {
    let token = format!("m-secret-{}", random_hex());
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .config(format!("[metrics]\nenabled = true\ntoken = \"{token}\"\n")),
    )
    .await;
    let c = http_client();
    let resp = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "/metrics without the token");
    let resp = c
        .get(server.url("/metrics"))
        .bearer_auth("m-secret-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "/metrics with a wrong token");
    // The app key is not the metrics token.
    let resp = server.get("/metrics").await;
    assert_eq!(resp.status(), 401, "/metrics with the app key");
    let m = scrape(&server, Some(&token)).await;
    assert!(m.has("aihub_inflight_requests"), "{}", m.text);
    assert!(
        !server.logs().contains(&token),
        "the metrics token is in the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_be_turned_off() {
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .config("[metrics]\nenabled = false\n"),
    )
    .await;
    let resp = http_client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "/metrics with metrics.enabled = false");
}

// ---------------------------------------------------------------------------------------
// 5: Server-Timing and x-request-id on consumer responses; one access line per call
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn server_timing_and_request_id_on_consumer_responses() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let mut c = Checks::default();
    let mut rids = Vec::new();
    let cases = [
        ("non-stream chat", chat_body("echo/echo-1", "hello"), 200u16),
        (
            "streamed chat",
            json!({"model": "echo/echo-1", "stream": true,
                   "messages": [{"role": "user", "content": "hello"}]}),
            200,
        ),
        (
            "error after auth (unknown model)",
            chat_body("nope/x", "hello"),
            404,
        ),
        (
            "error after auth (missing messages)",
            json!({"model": "echo/echo-1"}),
            400,
        ),
    ];
    for (what, body, want) in cases {
        let rid = format!("obs-rid-{}", random_hex());
        let resp = server
            .client()
            .post(server.url("/v1/chat/completions"))
            .header("x-request-id", &rid)
            .json(&body)
            .send()
            .await
            .unwrap();
        c.eq(resp.status().as_u16(), want, &format!("{what}: status"));
        check_server_timing(&mut c, &resp, what);
        c.eq(
            resp.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            Some(rid.clone()),
            &format!("{what}: x-request-id echoed"),
        );
        let _ = resp.bytes().await;
        rids.push((what, rid));
    }

    // Without x-request-id the server makes one up.
    let resp = server.post_chat(&chat_body("echo/echo-1", "hi")).await;
    let made = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    c.check(!made.is_empty(), || {
        "no x-request-id on a response to a request without one".into()
    });
    check_server_timing(&mut c, &resp, "chat without x-request-id");

    // One access line per request, carrying its id.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = stderr_log(&server);
    for (what, rid) in &rids {
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(rid.as_str()) && l.contains("access"))
            .filter(|l| l.contains(" access:") || l.contains("access{") || l.contains("\"access\""))
            .collect();
        c.eq(
            lines.len(),
            1,
            &format!("{what}: access log lines for {rid}"),
        );
    }
    c.finish(|| server.logs());
}

// ---------------------------------------------------------------------------------------
// 6: no secret and no message text in spans, metrics or logs (JSON logs); SIGTERM flush
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_or_message_text_in_spans_metrics_or_logs() {
    let collector = Collector::start().await;
    let completion_canary = format!("COMPLETION-CANARY-{}", random_hex());
    let reply_text = completion_canary.clone();
    let mock = MockUpstream::start(move |rec| {
        if rec.json()["stream"] == json!(true) {
            MockReply::sse(
                openai_stream_chunks(RESPONSE_MODEL, &[&reply_text, " end"], Some((9, 3))),
                Duration::from_millis(2),
                SseEnd::Done,
            )
        } else {
            MockReply::json(200, openai_completion(RESPONSE_MODEL, &reply_text, 11, 4))
        }
    })
    .await;
    let prompt = format!("PROMPT-CANARY-{}", random_hex());
    let provider_key = format!("sk-CANARY-{}", random_hex());
    let metrics_token = format!("m-CANARY-{}", random_hex());
    let otlp_secret = format!("otlp-CANARY-{}", random_hex());
    let wrong_app_key = format!("ak-WRONG-CANARY-{}", random_hex());
    let config = format!(
        "[log]\nformat = \"json\"\n\n[metrics]\nenabled = true\ntoken = \"{metrics_token}\"\n\n{}{}",
        telemetry_config(
            &collector.http_endpoint(),
            "http",
            &[("authorization", &format!("Bearer {otlp_secret}"))]
        ),
        mock_provider_config("mock", &mock, KEY_ENV)
    );
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(config)
            .env(KEY_ENV, &provider_key)
            // Only the shutdown flush can deliver the spans.
            .env("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    )
    .await;

    let trace = trace_id_hex();
    let rid = format!("obs-json-{}", random_hex());
    let with_prompt = |model: &str, stream: bool| {
        json!({
            "model": model,
            "stream": stream,
            "messages": [
                {"role": "system", "content": format!("system {prompt}")},
                {"role": "user", "content": prompt.clone()}
            ]
        })
    };
    let resp = server
        .client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", traceparent(&trace, &random_hex()))
        .header("x-request-id", &rid)
        .json(&with_prompt("echo/echo-1", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    let _ = collect_sse(server.post_chat(&with_prompt("echo/echo-1", true)).await).await;
    let resp = server
        .post_chat(&with_prompt("mock/gpt-4o-mini", false))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(&completion_canary));
    let _ = collect_sse(
        server
            .post_chat(&with_prompt("mock/gpt-4o-mini", true))
            .await,
    )
    .await;
    // Errors: unknown model, a refused app key, an admin call.
    let resp = server.post_chat(&with_prompt("nope/model", false)).await;
    assert_eq!(resp.status(), 404);
    let resp = http_client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&wrong_app_key)
        .json(&with_prompt("echo/echo-1", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let listing = server.admin_get("/api/admin/plugins").await;
    assert_eq!(listing.status(), 200);
    let metrics = scrape(&server, Some(&metrics_token)).await;

    // The prompt really reached the upstream (so it was there to leak).
    assert!(mock
        .requests()
        .iter()
        .all(|r| String::from_utf8_lossy(&r.body).contains(&prompt)));

    server.sigterm();
    let exit = server.wait_exit(Duration::from_secs(20)).await;
    assert!(exit.is_some(), "aihub did not stop on SIGTERM");

    // The shutdown flushed the spans.
    let spans = collector
        .wait_for(
            "the spans flushed at shutdown",
            Duration::from_secs(5),
            |all| {
                all.iter()
                    .any(|s| s.trace_id() == trace && s.attr("gen_ai.operation.name").is_some())
            },
        )
        .await;
    assert!(
        spans.len() >= 10,
        "expected the spans of every call, got {}:\n{}",
        spans.len(),
        describe_all(&spans)
    );

    let secrets: Vec<(&str, String)> = vec![
        ("prompt text", prompt.clone()),
        ("completion text", completion_canary.clone()),
        ("provider key", provider_key.clone()),
        ("app key", server.app_key().to_string()),
        ("refused app key", wrong_app_key.clone()),
        ("admin token", server.admin_token().to_string()),
        ("metrics token", metrics_token.clone()),
        ("OTLP header secret", otlp_secret.clone()),
    ];
    let logs = server.logs();
    let exports = collector.exports();
    let mut c = Checks::default();
    for (what, secret) in &secrets {
        for s in &spans {
            c.check(
                !s.strings().iter().any(|x| x.contains(secret.as_str())),
                || format!("{what} in span {}", s.describe()),
            );
        }
        c.check(
            !exports
                .iter()
                .any(|e| contains_bytes(&e.raw, secret.as_bytes())),
            || format!("{what} somewhere in the exported OTLP bytes"),
        );
        c.check(!metrics.text.contains(secret.as_str()), || {
            format!("{what} in /metrics")
        });
        c.check(!logs.contains(secret.as_str()), || {
            let lines: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains(secret.as_str()))
                .collect();
            format!("{what} in the logs: {lines:#?}")
        });
    }

    // JSON logs: every stderr line is a JSON object.
    let stderr = stderr_log(&server);
    let mut parsed = Vec::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => parsed.push(v),
            _ => c.check(false, || {
                format!("log.format = \"json\": a stderr line is not a JSON object: {line}")
            }),
        }
    }
    c.check(!parsed.is_empty(), || "no JSON log lines on stderr".into());
    let access: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["request_id"] == json!(rid) || v["fields"]["request_id"] == json!(rid))
        .filter(|v| v["target"] == "access")
        .collect();
    c.eq(
        access.len(),
        1,
        "JSON access lines for the traced echo call",
    );
    if let Some(line) = access.first() {
        let f = if line.get("request_id").is_some() {
            (*line).clone()
        } else {
            line["fields"].clone()
        };
        c.eq(f["app"].clone(), json!("test"), "access line: app");
        c.eq(
            f["model"].clone(),
            json!("echo/echo-1"),
            "access line: model",
        );
        c.eq(f["status"].clone(), json!(200), "access line: status");
        c.check(
            f.as_object().is_some_and(|o| {
                o.keys()
                    .any(|k| k.starts_with("latency") && o[k].is_number())
            }),
            || format!("access line: no numeric latency field: {line}"),
        );
        c.eq(
            f["input_tokens"].clone(),
            echoed["usage"]["prompt_tokens"].clone(),
            "access line: input_tokens",
        );
        c.eq(
            f["output_tokens"].clone(),
            echoed["usage"]["completion_tokens"].clone(),
            "access line: output_tokens",
        );
    }
    c.finish(|| format!("logs:\n{logs}"));
}

// ---------------------------------------------------------------------------------------
// 7: OTLP/gRPC
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn otlp_grpc_exports_the_call_span() {
    let collector = Collector::start().await;
    let secret = format!("grpc-hdr-{}", random_hex());
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .config(telemetry_config(
                &collector.grpc_endpoint(),
                "grpc",
                &[("x-collector-token", &secret)],
            ))
            .env("OTEL_BSP_SCHEDULE_DELAY", "300"),
    )
    .await;
    let trace = trace_id_hex();
    let client_span = random_hex();
    let resp = server
        .client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", traceparent(&trace, &client_span))
        .json(&chat_body("echo/echo-1", "hello big world"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spans = collector
        .wait_for(
            "the call's spans over gRPC",
            Duration::from_secs(15),
            |all| {
                all.iter()
                    .any(|s| s.trace_id() == trace && s.attr("gen_ai.operation.name").is_some())
            },
        )
        .await;
    let t: Vec<Exported> = spans
        .into_iter()
        .filter(|s| s.trace_id() == trace)
        .collect();
    let g = gen_ai_span(&t).unwrap();
    let mut c = Checks::default();
    let exports = collector.exports();
    c.check(
        exports
            .iter()
            .all(|e| e.path == "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        || {
            format!(
                "gRPC exports to {:?}",
                exports.iter().map(|e| &e.path).collect::<Vec<_>>()
            )
        },
    );
    c.check(
        exports
            .iter()
            .all(|e| e.header("x-collector-token") == Some(secret.as_str())),
        || "the configured otlp_headers were not sent as gRPC metadata".into(),
    );
    c.eq(g.name(), "chat echo/echo-1", "call span name");
    c.eq(
        g.parent_id(),
        client_span,
        "call span's parent = the client's span id",
    );
    c.eq(g.attr_str("gen_ai.system"), Some("echo"), "gen_ai.system");
    c.int(
        g,
        "gen_ai.usage.input_tokens",
        3,
        "gen_ai.usage.input_tokens",
    );
    c.int(
        g,
        "gen_ai.usage.output_tokens",
        3,
        "gen_ai.usage.output_tokens",
    );
    for name in [
        "auth",
        "route",
        "plugin.prepare",
        "plugin.parse",
        "call_log.record",
    ] {
        c.check(t.iter().any(|s| s.name() == name), || {
            format!("no {name:?} span in the trace")
        });
    }
    c.finish(|| format!("spans:\n{}", describe_all(&t)));
}
