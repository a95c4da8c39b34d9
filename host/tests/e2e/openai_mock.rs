//! The `openai` plugin, configured as a provider instance under the prefix `mock`,
//! against a local OpenAI-compatible mock upstream: request translation, stream and
//! non-stream replies, usage handling, and the mapping of upstream errors.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const KEY_ENV: &str = "MOCK_OPENAI_KEY";

async fn server_for(mock: &MockUpstream, key: &str) -> TestServer {
    TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(mock_provider_config("mock", mock, KEY_ENV))
            .env(KEY_ENV, key),
    )
    .await
}

fn test_key() -> String {
    format!("sk-test-{}", random_hex())
}

#[tokio::test(flavor = "multi_thread")]
async fn non_stream_request_is_translated_and_reply_passed_back() {
    let mock = MockUpstream::always(MockReply::json(
        200,
        openai_completion("openai/gpt-4o", "Hi from mock", 11, 4),
    ))
    .await;
    let key = test_key();
    let server = server_for(&mock, &key).await;

    let req = json!({
        "model": "mock/openai/gpt-4o",
        "temperature": 0.25,
        "messages": [
            {"role": "system", "content": "you are a test"},
            {"role": "user", "content": "hi"}
        ]
    });
    let resp = server.post_chat(&req).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant", "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"], "Hi from mock",
        "{body}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], 11, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 4, "{body}");
    assert_eq!(body["usage"]["total_tokens"], 15, "{body}");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1, "one upstream call: {reqs:#?}");
    let up = &reqs[0];
    assert_eq!(up.method, "POST");
    assert_eq!(up.uri, "/v1/chat/completions");
    assert_eq!(
        up.header("authorization"),
        Some(format!("Bearer {key}").as_str()),
        "upstream auth header"
    );
    let up_body = up.json();
    assert_eq!(
        up_body["model"], "openai/gpt-4o",
        "upstream model: {up_body}"
    );
    assert_eq!(up_body["messages"], req["messages"], "{up_body}");
    assert_eq!(up_body["temperature"], 0.25, "{up_body}");
    assert_ne!(
        up_body.get("stream"),
        Some(&json!(true)),
        "non-stream call sent upstream as a stream: {up_body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_forces_upstream_usage_and_strips_it_when_not_asked() {
    let mock = MockUpstream::always(MockReply::sse(
        openai_stream_chunks("openai/gpt-4o", &["Hel", "lo", " there"], Some((9, 3))),
        Duration::from_millis(5),
        SseEnd::Done,
    ))
    .await;
    let server = server_for(&mock, &test_key()).await;

    let mut req = chat_body("mock/openai/gpt-4o", "hi");
    req["stream"] = json!(true);
    let resp = server.post_chat(&req).await;
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let sse = collect_sse(resp).await;
    assert!(sse.done, "no [DONE]: {sse:?}");
    assert_eq!(sse.events.last().map(String::as_str), Some("[DONE]"));
    assert!(sse.errors().is_empty(), "{sse:?}");
    assert_eq!(sse.content(), "Hello there");
    assert_eq!(sse.content_pieces(), vec!["Hel", "lo", " there"]);
    assert!(
        sse.json()
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{sse:?}"
    );
    assert!(
        sse.usage_chunks().is_empty(),
        "the client did not ask for usage: {sse:?}"
    );
    assert!(
        sse.json().iter().all(|c| c["choices"] != json!([])),
        "usage-only chunk leaked to the client: {sse:?}"
    );

    let up = mock.requests();
    assert_eq!(up.len(), 1);
    let up_body = up[0].json();
    assert_eq!(up[0].uri, "/v1/chat/completions");
    assert_eq!(up_body["model"], "openai/gpt-4o", "{up_body}");
    assert_eq!(up_body["stream"], true, "{up_body}");
    assert_eq!(
        up_body["stream_options"]["include_usage"], true,
        "usage must be requested upstream: {up_body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_with_include_usage_passes_the_usage_chunk() {
    let mock = MockUpstream::always(MockReply::sse(
        openai_stream_chunks("openai/gpt-4o", &["a", " b"], Some((9, 3))),
        Duration::from_millis(5),
        SseEnd::Done,
    ))
    .await;
    let server = server_for(&mock, &test_key()).await;

    let mut req = chat_body("mock/openai/gpt-4o", "hi");
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = server.post_chat(&req).await;
    assert_eq!(resp.status(), 200);
    let sse = collect_sse(resp).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "a b");
    let usage = sse.usage_chunks();
    assert_eq!(usage.len(), 1, "{sse:?}");
    assert_eq!(usage[0]["usage"]["prompt_tokens"], 9);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 3);
    assert_eq!(usage[0]["usage"]["total_tokens"], 12);
    assert_eq!(usage[0]["choices"], json!([]));
    assert_eq!(
        mock.requests()[0].json()["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_is_passed_through_as_it_arrives() {
    // Six content chunks 300 ms apart: the first must reach the client long before the
    // mock has written the last one (the gateway never buffers a stream whole).
    let pieces = ["one", " two", " three", " four", " five", " six"];
    let chunks = openai_stream_chunks("openai/gpt-4o", &pieces, Some((1, 6)));
    let total = chunks.len();
    let mock = MockUpstream::always(MockReply::sse(
        chunks,
        Duration::from_millis(300),
        SseEnd::Done,
    ))
    .await;
    let server = server_for(&mock, &test_key()).await;

    let mut req = chat_body("mock/openai/gpt-4o", "count");
    req["stream"] = json!(true);
    let resp = server.post_chat(&req).await;
    assert_eq!(resp.status(), 200);
    let mut sent_at_first_content: Option<usize> = None;
    let sse = collect_sse_with(resp, |data| {
        if sent_at_first_content.is_none() && data.contains("\"one\"") {
            sent_at_first_content = Some(mock.events_sent());
        }
    })
    .await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), pieces.concat());
    let sent = sent_at_first_content.expect("saw the first content chunk");
    assert!(
        sent < total,
        "the first chunk reached the client only after the upstream sent {sent} of {total} events: \
         the stream was buffered"
    );
}

