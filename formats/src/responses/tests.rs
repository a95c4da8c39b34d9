use super::*;
use crate::{StreamFailure, StreamWriter};
use serde_json::json;

fn req(body: Value) -> Request {
    parse(&serde_json::to_vec(&body).unwrap()).unwrap()
}

/// The refusal of a body: by `parse` itself, or (what only chat cannot express) by
/// `to_chat`, so a native provider can still take it.
fn err(body: Value) -> Invalid {
    match parse(&serde_json::to_vec(&body).unwrap()) {
        Err(e) => e,
        Ok(r) => r.to_chat(None).unwrap_err(),
    }
}

fn chat_body(r: &Request, history: Option<&[u8]>) -> Value {
    serde_json::from_slice(&r.to_chat(history).unwrap().body).unwrap()
}

fn meta() -> Meta {
    Meta {
        id: "resp_abc".into(),
        created_at: 1_700_000_000,
        model: "shown-model".into(),
    }
}

/// SSE bytes → (event name, data) pairs, checking the framing on the way.
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|frame| {
            let (name, data) = frame.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_string();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

// ---- parse ----

#[test]
fn parse_defaults_and_fields() {
    let r = req(json!({"model": "m", "input": "hi"}));
    assert_eq!(r.model, "m");
    assert!(!r.stream);
    assert!(r.store);
    assert_eq!(r.previous_response_id, None);
    let r = req(
        json!({"model": "m", "input": "hi", "stream": true, "store": false,
        "previous_response_id": "resp_1"}),
    );
    assert!(r.stream);
    assert!(!r.store);
    assert_eq!(r.previous_response_id.as_deref(), Some("resp_1"));
    // null is absent
    let r = req(json!({"model": "m", "input": "hi", "stream": null, "store": null}));
    assert!(!r.stream && r.store);
}

#[test]
fn parse_errors_name_the_path() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"input": "x"}), "model"),
        (json!({"model": "", "input": "x"}), "model"),
        (json!({"model": 5, "input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": 3}), "input"),
        (
            json!({"model": "m", "input": "x", "stream": "yes"}),
            "stream",
        ),
        (json!({"model": "m", "input": "x", "store": 1}), "store"),
        (
            json!({"model": "m", "input": "x", "previous_response_id": 1}),
            "previous_response_id",
        ),
        (
            json!({"model": "m", "input": "x", "instructions": []}),
            "instructions",
        ),
        (
            json!({"model": "m", "input": "x", "temperature": "hot"}),
            "temperature",
        ),
        (json!({"model": "m", "input": "x", "top_p": true}), "top_p"),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": -1}),
            "max_output_tokens",
        ),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": 1.5}),
            "max_output_tokens",
        ),
        (
            json!({"model": "m", "input": "x", "parallel_tool_calls": "no"}),
            "parallel_tool_calls",
        ),
        (json!({"model": "m", "input": "x", "user": 7}), "user"),
        (
            json!({"model": "m", "input": "x", "metadata": "x"}),
            "metadata",
        ),
        (
            json!({"model": "m", "input": "x", "reasoning": "high"}),
            "reasoning",
        ),
        (
            json!({"model": "m", "input": "x", "reasoning": {"effort": 1}}),
            "reasoning.effort",
        ),
        (
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        ),
        (
            json!({"model": "m", "input": "x", "prompt": {"id": "p"}}),
            "prompt",
        ),
        (
            json!({"model": "m", "input": "x", "conversation": "c"}),
            "conversation",
        ),
        (json!({"model": "m", "input": [1]}), "input[0]"),
        (
            json!({"model": "m", "input": [{"type": 3}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": ["x", {"type": "item_reference", "id": "i"}]}),
            "input[0]",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "i"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"type": "web_search_call"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "bot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"role": "user"}]}),
            "input[0].content",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": 4}]}),
            "input[0].content",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": ["x"]}]}),
            "input[0].content[0]",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "input_text", "text": "a"},
                    {"type": "input_file", "file_id": "f"}]}]}),
            "input[1].content[1].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
            "input[0].content[0].text",
        ),
        (
            json!({"model": "m", "input": [{"role": "user",
                "content": [{"type": "input_image", "file_id": "file_1"}]}]}),
            "input[0].content[0].file_id",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
            "input[0].content[0].image_url",
        ),
        (
            json!({"model": "m", "input": [{"role": "assistant",
                "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]}),
            "input[0].name",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f",
                "arguments": {}}]}),
            "input[0].arguments",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}),
            "input[0].output",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c",
                "output": [{"type": "input_image", "image_url": "u"}]}]}),
            "input[0].output[0].type",
        ),
        (json!({"model": "m", "input": "x", "tools": {}}), "tools"),
        (
            json!({"model": "m", "input": "x", "tools": [3]}),
            "tools[0]",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"},
                {"type": "web_search"}]}),
            "tools[1].type",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f",
                "parameters": "x"}]}),
            "tools[0].parameters",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f",
                "strict": "yes"}]}),
            "tools[0].strict",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": "always"}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}),
            "tool_choice.type",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "function"}}),
            "tool_choice.name",
        ),
        (json!({"model": "m", "input": "x", "text": 1}), "text"),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}),
            "text.format.type",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {}}}),
            "text.format.type",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
            "text.format.schema",
        ),
    ];
    for (body, path) in cases {
        let e = err(body.clone());
        assert_eq!(e.param, path, "{body} → {e}");
        assert!(!e.message.is_empty());
    }
    let e = parse(b"not json").unwrap_err();
    assert_eq!(e.param, "body");
    let e = parse(b"[1]").unwrap_err();
    assert_eq!(e.param, "body");
    let e = err(json!({"model": "m", "input": "x", "tools": [{"type": "mcp"}]}));
    assert!(e.message.contains("only function tools"), "{e}");
}

