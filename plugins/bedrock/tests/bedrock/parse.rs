//! Bedrock replies into OpenAI replies and classified errors.

use crate::common::*;
use plugin_api::serde_json::json;
use plugin_api::testing::{expect_err, response};
use plugin_api::*;

fn parse_ok(
    body: &[u8],
    headers: &[(&str, &str)],
) -> (plugin_api::serde_json::Value, Option<Usage>) {
    let r = bedrock()
        .parse(&chat(b"{}", false, false), &response(200, headers, body))
        .unwrap();
    assert!(!r.pass_through);
    (json_of(&r.body), r.usage)
}

#[test]
fn text_replies() {
    let (v, u) = parse_ok(
        &fixture("converse_text.json"),
        &[("x-amzn-requestid", "9d2c6b1e-77aa-4b0e")],
    );
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "chatcmpl-9d2c6b1e-77aa-4b0e");
    assert_eq!(v["model"], MODEL);
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role": "assistant", "content": "The capital of France is Paris."})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        u,
        Some(Usage {
            input_tokens: 14,
            output_tokens: 8,
            ..Usage::default()
        })
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22})
    );
}

#[test]
fn tool_use_replies() {
    let (v, _) = parse_ok(&fixture("converse_tool_use.json"), &[]);
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "I'll look up the weather in Paris and Lyon.");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let calls = m["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: plugin_api::serde_json::Value =
        plugin_api::serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap())
            .unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-bedrock-"));
}

#[test]
fn cached_usage_reasoning_and_stop_reasons() {
    let (v, u) = parse_ok(&fixture("converse_cached.json"), &[]);
    assert_eq!(
        u,
        Some(Usage {
            input_tokens: 4625,
            output_tokens: 64,
            cached_input_tokens: 4096,
            cache_write_tokens: 512,
            reasoning_tokens: 0
        })
    );
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4096);
    assert_eq!(
        v["usage"]["total_tokens"], 4689,
        "the same total Bedrock reports"
    );
    assert_eq!(
        v["choices"][0]["message"]["reasoning_content"],
        "The document says the deadline is in March."
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The deadline is March 14."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let (v, _) = parse_ok(&fixture("converse_guardrail.json"), &[]);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn unreadable_success_replies_are_upstream_errors() {
    for body in [
        &b"<html>"[..],
        b"{}",
        br#"{"output":{"message":{"content":"x"}}}"#,
    ] {
        let e = expect_err(bedrock().parse(&chat(b"{}", false, false), &response(200, &[], body)));
        assert_eq!(e.class, ErrorClass::Upstream);
    }
}

#[test]
fn errors_are_classified_by_type() {
    let ns = ":http://internal.amazon.com/coral/com.amazon.bedrock/";
    let cases: [(u16, &str, &str, ErrorClass); 7] = [
        (
            403,
            "UnrecognizedClientException",
            "error_403_unrecognized_client.json",
            ErrorClass::Auth,
        ),
        (
            429,
            "ThrottlingException",
            "error_429_throttling.json",
            ErrorClass::RateLimited,
        ),
        (
            400,
            "ValidationException",
            "error_400_validation.json",
            ErrorClass::BadRequest,
        ),
        (
            403,
            "AccessDeniedException",
            "error_403_access_denied.json",
            ErrorClass::BadRequest,
        ),
        (
            404,
            "ResourceNotFoundException",
            "error_404_not_found.json",
            ErrorClass::BadRequest,
        ),
        (
            408,
            "ModelTimeoutException",
            "error_408_model_timeout.json",
            ErrorClass::Timeout,
        ),
        (
            503,
            "ServiceUnavailableException",
            "error_503_service_unavailable.json",
            ErrorClass::Upstream,
        ),
    ];
    for (status, kind, file, class) in cases {
        let body = fixture(file);
        let t = format!("{kind}{ns}");
        let headers = [("x-amzn-errortype", t.as_str()), ("retry-after", "3")];
        for stream in [false, true] {
            let e = expect_err(bedrock().parse(
                &chat(b"{}", stream, false),
                &response(status, &headers, &body),
            ));
            assert_eq!((e.class, e.status), (class, Some(status)), "{kind}");
            assert_eq!(e.code.as_deref(), Some(kind));
            let want = json_of(&body)["message"].as_str().unwrap().to_string();
            assert_eq!(e.message, want);
            let wait = (class == ErrorClass::RateLimited).then_some(3000);
            assert_eq!(e.retry_after_ms, wait, "{kind}");
        }
    }
}

#[test]
fn embeddings_replies() {
    let p = bedrock();
    let titan = call_with(
        Endpoint::Embeddings,
        "amazon.titan-embed-text-v2:0",
        br#"{"input":"hello"}"#,
        Credential::ApiKey(BEARER),
        false,
        false,
    );
    let r = p
        .parse(&titan, &response(200, &[], &fixture("embed_titan.json")))
        .unwrap();
    let v = json_of(&r.body);
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "amazon.titan-embed-text-v2:0");
    assert_eq!(
        v["data"],
        json!([{"object": "embedding", "index": 0, "embedding": [0.0123, -0.0456, 0.0789, 0.1]}])
    );
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 5,
            ..Usage::default()
        })
    );

    let body = br#"{"input":["hello","world"],"encoding_format":"base64"}"#;
    let cohere = call_with(
        Endpoint::Embeddings,
        "cohere.embed-english-v3",
        body,
        Credential::ApiKey(BEARER),
        false,
        false,
    );
    let headers = [("x-amzn-bedrock-input-token-count", "4")];
    let r = p
        .parse(
            &cohere,
            &response(200, &headers, &fixture("embed_cohere.json")),
        )
        .unwrap();
    let v = json_of(&r.body);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(
        v["data"][0]["embedding"],
        plugin_api::openai::embedding_base64(&[0.5, -0.25, 0.125])
    );
    assert_eq!(v["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    assert_eq!(r.usage.unwrap().input_tokens, 4);
    // Typed Cohere replies (`embedding_types`).
    let typed = br#"{"embeddings":{"float":[[1.5]]}}"#;
    let r = p.parse(&cohere, &response(200, &[], typed)).unwrap();
    assert_eq!(r.usage, None);
    let e = expect_err(p.parse(&cohere, &response(200, &[], br#"{"embeddings":[["x"]]}"#)));
    assert_eq!(e.class, ErrorClass::Upstream);
    let e = expect_err(p.parse(
        &cohere,
        &response(
            400,
            &[("x-amzn-errortype", "ValidationException")],
            br#"{"message":"bad"}"#,
        ),
    ));
    assert_eq!(
        (e.class, e.message.as_str()),
        (ErrorClass::BadRequest, "bad")
    );
}