/// A mock that answers according to the upstream model name (`<case>`), so one server
/// covers every error mapping.
async fn error_mock() -> MockUpstream {
    MockUpstream::start(|rec| {
        let model = rec.json()["model"].as_str().unwrap_or("").to_string();
        match model.as_str() {
            "bad-400" => MockReply::openai_error(
                400,
                "Invalid value for 'temperature': must be <= 2",
                "invalid_request_error",
            ),
            "bad-404" => MockReply::openai_error(
                404,
                "The model `bad-404` does not exist or you do not have access to it.",
                "invalid_request_error",
            ),
            "bad-422" => MockReply::openai_error(
                422,
                "Unprocessable: bad tool schema",
                "invalid_request_error",
            ),
            "auth-401" => MockReply::openai_error(
                401,
                "Incorrect API key provided: sk-test-****",
                "invalid_request_error",
            ),
            "auth-403" => {
                MockReply::openai_error(403, "Project does not have access", "permission_error")
            }
            "rate-429" => {
                MockReply::openai_error(429, "Rate limit reached for requests", "requests")
                    .with_header("retry-after", "7")
            }
            "server-500" => MockReply::openai_error(
                500,
                "The server had an error while processing your request",
                "server_error",
            ),
            "server-503" => {
                MockReply::openai_error(503, "The engine is currently overloaded", "server_error")
            }
            "garbage-200" => MockReply::Raw {
                status: 200,
                content_type: "text/html".into(),
                body: b"<html><body>not json at all</body></html>".to_vec(),
            },
            _ => MockReply::json(200, openai_completion(&model, "fine", 1, 1)),
        }
    })
    .await
}

struct Case {
    upstream_model: &'static str,
    status: u16,
    typ: &'static str,
    code: Option<&'static str>,
    message_contains: Option<&'static str>,
}

/// Each case gets a server of its own: a refused or rate-limited key is taken out of
/// rotation, which would change what the next case sees.
async fn check_cases(mock: &MockUpstream, cases: &[Case], stream: bool) {
    for c in cases {
        let server = server_for(mock, &test_key()).await;
        let mut req = chat_body(&format!("mock/{}", c.upstream_model), "hi");
        if stream {
            req["stream"] = json!(true);
        }
        let resp = server.post_chat(&req).await;
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let err = expect_error(resp, c.status, c.typ).await;
        if let Some(code) = c.code {
            assert_eq!(
                err["code"], code,
                "case {} (stream {stream}): {err}",
                c.upstream_model
            );
        }
        if let Some(m) = c.message_contains {
            assert!(
                err["message"].as_str().unwrap().contains(m),
                "case {} (stream {stream}): the provider's message {m:?} should be kept: {err}",
                c.upstream_model
            );
        }
        if c.status == 429 {
            assert_eq!(
                retry_after.as_deref(),
                Some("7"),
                "Retry-After passed through (stream {stream})"
            );
        }
    }
}

async fn check_one(
    upstream_model: &'static str,
    status: u16,
    typ: &'static str,
    message_contains: &'static str,
) {
    let mock = error_mock().await;
    let cases = [Case {
        upstream_model,
        status,
        typ,
        code: None,
        message_contains: Some(message_contains),
    }];
    check_cases(&mock, &cases, false).await;
    assert_eq!(mock.calls(), 1);
}