// ---- to_chat ----

#[test]
fn string_input_is_one_user_message() {
    let r = req(json!({"model": "m", "input": "hello"}));
    let c = r.to_chat(None).unwrap();
    assert_eq!(c.model, "m");
    assert!(!c.stream);
    assert!(!c.include_usage);
    let body: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    );
}

#[test]
fn full_mapping() {
    let r = req(json!({
        "model": "gpt-x",
        "instructions": "be brief",
        "input": [
            {"role": "developer", "content": "dev rules"},
            {"role": "system", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                {"type": "input_image", "image_url": "https://x/y.png"}
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "let me check", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "get", "arguments": "{\"a\":1}"},
            {"type": "function_call", "call_id": "call_2", "name": "put", "arguments": "{}", "id": "fc_2"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {"type": "function_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "o"}, {"type": "input_text", "text": "k"}]},
            {"type": "function_call", "call_id": "call_3", "name": "get", "arguments": "{}"},
            {"role": "user", "content": [{"type": "input_text", "text": "only"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
        ],
        "tools": [
            {"type": "function", "name": "get", "description": "gets", "parameters": {"type": "object"}, "strict": true},
            {"type": "function", "name": "put"}
        ],
        "tool_choice": {"type": "function", "name": "get"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true, "description": "d"}},
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "parallel_tool_calls": false,
        "user": "u1",
        "metadata": {"k": "v"},
        "stream": true,
        "store": false,
        "truncation": "auto",
        "include": ["reasoning.encrypted_content"]
    }));
    let c = r.to_chat(None).unwrap();
    assert!(c.stream);
    assert!(!c.include_usage);
    let body: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "gpt-x",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "system", "content": "dev rules"},
                {"role": "system", "content": "ab"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
                ]},
                {"role": "assistant", "content": "let me check", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "put", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "tool", "tool_call_id": "call_2", "content": "ok"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "get", "arguments": "{}"}}
                ]},
                {"role": "user", "content": "only"},
                {"role": "assistant", "content": "no"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get", "description": "gets",
                    "parameters": {"type": "object"}, "strict": true}},
                {"type": "function", "function": {"name": "put"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "out",
                "schema": {"type": "object"}, "strict": true, "description": "d"}},
            "reasoning_effort": "high",
            "max_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "parallel_tool_calls": false,
            "user": "u1",
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[test]
fn small_mappings() {
    for choice in ["auto", "none", "required"] {
        let r = req(json!({"model": "m", "input": "x", "tool_choice": choice}));
        assert_eq!(chat_body(&r, None)["tool_choice"], choice);
    }
    let r = req(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}));
    assert_eq!(
        chat_body(&r, None)["response_format"],
        json!({"type": "json_object"})
    );
    let r = req(json!({"model": "m", "input": "x", "text": {"format": {"type": "text"}}}));
    assert!(chat_body(&r, None).get("response_format").is_none());
    // parallel_tool_calls needs tools on the chat side
    let r = req(json!({"model": "m", "input": "x", "parallel_tool_calls": true}));
    assert!(chat_body(&r, None).get("parallel_tool_calls").is_none());
    // empty tools are not sent
    let r = req(json!({"model": "m", "input": "x", "tools": []}));
    assert!(chat_body(&r, None).get("tools").is_none());
    // an empty input with no history has nothing to send
    let r = req(json!({"model": "m", "input": []}));
    assert_eq!(r.to_chat(None).unwrap_err().param, "input");
    // empty instructions add no system message
    let r = req(json!({"model": "m", "input": "x", "instructions": ""}));
    assert_eq!(chat_body(&r, None)["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn history_comes_between_instructions_and_input() {
    let r = req(
        json!({"model": "m", "input": "again", "instructions": "sys",
        "previous_response_id": "resp_0"}),
    );
    let history = br#"[{"role":"user","content":"first"},{"role":"assistant","content":"one"}]"#;
    assert_eq!(
        chat_body(&r, Some(history))["messages"],
        json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "again"}
        ])
    );
    for bad in [
        &b"nope"[..],
        b"{}",
        b"[1]",
        b"[{\"content\":\"x\"}]",
        b"\xff\xfe",
    ] {
        let e = r.to_chat(Some(bad)).unwrap_err();
        assert_eq!(e.param, "previous_response_id");
    }
}

