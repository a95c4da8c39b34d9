//! Stream bounds (issue 10, finding 3), end to end: the real binary and the `openai`
//! plugin against a mock upstream sending raw bytes. A line that never ends is stopped at
//! the SSE event cap, a stream over `upstream.max_response_bytes` is stopped there, both
//! with an error event and no `[DONE]`, and a normal stream still completes.

use crate::common;

use common::raw_stream::{RawBody, RawStreamUpstream};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const KEY_ENV: &str = "RAW_MOCK_KEY";

async fn server_for(mock: &RawStreamUpstream, env: &[(&str, &str)]) -> TestServer {
    let config = format!(
        r#"
[[providers]]
prefix = "raw"
plugin = "openai"
base_url = "{}"
api_key_env = "{KEY_ENV}"
"#,
        mock.base_url()
    );
    let mut opts = ServerOptions::new()
        .plugin(ECHO)
        .plugin(OPENAI)
        .config(config)
        .env(KEY_ENV, format!("sk-raw-{}", random_hex()));
    for (k, v) in env {
        opts = opts.env(k, *v);
    }
    TestServer::start(opts).await
}

fn stream_request() -> Value {
    json!({
        "model": "raw/gpt-x",
        "stream": true,
        "messages": [{"role": "user", "content": "hi"}]
    })
}

/// One OpenAI chunk event (`data: ...\n\n`).
fn chunk_event(delta: Value, finish: Value) -> Vec<u8> {
    let chunk = json!({
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000u64,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n").into_bytes()
}

async fn streamed(server: &TestServer) -> SseOutcome {
    let resp = server.post_chat(&stream_request()).await;
    assert_eq!(resp.status(), 200);
    collect_sse(resp).await
}

/// The one error event of `out`, which must not have finished; its message.
fn single_error(out: &SseOutcome) -> String {
    assert!(
        !out.done,
        "a stopped stream must not end with [DONE]: {out:?}"
    );
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{:?}", out.events);
    assert_error_shape(&errors[0]);
    errors[0]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn the_call_failed_with(server: &TestServer, needle: &str) {
    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["status"], "error", "{}", rows[0]);
    let msg = rows[0]["error_message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{}", rows[0]);
}

/// The finding: `data: {...` without a newline, for 48 MB. The host stops at the 8 MiB
/// event cap instead of buffering (and rescanning) everything.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_line_is_stopped_at_the_event_cap() {
    let total = 48 * 1024 * 1024;
    let mock = RawStreamUpstream::start(RawBody {
        head: b"data: {\"choices\":\"".to_vec(),
        unit: vec![b'x'; 64 * 1024],
        total,
        tail: b"\"}\n\n".to_vec(),
    })
    .await;
    // One attempt: the byte count below is of one stream.
    let server = server_for(&mock, &[("AIHUB_RESILIENCE__MAX_ATTEMPTS", "1")]).await;

    // Nothing was decoded before the cap: the attempt failed before the 200 was sent, so
    // the client gets a plain error (which could have failed over to another key).
    let resp = server.post_chat(&stream_request()).await;
    let err = expect_error(resp, 502, "upstream_error").await;
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("exceeded 8388608 bytes"),
        "the event cap is named: {msg}"
    );
    assert!(
        mock.bytes_sent() < total / 2,
        "the upstream was dropped, not read to the end: {} bytes sent",
        mock.bytes_sent()
    );
    the_call_failed_with(&server, "exceeded 8388608 bytes").await;
    server.assert_echo_still_works().await;
}

/// Well-formed events, but more of them in all than `max_response_bytes` allows.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_over_max_response_bytes_is_stopped() {
    let unit = chunk_event(json!({"content": "word "}), Value::Null);
    let total = 4 * 1024 * 1024;
    let mut tail = chunk_event(json!({}), json!("stop"));
    tail.extend_from_slice(b"data: [DONE]\n\n");
    let mock = RawStreamUpstream::start(RawBody {
        head: Vec::new(),
        unit,
        total,
        tail,
    })
    .await;
    let server = server_for(&mock, &[("AIHUB_UPSTREAM__MAX_RESPONSE_BYTES", "65536")]).await;

    let out = streamed(&server).await;
    let msg = single_error(&out);
    assert!(
        msg.contains("exceeded 65536 bytes") && msg.contains("max_response_bytes"),
        "the limit and its key are named: {msg}"
    );
    assert!(
        out.content().starts_with("word word "),
        "what came before the limit reached the client: {:?}",
        out.events.first()
    );
    assert!(
        mock.bytes_sent() < total,
        "the upstream was dropped: {} bytes sent",
        mock.bytes_sent()
    );
    the_call_failed_with(&server, "max_response_bytes").await;
}

/// The same small limit leaves a normal stream alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_within_the_limits_completes() {
    let mut head = chunk_event(json!({"role": "assistant", "content": ""}), Value::Null);
    let unit = chunk_event(json!({"content": "ok "}), Value::Null);
    head.extend_from_slice(&unit);
    let mut tail = chunk_event(json!({}), json!("stop"));
    tail.extend_from_slice(b"data: [DONE]\n\n");
    let mock = RawStreamUpstream::start(RawBody {
        total: head.len() + 19 * unit.len(),
        head,
        unit,
        tail,
    })
    .await;
    let server = server_for(&mock, &[("AIHUB_UPSTREAM__MAX_RESPONSE_BYTES", "65536")]).await;

    let out = streamed(&server).await;
    assert!(out.done, "{out:?}");
    assert!(out.errors().is_empty(), "{:?}", out.events);
    assert_eq!(out.content(), "ok ".repeat(20));
    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    assert_eq!(rows[0]["status"], "ok", "{}", rows[0]);
}
