//! Calls in the Responses format: sent to `/responses` as they are (only `model`
//! changes), replies and streams passed through, usage and failures read.

use crate::common::*;
use plugin_api::serde_json::json;
use plugin_api::testing::{assert_error, assert_same_at_every_split, response, Clock, SplitCheck};
use plugin_api::*;

const BODY: &str = "{\n  \"model\": \"openai/gpt-5-mini\",\n  \"input\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_text\", \"text\": \"Tell me a story\"}]}],\n  \"reasoning\": {\"effort\": \"low\"},\n  \"max_output_tokens\": 1.0e3,\n  \"store\": false,\n  \"x_unknown\": [12345678901234567890123]\n}\n";

/// A Responses call as the host makes it: prefix stripped from `model`.
fn responses_call(body: &[u8], stream: bool) -> Call<'_> {
    Call {
        format: Format::OpenAiResponses,
        headers: &[("user-agent", "OpenAI/Python 1.99.0"), ("openai-beta", "x")],
        ..call(
            Endpoint::Chat,
            "gpt-5-mini",
            body,
            Some("sk-test"),
            stream,
            false,
        )
    }
}

fn decoder() -> <aihub_openai::OpenAi as Plugin>::Decoder {
    openai()
        .stream(&responses_call(b"{}", true))
        .expect("decoder")
}

fn decode_responses(bytes: &[u8]) -> Outcome {
    plugin_api::testing::decode(decoder(), bytes)
}

#[test]
fn the_body_goes_to_responses_as_sent_but_the_model() {
    let req = upstream(openai().prepare(&responses_call(BODY.as_bytes(), false)));
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.openai.com/v1/responses");
    assert_eq!(
        String::from_utf8(req.body.clone()).unwrap(),
        BODY.replacen("openai/gpt-5-mini", "gpt-5-mini", 1)
    );
    let names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["content-type", "authorization"]);
    assert_eq!(header(&req, "authorization"), Some("Bearer sk-test"));

    // Streamed: still the client's body; it asked for the stream itself.
    let body = br#"{"model":"gpt-5-mini","input":"hi","stream":true}"#;
    let req = upstream(openai().prepare(&responses_call(body, true)));
    assert_eq!(req.body, body);

    // The operator's headers and a static token win, as for chat.
    let p = provider(
        "openai",
        "https://proxy.example/v1/",
        json!({"headers": {"Authorization": "Bearer gw", "OpenAI-Project": "p1"}}),
    );
    let req = upstream(p.prepare(&responses_call(body, false)));
    assert_eq!(req.url, "https://proxy.example/v1/responses");
    assert_eq!(header(&req, "authorization"), Some("Bearer gw"));
    assert_eq!(header(&req, "openai-project"), Some("p1"));
}

#[test]
fn azure_serves_responses_on_its_v1_paths() {
    let p = provider(
        "openai",
        "https://my-res.openai.azure.com",
        json!({"flavor": "azure", "deployments": {"gpt-5-mini": "mini-prod"}}),
    );
    let req = upstream(p.prepare(&responses_call(BODY.as_bytes(), false)));
    assert_eq!(
        req.url,
        "https://my-res.openai.azure.com/openai/v1/responses"
    );
    assert_eq!(json_of(&req.body)["model"], "mini-prod");
    assert_eq!(header(&req, "api-key"), Some("sk-test"));
    assert_eq!(header(&req, "authorization"), None);
}

