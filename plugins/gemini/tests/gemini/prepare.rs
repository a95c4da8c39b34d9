//! `prepare`: OpenAI requests become Gemini requests (URL, headers, body).

use crate::common::*;
use aihub_gemini::{Gemini, SKIP_SIGNATURE};
use plugin_api::serde_json::{json, Value};
use plugin_api::*;

const HELLO: &[u8] =
    br#"{"model":"gemini/gemini-2.5-flash","messages":[{"role":"user","content":"Hi"}]}"#;

#[test]
fn manifest_offers_the_gemini_prefix_with_a_priced_catalog() {
    let m = Gemini::manifest();
    assert_eq!(m.name, "gemini");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    let [p] = m.providers.as_slice() else {
        panic!("one provider expected")
    };
    assert_eq!(p.prefix, "gemini");
    assert_eq!(
        p.base_url,
        "https://generativelanguage.googleapis.com/v1beta"
    );
    assert_eq!(p.auth, AuthScheme::Header("x-goog-api-key".into()));
    assert_eq!(p.api_key_env.as_deref(), Some("GEMINI_API_KEY"));
    let find = |id: &str| {
        p.models
            .iter()
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    for id in ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash"] {
        let m = find(id);
        assert_eq!(m.kind, ModelKind::Chat);
        assert_eq!(m.context_window, Some(1_048_576));
        assert!(m.input_price_per_mtok.unwrap() > 0.0);
        assert!(m.output_price_per_mtok.unwrap() > m.input_price_per_mtok.unwrap());
    }
    assert_eq!(find("gemini-2.5-pro").input_price_per_mtok, Some(1.25));
    assert_eq!(find("gemini-2.5-flash").output_price_per_mtok, Some(2.5));
    for id in ["gemini-embedding-001", "text-embedding-004"] {
        assert_eq!(find(id).kind, ModelKind::Embedding);
    }
}

#[test]
fn non_stream_and_stream_urls_with_the_key_in_a_header_only() {
    let req = upstream(gemini().prepare(&chat(HELLO, false, false)));
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(header(&req, "x-goog-api-key"), Some(KEY));
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert!(!req.url.contains(KEY) && !req.url.contains("key="));

    let req = upstream(gemini().prepare(&chat(HELLO, true, true)));
    assert_eq!(
        req.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(header(&req, "x-goog-api-key"), Some(KEY));
    assert!(!req.url.contains(KEY));
    let body = json_of(&req.body);
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]})
    );
}

#[test]
fn base_url_options_headers_and_model_names() {
    let p = provider_with(
        "http://127.0.0.1:9999/v1beta/",
        json!({"headers": {"x-goog-user-project": "proj-1"}}),
    )
    .unwrap();
    let req = upstream(p.prepare(&chat(HELLO, false, false)));
    assert_eq!(
        req.url,
        "http://127.0.0.1:9999/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(header(&req, "x-goog-user-project"), Some("proj-1"));

    let tuned = call(
        Endpoint::Chat,
        "tunedModels/my-tune-42",
        HELLO,
        false,
        false,
    );
    let req = upstream(p.prepare(&tuned));
    assert!(req
        .url
        .ends_with("/v1beta/tunedModels/my-tune-42:generateContent"));

    for bad in ["", "gemini?key=x", "../files", "models//x", "a b"] {
        let c = call(Endpoint::Chat, bad, HELLO, false, false);
        let err = p.prepare(&c).unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest, "{bad}");
    }

    let no_key = Call {
        credential: Credential::None,
        ..chat(HELLO, false, false)
    };
    assert_eq!(
        header(&upstream(p.prepare(&no_key)), "x-goog-api-key"),
        None
    );

    assert!(provider_with("", json!({"headers": {"x-goog-api-key": "k"}})).is_err());
    assert!(provider_with("", json!({"headers": {"x-a": "b\r\nx-evil: 1"}})).is_err());
    assert!(provider_with("", json!({"headers": {"x-a": 1}})).is_err());
    assert!(provider_with("", json!({"headers": "x"})).is_err());
    let default = provider_with("", Value::Null).unwrap();
    assert!(upstream(default.prepare(&chat(HELLO, false, false)))
        .url
        .starts_with(aihub_gemini::BASE_URL));
}

