//! Calls in the Messages format itself: the body goes upstream byte for byte (only the
//! model changes), replies and streams pass through, usage is read as the translated
//! path reads it.

use crate::common::*;
use plugin_api::serde_json::json;
use plugin_api::testing::{assert_error, assert_same_at_every_split, response, SplitCheck};
use plugin_api::*;

/// A Messages-format call as the host makes it: prefix stripped from `model`, the
/// client's headers minus credentials.
fn native<'a>(body: &'a [u8], stream: bool, headers: &'a [(&'a str, &'a str)]) -> Call<'a> {
    Call {
        format: Format::AnthropicMessages,
        headers,
        ..chat(body, stream, false)
    }
}

const CLIENT_HEADERS: [(&str, &str); 4] = [
    ("user-agent", "Anthropic/Python 0.40.0"),
    ("x-stainless-os", "Linux"),
    ("content-type", "application/json"),
    ("anthropic-version", "2023-06-01"),
];

fn native_decoder() -> <aihub_anthropic::Anthropic as Plugin>::Decoder {
    anthropic()
        .stream(&native(b"{}", true, &[]))
        .expect("decoder")
}

fn decode_native(bytes: &[u8]) -> Outcome {
    plugin_api::testing::decode(native_decoder(), bytes)
}

#[test]
fn the_body_goes_upstream_byte_for_byte_but_the_model() {
    let body = fixture("native_request.json");
    let req = upstream(anthropic().prepare(&native(&body, false, &CLIENT_HEADERS)));
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
    let client = String::from_utf8(body.clone()).unwrap();
    let expected = client.replacen(
        r#""model": "anthropic/claude-sonnet-4-5""#,
        r#""model": "claude-sonnet-4-5""#,
        1,
    );
    assert_ne!(expected, client);
    assert_eq!(String::from_utf8(req.body.clone()).unwrap(), expected);

    // Nothing else of the client's goes upstream: only our own headers.
    let names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["content-type", "anthropic-version", "x-api-key"]);
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "x-api-key"), Some("sk-ant-test"));
    assert_eq!(header(&req, "anthropic-version"), Some("2023-06-01"));
}

