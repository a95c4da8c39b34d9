//! `parse`: whole Gemini replies (and every documented error) in the OpenAI shape.

use crate::common::*;
use plugin_api::serde_json::json;
use plugin_api::testing::response;
use plugin_api::*;

fn parse_chat(name: &str) -> Result<Reply, ProviderError> {
    let body = fixture(name);
    gemini().parse(&chat(HELLO, false, false), &ok(200, &body))
}

const HELLO: &[u8] = br#"{"messages":[{"role":"user","content":"Hi"}]}"#;

#[test]
fn text_reply() {
    let reply = parse_chat("generate_text.json").unwrap();
    let v = json_of(&reply.body);
    assert_eq!(v["id"], "3bZ5aPWoLJ2dz7IP8rTZ8Qc");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-2.0-flash");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        v["choices"],
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
            "finish_reason": "stop",
            "logprobs": null
        }])
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21})
    );
    assert_eq!(
        reply.usage,
        Some(Usage {
            input_tokens: 14,
            output_tokens: 7,
            ..Usage::default()
        })
    );
}

#[test]
fn parallel_function_calls() {
    let reply = parse_chat("generate_function_calls.json").unwrap();
    let v = json_of(&reply.body);
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], json!(null));
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_0");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(
        json_of(
            calls[0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .as_bytes()
        ),
        json!({"location": "Paris", "unit": "celsius"})
    );
    assert_eq!(
        calls[0]["extra_content"]["google"]["thought_signature"],
        "CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbdMdfpmNpgBwpl"
    );
    assert_eq!(calls[1]["id"], "call_1");
    assert_eq!(calls[1]["function"]["name"], "get_time");
    assert_eq!(
        calls[1]["function"]["arguments"],
        "{\"timezone\":\"Europe/Paris\"}"
    );
    assert!(calls[1].get("extra_content").is_none());
    // Thinking tokens bill as output.
    let u = reply.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.reasoning_tokens),
        (83, 135, 104)
    );
}

#[test]
fn a_reply_fed_back_as_history_round_trips() {
    let reply = parse_chat("generate_function_calls.json").unwrap();
    let message = json_of(&reply.body)["choices"][0]["message"].clone();
    let history = json!({"messages": [
        {"role": "user", "content": "Weather and time in Paris?"},
        message,
        {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\":21}"},
        {"role": "tool", "tool_call_id": "call_1", "content": "14:05"}
    ]});
    let body = prepared_chat(&history);
    assert_eq!(
        body["contents"][1]["parts"][0],
        json!({"functionCall": {"name": "get_weather", "args": {"location": "Paris", "unit": "celsius"}},
               "thoughtSignature": "CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbdMdfpmNpgBwpl"})
    );
    assert_eq!(
        body["contents"][2]["parts"],
        json!([
            {"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 21}}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}}
        ])
    );
}

#[test]
fn blocked_prompt_is_a_bad_request_saying_why() {
    let err = parse_chat("generate_prompt_blocked.json").unwrap_err();
    assert_eq!(err.class, ErrorClass::BadRequest);
    assert!(err.message.contains("blocked"), "{}", err.message);
    assert!(err.message.contains("SAFETY"), "{}", err.message);
}

#[test]
fn safety_stop_is_content_filter() {
    let v = json_of(&parse_chat("generate_candidate_safety.json").unwrap().body);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["choices"][0]["message"]["content"], "");
}

#[test]
fn thoughts_are_excluded_and_cached_and_reasoning_tokens_counted() {
    let reply = parse_chat("generate_thinking_cached.json").unwrap();
    let v = json_of(&reply.body);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Use a B-tree: it keeps keys sorted and balances itself."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["model"], "gemini-2.5-pro");
    assert_eq!(
        reply.usage,
        Some(Usage {
            input_tokens: 4213,
            output_tokens: 363,
            cached_input_tokens: 4096,
            cache_write_tokens: 0,
            reasoning_tokens: 351,
        })
    );
    assert_eq!(
        v["usage"],
        json!({
            "prompt_tokens": 4213,
            "completion_tokens": 363,
            "total_tokens": 4576,
            "prompt_tokens_details": {"cached_tokens": 4096},
            "completion_tokens_details": {"reasoning_tokens": 351}
        })
    );
}

#[test]
fn candidates_become_choices() {
    let v = json_of(&parse_chat("generate_two_candidates.json").unwrap().body);
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[1]["message"]["content"], "Hi there!");
}

#[test]
fn missing_ids_and_models_are_filled_in() {
    let body = br#"{"candidates":[{"content":{"parts":[{"text":"ok"}],"role":"model"},"finishReason":"STOP"}]}"#;
    let reply = gemini()
        .parse(&chat(HELLO, false, false), &ok(200, body))
        .unwrap();
    let v = json_of(&reply.body);
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-gemini-"));
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert_eq!(reply.usage, None);
    assert_eq!(v["usage"]["total_tokens"], 0);
}

