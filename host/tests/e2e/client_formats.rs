//! Client formats other than Chat Completions, against the real binary: Anthropic
//! Messages, OpenAI Responses and legacy completions, through echo, through the openai
//! plugin against a Chat-only mock (translated), and through the anthropic plugin
//! (native, untranslated). The official SDKs' runs are in `format_sdks.rs`.

use crate::common;

use common::formats::{anthropic_fixture, start};
use common::*;
use serde_json::{json, Value};

async fn post(s: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    s.post_json(path, body).await
}

/// The `type` of each event; an event that is not JSON (an upstream's cut-off last
/// event, passed through as it came) is `"<cut>"`.
fn types(sse: &SseOutcome) -> Vec<String> {
    sse.events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| match serde_json::from_str::<Value>(e) {
            Ok(v) => v["type"].as_str().unwrap_or("?").to_string(),
            Err(_) => "<cut>".to_string(),
        })
        .collect()
}

/// Checks Anthropic's error shape and returns its `error` object.
async fn anthropic_error(resp: reqwest::Response, status: u16, typ: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert!(
        resp.headers().contains_key("request-id"),
        "an Anthropic error carries request-id"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], typ, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"].clone()
}

fn messages_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn messages_to_a_chat_provider_are_translated_both_ways() {
    let f = start("").await;
    let tools = json!([{"name": "get_weather", "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let mut body = messages_body("compat/gpt-x", "weather in Paris?");
    body["tools"] = tools.clone();
    let resp = post(&f.server, "/v1/messages", &body).await;
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["type"], "message");
    assert_eq!(r["stop_reason"], "tool_use");
    let tool = r["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .cloned()
        .unwrap();
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["input"], json!({"city": "Paris"}));
    assert_eq!(r["usage"]["cache_read_input_tokens"], 5);
    assert_eq!(r["usage"]["input_tokens"], 15);
    // What reached the upstream is a chat call with the tool as a function.
    let sent = f.chat.requests()[0].json();
    assert_eq!(sent["model"], "gpt-x");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["max_tokens"], 100);

    // The tool result goes back as a tool message.
    body["messages"] = json!([
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": r["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "sunny"}]}
    ]);
    let r: Value = post(&f.server, "/v1/messages", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["content"][0]["text"], "It is sunny in Paris.");
    assert_eq!(r["stop_reason"], "end_turn");
    let sent = f.chat.requests()[1].json();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.last().unwrap()["role"], "tool");
    assert_eq!(msgs.last().unwrap()["tool_call_id"], tool["id"]);
    assert_eq!(msgs[1]["tool_calls"][0]["id"], tool["id"]);

    // Streamed: the whole Messages event sequence, the tool input as JSON deltas.
    body["messages"] = json!([{"role": "user", "content": "weather in Paris?"}]);
    body["stream"] = json!(true);
    let resp = post(&f.server, "/v1/messages", &body).await;
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let sse = collect_sse(resp).await;
    let t = types(&sse);
    assert_eq!(
        t.first().map(String::as_str),
        Some("message_start"),
        "{t:?}"
    );
    assert_eq!(t.last().map(String::as_str), Some("message_stop"), "{t:?}");
    for want in [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
    ] {
        assert!(t.iter().any(|x| x == want), "{want} missing in {t:?}");
    }
    let events = sse.json();
    let json_input: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .map(|e| e["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_input).unwrap(),
        json!({"city": "Paris"})
    );
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 7);
    assert!(!sse.done, "no [DONE] in an Anthropic stream");
}

