//! Every shipped provider plugin through the real gateway: a mock upstream replays the
//! provider's own wire format from the plugin's fixtures, and the client sees OpenAI's.

use crate::common;

use common::providers::start_all;
use common::*;
use serde_json::{json, Value};

async fn chat(server: &TestServer, model: &str, stream: bool) -> reqwest::Response {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the capital?"}
        ],
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    server.post_chat(&body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_through_the_gateway() {
    let p = start_all().await;
    let resp = chat(&p.server, "anthropic/claude-sonnet-4-5", false).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The capital of Italy is Rome."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 41);
    assert_eq!(v["usage"]["completion_tokens"], 10);

    let req = &p.anthropic.requests()[0];
    assert_eq!(req.uri, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("sk-ant-test-key-0001"));
    assert!(req.header("anthropic-version").is_some());
    let sent = req.json();
    assert_eq!(sent["system"], "Answer briefly.");
    assert_eq!(sent["model"], "claude-sonnet-4-5");

    let out = collect_sse(chat(&p.server, "anthropic/claude-sonnet-4-5", true).await).await;
    assert!(out.done, "a complete stream ends with [DONE]");
    assert!(!out.content().is_empty());
    assert!(out.errors().is_empty());
    let usage = out.usage_chunks();
    assert_eq!(usage.len(), 1, "one usage chunk when asked for");
    assert!(usage[0]["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_through_the_gateway() {
    let p = start_all().await;
    let resp = chat(&p.server, "gemini/gemini-2.5-flash", false).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    assert_eq!(v["usage"]["prompt_tokens"], 14);

    let req = &p.gemini.requests()[0];
    assert_eq!(req.uri, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(req.header("x-goog-api-key"), Some("AIza-test-key-0002"));
    assert!(!req.uri.contains("key="), "the key never goes in the URL");
    assert_eq!(
        req.json()["systemInstruction"]["parts"][0]["text"],
        "Answer briefly."
    );

    let out = collect_sse(chat(&p.server, "gemini/gemini-2.5-flash", true).await).await;
    assert!(out.done);
    assert!(out.content().starts_with("Bonjour"), "{}", out.content());
    assert_eq!(out.usage_chunks().len(), 1);
    let streamed = &p.gemini.requests()[1];
    assert!(
        streamed.uri.ends_with(":streamGenerateContent?alt=sse"),
        "{}",
        streamed.uri
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_streams_end_with_an_error_and_no_done() {
    let p = start_all().await;
    for model in ["anthropic/claude-cut", "gemini/gemini-cut"] {
        let out = collect_sse(chat(&p.server, model, true).await).await;
        assert!(!out.done, "{model}: a cut stream must not look finished");
        assert_eq!(out.errors().len(), 1, "{model}: one error event");
    }
    // The cut calls were recorded as errors, with the usage seen before the cut.
    let calls = p
        .server
        .wait_for_calls("status=error", 2, std::time::Duration::from_secs(5))
        .await;
    assert!(calls.iter().all(|c| c["stream"] == true));
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_rate_limits_become_429() {
    let p = start_all().await;
    for model in ["anthropic/claude-busy", "gemini/gemini-busy"] {
        let resp = chat(&p.server, model, false).await;
        let err = expect_error(resp, 429, "rate_limit_error").await;
        assert!(!err["message"].as_str().unwrap_or_default().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_plugin_lists_its_models() {
    let p = start_all().await;
    let v: Value = p.server.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for prefix in [
        "echo/",
        "openai/",
        "anthropic/",
        "gemini/",
        "deepseek/",
        "groq/",
    ] {
        assert!(
            ids.iter().any(|id| id.starts_with(prefix)),
            "no {prefix} model in {ids:?}"
        );
    }
}