// ---- reply_from_chat ----

fn chat_reply(message: Value, finish: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 2}}
    }))
    .unwrap()
}

#[test]
fn reply_with_text_and_calls() {
    let r = req(json!({"model": "m", "input": "x", "instructions": "sys",
        "tools": [{"type": "function", "name": "get", "parameters": {"type": "object"}}],
        "temperature": 0.2, "metadata": {"a": "b"}, "user": "u", "max_output_tokens": 50,
        "reasoning": {"effort": "low"}, "previous_response_id": "resp_0", "store": false}));
    let chat = chat_reply(
        json!({"role": "assistant", "content": "hello", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get", "arguments": "{\"q\":1}"}},
            {"type": "function", "function": {"name": "get", "arguments": {"q": 2}}}
        ]}),
        "tool_calls",
    );
    let v: Value = serde_json::from_slice(&reply_from_chat(&r, &meta(), &chat).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({
            "id": "resp_abc",
            "object": "response",
            "created_at": 1_700_000_000u64,
            "status": "completed",
            "error": null,
            "incomplete_details": null,
            "model": "shown-model",
            "output": [
                {"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "hello", "annotations": []}]},
                {"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "get",
                 "arguments": "{\"q\":1}", "status": "completed"},
                {"type": "function_call", "id": "fc_abc_2", "call_id": "call_abc_2", "name": "get",
                 "arguments": "{\"q\":2}", "status": "completed"}
            ],
            "usage": {"input_tokens": 10,
                "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
                "total_tokens": 15},
            "instructions": "sys",
            "max_output_tokens": 50,
            "metadata": {"a": "b"},
            "parallel_tool_calls": true,
            "previous_response_id": "resp_0",
            "reasoning": {"effort": "low", "summary": null},
            "store": false,
            "temperature": 0.2,
            "top_p": null,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [{"type": "function", "name": "get", "description": null,
                "parameters": {"type": "object"}, "strict": null}],
            "truncation": "disabled",
            "user": "u"
        })
    );
}