#[test]
fn system_prompt_roles_and_merging() {
    let body = prepared_chat(&json!({
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Capital of France?"},
            {"role": "user", "content": [{"type": "text", "text": "One word."}]},
            {"role": "assistant", "content": "Paris."},
            {"role": "assistant", "content": [{"type": "text", "text": "Vraiment."}]},
            {"role": "user", "content": "And Italy?"}
        ]
    }));
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Capital of France?"}, {"text": "One word."}]},
            {"role": "model", "parts": [{"text": "Paris."}, {"text": "Vraiment."}]},
            {"role": "user", "parts": [{"text": "And Italy?"}]}
        ])
    );
    assert!(body.get("generationConfig").is_none());
    assert!(body.get("tools").is_none());
}

#[test]
fn images_inline_and_by_url() {
    let body = prepared_chat(&json!({
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=large"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
        ]}]
    }));
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"text": "What is in these?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=large"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}
        ])
    );

    for url in [
        "data:image/png,rawbytes",
        "ftp://example.com/a.png",
        "data:image/png",
    ] {
        let err = prepare_err(&json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}
        ]}]}));
        assert_eq!(err.class, ErrorClass::BadRequest, "{url}");
    }
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "strict": true,
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                },
                "required": ["location"],
                "additionalProperties": false
            }
        }},
        {"type": "function", "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {}, "required": []}
        }}
    ])
}

#[test]
fn tools_become_function_declarations() {
    let body = prepared_chat(&json!({
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools(),
        "tool_choice": "auto"
    }));
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "OBJECT",
                    "properties": {
                        "location": {"type": "STRING", "description": "City name"},
                        "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["location"]
                }
            },
            {"name": "get_time"}
        ]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
}

#[test]
fn tool_choice_modes() {
    let config = |choice: Value| {
        let body = prepared_chat(&json!({
            "messages": [{"role": "user", "content": "x"}],
            "tools": weather_tools(),
            "tool_choice": choice
        }));
        (
            body["toolConfig"].clone(),
            body["tools"][0]["functionDeclarations"]
                .as_array()
                .unwrap()
                .len(),
        )
    };
    assert_eq!(
        config(json!("none")).0,
        json!({"functionCallingConfig": {"mode": "NONE"}})
    );
    assert_eq!(
        config(json!("required")).0,
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        config(json!({"type": "function", "function": {"name": "get_time"}})).0,
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}})
    );
    assert_eq!(
        config(
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]}})
        )
        .0,
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    let (auto, n) = config(
        json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto",
        "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}),
    );
    assert_eq!(auto, json!({"functionCallingConfig": {"mode": "AUTO"}}));
    assert_eq!(n, 1);

    let err = prepare_err(&json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": weather_tools(),
        "tool_choice": {"type": "function", "function": {"name": "launch"}}
    }));
    assert!(err.message.contains("launch"), "{}", err.message);
    let err = prepare_err(&json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search"}]
    }));
    assert_eq!(err.class, ErrorClass::BadRequest);
}

#[test]
fn function_call_round_trip_with_name_lookup() {
    let body = prepared_chat(&json!({
        "messages": [
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
                 "extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}}},
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "14:05"},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
            {"role": "assistant", "content": "21°C and clear; it is 14:05.", "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_forecast", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": [{"type": "text", "text": "rain tomorrow"}]}
        ],
        "tools": weather_tools()
    }));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 21, "sky": "clear"}}}}
            ]},
            {"role": "model", "parts": [
                {"text": "21°C and clear; it is 14:05."},
                {"functionCall": {"name": "get_forecast", "args": {}}, "thoughtSignature": SKIP_SIGNATURE}
            ]},
            // The id repeats across turns: the nearest earlier call wins.
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_forecast", "response": {"content": "rain tomorrow"}}}
            ]}
        ])
    );
}

#[test]
fn broken_tool_history_is_a_bad_request() {
    let assistant = |args: &str| {
        json!({"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}
        ]})
    };
    for args in ["{not json", "[1,2]"] {
        let err = prepare_err(&json!({"messages": [
            {"role": "user", "content": "x"}, assistant(args)
        ]}));
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(err.message.contains("arguments"), "{}", err.message);
    }
    let err = prepare_err(&json!({"messages": [
        {"role": "user", "content": "x"}, assistant("{}"),
        {"role": "tool", "tool_call_id": "c9", "content": "r"}
    ]}));
    assert!(err.message.contains("c9"), "{}", err.message);
}