// The contract maps every upstream bad_request (400/404/422) to the client as 400
// invalid_request_error: the gateway's own 404 means "no such prefix" (model_not_found).

#[tokio::test(flavor = "multi_thread")]
async fn upstream_400_maps_to_400() {
    check_one(
        "bad-400",
        400,
        "invalid_request_error",
        "Invalid value for 'temperature'",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
/// A client error keeps the upstream's own 4xx status (a missing model stays 404).
async fn upstream_404_keeps_its_status() {
    check_one("bad-404", 404, "invalid_request_error", "does not exist").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_422_keeps_its_status() {
    check_one("bad-422", 422, "invalid_request_error", "bad tool schema").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_auth_errors_map_to_502_upstream_auth_error() {
    let mock = error_mock().await;
    let cases = [
        Case {
            upstream_model: "auth-401",
            status: 502,
            typ: "upstream_error",
            code: Some("upstream_auth_error"),
            message_contains: Some("Incorrect API key provided"),
        },
        Case {
            upstream_model: "auth-403",
            status: 502,
            typ: "upstream_error",
            code: Some("upstream_auth_error"),
            message_contains: Some("Project does not have access"),
        },
    ];
    check_cases(&mock, &cases, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_rate_limit_maps_to_429_with_retry_after() {
    let mock = error_mock().await;
    let cases = [Case {
        upstream_model: "rate-429",
        status: 429,
        typ: "rate_limit_error",
        code: None,
        message_contains: Some("Rate limit reached"),
    }];
    check_cases(&mock, &cases, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_server_errors_and_unreadable_replies_map_to_502() {
    let mock = error_mock().await;
    let server = server_for(&mock, &test_key()).await;
    let cases = [
        Case {
            upstream_model: "server-500",
            status: 502,
            typ: "upstream_error",
            code: None,
            message_contains: Some("The server had an error"),
        },
        Case {
            upstream_model: "server-503",
            status: 502,
            typ: "upstream_error",
            code: None,
            message_contains: Some("overloaded"),
        },
        Case {
            upstream_model: "garbage-200",
            status: 502,
            typ: "upstream_error",
            code: None,
            message_contains: None,
        },
    ];
    check_cases(&mock, &cases, false).await;
    // The gateway is fine afterwards.
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_errors_before_a_stream_begins_use_the_http_status() {
    let mock = error_mock().await;
    let cases = [
        Case {
            upstream_model: "bad-400",
            status: 400,
            typ: "invalid_request_error",
            code: None,
            message_contains: Some("Invalid value for 'temperature'"),
        },
        Case {
            upstream_model: "auth-401",
            status: 502,
            typ: "upstream_error",
            code: Some("upstream_auth_error"),
            message_contains: Some("Incorrect API key provided"),
        },
        Case {
            upstream_model: "rate-429",
            status: 429,
            typ: "rate_limit_error",
            code: None,
            message_contains: Some("Rate limit reached"),
        },
        Case {
            upstream_model: "server-500",
            status: 502,
            typ: "upstream_error",
            code: None,
            message_contains: Some("The server had an error"),
        },
    ];
    check_cases(&mock, &cases, true).await;
}

async fn check_broken_stream(end: SseEnd) {
    // Role chunk and two content chunks, then the upstream goes away without [DONE].
    let mut chunks = openai_stream_chunks("openai/gpt-4o", &["par", "tial"], None);
    chunks.truncate(3);
    let mock = MockUpstream::always(MockReply::sse(chunks, Duration::from_millis(20), end)).await;
    let server = server_for(&mock, &test_key()).await;

    let mut req = chat_body("mock/openai/gpt-4o", "hi");
    req["stream"] = json!(true);
    let resp = server.post_chat(&req).await;
    assert_eq!(resp.status(), 200);
    let sse = collect_sse(resp).await;
    assert!(
        !sse.done,
        "[DONE] after a broken upstream stream ({end:?}): {sse:?}"
    );
    assert_eq!(sse.content(), "partial", "{sse:?}");
    let last: Value = serde_json::from_str(sse.events.last().expect("events"))
        .unwrap_or_else(|e| panic!("last event is not JSON ({e}): {sse:?}"));
    let err = assert_error_shape(&last);
    assert_eq!(err["type"], "upstream_error", "{end:?}: {last}");
    assert_eq!(sse.errors().len(), 1, "{sse:?}");
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_stream_cut_midway_ends_with_an_error_event() {
    check_broken_stream(SseEnd::Cut).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_stream_ending_without_done_ends_with_an_error_event() {
    check_broken_stream(SseEnd::Eof).await;
}
