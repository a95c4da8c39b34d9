//! OpenAI requests become the Messages API requests Anthropic documents.

use crate::common::*;
use plugin_api::serde_json::{json, Value};
use plugin_api::*;

#[test]
fn multi_turn_with_system_prompt() {
    let body = fixture("request_multiturn.json");
    let req = upstream(anthropic().prepare(&chat(&body, false, false)));
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(header(&req, "x-api-key"), Some("sk-ant-test"));
    assert_eq!(header(&req, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "anthropic-beta"), None);
    assert_eq!(header(&req, "authorization"), None);

    let v = json_of(&req.body);
    assert_eq!(
        v,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": "You are a terse assistant.\n\nAnswer in English.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Hi there."},
                    {"type": "text", "text": "What is the capital of France?"},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Paris."},
                    {"type": "text", "text": "It has been since 987."},
                ]},
                {"role": "user", "content": [{"type": "text", "text": "And of Italy?"}]},
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["\n\nHuman:"],
            "metadata": {"user_id": "user-1234"},
        })
    );
}

#[test]
fn streamed_calls_ask_for_a_stream() {
    let body = br#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;
    let req = upstream(anthropic().prepare(&chat(body, true, true)));
    let v = json_of(&req.body);
    assert_eq!(v["stream"], true);
    assert!(v.get("stream_options").is_none());
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));

    let req = upstream(anthropic().prepare(&chat(body, false, false)));
    assert!(json_of(&req.body).get("stream").is_none());
}

#[test]
fn images_as_base64_and_url_sources() {
    let v = translate(&anthropic(), &fixture_json("request_vision.json"));
    assert_eq!(v["max_tokens"], 300);
    let content = &v["messages"][0]["content"];
    assert_eq!(
        content[0],
        json!({"type": "text", "text": "What is in these two images?"})
    );
    assert_eq!(content[1]["type"], "image");
    assert_eq!(content[1]["source"]["type"], "base64");
    assert_eq!(content[1]["source"]["media_type"], "image/png");
    assert!(content[1]["source"]["data"]
        .as_str()
        .unwrap()
        .starts_with("iVBORw0KGgo"));
    assert_eq!(
        content[2],
        json!({"type": "image", "source": {"type": "url",
            "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}})
    );
}

#[test]
fn image_urls_are_checked() {
    let part = |url: &str| {
        json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]})
    };
    let v = translate(&anthropic(), &part("data:image/jpg;base64,/9j/4AAQ"));
    assert_eq!(
        v["messages"][0]["content"][0]["source"]["media_type"],
        "image/jpeg"
    );
    for (url, words) in [
        ("data:image/bmp;base64,Qk0=", "not supported"),
        ("data:image/png,rawbytes", "data URL"),
        ("ftp://example.com/a.png", "http(s) URL"),
        ("", "http(s) URL"),
    ] {
        let e = translate_err(&anthropic(), &part(url));
        assert_eq!(e.class, ErrorClass::BadRequest, "{url}");
        assert!(e.message.contains(words), "{url}: {}", e.message);
        assert!(
            e.message.contains("messages[0].content[0]"),
            "{}",
            e.message
        );
    }
}

#[test]
fn pdf_files_become_documents_and_audio_is_refused() {
    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
            {"type": "text", "text": "Summarise."}]}]}),
    );
    assert_eq!(
        v["messages"][0]["content"][0],
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}})
    );
    let e = translate_err(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
    );
    assert_eq!(e.class, ErrorClass::BadRequest);
    assert!(e.message.contains("audio"), "{}", e.message);
}

#[test]
fn tools_tool_calls_and_tool_results_round_trip() {
    let v = translate(&anthropic(), &fixture_json("request_tools.json"));
    assert_eq!(v["max_tokens"], 1024);
    assert_eq!(v["system"], "Use the tools when they help.");
    assert_eq!(
        v["tools"],
        json!([
            {"name": "get_weather", "description": "Get the current weather in a given location",
             "input_schema": {"type": "object", "properties": {
                "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
             }, "required": ["location"]}},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "What's the weather in Paris and in Rome, in celsius?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll look both up."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "Paris, France", "unit": "celsius"}},
                {"type": "tool_use", "id": "toolu_01B5ngSeXJrsJ6gYyvxTqZ7e", "name": "get_weather",
                 "input": {"location": "Rome, Italy", "unit": "celsius"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                 "content": "15 degrees, cloudy"},
                {"type": "tool_result", "tool_use_id": "toolu_01B5ngSeXJrsJ6gYyvxTqZ7e",
                 "content": [{"type": "text", "text": "22 degrees, sunny"}]},
                {"type": "text", "text": "Thanks. Which is warmer?"},
            ]},
        ])
    );
}

