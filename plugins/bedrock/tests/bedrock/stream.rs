//! converse-stream bodies (`tests/fixtures/streams/`, written by its make.py) decoded
//! into OpenAI chunks.

use crate::common::*;
use aihub_bedrock::eventstream::{self, encode, HeaderValue};
use plugin_api::testing::{assert_same_at_every_split, Clock, SplitCheck};
use plugin_api::*;

const ALL: [&str; 8] = [
    "stream_text.bin",
    "stream_tool_use.bin",
    "stream_reasoning.bin",
    "stream_cut.bin",
    "stream_no_metadata.bin",
    "stream_throttling.bin",
    "stream_validation.bin",
    "stream_model_error.bin",
];

#[test]
fn text_streams_into_chunks() {
    let bytes = stream_fixture("stream_text.bin");
    for include_usage in [false, true] {
        let o = decode(include_usage, &bytes);
        assert_eq!(o.error, None);
        assert!(o.done);
        assert_eq!(o.text(), "Bonjour ! Ça va très bien — merci. 世界");
        assert_eq!(o.finish_reasons(), vec!["stop"]);
        let u = Usage {
            input_tokens: 12,
            output_tokens: 9,
            ..Usage::default()
        };
        assert_eq!(o.usage, Some(u));
        let v = o.values();
        assert_eq!(
            v[0]["choices"][0]["delta"],
            plugin_api::serde_json::json!({"role": "assistant", "content": ""})
        );
        assert_eq!(v[0]["object"], "chat.completion.chunk");
        assert_eq!(v[0]["model"], MODEL);
        let ids: Vec<_> = v.iter().map(|c| c["id"].clone()).collect();
        assert!(ids.iter().all(|i| *i == ids[0]), "one id: {ids:?}");
        let usage_chunks = o.usage_chunks();
        if include_usage {
            assert_eq!(usage_chunks.len(), 1);
            assert_eq!(v.last().unwrap(), &usage_chunks[0]);
            assert_eq!(usage_chunks[0]["usage"]["total_tokens"], 21);
        } else {
            assert!(usage_chunks.is_empty());
        }
    }
}

#[test]
fn tool_calls_stream_with_their_ids_and_input() {
    let o = decode(true, &stream_fixture("stream_tool_use.bin"));
    assert_eq!(o.error, None);
    assert!(o.done);
    assert_eq!(o.text(), "Let me check.");
    assert_eq!(o.finish_reasons(), vec!["tool_calls"]);
    let mut calls: Vec<(String, String, String)> = vec![Default::default(); 2];
    for c in o.values() {
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.into();
                calls[i].1 = tc["function"]["name"].as_str().unwrap().into();
                assert_eq!(tc["type"], "function");
            }
            calls[i].2 += tc["function"]["arguments"].as_str().unwrap();
        }
    }
    assert_eq!(
        calls,
        vec![
            (
                "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
                "get_weather".into(),
                "{\"city\": \"Paris\"}".into()
            ),
            (
                "tooluse_2".into(),
                "get_time".into(),
                "{\"tz\":\"CET\"}".into()
            ),
        ]
    );
    // Cache reads and writes are input, as the Usage convention has it.
    let u = o.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.cache_write_tokens
        ),
        (1220, 51, 1100, 100)
    );
    let last = o.values().pop().unwrap();
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"],
        1100
    );
}

#[test]
fn reasoning_streams_apart_from_the_answer() {
    let o = decode(false, &stream_fixture("stream_reasoning.bin"));
    assert!(o.done && o.error.is_none());
    assert_eq!(o.text(), "Hello!");
    let reasoning: String = o
        .values()
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["reasoning_content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(reasoning, "The user greets me.");
    assert_eq!(o.finish_reasons(), vec!["length"]);
}

#[test]
fn a_stream_cut_before_message_stop_is_not_done() {
    for include_usage in [false, true] {
        let o = decode(include_usage, &stream_fixture("stream_cut.bin"));
        assert!(!o.done && o.error.is_none(), "{o:?}");
        assert_eq!(o.text(), "Bonjour ! Ça va très bien — merci. 世界");
        assert!(o.finish_reasons().is_empty());
    }
    // Cut inside a message, even after messageStop: not done either.
    let bytes = stream_fixture("stream_text.bin");
    let o = decode(false, &bytes[..bytes.len() - 3]);
    assert!(!o.done, "{o:?}");
    assert_eq!(o.finish_reasons(), vec!["stop"]);
}

#[test]
fn message_stop_then_end_is_done_with_usage_unknown() {
    let o = decode(false, &stream_fixture("stream_no_metadata.bin"));
    assert!(o.done && o.error.is_none());
    assert_eq!(o.usage, None);
    let o = decode(true, &stream_fixture("stream_no_metadata.bin"));
    assert!(o.done);
    let u = o.usage_chunks();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0]["usage"]["prompt_tokens"], 0);
}

