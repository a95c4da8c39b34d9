//! The stream decoder: Gemini SSE to OpenAI chunks, honest endings, any byte split.

use crate::common::*;
use aihub_gemini::GeminiStream;
use plugin_api::serde_json::{json, Value};
use plugin_api::testing::{assert_same_at_every_split, Clock, SplitCheck};
use plugin_api::*;

fn deltas(o: &Outcome) -> Vec<Value> {
    o.values()
        .iter()
        .map(|c| c["choices"][0]["delta"].clone())
        .collect()
}

#[test]
fn streaming_text() {
    let o = decode(false, &fixture("stream_text.sse"));
    assert_eq!(o.error, None);
    assert!(o.done);
    let chunks = o.values();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], "IZI2acSKMoWl0-kPmYj2yQc");
        assert_eq!(c["model"], "gemini-2.5-flash");
        assert_eq!(c["created"], chunks[0]["created"]);
        assert_eq!(c["choices"][0]["index"], 0);
    }
    assert_eq!(
        deltas(&o),
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Bonjour"}),
            json!({"content": " ! Comment puis-je vous aider aujourd'hui ? "}),
            json!({"content": "Ça va très bien — merci. 世界"}),
            json!({}),
        ]
    );
    let finish: Vec<Value> = chunks
        .iter()
        .map(|c| c["choices"][0]["finish_reason"].clone())
        .collect();
    assert_eq!(
        finish[..4],
        [Value::Null, Value::Null, Value::Null, Value::Null]
    );
    assert_eq!(finish[4], "stop");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        o.usage,
        Some(Usage {
            input_tokens: 8,
            output_tokens: 141,
            reasoning_tokens: 120,
            ..Usage::default()
        })
    );
}

#[test]
fn usage_chunk_only_when_asked() {
    let o = decode(true, &fixture("stream_text.sse"));
    assert!(o.done);
    let chunks = o.values();
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 141, "total_tokens": 149,
               "completion_tokens_details": {"reasoning_tokens": 120}})
    );
    assert_eq!(last["id"], "IZI2acSKMoWl0-kPmYj2yQc");
    assert_eq!(chunks.len(), 6);
}

