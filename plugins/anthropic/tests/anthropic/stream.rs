//! Streams: Anthropic's event sequence becomes OpenAI chunks; only `message_stop` ends a
//! stream cleanly; usage is kept whatever happens; any split of the bytes gives the same.

use crate::common::*;
use plugin_api::serde_json::{self, json, Value};
use plugin_api::testing::{assert_same_at_every_split, Clock, SplitCheck};
use plugin_api::*;

const FIXTURES: [&str; 5] = [
    "stream_text.sse",
    "stream_tools.sse",
    "stream_thinking.sse",
    "stream_error.sse",
    "stream_cut.sse",
];

fn assert_chunk_shape(o: &Outcome, id: &str, model: &str) {
    for c in &o.chunks {
        let v = json_of(c);
        assert_eq!(v["id"], id);
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["model"], model);
        assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
        let choices = v["choices"].as_array().unwrap();
        if v.get("usage").is_some() {
            assert!(choices.is_empty());
        } else {
            assert_eq!(choices.len(), 1, "{v}");
            assert_eq!(choices[0]["index"], 0);
            assert!(choices[0]["delta"].is_object());
            assert!(choices[0].get("finish_reason").is_some(), "{v}");
        }
    }
}

#[test]
fn text_stream() {
    let o = decode(false, &fixture("stream_text.sse"));
    assert_eq!(o.error, None);
    assert!(o.done);
    assert_chunk_shape(&o, "msg_01StreamText8Kq", "claude-sonnet-4-5-20250929");
    let v = o.values_without_created();
    assert_eq!(
        v[0]["choices"][0],
        json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null})
    );
    assert_eq!(o.text(), "Héllo, 世界! 👋 How can I help?");
    assert_eq!(v.len(), 5, "{v:#?}");
    assert_eq!(
        v[4]["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "stop"})
    );
    assert_eq!(o.finish_reasons(), vec!["stop"]);
    assert!(o.values().iter().all(|c| c.get("usage").is_none()));
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
fn usage_chunk_only_when_asked() {
    let o = decode(true, &fixture("stream_text.sse"));
    assert!(o.done);
    let v = o.values_without_created();
    let last = v.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 2085, "completion_tokens": 15, "total_tokens": 2100,
               "prompt_tokens_details": {"cached_tokens": 2048}})
    );
    assert_eq!(
        o.values()
            .iter()
            .filter(|c| c.get("usage").is_some())
            .count(),
        1
    );
    // Same stream otherwise.
    let without = decode(false, &fixture("stream_text.sse")).values_without_created();
    assert_eq!(&v[..v.len() - 1], &without[..]);
}

#[test]
fn parallel_tool_calls_stream() {
    let o = decode(false, &fixture("stream_tools.sse"));
    assert_eq!(o.error, None);
    assert!(o.done);
    assert_chunk_shape(
        &o,
        "msg_014p7gG3wDgGV9EUtLvnow3U",
        "claude-sonnet-4-5-20250929",
    );
    assert_eq!(o.text(), "Okay, let me check both cities.");
    assert_eq!(o.finish_reasons(), vec!["tool_calls"]);

    let deltas: Vec<Value> = o
        .values_without_created()
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls").cloned())
        .flat_map(|t| t.as_array().unwrap().clone())
        .collect();
    // Headers carry id, type and name with empty arguments, once per tool.
    let headers: Vec<&Value> = deltas.iter().filter(|d| d.get("id").is_some()).collect();
    assert_eq!(
        headers,
        vec![
            &json!({"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}),
            &json!({"index": 1, "id": "toolu_01UkvSfJ9TVgJsjBaCnEiWDn", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}),
        ]
    );
    for (k, expected) in [
        (0, json!({"location": "Paris, France", "unit": "celsius"})),
        (1, json!({"location": "Rome, Italy", "unit": "celsius"})),
    ] {
        let args: String = deltas
            .iter()
            .filter(|d| d["index"] == k)
            .filter_map(|d| d["function"]["arguments"].as_str())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), expected);
    }
    // No empty argument fragments beyond the headers.
    assert!(deltas
        .iter()
        .filter(|d| d.get("id").is_none())
        .all(|d| d["function"]["arguments"] != ""));
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((472, 89))
    );
}

