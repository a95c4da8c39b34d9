//! Chat through the offline `echo` plugin: non-stream and stream (parsed with a real SSE
//! parser), usage, both chat paths, `/v1/models`, health and request ids.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn echo_request(stream: bool) -> Value {
    json!({
        "model": "echo/echo-1",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello big world"}
        ]
    })
}

async fn echo_server() -> TestServer {
    TestServer::start(ServerOptions::new().plugin(ECHO)).await
}

fn assert_echo_completion(body: &Value) {
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert!(body["id"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    assert!(body["created"].is_u64(), "{body}");
    assert!(
        body["model"]
            .as_str()
            .is_some_and(|m| m.ends_with("echo-1")),
        "model: {body}"
    );
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0, "{body}");
    assert_eq!(choice["message"]["role"], "assistant", "{body}");
    assert_eq!(choice["message"]["content"], "hello big world", "{body}");
    assert_eq!(choice["finish_reason"], "stop", "{body}");
    // 2 words in the system message + 3 in the user message; 3 in the reply.
    assert_eq!(body["usage"]["prompt_tokens"], 5, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 3, "{body}");
    assert_eq!(body["usage"]["total_tokens"], 8, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn non_stream_chat_through_echo() {
    let server = echo_server().await;
    let resp = server.post_chat(&echo_request(false)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        content_type(&resp).starts_with("application/json"),
        "content-type {}",
        content_type(&resp)
    );
    let body: Value = resp.json().await.unwrap();
    assert_echo_completion(&body);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_v2_path_serves_the_same_handler() {
    let server = echo_server().await;
    let resp = server
        .post_json("/api/v2/chat/completions", &echo_request(false))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_echo_completion(&body);

    let resp = server
        .post_json("/api/v2/chat/completions", &echo_request(true))
        .await;
    assert_eq!(resp.status(), 200);
    let sse = collect_sse(resp).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "hello big world");
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_accepts_any_model_name_under_its_prefix() {
    let server = echo_server().await;
    let resp = server
        .post_chat(&chat_body("echo/some-other-model", "one two"))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "one two");
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_chat_through_echo_word_by_word() {
    let server = echo_server().await;
    let resp = server.post_chat(&echo_request(true)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        content_type(&resp).starts_with("text/event-stream"),
        "content-type {}",
        content_type(&resp)
    );
    let sse = collect_sse(resp).await;
    assert!(sse.transport_error.is_none(), "{sse:?}");
    assert!(sse.done, "no [DONE]: {sse:?}");
    assert_eq!(sse.events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        sse.events.iter().filter(|e| *e == "[DONE]").count(),
        1,
        "{sse:?}"
    );

    let chunks = sse.json();
    assert!(sse.errors().is_empty(), "{sse:?}");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }
    // role chunk, 3 word chunks, finish chunk; no usage chunk without include_usage.
    assert_eq!(chunks.len(), 5, "{chunks:#?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    assert_eq!(sse.content_pieces(), vec!["hello", " big", " world"]);
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert!(
        sse.usage_chunks().is_empty(),
        "usage chunk without include_usage: {chunks:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_include_usage_adds_a_usage_chunk() {
    let server = echo_server().await;
    let mut req = echo_request(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = server.post_chat(&req).await;
    assert_eq!(resp.status(), 200);
    let sse = collect_sse(resp).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "hello big world");

    let chunks = sse.json();
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"], json!([]), "usage chunk last: {chunks:#?}");
    assert_eq!(last["usage"]["prompt_tokens"], 5, "{last}");
    assert_eq!(last["usage"]["completion_tokens"], 3, "{last}");
    assert_eq!(last["usage"]["total_tokens"], 8, "{last}");
    assert_eq!(sse.usage_chunks().len(), 1, "{chunks:#?}");
    // The finish chunk comes before the usage chunk.
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn models_lists_echo() {
    let server = echo_server().await;
    let resp = server.get("/v1/models").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list", "{body}");
    let data = body["data"].as_array().expect("data array");
    let echo = data
        .iter()
        .find(|m| m["id"] == "echo/echo-1")
        .unwrap_or_else(|| panic!("echo/echo-1 not listed: {body}"));
    assert_eq!(echo["object"], "model", "{echo}");
    assert_eq!(echo["owned_by"], "echo", "{echo}");
    assert!(echo["created"].is_u64(), "{echo}");
    for m in data {
        let id = m["id"].as_str().expect("id string");
        assert!(id.contains('/'), "model ids are prefix/model: {id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let server = echo_server().await;
    let resp = server.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));
    assert_eq!(server.get("/readyz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_a_request_id() {
    let server = echo_server().await;

    // Assigned when the client sends none.
    let resp = server.post_chat(&echo_request(false)).await;
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .expect("x-request-id on a chat reply");
    assert!(!id.is_empty());

    // Two requests get different ids.
    let resp2 = server.post_chat(&echo_request(false)).await;
    let id2 = resp2.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id, id2, "request ids should be unique");

    // Echoed when the client sends one: on success, stream, and error replies.
    for (path, body) in [
        ("/v1/chat/completions", echo_request(false)),
        ("/v1/chat/completions", echo_request(true)),
        ("/v1/chat/completions", chat_body("nope/x", "hi")),
    ] {
        let resp = server
            .client()
            .post(server.url(path))
            .header("x-request-id", "client-req-42")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some("client-req-42"),
            "for {body}"
        );
    }

    for path in ["/healthz", "/v1/models", "/no/such/path"] {
        let resp = server.get(path).await;
        assert!(
            resp.headers().contains_key("x-request-id"),
            "x-request-id missing on GET {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_streams_do_not_mix() {
    let server = std::sync::Arc::new(echo_server().await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let text = format!("client {i} says words number {i}");
            let mut req = chat_body("echo/echo-1", &text);
            req["stream"] = json!(true);
            let resp = server.post_chat(&req).await;
            assert_eq!(resp.status(), 200);
            let sse = collect_sse(resp).await;
            assert!(sse.done, "{sse:?}");
            assert_eq!(sse.content(), text);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