#[test]
fn a_body_with_the_right_model_is_sent_as_it_is() {
    let body = b"{ \"max_tokens\":1024 ,\"model\" : \"claude-sonnet-4-5\", \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}], \"stream\": true }\n";
    let req = upstream(anthropic().prepare(&native(body, true, &[])));
    assert_eq!(req.body, body);
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));

    // No model at all: ours is added.
    let req = upstream(anthropic().prepare(&native(br#"{"messages":[]}"#, false, &[])));
    assert_eq!(json_of(&req.body)["model"], "claude-sonnet-4-5");
    // Two models: the upstream could read either, so only ours is left.
    let body = br#"{"model":"a","messages":[],"model":"b"}"#;
    let req = upstream(anthropic().prepare(&native(body, false, &[])));
    assert_eq!(req.body, br#"{"model":"claude-sonnet-4-5","messages":[]}"#);
}

#[test]
fn a_body_that_is_not_an_object_is_the_clients_error() {
    for body in [&b"[1]"[..], b"\"text\"", b"{\"model\":", b"", b"{} {}"] {
        let e = anthropic().prepare(&native(body, false, &[])).unwrap_err();
        assert_eq!(e.class, ErrorClass::BadRequest, "{body:?}");
    }
    let c = Call {
        endpoint: Endpoint::Embeddings,
        ..native(b"{}", false, &[])
    };
    assert_eq!(
        anthropic().prepare(&c).unwrap_err().class,
        ErrorClass::BadRequest
    );
    let c = Call {
        format: Format::OpenAiResponses,
        ..chat(b"{}", false, false)
    };
    assert_eq!(
        anthropic().prepare(&c).unwrap_err().class,
        ErrorClass::BadRequest
    );
}

#[test]
fn version_and_beta_headers_merge_the_clients_with_the_configured() {
    let p = provider_with(
        "https://gateway.example.com/anthropic/v1",
        json!({"anthropic_version": "2023-01-01", "beta": ["files-api-2025-04-14", "context-1m-2025-08-07"],
               "headers": {"x-team": "search"}}),
    );
    let body = br#"{"model":"x","messages":[]}"#;
    let headers = [
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "interleaved-thinking-2025-05-14,context-1m-2025-08-07",
        ),
        ("anthropic-beta", " extended-cache-ttl-2025-04-11 "),
        ("x-stainless-lang", "python"),
    ];
    let req = upstream(p.prepare(&native(body, true, &headers)));
    assert_eq!(req.url, "https://gateway.example.com/anthropic/v1/messages");
    assert_eq!(header(&req, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        header(&req, "anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,context-1m-2025-08-07,extended-cache-ttl-2025-04-11,files-api-2025-04-14")
    );
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));
    assert_eq!(header(&req, "x-team"), Some("search"));
    assert_eq!(header(&req, "x-stainless-lang"), None);

    // Without the client's: the configured ones.
    let req = upstream(p.prepare(&native(body, false, &[])));
    assert_eq!(header(&req, "anthropic-version"), Some("2023-01-01"));
    assert_eq!(
        header(&req, "anthropic-beta"),
        Some("files-api-2025-04-14,context-1m-2025-08-07")
    );
    assert_eq!(header(&req, "accept"), None);

    // Only the client's, and neither.
    let req = upstream(anthropic().prepare(&native(body, false, &[("anthropic-beta", "a-1")])));
    assert_eq!(header(&req, "anthropic-beta"), Some("a-1"));
    let req = upstream(anthropic().prepare(&native(body, false, &[("anthropic-version", " ")])));
    assert_eq!(header(&req, "anthropic-beta"), None);
    assert_eq!(header(&req, "anthropic-version"), Some("2023-06-01"));
}

fn parse_native(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, ProviderError> {
    anthropic().parse(&native(b"{}", false, &[]), &response(status, headers, body))
}

#[test]
fn whole_replies_pass_through_with_usage_counting_cache_as_input() {
    let reply = parse_native(200, &[], &fixture("message_cache.json")).unwrap();
    assert!(reply.pass_through);
    assert!(reply.body.is_empty());
    assert_eq!(
        reply.usage,
        Some(Usage {
            input_tokens: 21 + 10240 + 188,
            output_tokens: 16,
            cached_input_tokens: 10240,
            cache_write_tokens: 188,
            reasoning_tokens: 0,
        })
    );
    // The same usage the translated path reports for the same reply.
    let translated = anthropic()
        .parse(
            &chat(b"{}", false, false),
            &response(200, &[], &fixture("message_cache.json")),
        )
        .unwrap();
    assert_eq!(reply.usage, translated.usage);

    for name in [
        "message_text.json",
        "message_tool_use.json",
        "message_thinking.json",
        "message_tool_only.json",
    ] {
        let native = parse_native(200, &[], &fixture(name)).unwrap();
        let translated = anthropic()
            .parse(
                &chat(b"{}", false, false),
                &response(200, &[], &fixture(name)),
            )
            .unwrap();
        assert!(native.pass_through, "{name}");
        assert_eq!(native.usage, translated.usage, "{name}");
    }
}

#[test]
fn unreadable_replies_fail_as_on_the_translated_path() {
    for body in [
        fixture("message_malformed.json"),
        b"".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        br#"{"type":"message","content":"text"}"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        fixture("error_529.json"),
    ] {
        let native = parse_native(200, &[], &body).unwrap_err();
        let translated = anthropic()
            .parse(&chat(b"{}", false, false), &response(200, &[], &body))
            .unwrap_err();
        assert_eq!(native, translated, "{:?}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn errors_keep_the_upstream_status() {
    let e = parse_native(529, &[], &fixture("error_529.json")).unwrap_err();
    assert_error(&e, ErrorClass::Upstream, Some(529));
    assert_eq!(e.code.as_deref(), Some("overloaded_error"));
    assert_eq!(e.message, "Overloaded");

    let e = parse_native(429, &[("retry-after", "7")], &fixture("error_429.json")).unwrap_err();
    assert_error(&e, ErrorClass::RateLimited, Some(429));
    assert_eq!(e.retry_after_ms, Some(7_000));
    for status in [400, 401, 403, 404, 413, 500] {
        let e = parse_native(status, &[], &fixture(&format!("error_{status}.json"))).unwrap_err();
        let translated = anthropic()
            .parse(
                &chat(b"{}", false, false),
                &response(status, &[], &fixture(&format!("error_{status}.json"))),
            )
            .unwrap_err();
        assert_eq!(e, translated);
        assert_eq!(e.status, Some(status));
    }
    // An overload sent with a 2xx status is still the 529 it stands for.
    let e = parse_native(200, &[], &fixture("error_529.json")).unwrap_err();
    assert_error(&e, ErrorClass::Upstream, Some(529));
}

#[test]
fn streams_pass_through_reporting_usage_and_the_end() {
    assert!(native_decoder().pass_through());
    assert!(!decoder(true).pass_through());
    for name in ["stream_text.sse", "stream_tools.sse", "stream_thinking.sse"] {
        let sse = fixture(name);
        let o = assert_same_at_every_split(
            native_decoder,
            &sse,
            name,
            SplitCheck {
                clock: plugin_api::testing::Clock::Upstream,
                ..SplitCheck::default()
            },
        );
        assert!(o.chunks.is_empty(), "{name}: no chunks of its own");
        assert!(o.done, "{name}");
        assert_eq!(o.error, None, "{name}");
        // The usage the translated decoder reports for the same events.
        assert_eq!(o.usage, decode(false, &sse).usage, "{name}");
    }
    let o = decode_native(&fixture("stream_text.sse"));
    assert_eq!(
        o.usage,
        Some(Usage {
            input_tokens: 25 + 12 + 2048,
            output_tokens: 15,
            cached_input_tokens: 2048,
            cache_write_tokens: 12,
            reasoning_tokens: 0,
        })
    );
}

#[test]
fn usage_is_reported_as_it_arrives_and_a_cut_stream_is_not_done() {
    let text = String::from_utf8(fixture("stream_text.sse")).unwrap();
    // message_start alone: its usage (output 1 so far).
    let start_end = text.find("event: content_block_start").unwrap();
    let mut d = native_decoder();
    let mut out = StreamOutput::default();
    d.feed(&text.as_bytes()[..start_end], &mut out).unwrap();
    assert_eq!(
        out.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((2085, 1))
    );
    assert!(!out.done);

    // Cut before message_stop: message_delta's cumulative usage, no end.
    let cut = text.find("event: message_stop").unwrap();
    let o = decode_native(&text.as_bytes()[..cut]);
    assert!(!o.done);
    assert_eq!(o.error, None, "the host reports the cut");
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((2085, 15))
    );

    let o = decode_native(&fixture("stream_cut.sse"));
    assert!(!o.done);
    assert_eq!(o.error, None);

    // A last event without its blank line still ends the stream; CRLF reads the same.
    assert!(decode_native(text.trim_end().as_bytes()).done);
    let crlf = decode_native(text.replace('\n', "\r\n").as_bytes());
    assert_eq!(crlf.usage, decode_native(text.as_bytes()).usage);
    assert!(crlf.done);
}

#[test]
fn content_events_are_not_parsed() {
    // Broken content the client will see for itself; not ours to fail on.
    let sse = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_bl\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let o = decode_native(sse.as_bytes());
    assert!(o.done);
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((3, 2))
    );
    // An unreadable event that carries usage is an upstream error.
    let o = decode_native(b"event: message_delta\ndata: {\"usage\":\n\n");
    assert_eq!(o.error.map(|e| e.class), Some(ErrorClass::Upstream));
}

#[test]
fn an_error_event_mid_stream_is_a_classified_error() {
    let sse = fixture("stream_error.sse");
    let o = assert_same_at_every_split(
        native_decoder,
        &sse,
        "stream_error.sse",
        SplitCheck {
            clock: plugin_api::testing::Clock::Upstream,
            ..SplitCheck::default()
        },
    );
    assert!(!o.done);
    assert!(o.chunks.is_empty());
    let e = o.error.expect("error");
    assert_error(&e, ErrorClass::Upstream, Some(529));
    assert_eq!(e.code.as_deref(), Some("overloaded_error"));
    assert_eq!(e.message, "Overloaded");
    assert_eq!(o.usage.map(|u| u.input_tokens), Some(312));

    for (kind, class, status) in [
        ("overloaded_error", ErrorClass::Upstream, Some(529)),
        ("rate_limit_error", ErrorClass::RateLimited, None),
        ("api_error", ErrorClass::Upstream, None),
        ("authentication_error", ErrorClass::Auth, None),
        ("invalid_request_error", ErrorClass::BadRequest, None),
        ("something_new", ErrorClass::Upstream, None),
    ] {
        let sse = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":\"m-{kind}\"}}}}\n\n"
        );
        let native = decode_native(sse.as_bytes()).error.expect(kind);
        assert_error(&native, class, status);
        assert_eq!(native.code.as_deref(), Some(kind));
        // The translated decoder classifies it the same.
        assert_eq!(Some(native), decode(false, sse.as_bytes()).error);
    }

    // Nothing after the error or after message_stop is read.
    let mut sse = fixture("stream_text.sse");
    let whole = decode_native(&sse);
    sse.extend_from_slice(
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n\n",
    );
    assert_eq!(decode_native(&sse), whole);
}