#[test]
fn assistant_tool_calls_without_text_and_object_arguments() {
    let v = translate(
        &anthropic(),
        &json!({"messages": [
            {"role": "user", "content": "time?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_tz", "arguments": {"city": "Oslo"}}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "12:00"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "CET"},
        ]}),
    );
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["content"][0]["input"], json!({}));
    assert_eq!(msgs[1]["content"][1]["input"], json!({"city": "Oslo"}));
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|b| b["type"] == "tool_result"));
}

#[test]
fn invalid_tool_arguments_are_a_bad_request() {
    for args in [json!("{\"location\": \"Par"), json!("[1,2]"), json!(7)] {
        let e = translate_err(
            &anthropic(),
            &json!({"messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": args}}]}]}),
        );
        assert_eq!(e.class, ErrorClass::BadRequest, "{args}");
        assert!(
            e.message
                .contains("messages[1].tool_calls[0].function.arguments"),
            "{}",
            e.message
        );
    }
    let e = translate_err(
        &anthropic(),
        &json!({"messages": [{"role": "tool", "content": "x"}]}),
    );
    assert!(e.message.contains("tool_call_id"), "{}", e.message);
}

#[test]
fn tool_choice_variants() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let with = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}], "tools": tools});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        translate(&anthropic(), &body)
    };
    assert_eq!(
        with(json!({"tool_choice": "auto"}))["tool_choice"],
        json!({"type": "auto"})
    );
    assert_eq!(
        with(json!({"tool_choice": "none"}))["tool_choice"],
        json!({"type": "none"})
    );
    assert_eq!(
        with(json!({"tool_choice": "required"}))["tool_choice"],
        json!({"type": "any"})
    );
    assert!(with(json!({})).get("tool_choice").is_none());
    assert_eq!(
        with(json!({"parallel_tool_calls": false}))["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        with(json!({"tool_choice": "required", "parallel_tool_calls": false}))["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        with(json!({"tool_choice": "none", "parallel_tool_calls": false}))["tool_choice"],
        json!({"type": "none"})
    );
    assert!(with(json!({"parallel_tool_calls": true}))
        .get("tool_choice")
        .is_none());

    // Without tools, a tool_choice is dropped (the API refuses it alone).
    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto", "tools": []}),
    );
    assert!(v.get("tool_choice").is_none() && v.get("tools").is_none());

    for bad in [json!("sometimes"), json!({"type": "function"}), json!(3)] {
        let e = translate_err(
            &anthropic(),
            &json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": bad}),
        );
        assert_eq!(e.class, ErrorClass::BadRequest);
        assert!(e.message.contains("tool_choice"), "{}", e.message);
    }
    let e = translate_err(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "code_interpreter"}]}),
    );
    assert!(e.message.contains("not supported"), "{}", e.message);
}

#[test]
fn json_mode_becomes_a_system_instruction() {
    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "system", "content": "Be helpful."},
                             {"role": "user", "content": "Three primes?"}],
                "response_format": {"type": "json_object"}}),
    );
    let system = v["system"].as_str().unwrap();
    assert!(system.starts_with("Be helpful.\n\n"), "{system}");
    assert!(system.contains("valid JSON object"), "{system}");

    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "Three primes?"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "primes",
                    "schema": {"type": "object", "properties": {"primes": {"type": "array"}}}}}}),
    );
    let system = v["system"].as_str().unwrap();
    assert!(system.contains("\"primes\""), "{system}");
    assert!(
        system.contains("{\"properties\":{\"primes\":{\"type\":\"array\"}},\"type\":\"object\"}"),
        "{system}"
    );

    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}),
    );
    assert!(v.get("system").is_none());
    let e = translate_err(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}),
    );
    assert_eq!(e.class, ErrorClass::BadRequest);
}

#[test]
fn cache_control_is_kept_and_system_becomes_blocks() {
    let v = translate(
        &anthropic(),
        &json!({"messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "A long book...", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Chapter 3?", "cache_control": {"type": "ephemeral"}}]}]}),
    );
    assert_eq!(
        v["system"],
        json!([
            {"type": "text", "text": "A long book...", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be brief."},
        ])
    );
    assert_eq!(
        v["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[test]
fn conversations_are_made_acceptable() {
    // Opening with the assistant: a minimal user turn goes first.
    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "assistant", "content": "Hello! How can I help?"},
                             {"role": "user", "content": "Tell me a joke."}]}),
    );
    assert_eq!(v["messages"][0]["role"], "user");
    assert_eq!(v["messages"][1]["role"], "assistant");
    assert_eq!(v["messages"][2]["role"], "user");

    // Empty messages are dropped, so their neighbours merge.
    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""},
                             {"role": "user", "content": "b"}]}),
    );
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["content"].as_array().unwrap().len(), 2);

    // A final assistant message is a prefill: trailing whitespace is refused upstream.
    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "JSON please"},
                             {"role": "assistant", "content": "{\n  "}]}),
    );
    assert_eq!(v["messages"][1]["content"][0]["text"], "{");
}

