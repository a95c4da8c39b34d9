//! Whole replies: Messages API bodies become `chat.completion`s; errors are classified.

use crate::common::*;
use plugin_api::serde_json::{json, Value};
use plugin_api::testing::response;
use plugin_api::*;

const REQUEST: &[u8] = br#"{"messages":[{"role":"user","content":"hi"}]}"#;

fn parse_with(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply, ProviderError> {
    anthropic().parse(
        &chat(REQUEST, false, false),
        &response(status, headers, body),
    )
}

fn ok(name: &str) -> (Value, Usage) {
    let reply = parse_with(200, &[("content-type", "application/json")], &fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (json_of(&reply.body), reply.usage.expect("usage"))
}

#[test]
fn text_reply() {
    let (v, usage) = ok("message_text.json");
    assert_eq!(v["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        v["choices"],
        json!([{"index": 0, "logprobs": null, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "The capital of Italy is Rome."}}])
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 41, "completion_tokens": 10, "total_tokens": 51})
    );
    assert_eq!(
        usage,
        Usage {
            input_tokens: 41,
            output_tokens: 10,
            ..Usage::default()
        }
    );
}

#[test]
fn tool_use_reply() {
    let (v, usage) = ok("message_tool_use.json");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["content"],
        "I'll check the weather in both cities."
    );
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        plugin_api::serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap())
            .unwrap();
    assert_eq!(args, json!({"location": "Rome, Italy", "unit": "celsius"}));
    assert_eq!((usage.input_tokens, usage.output_tokens), (472, 121));

    let (v, _) = ok("message_tool_only.json");
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert_eq!(msg["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(v["model"], "claude-haiku-4-5-20251001");
}

#[test]
fn cache_tokens_count_as_prompt_tokens() {
    let (v, usage) = ok("message_cache.json");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 21 + 188 + 10240, "completion_tokens": 16,
               "total_tokens": 21 + 188 + 10240 + 16,
               "prompt_tokens_details": {"cached_tokens": 10240}})
    );
    assert_eq!(
        usage,
        Usage {
            input_tokens: 10449,
            output_tokens: 16,
            cached_input_tokens: 10240,
            cache_write_tokens: 188,
            reasoning_tokens: 0,
        }
    );
}

#[test]
fn thinking_becomes_reasoning_content() {
    let (v, _) = ok("message_thinking.json");
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "27 * 453 = 12231");
    assert!(msg["reasoning_content"]
        .as_str()
        .unwrap()
        .contains("27*53 = 1431"));
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    let mut body = fixture_json("message_text.json");
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        body["stop_reason"] = stop.into();
        let bytes = plugin_api::serde_json::to_vec(&body).unwrap();
        let v = json_of(&parse_with(200, &[], &bytes).unwrap().body);
        assert_eq!(v["choices"][0]["finish_reason"], finish, "{stop}");
    }
}

#[test]
fn every_documented_error_status() {
    let cases = [
        (
            400,
            ErrorClass::BadRequest,
            "invalid_request_error",
            "roles must alternate",
        ),
        (
            401,
            ErrorClass::Auth,
            "authentication_error",
            "invalid x-api-key",
        ),
        (
            403,
            ErrorClass::Auth,
            "permission_error",
            "does not have permission",
        ),
        (
            404,
            ErrorClass::BadRequest,
            "not_found_error",
            "model: claude-sonnet-9",
        ),
        (
            413,
            ErrorClass::BadRequest,
            "request_too_large",
            "maximum allowed number of bytes",
        ),
        (
            429,
            ErrorClass::RateLimited,
            "rate_limit_error",
            "exceed the rate limit",
        ),
        (
            500,
            ErrorClass::Upstream,
            "api_error",
            "Internal server error",
        ),
        (529, ErrorClass::Upstream, "overloaded_error", "Overloaded"),
    ];
    for (status, class, code, words) in cases {
        let body = fixture(&format!("error_{status}.json"));
        let e = parse_with(status, &[("request-id", "req_1")], &body).unwrap_err();
        assert_eq!(e.class, class, "{status}");
        assert_eq!(e.status, Some(status));
        assert_eq!(e.code.as_deref(), Some(code), "{status}");
        assert!(e.message.contains(words), "{status}: {}", e.message);
        assert_eq!(e.retry_after_ms, None);
    }
}

#[test]
fn rate_limits_carry_retry_after() {
    let e = parse_with(
        429,
        &[
            ("Retry-After", "20"),
            ("anthropic-ratelimit-requests-remaining", "0"),
        ],
        &fixture("error_429.json"),
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after_ms, Some(20_000));
}

#[test]
fn other_statuses_and_unreadable_error_bodies() {
    let gateway_timeout = b"<html><body><h1>504 Gateway Time-out</h1></body></html>";
    let e = parse_with(504, &[], gateway_timeout).unwrap_err();
    assert_eq!((e.class, e.status), (ErrorClass::Timeout, Some(504)));
    assert!(e.message.contains("504 Gateway Time-out"), "{}", e.message);
    assert_eq!(e.code, None);

    let e = parse_with(408, &[], b"").unwrap_err();
    assert_eq!(e.class, ErrorClass::Timeout);
    assert_eq!(e.message, "anthropic returned HTTP 408");

    let e = parse_with(502, &[], b"Bad Gateway").unwrap_err();
    assert_eq!(e.class, ErrorClass::Upstream);

    let billing = br#"{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low."}}"#;
    let e = parse_with(402, &[], billing).unwrap_err();
    assert_eq!(e.class, ErrorClass::Auth);
    assert_eq!(e.code.as_deref(), Some("billing_error"));
}

#[test]
fn an_error_body_with_a_2xx_status_is_still_an_error() {
    let e = parse_with(200, &[], &fixture("error_529.json")).unwrap_err();
    assert_eq!(e.class, ErrorClass::Upstream);
    assert_eq!(e.code.as_deref(), Some("overloaded_error"));
    assert_eq!(e.message, "Overloaded");
}

#[test]
fn malformed_replies_are_upstream_errors_not_panics() {
    for body in [
        fixture("message_malformed.json"),
        b"".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        br#"{"type":"message","content":"text"}"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
    ] {
        let e = parse_with(200, &[], &body).unwrap_err();
        assert_eq!(e.class, ErrorClass::Upstream, "{body:?}");
        assert_eq!(e.status, Some(200));
    }
    // Odd but readable: missing fields fall back instead of failing.
    let v = json_of(
        &parse_with(
            200,
            &[],
            br#"{"content":[{"type":"text","text":"hi"},{"type":"mystery"}]}"#,
        )
        .unwrap()
        .body,
    );
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["choices"][0]["message"]["content"], "hi");
    assert_eq!(v["usage"]["total_tokens"], 0);
}