#[test]
fn streaming_parallel_function_calls() {
    let o = decode(false, &fixture("stream_function_call.sse"));
    assert_eq!(o.error, None);
    assert!(o.done);
    let d = deltas(&o);
    assert_eq!(d[0], json!({"role": "assistant", "content": ""}));
    assert_eq!(d[1], json!({"content": "Let me check both."}));
    assert_eq!(
        d[2],
        json!({"tool_calls": [
            {"index": 0, "id": "call_0", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\":\"Tokyo\"}"},
             "extra_content": {"google": {"thought_signature": "CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbd"}}},
            {"index": 1, "id": "call_1", "type": "function",
             "function": {"name": "get_time", "arguments": "{\"timezone\":\"Asia/Tokyo\"}"}}
        ]})
    );
    assert_eq!(d[3], json!({}));
    assert_eq!(o.values()[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(o.values().len(), 4);
    assert_eq!(o.usage.map(|u| u.output_tokens), Some(118));
}

#[test]
fn tool_calls_keep_counting_across_events() {
    let ev = |name: &str, finish: &str| {
        format!(
            "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"functionCall\":{{\"name\":\"{name}\",\"args\":{{}}}}}}],\"role\":\"model\"}}{finish},\"index\":0}}]}}\n\n"
        )
    };
    let sse = ev("a", "") + &ev("b", ",\"finishReason\":\"STOP\"");
    let o = decode(false, sse.as_bytes());
    assert!(o.done);
    let d = deltas(&o);
    assert_eq!(d[1]["tool_calls"][0]["index"], 0);
    assert_eq!(d[1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(d[2]["tool_calls"][0]["index"], 1);
    assert_eq!(d[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(o.values()[3]["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn a_cut_stream_is_not_done_but_keeps_usage() {
    for include_usage in [false, true] {
        let o = decode(include_usage, &fixture("stream_cut.sse"));
        assert_eq!(o.error, None);
        assert!(!o.done);
        assert_eq!(
            o.text(),
            "Bonjour ! Comment puis-je vous aider aujourd'hui ? "
        );
        assert!(o.values().iter().all(|c| c.get("usage").is_none()));
        assert!(o
            .values()
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));
        assert_eq!(
            o.usage.map(|u| (u.input_tokens, u.output_tokens)),
            Some((8, 132))
        );
    }
}

#[test]
fn no_done_without_a_finish_reason_or_with_an_unterminated_event() {
    let whole = fixture("stream_text.sse");
    // Everything but the last event.
    let text = String::from_utf8(whole.clone()).unwrap();
    let upto = text.trim_end().rfind("data: ").unwrap();
    assert!(!decode(false, &whole[..upto]).done);
    // The last event without its closing blank line.
    let o = decode(false, text.trim_end().as_bytes());
    assert!(!o.done);
    assert_eq!(o.error, None);
    // An empty body.
    let o = decode(true, b"");
    assert!(!o.done && o.chunks.is_empty() && o.usage.is_none());
}

#[test]
fn an_error_event_ends_the_stream_with_a_classified_error() {
    let o = decode(false, &fixture("stream_error.sse"));
    assert!(!o.done);
    assert_eq!(o.text(), "Bonjour");
    let err = o.error.unwrap();
    assert_eq!(err.class, ErrorClass::Upstream);
    assert_eq!(
        err.message,
        "The model is overloaded. Please try again later."
    );
    assert_eq!(err.code.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(o.usage.map(|u| u.input_tokens), Some(8));

    let rate = b"data: {\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n";
    let err = decode(false, rate).error.unwrap();
    assert_eq!(err.class, ErrorClass::RateLimited);
}

#[test]
fn malformed_events_are_upstream_errors_not_panics() {
    let o = decode(false, &fixture("stream_malformed.sse"));
    assert!(!o.done);
    assert_eq!(o.text(), "Bonjour");
    let err = o.error.unwrap();
    assert_eq!(err.class, ErrorClass::Upstream);
    assert!(
        err.message.contains("malformed stream event"),
        "{}",
        err.message
    );

    for junk in [
        &b"data: 42\n\n"[..],
        b"data: [1,2]\n\n",
        b"data: \xff\xfe\n\n",
    ] {
        let o = decode(false, junk);
        assert_eq!(o.error.map(|e| e.class), Some(ErrorClass::Upstream));
    }
}

#[test]
fn a_blocked_prompt_in_a_stream_is_a_bad_request() {
    let o = decode(true, &fixture("stream_prompt_blocked.sse"));
    assert!(!o.done);
    let err = o.error.unwrap();
    assert_eq!(err.class, ErrorClass::BadRequest);
    assert!(
        err.message.contains("PROHIBITED_CONTENT"),
        "{}",
        err.message
    );
    assert_eq!(o.usage.map(|u| u.input_tokens), Some(11));
}

#[test]
fn several_candidates_must_all_finish() {
    let ev = |idx: u32, text: &str, finish: &str| {
        format!(
            "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"{text}\"}}],\"role\":\"model\"}}{finish},\"index\":{idx}}}]}}\r\n\r\n"
        )
    };
    let stop = ",\"finishReason\":\"STOP\"";
    let first_only = ev(0, "a", stop) + &ev(1, "b", "");
    assert!(!decode(false, first_only.as_bytes()).done);
    let both = first_only + &ev(1, "c", ",\"finishReason\":\"MAX_TOKENS\"");
    let o = decode(false, both.as_bytes());
    assert!(o.done);
    let last = o.values().last().unwrap().clone();
    assert_eq!(last["choices"][0]["index"], 1);
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert!(o.values()[0]["id"]
        .as_str()
        .unwrap()
        .starts_with("chatcmpl-gemini-"));
}

/// Every single split point, byte by byte, and random multi-way splits give what one
/// whole feed gives (without `created`: two decoders may straddle a second).
#[test]
fn any_split_yields_the_same_client_stream() {
    let check = SplitCheck {
        clock: Clock::Local,
        random_rounds: 200,
        ..SplitCheck::default()
    };
    for name in [
        "stream_text.sse",
        "stream_function_call.sse",
        "stream_cut.sse",
        "stream_error.sse",
        "stream_malformed.sse",
    ] {
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

#[test]
fn created_is_fixed_per_decoder() {
    let d = GeminiStream::new("gemini-2.5-flash", false);
    assert!(d.created() > 1_700_000_000);
}
