//! The Doubao (Volcengine Ark) and Poe prefixes: their URLs, auth, and the body
//! differences the plugin handles for them.

use crate::common::*;
use plugin_api::serde_json::{json, Value};
use plugin_api::testing::response;
use plugin_api::*;

const ARK: &str = "https://ark.cn-beijing.volces.com/api/v3";
const POE: &str = "https://api.poe.com/v1";

fn doubao() -> aihub_openai::OpenAi {
    provider("doubao", ARK, Value::Null)
}

fn poe() -> aihub_openai::OpenAi {
    provider("poe", POE, Value::Null)
}

fn chat_to<'a>(model: &'a str, body: &'a [u8], stream: bool) -> Call<'a> {
    call(
        Endpoint::Chat,
        model,
        body,
        Some("ark-or-poe-key"),
        stream,
        false,
    )
}

#[test]
fn doubao_takes_model_ids_and_endpoint_ids_with_thinking_untouched() {
    let body = br#"{"model":"doubao/ep-20250615123456-abcde","messages":[{"role":"user","content":"hi"}],"thinking":{"type":"disabled"},"max_completion_tokens":512}"#;
    for model in ["ep-20250615123456-abcde", "doubao-seed-1-6-250615"] {
        let req = upstream(doubao().prepare(&chat_to(model, body, false)));
        assert_eq!(req.url, format!("{ARK}/chat/completions"));
        assert_eq!(header(&req, "authorization"), Some("Bearer ark-or-poe-key"));
        let text = String::from_utf8(req.body).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}],"thinking":{{"type":"disabled"}},"max_completion_tokens":512}}"#
            )
        );
    }
}

#[test]
fn doubao_streams_ask_for_usage_and_read_cached_and_reasoning_tokens() {
    let body = br#"{"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled"}}"#;
    let sent =
        json_of(&upstream(doubao().prepare(&chat_to("doubao-seed-1-6-250615", body, true))).body);
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent["thinking"], json!({"type": "enabled"}));

    let want = Usage {
        input_tokens: 40,
        output_tokens: 12,
        cached_input_tokens: 32,
        cache_write_tokens: 0,
        reasoning_tokens: 9,
    };
    let sse = fixture("doubao_stream_usage.sse");
    for include_usage in [false, true] {
        let o = decode(&doubao(), include_usage, &sse);
        assert!(o.done && o.error.is_none(), "{o:?}");
        assert_eq!(o.text(), "Paris.");
        assert_eq!(o.usage, Some(want), "recorded either way");
        assert_eq!(o.usage_chunks().len(), usize::from(include_usage));
        // Ark's reasoning deltas reach the client as they came.
        assert_eq!(
            o.values()[0]["choices"][0]["delta"]["reasoning_content"],
            "Capital of France"
        );
    }
}

#[test]
fn doubao_whole_reply_passes_through_with_detailed_usage() {
    let body = fixture("doubao_chat_thinking.json");
    let c = chat_to("doubao-seed-1-6-250615", br#"{"messages":[]}"#, false);
    let reply = doubao().parse(&c, &response(200, &[], &body)).unwrap();
    assert!(reply.pass_through);
    assert_eq!(
        reply.usage,
        Some(Usage {
            input_tokens: 1824,
            output_tokens: 96,
            cached_input_tokens: 1536,
            cache_write_tokens: 0,
            reasoning_tokens: 81,
        })
    );
}

#[test]
fn doubao_errors_are_classified() {
    let c = chat_to("ep-x", br#"{"messages":[]}"#, false);
    let body = br#"{"error":{"code":"AuthenticationError","message":"The API key in the request is missing or invalid.","param":"","type":"Unauthorized"}}"#;
    let e = doubao().parse(&c, &response(401, &[], body)).unwrap_err();
    assert_eq!((e.class, e.status), (ErrorClass::Auth, Some(401)));
    assert!(e.message.contains("missing or invalid"), "{e}");
    let body = br#"{"error":{"code":"InvalidEndpointOrModel.NotFound","message":"The model or endpoint ep-x does not exist or you do not have access to it.","param":"","type":"NotFound"}}"#;
    let e = doubao().parse(&c, &response(404, &[], body)).unwrap_err();
    assert_eq!(e.class, ErrorClass::BadRequest);
    assert_eq!(e.code.as_deref(), Some("InvalidEndpointOrModel.NotFound"));
}

#[test]
fn poe_addresses_bots_by_name_with_bearer_auth() {
    let body = br#"{"model":"poe/Claude-Sonnet-4","messages":[{"role":"user","content":"hi"}],"n":1,"temperature":0.5}"#;
    let req = upstream(poe().prepare(&chat_to("Claude-Sonnet-4", body, false)));
    assert_eq!(req.url, "https://api.poe.com/v1/chat/completions");
    assert_eq!(header(&req, "authorization"), Some("Bearer ark-or-poe-key"));
    assert_eq!(
        String::from_utf8(req.body).unwrap(),
        r#"{"model":"Claude-Sonnet-4","messages":[{"role":"user","content":"hi"}],"n":1,"temperature":0.5}"#
    );
    // Streams ask for usage as elsewhere.
    let sent = json_of(&upstream(poe().prepare(&chat_to("GPT-4o", body, true))).body);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[test]
fn poe_refuses_more_than_one_choice_before_sending() {
    for n in ["2", "5", "1.5"] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"hi"}}],"n":{n}}}"#);
        let e = poe()
            .prepare(&chat_to("GPT-4o", body.as_bytes(), false))
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::BadRequest, "{n}");
        assert!(e.message.contains("'n' must be 1"), "{e}");
        assert_eq!(e.code.as_deref(), Some("unsupported_parameter"));
    }
    let body = br#"{"messages":[],"n":"two"}"#;
    let e = poe().prepare(&chat_to("GPT-4o", body, false)).unwrap_err();
    assert_eq!(e.class, ErrorClass::BadRequest);
    for ok in [
        &br#"{"messages":[],"n":null}"#[..],
        br#"{"messages":[],"n":1}"#,
        br#"{"messages":[]}"#,
    ] {
        assert!(poe().prepare(&chat_to("GPT-4o", ok, false)).is_ok());
    }
    // Other providers keep `n` as the client sent it; Poe's check can be switched off.
    let body = br#"{"messages":[],"n":3}"#;
    assert!(doubao().prepare(&chat_to("ep-x", body, false)).is_ok());
    assert!(openai().prepare(&chat(body, false, false)).is_ok());
    let lenient = provider("poe", POE, json!({"single_choice": false}));
    assert!(lenient.prepare(&chat_to("GPT-4o", body, false)).is_ok());
}

#[test]
fn poe_takes_responses_calls_as_they_are() {
    let body = br#"{"model":"poe/GPT-4o","input":"hi"}"#;
    let c = Call {
        format: Format::OpenAiResponses,
        ..chat_to("GPT-4o", body, false)
    };
    let req = upstream(poe().prepare(&c));
    assert_eq!(req.url, "https://api.poe.com/v1/responses");
    assert_eq!(
        String::from_utf8(req.body).unwrap(),
        r#"{"model":"GPT-4o","input":"hi"}"#
    );
    let spec = aihub_openai::OpenAi::manifest()
        .providers
        .into_iter()
        .find(|p| p.prefix == "poe")
        .unwrap();
    assert_eq!(
        spec.native_formats,
        [Format::OpenAiChat, Format::OpenAiResponses]
    );
}