#[test]
fn thinking_stream() {
    let o = decode(false, &fixture("stream_thinking.sse"));
    assert!(o.done);
    let reasoning: String = o
        .values_without_created()
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["reasoning_content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(reasoning, "27 * 400 = 10800; 27 * 53 = 1431; total 12231.");
    assert_eq!(o.text(), "27 * 453 = 12231");
    assert!(!o
        .chunks
        .iter()
        .any(|c| String::from_utf8_lossy(c).contains("signature")));
}

#[test]
fn error_event_ends_the_stream_with_a_classified_error() {
    let o = decode(true, &fixture("stream_error.sse"));
    assert!(!o.done);
    let e = o.error.clone().expect("error");
    assert_eq!(e.class, ErrorClass::Upstream);
    assert_eq!(e.code.as_deref(), Some("overloaded_error"));
    assert_eq!(e.message, "Overloaded");
    // What came before the error is kept, usage too; no usage chunk, no finish.
    assert_eq!(o.text(), "Once upon a");
    assert!(o.finish_reasons().is_empty());
    assert!(o.values().iter().all(|c| c.get("usage").is_none()));
    assert_eq!(o.usage.map(|u| u.input_tokens), Some(312));
}

#[test]
fn error_event_types_map_to_classes() {
    for (kind, class) in [
        ("overloaded_error", ErrorClass::Upstream),
        ("api_error", ErrorClass::Upstream),
        ("rate_limit_error", ErrorClass::RateLimited),
        ("authentication_error", ErrorClass::Auth),
        ("permission_error", ErrorClass::Auth),
        ("invalid_request_error", ErrorClass::BadRequest),
        ("request_too_large", ErrorClass::BadRequest),
        ("something_new", ErrorClass::Upstream),
    ] {
        let sse = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":\"m-{kind}\"}}}}\n\n"
        );
        let o = decode(false, sse.as_bytes());
        let e = o.error.expect(kind);
        assert_eq!(
            (e.class, e.message.as_str()),
            (class, format!("m-{kind}").as_str())
        );
        assert_eq!(e.code.as_deref(), Some(kind));
        assert!(!o.done);
    }
}

#[test]
fn stream_cut_mid_event_is_not_done_and_keeps_usage() {
    let o = decode(true, &fixture("stream_cut.sse"));
    assert!(!o.done);
    assert_eq!(o.error, None, "the host reports the cut");
    assert_eq!(o.text(), "Héllo, 世界! 👋");
    assert!(o.finish_reasons().is_empty());
    assert!(o.values().iter().all(|c| c.get("usage").is_none()));
    let u = o.usage.expect("usage from message_start");
    assert_eq!(
        (u.input_tokens, u.cached_input_tokens, u.output_tokens),
        (2085, 2048, 1)
    );
}

#[test]
fn stream_cut_before_message_stop_is_not_done() {
    let sse = fixture("stream_text.sse");
    let text = String::from_utf8(sse).unwrap();
    let cut = text.find("event: message_stop").unwrap();
    let o = decode(true, &text.as_bytes()[..cut]);
    assert!(!o.done);
    assert_eq!(o.finish_reasons(), vec!["stop"]);
    assert!(o.values().iter().all(|c| c.get("usage").is_none()));
    assert_eq!(o.usage.map(|u| u.output_tokens), Some(15));
}

#[test]
fn last_event_without_blank_line_and_crlf_still_count() {
    let text = String::from_utf8(fixture("stream_text.sse")).unwrap();
    let whole = decode(true, text.as_bytes()).normalized();

    let unterminated = text.trim_end();
    assert!(unterminated.ends_with("{\"type\":\"message_stop\"}"));
    assert_eq!(decode(true, unterminated.as_bytes()).normalized(), whole);

    let crlf = text.replace('\n', "\r\n");
    assert_eq!(decode(true, crlf.as_bytes()).normalized(), whole);
}

#[test]
fn bytes_after_message_stop_are_ignored() {
    let mut sse = fixture("stream_text.sse");
    let whole = decode(false, &sse).normalized();
    sse.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\ndata: garbage\n\n");
    assert_eq!(decode(false, &sse).normalized(), whole);
}

#[test]
fn unreadable_event_is_an_upstream_error() {
    let mut sse = fixture("stream_text.sse");
    let at = String::from_utf8_lossy(&sse).find("event: ping").unwrap();
    sse.splice(
        at..at,
        b"event: content_block_delta\ndata: {\"type\":\"content_bl\n\n"
            .iter()
            .copied(),
    );
    let o = decode(false, &sse);
    let e = o.error.expect("error");
    assert_eq!(e.class, ErrorClass::Upstream);
    assert!(
        e.message.contains("unreadable stream event"),
        "{}",
        e.message
    );
    assert!(!o.done);
    assert_eq!(o.usage.map(|u| u.input_tokens), Some(2085));
}

#[test]
fn stream_without_message_start_still_opens_with_the_role() {
    let sse = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let o = decode(false, sse);
    assert!(o.done);
    let v = o.values_without_created();
    assert_eq!(v[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(v[0]["model"], MODEL);
    assert_eq!(o.text(), "hi");
}

/// Every single split, byte by byte, and 300 random multi-way splits give what one whole
/// feed gives, with and without a usage chunk asked for.
#[test]
fn any_split_gives_the_same_stream() {
    let check = SplitCheck {
        clock: Clock::Local,
        random_rounds: 300,
        ..SplitCheck::default()
    };
    for name in FIXTURES {
        let bytes = fixture(name);
        for include_usage in [false, true] {
            assert_same_at_every_split(
                || decoder(include_usage),
                &bytes,
                &format!("{name} (include_usage {include_usage})"),
                check,
            );
        }
    }
}