#[test]
fn sampling_parameters() {
    let v = translate(
        &anthropic(),
        &json!({"messages": [{"role": "user", "content": "x"}], "temperature": 1.7,
                "max_tokens": 100, "max_completion_tokens": 200, "stop": ["END", "", "STOP"],
                "n": 1, "top_k": 40, "seed": 7, "presence_penalty": 0.5}),
    );
    assert_eq!(v["temperature"], 1.0);
    assert_eq!(v["max_tokens"], 200);
    assert_eq!(v["stop_sequences"], json!(["END", "STOP"]));
    assert_eq!(v["top_k"], 40);
    assert!(v.get("seed").is_none() && v.get("presence_penalty").is_none() && v.get("n").is_none());

    for (extra, words) in [
        (json!({"n": 2}), "n > 1"),
        (json!({"max_tokens": 0}), "max_tokens"),
        (
            json!({"max_completion_tokens": "lots"}),
            "max_completion_tokens",
        ),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"stop": 5}), "stop"),
        (json!({"stop": [5]}), "stop"),
    ] {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
        for (k, val) in extra.as_object().unwrap() {
            body[k] = val.clone();
        }
        let e = translate_err(&anthropic(), &body);
        assert_eq!(e.class, ErrorClass::BadRequest, "{extra}");
        assert!(e.message.contains(words), "{extra}: {}", e.message);
    }
}

#[test]
fn missing_or_invalid_messages_are_bad_requests() {
    let p = anthropic();
    for (body, words) in [
        (&b"{\"model\":\"claude\"}"[..], "'messages'"),
        (b"{\"messages\":[]}", "must not be empty"),
        (b"{\"messages\":\"hi\"}", "'messages'"),
        (b"{\"messages\":[\"hi\"]}", "messages[0] must be an object"),
        (b"{\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role"),
        (
            b"{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}",
            "unknown role 'wizard'",
        ),
        (
            b"{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"1\"}]}",
            "'function'",
        ),
        (
            b"{\"messages\":[{\"role\":\"system\",\"content\":\"only a system prompt\"}]}",
            "at least one user",
        ),
        (
            b"{\"messages\":[{\"role\":\"user\",\"content\":42}]}",
            "messages[0].content",
        ),
        (
            b"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}",
            "unsupported content part 'video'",
        ),
        (b"[1,2]", "JSON object"),
        (b"not json", "invalid request body"),
    ] {
        let e = p.prepare(&chat(body, false, false)).unwrap_err();
        assert_eq!(
            e.class,
            ErrorClass::BadRequest,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(
            e.message.contains(words),
            "{}: {}",
            String::from_utf8_lossy(body),
            e.message
        );
    }
}

#[test]
fn only_chat_is_served() {
    let body = br#"{"input":"hello","model":"x"}"#;
    for endpoint in [Endpoint::Embeddings, Endpoint::Images] {
        let c = Call {
            endpoint,
            ..chat(body, false, false)
        };
        let e = anthropic().prepare(&c).unwrap_err();
        assert_eq!(e.class, ErrorClass::BadRequest);
        assert!(
            e.message.contains("not supported by anthropic"),
            "{}",
            e.message
        );
    }
}

#[test]
fn provider_options_shape_the_request() {
    let p = provider_with(
        "https://gateway.example.com/anthropic/",
        json!({"anthropic_version": "2023-01-01", "max_tokens_default": 1000,
               "beta": "prompt-caching-2024-07-31", "headers": {"x-team": "search"}}),
    );
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let req = upstream(p.prepare(&chat(body, false, false)));
    assert_eq!(req.url, "https://gateway.example.com/anthropic/v1/messages");
    assert_eq!(header(&req, "anthropic-version"), Some("2023-01-01"));
    assert_eq!(
        header(&req, "anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert_eq!(header(&req, "x-team"), Some("search"));
    assert_eq!(json_of(&req.body)["max_tokens"], 1000);

    // No credential, no key header (a keyless proxy in front).
    let c = Call {
        credential: Credential::None,
        ..chat(body, false, false)
    };
    let req = upstream(anthropic().prepare(&c));
    assert_eq!(header(&req, "x-api-key"), None);

    let bad = Anthropic::new(ProviderConfig {
        prefix: "anthropic".into(),
        base_url: "https://api.anthropic.com".into(),
        options: json!({"max_tokens_default": -5}),
    });
    assert!(bad.is_err());
}

use aihub_anthropic::Anthropic;