#[tokio::test]
async fn messages_to_the_anthropic_plugin_pass_through_untranslated() {
    let f = start("").await;
    // Odd spacing, unknown fields and every caching parameter: the upstream gets these
    // very bytes (the model needs no rewrite: a bare catalog name, as Claude Code sends).
    let raw = r#"{"model":"claude-sonnet-4-5",  "max_tokens":1024,
        "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral","ttl":"1h"}}],
        "messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}]}],
        "thinking":{"type":"enabled","budget_tokens":2048},"metadata":{"user_id":"u-42"},
        "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":2}],
        "tool_choice":{"type":"auto"},"future_field":{"x":1.50}}"#;
    let resp = f
        .server
        .client()
        .post(f.server.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "extended-cache-ttl-2025-04-11")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("request-id"));
    let text = resp.text().await.unwrap();
    assert_eq!(
        text.as_bytes(),
        anthropic_fixture("message_text.json"),
        "the reply comes back byte for byte"
    );
    let sent = &f.anthropic.requests()[0];
    assert_eq!(sent.uri, "/v1/messages");
    assert_eq!(
        sent.body,
        raw.as_bytes(),
        "the upstream got the client's bytes"
    );
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert!(sent
        .header("anthropic-beta")
        .is_some_and(|b| b.contains("extended-cache-ttl-2025-04-11")));
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test-key-0002"));
    assert_eq!(sent.header("authorization"), None, "the app key stays here");

    // Streamed: the upstream's events byte for byte; usage still read for the record.
    let mut body: Value = serde_json::from_str(raw).unwrap();
    body["model"] = json!("anthropic/claude-sonnet-4-5");
    body["stream"] = json!(true);
    let resp = post(&f.server, "/v1/messages", &body).await;
    let got = resp.bytes().await.unwrap();
    assert_eq!(&got[..], &anthropic_fixture("stream_text.sse")[..]);
    let sent = f.anthropic.requests()[1].json();
    assert_eq!(
        sent["model"], "claude-sonnet-4-5",
        "only the prefix is taken off"
    );
    assert_eq!(sent["system"], body["system"]);
    assert_eq!(sent["future_field"], json!({"x": 1.50}));

    let calls = f.server.calls_at_least(2).await;
    let stream_call = calls.iter().find(|c| c["stream"] == true).unwrap();
    assert_eq!(stream_call["format"], "anthropic_messages");
    assert_eq!(stream_call["provider"], "anthropic");
    assert_eq!(stream_call["cached_tokens"], 2048, "{stream_call}");
    assert_eq!(stream_call["output_tokens"], 15, "{stream_call}");
}