#[test]
fn reply_defaults_incomplete_and_refusal() {
    let r = req(json!({"model": "m", "input": "x"}));
    let chat = chat_reply(json!({"role": "assistant", "content": "cut"}), "length");
    let v: Value = serde_json::from_slice(&reply_from_chat(&r, &meta(), &chat).unwrap()).unwrap();
    assert_eq!(v["status"], "incomplete");
    assert_eq!(
        v["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(v["metadata"], json!({}));
    assert_eq!(v["tools"], json!([]));
    assert_eq!(v["tool_choice"], "auto");
    assert_eq!(v["parallel_tool_calls"], true);
    assert_eq!(v["reasoning"], json!({"effort": null, "summary": null}));
    assert_eq!(v["text"], json!({"format": {"type": "text"}}));
    assert_eq!(v["store"], true);
    for key in [
        "instructions",
        "max_output_tokens",
        "previous_response_id",
        "temperature",
        "top_p",
        "user",
        "error",
    ] {
        assert_eq!(v[key], Value::Null, "{key}");
        assert!(v.as_object().unwrap().contains_key(key), "{key}");
    }

    let chat = chat_reply(
        json!({"role": "assistant", "content": null, "refusal": "I can't"}),
        "stop",
    );
    let v: Value = serde_json::from_slice(&reply_from_chat(&r, &meta(), &chat).unwrap()).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(
        v["output"][0]["content"],
        json!([{"type": "refusal", "refusal": "I can't"}])
    );

    let chat = chat_reply(
        json!({"role": "assistant", "content": ""}),
        "content_filter",
    );
    let v: Value = serde_json::from_slice(&reply_from_chat(&r, &meta(), &chat).unwrap()).unwrap();
    assert_eq!(v["incomplete_details"], json!({"reason": "content_filter"}));
    assert_eq!(v["output"], json!([]));

    // no usage → null; json_schema format is echoed as sent
    let r = req(json!({"model": "m", "input": "x",
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}}}));
    let chat = br#"{"choices":[{"message":{"content":[{"type":"text","text":"{}"}]},"finish_reason":"stop"}]}"#;
    let v: Value = serde_json::from_slice(&reply_from_chat(&r, &meta(), chat).unwrap()).unwrap();
    assert_eq!(v["usage"], Value::Null);
    assert_eq!(v["output"][0]["content"][0]["text"], "{}");
    assert_eq!(v["text"]["format"]["type"], "json_schema");
}

#[test]
fn reply_refuses_unreadable_chat() {
    let r = req(json!({"model": "m", "input": "x"}));
    for bad in [
        &b""[..],
        b"nope",
        b"[]",
        b"{}",
        b"{\"choices\":3}",
        b"{\"choices\":[{\"message\":1}]}",
    ] {
        assert!(reply_from_chat(&r, &meta(), bad).is_err(), "{bad:?}");
    }
}

// ---- conversation ----

#[test]
fn conversation_round_trip_with_tool_call() {
    let first = req(json!({"model": "m", "instructions": "sys", "input": [
        {"role": "user", "content": "weather?"}
    ], "tools": [{"type": "function", "name": "weather"}]}));
    let chat = chat_reply(
        json!({"role": "assistant", "content": "checking", "tool_calls": [
            {"id": "call_w", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
        ]}),
        "tool_calls",
    );
    let response = reply_from_chat(&first, &meta(), &chat).unwrap();
    let stored = conversation(&first, None, &response).unwrap();
    let stored_v: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        stored_v,
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "checking", "tool_calls": [
                {"id": "call_w", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]}
        ])
    );

    let second = req(
        json!({"model": "m", "previous_response_id": "resp_abc", "input": [
            {"type": "function_call_output", "call_id": "call_w", "output": "sunny"}
        ]}),
    );
    let body = chat_body(&second, Some(&stored));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "checking", "tool_calls": [
                {"id": "call_w", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_w", "content": "sunny"}
        ])
    );

    // the third turn keeps growing the same conversation
    let chat = chat_reply(
        json!({"role": "assistant", "content": "It is sunny."}),
        "stop",
    );
    let response = reply_from_chat(&second, &meta(), &chat).unwrap();
    let stored2: Value =
        serde_json::from_slice(&conversation(&second, Some(&stored), &response).unwrap()).unwrap();
    assert_eq!(stored2.as_array().unwrap().len(), 4);
    assert_eq!(
        stored2[3],
        json!({"role": "assistant", "content": "It is sunny."})
    );

    // a response that said nothing adds nothing; unreadable inputs are errors
    let empty = br#"{"output":[]}"#;
    let v: Value = serde_json::from_slice(&conversation(&second, None, empty).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(conversation(&second, None, b"x").is_err());
    assert!(conversation(&second, None, b"{}").is_err());
    assert!(conversation(&second, Some(b"{}"), empty).is_err());
}

#[test]
fn conversation_from_a_streamed_response() {
    let r = req(json!({"model": "m", "input": "hi", "stream": true}));
    let mut s = Stream::new(&r, &meta());
    let mut out = Vec::new();
    s.chunk(
        br#"{"choices":[{"index":0,"delta":{"content":"hey"}}]}"#,
        &mut out,
    );
    s.finish(&mut out);
    let stored: Value =
        serde_json::from_slice(&conversation(&r, None, &s.response().unwrap()).unwrap()).unwrap();
    assert_eq!(
        stored,
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}])
    );
}