#[test]
fn generation_config_and_json_mode() {
    let body = prepared_chat(&json!({
        "messages": [{"role": "user", "content": "List three colours."}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 100,
        "max_completion_tokens": 256,
        "stop": ["END", "\n\n"],
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "reasoning_effort": "low",
        "response_format": {"type": "json_object"}
    }));
    assert_eq!(
        body["generationConfig"],
        json!({
            "temperature": 0.2,
            "topP": 0.9,
            "presencePenalty": 0.5,
            "frequencyPenalty": -0.5,
            "maxOutputTokens": 256,
            "candidateCount": 2,
            "seed": 7,
            "stopSequences": ["END", "\n\n"],
            "responseMimeType": "application/json",
            "thinkingConfig": {"thinkingBudget": 1024}
        })
    );

    let body = prepared_chat(&json!({
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 50,
        "stop": "STOP",
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "colours", "strict": true,
            "schema": {
                "type": "object",
                "properties": {"colours": {"type": "array", "items": {"type": "string"}}},
                "required": ["colours"],
                "additionalProperties": false
            }
        }}
    }));
    assert_eq!(
        body["generationConfig"],
        json!({
            "maxOutputTokens": 50,
            "stopSequences": ["STOP"],
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {"colours": {"type": "ARRAY", "items": {"type": "STRING"}}},
                "required": ["colours"]
            }
        })
    );

    for (field, value) in [
        ("temperature", json!("hot")),
        ("max_tokens", json!(-1)),
        ("stop", json!([1])),
        ("response_format", json!({"type": "yaml"})),
    ] {
        let mut req = json!({"messages": [{"role": "user", "content": "x"}]});
        req[field] = value;
        let err = prepare_err(&req);
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(err.message.contains(field), "{field}: {}", err.message);
    }
}

#[test]
fn missing_or_invalid_messages_are_bad_requests() {
    for (body, needle) in [
        (json!({}), "'messages' is required"),
        (json!({"messages": "hi"}), "array"),
        (json!({"messages": []}), "empty"),
        (json!({"messages": [{"content": "x"}]}), "role"),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "wizard",
        ),
        (
            json!({"messages": [{"role": "system", "content": "only a system prompt"}]}),
            "user",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}),
            "video",
        ),
    ] {
        let err = prepare_err(&body);
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(err.message.contains(needle), "{needle}: {}", err.message);
    }
    let err = gemini()
        .prepare(&chat(b"not json", false, false))
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::BadRequest);
}

#[test]
fn embeddings_single_and_batch() {
    let single =
        br#"{"model":"gemini/gemini-embedding-001","input":"hello world","dimensions":768}"#;
    let c = call(
        Endpoint::Embeddings,
        "gemini-embedding-001",
        single,
        false,
        false,
    );
    let req = upstream(gemini().prepare(&c));
    assert_eq!(
        req.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:embedContent"
    );
    assert_eq!(header(&req, "x-goog-api-key"), Some(KEY));
    assert_eq!(
        json_of(&req.body),
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 768})
    );

    let batch = br#"{"input":["first","second"]}"#;
    let c = call(
        Endpoint::Embeddings,
        "text-embedding-004",
        batch,
        false,
        false,
    );
    let req = upstream(gemini().prepare(&c));
    assert!(req
        .url
        .ends_with("/models/text-embedding-004:batchEmbedContents"));
    assert_eq!(
        json_of(&req.body),
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "first"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "second"}]}}
        ]})
    );

    for body in [
        &br#"{"input":[]}"#[..],
        br#"{"input":[[1,2,3]]}"#,
        br#"{}"#,
        br#"{"input":"x","encoding_format":"hex"}"#,
    ] {
        let c = call(
            Endpoint::Embeddings,
            "text-embedding-004",
            body,
            false,
            false,
        );
        let err = gemini().prepare(&c).unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
    }
}

#[test]
fn images_are_not_supported() {
    let c = call(
        Endpoint::Images,
        "imagen-3",
        br#"{"prompt":"a cat"}"#,
        false,
        false,
    );
    let err = gemini().prepare(&c).unwrap_err();
    assert_eq!(err.class, ErrorClass::BadRequest);
    assert!(err.message.contains("not supported"));
}

#[test]
fn legacy_function_messages_and_file_parts() {
    let body = prepared_chat(&json!({
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Summarise"},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
            ]},
            {"role": "assistant", "content": null,
             "function_call": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}},
            {"role": "function", "name": "lookup", "content": "found"}
        ]
    }));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [
                {"text": "Summarise"},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}}
            ]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "lookup", "args": {"q": "x"}}, "thoughtSignature": SKIP_SIGNATURE}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "lookup", "response": {"content": "found"}}}
            ]}
        ])
    );
    let err = prepare_err(&json!({
        "messages": [{"role": "user", "content": "x"}],
        "reasoning_effort": "extreme"
    }));
    assert!(err.message.contains("reasoning_effort"), "{}", err.message);
}