#[tokio::test]
async fn messages_errors_are_in_anthropic_shape() {
    let f = start("").await;
    let s = &f.server;
    let e = anthropic_error(
        s.post_raw("/v1/messages", "{not json").await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("JSON"), "{e}");
    anthropic_error(
        post(s, "/v1/messages", &json!({"max_tokens": 5, "messages": []})).await,
        400,
        "invalid_request_error",
    )
    .await;
    // Translation refusals name the field.
    let mut body = messages_body("echo/echo-1", "x");
    body["messages"][0]["role"] = json!("robot");
    let e = anthropic_error(
        post(s, "/v1/messages", &body).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("messages[0].role"),
        "{e}"
    );
    anthropic_error(
        post(s, "/v1/messages", &messages_body("nope/model-x", "x")).await,
        404,
        "not_found_error",
    )
    .await;
    let resp = http_client_with_key("ak-wrong")
        .post(s.url("/v1/messages"))
        .json(&messages_body("echo/echo-1", "x"))
        .send()
        .await
        .unwrap();
    anthropic_error(resp, 401, "authentication_error").await;
    // Claude Code's own header works as well as a bearer token.
    let resp = http_client()
        .post(s.url("/v1/messages"))
        .header("x-api-key", s.app_key())
        .json(&messages_body("echo/echo-1", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["content"][0]["text"], "hello");
    anthropic_error(
        s.client().get(s.url("/v1/messages")).send().await.unwrap(),
        405,
        "invalid_request_error",
    )
    .await;
    // An upstream's 529 stays a 529 overloaded_error.
    anthropic_error(
        post(
            s,
            "/v1/messages",
            &messages_body("anthropic/claude-overloaded", "x"),
        )
        .await,
        529,
        "overloaded_error",
    )
    .await;
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_in_every_format() {
    let f = start("").await;
    let s = &f.server;
    // Messages, translated.
    let mut body = messages_body("compat/cut", "x");
    body["stream"] = json!(true);
    let t = types(&collect_sse(post(s, "/v1/messages", &body).await).await);
    assert_eq!(t.last().map(String::as_str), Some("error"), "{t:?}");
    assert!(!t.iter().any(|x| x == "message_stop"), "{t:?}");
    // Messages, native: the upstream's bytes, then an error event.
    body["model"] = json!("anthropic/claude-cut");
    let t = types(&collect_sse(post(s, "/v1/messages", &body).await).await);
    assert_eq!(t.last().map(String::as_str), Some("error"), "{t:?}");
    assert!(!t.iter().any(|x| x == "message_stop"), "{t:?}");
    // Responses.
    let t = types(
        &collect_sse(
            post(
                s,
                "/v1/responses",
                &json!({"model": "compat/cut", "input": "x", "stream": true}),
            )
            .await,
        )
        .await,
    );
    assert_eq!(
        t.last().map(String::as_str),
        Some("response.failed"),
        "{t:?}"
    );
    assert!(!t.iter().any(|x| x == "response.completed"), "{t:?}");
    // Legacy completions.
    let sse = collect_sse(
        post(
            s,
            "/v1/completions",
            &json!({"model": "compat/cut", "prompt": "x", "stream": true}),
        )
        .await,
    )
    .await;
    assert!(!sse.done, "no [DONE] after a cut");
    assert!(sse.json().last().unwrap().get("error").is_some(), "{sse:?}");
}

#[tokio::test]
async fn count_tokens_and_the_anthropic_model_list() {
    let f = start("").await;
    let s = &f.server;
    let resp = post(
        s,
        "/v1/messages/count_tokens",
        &json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "How many tokens is this sentence?"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0, "{v}");
    anthropic_error(
        post(s, "/v1/messages/count_tokens", &json!({"messages": []})).await,
        400,
        "invalid_request_error",
    )
    .await;
    let v: Value = s
        .client()
        .get(s.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["has_more"], false);
    let data = v["data"].as_array().unwrap();
    assert!(data.iter().all(|m| m["type"] == "model"), "{v}");
    assert!(data.iter().any(|m| m["id"] == "echo/echo-1"), "{v}");
    assert_eq!(v["first_id"], data[0]["id"]);
    // Without the header: OpenAI's list.
    let v: Value = s.get("/v1/models").await.json().await.unwrap();
    assert_eq!(v["object"], "list");
}

#[tokio::test]
async fn responses_through_a_chat_provider_with_a_follow_up() {
    let f = start("").await;
    let s = &f.server;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let r: Value = post(
        s,
        "/v1/responses",
        &json!({"model": "compat/gpt-x", "input": "weather in Paris?", "instructions": "Be brief.", "tools": tools}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    let call = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .cloned()
        .unwrap_or_else(|| panic!("no function call in {r}"));
    assert_eq!(call["name"], "get_weather");
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 5);
    let sent = f.chat.requests()[0].json();
    assert_eq!(sent["messages"][0]["role"], "system");
    // The follow-up carries only the tool output; the history comes from the store.
    let r2: Value = post(
        s,
        "/v1/responses",
        &json!({"model": "compat/gpt-x", "previous_response_id": r["id"], "tools": tools,
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        r2["output"][0]["content"][0]["text"], "It is sunny in Paris.",
        "{r2}"
    );
    let sent = f.chat.requests()[1].json();
    let msgs = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool"], "{sent}");
    // GET and DELETE, for this app only.
    let id = r["id"].as_str().unwrap();
    let got: Value = s
        .get(&format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], r["id"]);
    let other = http_client_with_key(&s.create_app_with_key("other").await.1);
    let url = s.url(&format!("/v1/responses/{id}"));
    expect_error(
        other.get(&url).send().await.unwrap(),
        404,
        "invalid_request_error",
    )
    .await;
    expect_error(
        other.delete(&url).send().await.unwrap(),
        404,
        "invalid_request_error",
    )
    .await;
    let del = s
        .client()
        .delete(s.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let v: Value = del.json().await.unwrap();
    assert_eq!(v["deleted"], true);
    expect_error(
        s.get(&format!("/v1/responses/{id}")).await,
        404,
        "invalid_request_error",
    )
    .await;
    // A follow-up to an unknown response is the client's error.
    let e = expect_error(
        post(
            s,
            "/v1/responses",
            &json!({"model": "compat/gpt-x", "previous_response_id": id, "input": "again"}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "previous_response_id");
}

#[tokio::test]
async fn responses_stream_has_the_typed_event_sequence() {
    let f = start("").await;
    let s = &f.server;
    let sse = collect_sse(
        post(
            s,
            "/v1/responses",
            &json!({"model": "compat/gpt-x", "input": "hello", "stream": true}),
        )
        .await,
    )
    .await;
    let t = types(&sse);
    let want = [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ];
    let mut at = 0;
    for w in want {
        at += t[at..]
            .iter()
            .position(|x| x == w)
            .unwrap_or_else(|| panic!("{w} missing or out of order in {t:?}"));
    }
    let events = sse.json();
    let seq: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[1] > w[0]), "{seq:?}");
    let done = events.last().unwrap();
    assert_eq!(done["response"]["usage"]["output_tokens"], 4);
    // The streamed response was kept: a follow-up works.
    let id = done["response"]["id"].as_str().unwrap();
    let r: Value = post(
        s,
        "/v1/responses",
        &json!({"model": "echo/echo-1", "input": "and again", "previous_response_id": id}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["status"], "completed", "{r}");
    // Tool calls stream as function-call events.
    let sse = collect_sse(
        post(
            s,
            "/v1/responses",
            &json!({"model": "compat/gpt-x", "input": "weather?", "stream": true,
                    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
        )
        .await,
    )
    .await;
    let t = types(&sse);
    assert!(
        t.iter()
            .any(|x| x == "response.function_call_arguments.delta"),
        "{t:?}"
    );
    assert!(
        t.iter()
            .any(|x| x == "response.function_call_arguments.done"),
        "{t:?}"
    );
}

#[tokio::test]
async fn responses_and_completions_errors_are_in_openai_shape() {
    let f = start("").await;
    let s = &f.server;
    for (path, field) in [("/v1/responses", "input"), ("/v1/completions", "prompt")] {
        expect_error(
            s.post_raw(path, "{not json").await,
            400,
            "invalid_request_error",
        )
        .await;
        let resp = http_client_with_key("ak-wrong")
            .post(s.url(path))
            .json(&json!({"model": "echo/echo-1", (field): "x"}))
            .send()
            .await
            .unwrap();
        expect_error(resp, 401, "authentication_error").await;
        expect_error(
            post(s, path, &json!({"model": "nope/x", (field): "x"})).await,
            404,
            "invalid_request_error",
        )
        .await;
    }
    let e = expect_error(
        post(
            s,
            "/v1/responses",
            &json!({"model": "echo/echo-1", "input": [{"type": "item_reference", "id": "x"}]}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(e["param"].as_str().unwrap().starts_with("input[0]"), "{e}");
    let e = expect_error(
        post(
            s,
            "/v1/completions",
            &json!({"model": "echo/echo-1", "prompt": "x", "echo": true}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "echo");
}

#[tokio::test]
async fn legacy_completions_are_served_through_chat() {
    let f = start("").await;
    let s = &f.server;
    let r: Value = post(
        s,
        "/v1/completions",
        &json!({"model": "compat/gpt-x", "prompt": "Say hi", "max_tokens": 5}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["object"], "text_completion");
    assert_eq!(r["choices"][0]["text"], "Hello from chat");
    assert_eq!(r["usage"]["total_tokens"], 15);
    let sent = f.chat.requests()[0].json();
    assert_eq!(sent["messages"][0]["content"], "Say hi");
    let sse = collect_sse(
        post(
            s,
            "/v1/completions",
            &json!({"model": "echo/echo-1", "prompt": "streamed words", "stream": true}),
        )
        .await,
    )
    .await;
    assert!(sse.done);
    let text: String = sse
        .json()
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(text, "streamed words");
    let calls = s.calls_at_least(2).await;
    assert!(
        calls.iter().all(|c| c["format"] == "openai_completions"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn responses_to_openai_pass_through_untranslated() {
    let f = start("").await;
    let s = &f.server;
    let raw = r#"{"model":"openai/gpt-5-mini", "input":"hi", "tools":[{"type":"web_search"}],"include":["reasoning.encrypted_content"],"store":true}"#;
    let resp = s.post_raw("/v1/responses", raw).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        &resp.bytes().await.unwrap()[..],
        &common::formats::openai_responses_fixture(false)[..],
        "the upstream's response, byte for byte"
    );
    let sent = &f.responses.requests()[0];
    assert_eq!(sent.uri, "/v1/responses");
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-5-mini", "input": "hi", "tools": [{"type": "web_search"}],
               "include": ["reasoning.encrypted_content"], "store": true}),
        "built-in tools and unknown fields reach the upstream"
    );
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-openai-key-0003")
    );
    // Kept, and a follow-up to it goes back to the same upstream untranslated.
    let id = "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b";
    let got: Value = s
        .get(&format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], id);
    let resp = post(
        s,
        "/v1/responses",
        &json!({"model": "openai/gpt-5-mini", "input": "more", "previous_response_id": id}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(f.responses.requests()[1].json()["previous_response_id"], id);
    // Streamed: the upstream's events as they came; usage read for the record.
    let resp = post(
        s,
        "/v1/responses",
        &json!({"model": "openai/gpt-5-mini", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(
        &resp.bytes().await.unwrap()[..],
        &common::formats::openai_responses_fixture(true)[..]
    );
    let calls = s.calls_at_least(3).await;
    assert!(
        calls.iter().all(|c| c["format"] == "openai_responses"),
        "{calls:?}"
    );
    let whole = calls.iter().find(|c| c["stream"] == false).unwrap();
    assert_eq!(whole["input_tokens"], 2036, "{whole}");
    assert_eq!(whole["cached_tokens"], 1920, "{whole}");
    assert_eq!(whole["output_tokens"], 164, "{whole}");
    let streamed = calls.iter().find(|c| c["stream"] == true).unwrap();
    assert!(
        streamed["output_tokens"].as_u64().unwrap() > 0,
        "{streamed}"
    );
}