#[test]
fn malformed_success_bodies_are_upstream_errors() {
    for body in [
        &b"{\"candidates\": [{\"content\""[..],
        b"<html>502</html>",
        b"",
        b"[1,2]",
        b"{\"candidates\": 3}",
        b"{}",
    ] {
        let err = gemini()
            .parse(&chat(HELLO, false, false), &ok(200, body))
            .unwrap_err();
        assert_eq!(
            err.class,
            ErrorClass::Upstream,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

fn parse_error(status: u16, fixture_name: &str, headers: &[(&str, &str)]) -> ProviderError {
    let body = fixture(fixture_name);
    let resp = response(status, headers, &body);
    gemini()
        .parse(&chat(HELLO, false, false), &resp)
        .unwrap_err()
}

#[test]
fn every_documented_error_status() {
    for (status, name, class, code) in [
        (
            400,
            "error_400.json",
            ErrorClass::BadRequest,
            "INVALID_ARGUMENT",
        ),
        (
            400,
            "error_400_api_key.json",
            ErrorClass::Auth,
            "INVALID_ARGUMENT",
        ),
        (401, "error_401.json", ErrorClass::Auth, "UNAUTHENTICATED"),
        (403, "error_403.json", ErrorClass::Auth, "PERMISSION_DENIED"),
        (404, "error_404.json", ErrorClass::BadRequest, "NOT_FOUND"),
        (
            429,
            "error_429.json",
            ErrorClass::RateLimited,
            "RESOURCE_EXHAUSTED",
        ),
        (500, "error_500.json", ErrorClass::Upstream, "INTERNAL"),
        (503, "error_503.json", ErrorClass::Upstream, "UNAVAILABLE"),
        (
            504,
            "error_504.json",
            ErrorClass::Timeout,
            "DEADLINE_EXCEEDED",
        ),
    ] {
        let err = parse_error(status, name, &[]);
        assert_eq!(err.class, class, "{name}");
        assert_eq!(err.status, Some(status), "{name}");
        assert_eq!(err.code.as_deref(), Some(code), "{name}");
        let expected = json_of(&fixture(name))["error"]["message"]
            .as_str()
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(err.message, expected, "{name}");
    }
}

#[test]
fn rate_limit_waits_from_header_or_retry_info() {
    let err = parse_error(429, "error_429.json", &[]);
    assert_eq!(err.retry_after_ms, Some(13_000));
    let err = parse_error(429, "error_429.json", &[("Retry-After", "2")]);
    assert_eq!(err.retry_after_ms, Some(2_000));
    let err = parse_error(429, "error_503.json", &[]);
    assert_eq!(
        (err.class, err.retry_after_ms),
        (ErrorClass::RateLimited, None)
    );
}

#[test]
fn non_json_error_bodies_keep_their_text() {
    let resp = ok(502, b"<html><body>Bad Gateway</body></html>");
    let err = gemini()
        .parse(&chat(HELLO, false, false), &resp)
        .unwrap_err();
    assert_eq!((err.class, err.status), (ErrorClass::Upstream, Some(502)));
    assert!(err.message.contains("Bad Gateway"), "{}", err.message);
    let err = gemini()
        .parse(&chat(HELLO, false, false), &ok(408, b""))
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Timeout);
}

#[test]
fn embeddings_single_and_batch_replies() {
    let single = br#"{"input":"hello"}"#;
    let c = call(
        Endpoint::Embeddings,
        "gemini-embedding-001",
        single,
        false,
        false,
    );
    let reply = gemini()
        .parse(&c, &ok(200, &fixture("embed_single.json")))
        .unwrap();
    assert_eq!(
        json_of(&reply.body),
        json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0,
                      "embedding": [0.013168517, -0.008711836, -0.046782672, 0.00069968984]}],
            "model": "gemini-embedding-001",
            "usage": {"prompt_tokens": 0, "total_tokens": 0}
        })
    );
    assert_eq!(reply.usage, None);

    let batch = br#"{"input":["a","b"]}"#;
    let c = call(
        Endpoint::Embeddings,
        "text-embedding-004",
        batch,
        false,
        false,
    );
    let v = json_of(
        &gemini()
            .parse(&c, &ok(200, &fixture("embed_batch.json")))
            .unwrap()
            .body,
    );
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[1]["embedding"][2], 0.0023401927);

    // What the OpenAI Python SDK asks for by default: little-endian f32, base64.
    let b64 = br#"{"input":"hello","encoding_format":"base64"}"#;
    let c = call(
        Endpoint::Embeddings,
        "gemini-embedding-001",
        b64,
        false,
        false,
    );
    let body = br#"{"embedding":{"values":[1.0,-2.0]}}"#;
    let v = json_of(&gemini().parse(&c, &ok(200, body)).unwrap().body);
    assert_eq!(v["data"][0]["embedding"], "AACAPwAAAMA=");

    let err = gemini()
        .parse(&c, &ok(200, b"{\"embedding\":{}}"))
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Upstream);
    let err = gemini()
        .parse(&c, &ok(429, &fixture("error_429.json")))
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::RateLimited);
}