#[test]
fn exceptions_end_the_stream_classified() {
    let o = decode(false, &stream_fixture("stream_throttling.bin"));
    let e = o.error.clone().unwrap();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(
        e.message,
        "Too many tokens, please wait before trying again."
    );
    assert_eq!(e.code.as_deref(), Some("throttlingException"));
    // What came before is kept.
    assert_eq!(o.text(), "Bonjour");
    assert!(!o.done);

    let o = decode(false, &stream_fixture("stream_validation.bin"));
    assert_eq!(o.error.unwrap().class, ErrorClass::BadRequest);
    assert!(o.chunks.is_empty());
    let o = decode(false, &stream_fixture("stream_model_error.bin"));
    assert_eq!(o.error.unwrap().class, ErrorClass::Upstream);

    // `:message-type error` carries its code and message in headers.
    let frame = encode(
        &[
            (":message-type", HeaderValue::String("error".into())),
            (":error-code", HeaderValue::String("InternalFailure".into())),
            (
                ":error-message",
                HeaderValue::String("An internal error occurred".into()),
            ),
        ],
        b"",
    );
    let e = decode(false, &frame).error.unwrap();
    assert_eq!(
        (e.class, e.message.as_str()),
        (ErrorClass::Upstream, "An internal error occurred")
    );
}

#[test]
fn corrupt_frames_fail_cleanly_after_what_came_before() {
    let bytes = stream_fixture("stream_text.bin");
    // The offset of the third message: two whole ones before it.
    let len = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let third = len(0) + len(len(0));
    for (flip, says) in [
        (third + 1, "prelude checksum"),
        (third + len(third) - 8, "message checksum"),
    ] {
        let mut bad = bytes.clone();
        bad[flip] ^= 0x20;
        let o = decode(false, &bad);
        let e = o.error.clone().unwrap_or_else(|| panic!("{o:?}"));
        assert_eq!((e.class, e.status), (ErrorClass::Upstream, None));
        assert!(e.message.contains(says), "{e}");
        assert_eq!(
            o.text(),
            "Bonjour",
            "the messages before the corrupt one are told"
        );
        assert!(!o.done);
        assert_same_at_every_split(|| decoder(false), &bad, says, check());
    }
    // A payload that is not JSON, in a well-framed message.
    let e = decode(false, &eventstream::event("contentBlockDelta", b"{oops"))
        .error
        .unwrap();
    assert_eq!(e.class, ErrorClass::Upstream);
    assert!(e.message.contains("contentBlockDelta"), "{e}");
    // Tool input for a block that never started.
    let frame = eventstream::event(
        "contentBlockDelta",
        br#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":"{}"}}}"#,
    );
    assert_eq!(
        decode(false, &frame).error.unwrap().class,
        ErrorClass::Upstream
    );
}

#[test]
fn unknown_events_are_skipped_and_a_missing_start_still_opens_the_message() {
    let mut bytes = eventstream::event("somethingNew", b"not even json");
    bytes.extend(eventstream::event(
        "contentBlockDelta",
        br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#,
    ));
    bytes.extend(eventstream::event(
        "messageStop",
        br#"{"stopReason":"end_turn"}"#,
    ));
    bytes.extend(eventstream::event(
        "metadata",
        br#"{"usage":{"inputTokens":1,"outputTokens":1}}"#,
    ));
    // Anything after the end is ignored.
    bytes.extend(eventstream::event(
        "contentBlockDelta",
        br#"{"contentBlockIndex":0,"delta":{"text":"late"}}"#,
    ));
    let o = decode(false, &bytes);
    assert!(o.done && o.error.is_none());
    assert_eq!(o.text(), "hi");
    assert_eq!(o.values()[0]["choices"][0]["delta"]["role"], "assistant");
}

fn check() -> SplitCheck {
    SplitCheck {
        clock: Clock::LocalWithIds,
        random_rounds: 100,
        ..SplitCheck::default()
    }
}

#[test]
fn every_stream_decodes_the_same_however_split() {
    for name in ALL {
        let bytes = stream_fixture(name);
        for include_usage in [false, true] {
            assert_same_at_every_split(|| decoder(include_usage), &bytes, name, check());
        }
    }
    // Every pair of split points on a small stream.
    let small = stream_fixture("stream_validation.bin");
    let pairs = SplitCheck {
        pairs_up_to: 512,
        ..check()
    };
    assert_same_at_every_split(|| decoder(true), &small, "pairs", pairs);
}