// ---- stream ----

fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "up", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
    .unwrap()
}

#[test]
fn full_stream_text_then_interleaved_tool_calls() {
    let r = req(json!({"model": "m", "input": "x", "stream": true,
        "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}]}));
    let mut s = Stream::new(&r, &meta());
    assert!(s.response().is_none());
    let mut out = Vec::new();
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "a", "arguments": ""}}]}), None),
        chunk(json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
            "function": {"name": "b", "arguments": "{\"y\""}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), None),
        chunk(json!({}), Some("tool_calls")),
        br#"{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9,"total_tokens":16}}"#.to_vec(),
        b"garbage that is skipped".to_vec(),
    ];
    for c in &chunks {
        s.chunk(c, &mut out);
    }
    assert!(s.response().is_none());
    s.finish(&mut out);
    let evs = events(&out);
    assert_eq!(
        names(&evs),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, data)) in evs.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    let created = &evs[0].1["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["id"], "resp_abc");
    assert_eq!(
        evs[2].1["item"],
        json!({"type": "message", "id": "msg_abc_0", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(evs[2].1["output_index"], 0);
    assert_eq!(
        evs[3].1["part"],
        json!({"type": "output_text", "text": "", "annotations": []})
    );
    assert_eq!(evs[4].1["delta"], "Hel");
    assert_eq!(evs[4].1["item_id"], "msg_abc_0");
    assert_eq!(evs[4].1["content_index"], 0);
    assert_eq!(evs[4].1["logprobs"], json!([]));
    assert_eq!(evs[6].1["text"], "Hello");
    assert_eq!(evs[7].1["part"]["text"], "Hello");
    assert_eq!(evs[8].1["item"]["status"], "completed");
    assert_eq!(
        evs[9].1["item"],
        json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "a",
            "arguments": "", "status": "in_progress"})
    );
    assert_eq!(evs[10].1["output_index"], 2);
    assert_eq!(evs[11].1["item_id"], "fc_abc_2");
    assert_eq!(evs[12].1["output_index"], 1);
    assert_eq!(evs[15].1["arguments"], "{\"x\":1}");
    assert_eq!(evs[15].1["name"], "a");
    assert_eq!(evs[17].1["arguments"], "{\"y\":2}");
    assert_eq!(evs[18].1["item"]["status"], "completed");

    // the final object is what the whole reply would have been
    let done = evs[19].1["response"].clone();
    let stored: Value = serde_json::from_slice(&s.response().unwrap()).unwrap();
    assert_eq!(stored, done);
    let whole = serde_json::to_vec(&json!({"choices": [{"message": {"role": "assistant",
        "content": "Hello", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
            {"id": "call_b", "type": "function", "function": {"name": "b", "arguments": "{\"y\":2}"}}
        ]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 9}}))
    .unwrap();
    let expected: Value =
        serde_json::from_slice(&reply_from_chat(&r, &meta(), &whole).unwrap()).unwrap();
    assert_eq!(done, expected);
    assert_eq!(done["usage"]["total_tokens"], 16);

    // nothing after the end
    let mut more = Vec::new();
    s.chunk(&chunk(json!({"content": "late"}), None), &mut more);
    s.finish(&mut more);
    s.fail(&failure(), &mut more);
    assert!(more.is_empty());
}

fn failure() -> StreamFailure<'static> {
    StreamFailure {
        status: 502,
        upstream_status: Some(500),
        code: "upstream_error",
        message: "the provider broke off",
    }
}

#[test]
fn fail_after_partial_output() {
    let r = req(json!({"model": "m", "input": "x", "stream": true}));
    let mut s = Stream::new(&r, &meta());
    let mut out = Vec::new();
    s.chunk(&chunk(json!({"content": "par"}), None), &mut out);
    s.chunk(&chunk(json!({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{"}}]}), None), &mut out);
    s.fail(&failure(), &mut out);
    let evs = events(&out);
    assert_eq!(
        names(&evs),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.failed",
        ]
    );
    for (i, (_, data)) in evs.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    let failed = &evs[10].1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "server_error", "message": "the provider broke off"})
    );
    assert_eq!(failed["output"][0]["content"][0]["text"], "par");
    assert_eq!(failed["output"][0]["status"], "completed");
    assert_eq!(failed["output"][1]["arguments"], "{");
    assert_eq!(failed["output"][1]["status"], "incomplete");
    let stored: Value = serde_json::from_slice(&s.response().unwrap()).unwrap();
    assert_eq!(&stored, failed);

    let mut more = Vec::new();
    s.finish(&mut more);
    assert!(more.is_empty(), "no completion after a failure");

    // a failure mid-text leaves the message incomplete; 429 is a rate limit
    let mut s = Stream::new(&r, &meta());
    let mut out = Vec::new();
    s.chunk(&chunk(json!({"content": "pa"}), None), &mut out);
    s.fail(
        &StreamFailure {
            status: 429,
            upstream_status: Some(429),
            code: "rate_limited",
            message: "slow down",
        },
        &mut out,
    );
    let evs = events(&out);
    assert_eq!(evs.last().unwrap().0, "response.failed");
    assert!(!names(&evs).contains(&"response.output_text.done"));
    let failed = &evs.last().unwrap().1["response"];
    assert_eq!(failed["error"]["code"], "rate_limit_exceeded");
    assert_eq!(failed["output"][0]["status"], "incomplete");
}

#[test]
fn finish_or_fail_with_no_chunks() {
    let r = req(json!({"model": "m", "input": "x", "stream": true}));
    let mut s = Stream::new(&r, &meta());
    let mut out = Vec::new();
    s.finish(&mut out);
    let evs = events(&out);
    assert_eq!(
        names(&evs),
        vec![
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
    assert_eq!(evs[2].1["sequence_number"], 2);
    assert_eq!(evs[2].1["response"]["status"], "completed");
    assert_eq!(evs[2].1["response"]["output"], json!([]));

    let mut s = Stream::new(&r, &meta());
    let mut out = Vec::new();
    s.fail(&failure(), &mut out);
    assert_eq!(
        names(&events(&out)),
        vec![
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
}

#[test]
fn stream_length_is_incomplete_and_refusals_stream() {
    let r = req(json!({"model": "m", "input": "x", "stream": true}));
    let mut s = Stream::new(&r, &meta());
    let mut out = Vec::new();
    s.chunk(&chunk(json!({"content": "a"}), None), &mut out);
    s.chunk(&chunk(json!({"refusal": "no"}), None), &mut out);
    s.chunk(&chunk(json!({}), Some("length")), &mut out);
    s.finish(&mut out);
    let evs = events(&out);
    assert_eq!(
        names(&evs),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.content_part.added",
            "response.refusal.delta",
            "response.refusal.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    assert_eq!(evs[7].1["content_index"], 1);
    assert_eq!(evs[9].1["refusal"], "no");
    let end = &evs[12].1["response"];
    assert_eq!(end["status"], "incomplete");
    assert_eq!(end["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(
        end["output"][0]["content"],
        json!([{"type": "output_text", "text": "a", "annotations": []},
            {"type": "refusal", "refusal": "no"}])
    );
    assert_eq!(end["usage"], Value::Null);
}

#[test]
fn stream_text_after_tool_call_opens_a_new_message() {
    let r = req(json!({"model": "m", "input": "x", "stream": true}));
    let mut s = Stream::new(&r, &meta());
    let mut out = Vec::new();
    // no index, no id, name repeated in every delta, other choices ignored
    s.chunk(
        &chunk(
            json!({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}),
            None,
        ),
        &mut out,
    );
    s.chunk(
        &chunk(json!({"tool_calls": [{"function": {"name": "f"}}]}), None),
        &mut out,
    );
    s.chunk(
        br#"{"choices":[{"index":1,"delta":{"content":"other"}}]}"#,
        &mut out,
    );
    s.chunk(&chunk(json!({"content": "after"}), Some("stop")), &mut out);
    s.finish(&mut out);
    let end: Value = serde_json::from_slice(&s.response().unwrap()).unwrap();
    assert_eq!(end["status"], "completed");
    let output = end["output"].as_array().unwrap();
    assert_eq!(output.len(), 2);
    assert_eq!(output[0]["call_id"], "call_abc_0");
    assert_eq!(output[0]["name"], "f");
    assert_eq!(output[0]["arguments"], "{}");
    assert_eq!(output[1]["id"], "msg_abc_1");
    assert_eq!(output[1]["content"][0]["text"], "after");
    let evs = events(&out);
    for (i, (_, data)) in evs.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
}

// ---- robustness ----

/// Values that are wrong in interesting ways.
fn nasty_values() -> Vec<Value> {
    let mut deep = json!("x");
    for _ in 0..100 {
        deep = json!([deep]);
    }
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!(-0.5),
        json!(""),
        json!("\u{0}\u{ffff}"),
        json!([]),
        json!({}),
        json!([null]),
        json!([{}]),
        json!([{"type": null}]),
        json!({"type": "function", "name": 1}),
        deep,
    ]
}

/// Every field of `body` (to depth 4) replaced by every nasty value, one at a time.
fn mutations(body: &Value) -> Vec<Value> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if path.len() > 4 {
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    path.push(k.clone());
                    out.push(path.clone());
                    walk(c, path, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(path.clone());
                    walk(c, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut paths = Vec::new();
    walk(body, &mut Vec::new(), &mut paths);
    let mut out = Vec::new();
    for path in paths {
        let pointer: String = path.iter().map(|p| format!("/{p}")).collect();
        for nasty in nasty_values() {
            let mut b = body.clone();
            if let Some(slot) = b.pointer_mut(&pointer) {
                *slot = nasty;
            }
            out.push(b);
        }
    }
    out
}

fn raw_nasty() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"{\"model\":\"\xff\",\"input\":\"x\"}".to_vec(),
        b"{\"model\":\"m\",\"input\":\"\\ud800\"}".to_vec(),
        b"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":1e999}".to_vec(),
        b"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":123456789012345678901234567890}"
            .to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{".to_vec(),
    ];
    v.push(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes());
    v.push(
        format!(
            "{{\"model\":\"m\",\"input\":{}1{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        )
        .into_bytes(),
    );
    v
}

#[test]
fn never_panics() {
    let base = json!({
        "model": "m", "instructions": "i", "stream": true, "store": true,
        "previous_response_id": "resp_0",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "t"},
                {"type": "input_image", "image_url": "u", "detail": "low"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "o"}]}
        ],
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {}, "strict": true}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {}, "strict": true}},
        "reasoning": {"effort": "low"}, "max_output_tokens": 5, "temperature": 1, "top_p": 1,
        "parallel_tool_calls": true, "user": "u", "metadata": {}
    });
    let chats: Vec<Vec<u8>> = {
        let whole = json!({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "c", "refusal": "r", "tool_calls": [{"id": "i", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 0}}});
        let delta = json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "c",
            "refusal": "r", "tool_calls": [{"index": 0, "id": "i",
            "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1}});
        let mut c: Vec<Vec<u8>> = mutations(&whole)
            .into_iter()
            .chain(mutations(&delta))
            .map(|v| serde_json::to_vec(&v).unwrap())
            .collect();
        c.extend(raw_nasty());
        c
    };
    let mut bodies: Vec<Vec<u8>> = mutations(&base)
        .into_iter()
        .map(|v| serde_json::to_vec(&v).unwrap())
        .collect();
    bodies.push(serde_json::to_vec(&base).unwrap());
    bodies.extend(raw_nasty());
    let histories: Vec<Vec<u8>> = raw_nasty()
        .into_iter()
        .chain([br#"[{"role":"user","content":"h"}]"#.to_vec()])
        .collect();
    let mut parsed = 0;
    for body in &bodies {
        let Ok(r) = parse(body) else { continue };
        parsed += 1;
        let _ = r.to_chat(None);
        for h in &histories {
            let _ = r.to_chat(Some(h));
            let _ = conversation(&r, Some(h), b"{\"output\":[]}");
        }
        for chat in chats.iter().step_by(7) {
            let _ = reply_from_chat(&r, &meta(), chat);
            let _ = conversation(&r, None, chat);
        }
    }
    assert!(parsed > 10, "the mutations should leave some bodies valid");
    let r = req(base);
    for m in [
        meta(),
        Meta {
            id: String::new(),
            created_at: u64::MAX,
            model: String::new(),
        },
    ] {
        let mut s = Stream::new(&r, &m);
        let mut out = Vec::new();
        for chat in &chats {
            s.chunk(chat, &mut out);
            let _ = reply_from_chat(&r, &m, chat);
            let _ = conversation(&r, None, chat);
        }
        s.finish(&mut out);
        let ev = events(&out);
        for (i, (_, data)) in ev.iter().enumerate() {
            assert_eq!(data["sequence_number"], i as u64);
        }
        let end = s.response().unwrap();
        let _ = conversation(&r, None, &end).unwrap();
    }
}