#[test]
fn bodies_and_calls_that_cannot_be_responses_are_refused() {
    for body in [&b"[]"[..], b"", b"{\"model\":"] {
        let e = openai().prepare(&responses_call(body, false)).unwrap_err();
        assert_eq!(e.class, ErrorClass::BadRequest, "{body:?}");
    }
    for endpoint in [Endpoint::Embeddings, Endpoint::Images] {
        let c = Call {
            endpoint,
            ..responses_call(br#"{"input":"x"}"#, false)
        };
        assert_eq!(
            openai().prepare(&c).unwrap_err().class,
            ErrorClass::BadRequest
        );
    }
    let c = Call {
        format: Format::AnthropicMessages,
        ..chat(br#"{"messages":[]}"#, false, false)
    };
    assert_eq!(
        openai().prepare(&c).unwrap_err().class,
        ErrorClass::BadRequest
    );
}

fn parse(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply, ProviderError> {
    openai().parse(
        &responses_call(b"{}", false),
        &response(status, headers, body),
    )
}

#[test]
fn replies_pass_through_with_their_usage() {
    let reply = parse(200, &[], &fixture("responses.json")).unwrap();
    assert!(reply.pass_through);
    assert!(reply.body.is_empty());
    // Cached tokens are part of input_tokens, as chat's prompt_tokens.
    assert_eq!(
        reply.usage,
        Some(Usage {
            input_tokens: 2036,
            output_tokens: 164,
            cached_input_tokens: 1920,
            cache_write_tokens: 0,
            reasoning_tokens: 128,
        })
    );
    let reply = parse(
        200,
        &[],
        br#"{"object":"response","status":"in_progress","error":null}"#,
    )
    .unwrap();
    assert_eq!(reply.usage, None);
}

#[test]
fn failures_are_classified() {
    let e = parse(
        429,
        &[("retry-after-ms", "2060")],
        &fixture("error_429.json"),
    )
    .unwrap_err();
    assert_error(&e, ErrorClass::RateLimited, Some(429));
    assert_eq!(e.retry_after_ms, Some(2060));
    assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
    for (status, class) in [
        (400, ErrorClass::BadRequest),
        (401, ErrorClass::Auth),
        (500, ErrorClass::Upstream),
        (503, ErrorClass::Upstream),
    ] {
        let e = parse(status, &[], &fixture(&format!("error_{status}.json"))).unwrap_err();
        assert_error(&e, class, Some(status));
    }
    // A failed response sent whole.
    let failed = br#"{"id":"resp_1","object":"response","status":"failed","error":{"code":"server_error","message":"The server had an error."},"output":[],"usage":null}"#;
    let e = parse(200, &[], failed).unwrap_err();
    assert_error(&e, ErrorClass::Upstream, None);
    assert_eq!(e.code.as_deref(), Some("server_error"));
    for body in [&b""[..], b"[]", b"{\"usage\":", b"<html>502</html>"] {
        let e = parse(200, &[], body).unwrap_err();
        assert_eq!(e.class, ErrorClass::Upstream, "{body:?}");
    }
}

fn every_split(sse: &[u8], name: &str) -> Outcome {
    assert_same_at_every_split(
        decoder,
        sse,
        name,
        SplitCheck {
            clock: Clock::Upstream,
            ..SplitCheck::default()
        },
    )
}

#[test]
fn streams_pass_through_and_end_at_completed() {
    assert!(decoder().pass_through());
    let o = every_split(&fixture("responses_stream.sse"), "responses_stream.sse");
    assert!(o.done);
    assert_eq!(o.error, None);
    assert!(o.chunks.is_empty());
    assert_eq!(
        o.usage,
        Some(Usage {
            input_tokens: 1337,
            output_tokens: 75,
            cached_input_tokens: 1024,
            cache_write_tokens: 0,
            reasoning_tokens: 64,
        })
    );

    // Cut before the end: no usage yet, not done, the host reports the cut.
    let text = String::from_utf8(fixture("responses_stream.sse")).unwrap();
    let cut = text.find("event: response.completed").unwrap();
    let o = decode_responses(&text.as_bytes()[..cut]);
    assert!(!o.done);
    assert_eq!((o.usage, o.error), (None, None));
    // Cut inside the last event, with or without its name line.
    let o = decode_responses(&text.as_bytes()[..text.len() - 40]);
    assert!(!o.done);
    assert_eq!(o.error, None);
    // The last event without its blank line, and CRLF, still end it.
    assert!(decode_responses(text.trim_end().as_bytes()).done);
    assert_eq!(
        decode_responses(text.replace('\n', "\r\n").as_bytes()),
        decode_responses(text.as_bytes())
    );
}

#[test]
fn an_incomplete_response_is_a_proper_end() {
    let sse = concat!(
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Once\"}\n\n",
        "event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"usage\":{\"input_tokens\":9,\"output_tokens\":16,\"total_tokens\":25}}}\n\n",
    );
    let o = every_split(sse.as_bytes(), "incomplete");
    assert!(o.done);
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((9, 16))
    );
    // Data without event names (some compatible servers) reads the same.
    let unnamed: String = sse
        .lines()
        .filter(|l| !l.starts_with("event:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(decode_responses(unnamed.as_bytes()), o);
}

#[test]
fn failed_responses_and_error_events_end_the_stream_with_an_error() {
    let o = every_split(
        &fixture("responses_stream_failed.sse"),
        "responses_stream_failed.sse",
    );
    assert!(!o.done);
    let e = o.error.clone().expect("error");
    assert_error(&e, ErrorClass::Upstream, None);
    assert_eq!(e.code.as_deref(), Some("server_error"));
    assert!(e.message.starts_with("The model produced invalid content"));
    // The tokens the failed response used are still recorded.
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((42, 3))
    );

    let cases: [(&str, ErrorClass); 4] = [
        (
            r#"{"type":"error","code":"rate_limit_exceeded","message":"Slow down. Please try again in 1.5s.","param":null,"sequence_number":3}"#,
            ErrorClass::RateLimited,
        ),
        (
            r#"{"type":"error","code":"invalid_prompt","message":"Invalid prompt.","param":null}"#,
            ErrorClass::BadRequest,
        ),
        (
            r#"{"type":"error","error":{"type":"server_error","code":"server_error","message":"boom"}}"#,
            ErrorClass::Upstream,
        ),
        (r#"{"type":"error"}"#, ErrorClass::Upstream),
    ];
    for (data, class) in cases {
        let sse = format!("event: error\ndata: {data}\n\n");
        let o = decode_responses(sse.as_bytes());
        let e = o.error.expect(data);
        assert_error(&e, class, None);
        assert!(!o.done);
    }
    let e = decode_responses(b"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"Please try again in 1.5s.\"}\n\n")
        .error
        .unwrap();
    assert_eq!(e.retry_after_ms, Some(1500));

    let no_error = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":null}}\n\n";
    let e = decode_responses(no_error.as_bytes()).error.expect("error");
    assert_error(&e, ErrorClass::Upstream, None);
}

#[test]
fn only_the_events_that_matter_are_parsed() {
    let sse = concat!(
        "event: response.output_text.delta\ndata: {\"type\":\"response.outp\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"message\":\"after the end\"}\n\n",
    );
    let o = decode_responses(sse.as_bytes());
    assert!(o.done);
    assert_eq!(o.error, None);
    let o = decode_responses(b"event: response.completed\ndata: {\"response\":\n\n");
    assert_eq!(o.error.map(|e| e.class), Some(ErrorClass::Upstream));
    // A JSON error answered instead of a stream is explained, as for chat.
    let o = decode_responses(&fixture("error_429.json"));
    assert_eq!(o.error.map(|e| e.class), Some(ErrorClass::RateLimited));
}
