use super::*;
use crate::{StreamFailure, StreamWriter};
use serde_json::{json, Value};

fn base() -> Value {
    json!({"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
}

fn with(mut body: Value, key: &str, v: Value) -> Value {
    body[key] = v;
    body
}

fn chat(body: &Value) -> Value {
    let req = to_chat(&serde_json::to_vec(body).unwrap()).unwrap();
    serde_json::from_slice(&req.body).unwrap()
}

fn err(body: &Value) -> Invalid {
    to_chat(&serde_json::to_vec(body).unwrap()).unwrap_err()
}

fn msgs(body: Value) -> Value {
    chat(&with(base(), "messages", body))["messages"].clone()
}

// ---- to_chat --------------------------------------------------------------------------

#[test]
fn minimal_request() {
    let req = to_chat(&serde_json::to_vec(&base()).unwrap()).unwrap();
    assert_eq!(req.model, "claude-x");
    assert!(!req.stream);
    assert!(!req.include_usage);
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "claude-x", "max_tokens": 100,
               "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn system_string_and_blocks() {
    let b = with(base(), "system", json!("be brief"));
    assert_eq!(
        chat(&b)["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    let b = with(
        base(),
        "system",
        json!([
            {"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "two"}
        ]),
    );
    let m = chat(&b)["messages"].clone();
    assert_eq!(m[0], json!({"role": "system", "content": "one\n\ntwo"}));
    assert_eq!(m[1]["role"], "user");
}

#[test]
fn user_text_blocks_and_images() {
    let m = msgs(json!([{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}
    ]}]));
    assert_eq!(m, json!([{"role": "user", "content": "a\n\nb"}]));

    let m = msgs(json!([{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    ]}]));
    assert_eq!(
        m,
        json!([{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
        ]}])
    );
}

#[test]
fn assistant_tool_use_and_thinking() {
    let m = msgs(json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xx"},
            {"type": "text", "text": "checking"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "n": [1, 2]}}
        ]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_2", "name": "noargs", "input": {}}
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "plain"}]}
    ]));
    assert_eq!(
        m[1],
        json!({"role": "assistant", "content": "checking", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"n\":[1,2]}"}}
        ]})
    );
    assert_eq!(m[2]["content"], Value::Null);
    assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(m[3], json!({"role": "assistant", "content": "plain"}));
}

#[test]
fn tool_results_come_first_in_their_turn() {
    let m = msgs(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "f", "input": {}}
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "and then"},
            {"type": "tool_result", "tool_use_id": "a", "content": "result a"},
            {"type": "tool_result", "tool_use_id": "b", "is_error": true, "content": [
                {"type": "text", "text": "line1"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}},
                {"type": "text", "text": "line2"}
            ]}
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c"}]}
    ]));
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "a", "content": "result a"})
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "b",
               "content": format!("line1\n\n{}\n\nline2", request::IMAGE_MARKER)})
    );
    assert_eq!(m[4], json!({"role": "user", "content": "and then"}));
    // A turn of only tool results has no user message after them.
    assert_eq!(
        m[6],
        json!({"role": "tool", "tool_call_id": "c", "content": ""})
    );
    assert_eq!(m.as_array().unwrap().len(), 7);
}

#[test]
fn tools_and_tool_choice() {
    let tools = json!([
        {"name": "f", "description": "does f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "g", "input_schema": {"type": "object", "properties": {}}}
    ]);
    let b = with(base(), "tools", tools.clone());
    let c = chat(&b);
    assert_eq!(
        c["tools"],
        json!([
            {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {}}}}
        ])
    );
    for (choice, want) in [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ] {
        let c = chat(&with(b.clone(), "tool_choice", choice));
        assert_eq!(c["tool_choice"], want);
        assert!(c.get("parallel_tool_calls").is_none());
    }
    let c = chat(&with(
        b.clone(),
        "tool_choice",
        json!({"type": "auto", "disable_parallel_tool_use": true}),
    ));
    assert_eq!(c["parallel_tool_calls"], json!(false));
    // Without tools a tool choice is not sent (chat providers refuse it).
    let c = chat(&with(base(), "tool_choice", json!({"type": "auto"})));
    assert!(c.get("tool_choice").is_none());
}

#[test]
fn parameters() {
    let mut b = base();
    b["temperature"] = json!(0.5);
    b["top_p"] = json!(0.9);
    b["top_k"] = json!(40);
    b["stop_sequences"] = json!(["END", "STOP"]);
    b["metadata"] = json!({"user_id": "u-1"});
    b["stream"] = json!(true);
    b["service_tier"] = json!("auto");
    b["unknown_thing"] = json!({"x": 1});
    let req = to_chat(&serde_json::to_vec(&b).unwrap()).unwrap();
    assert!(req.stream);
    assert!(!req.include_usage);
    let c: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(c["temperature"], json!(0.5));
    assert_eq!(c["top_p"], json!(0.9));
    assert!(c.get("top_k").is_none());
    assert_eq!(c["stop"], json!(["END", "STOP"]));
    assert_eq!(c["user"], "u-1");
    assert_eq!(c["stream"], json!(true));
    assert_eq!(c["stream_options"], json!({"include_usage": true}));
    assert!(c.get("service_tier").is_none());
    assert!(c.get("unknown_thing").is_none());

    for (budget, effort) in [
        (1024, "low"),
        (4095, "low"),
        (4096, "medium"),
        (16383, "medium"),
        (16384, "high"),
    ] {
        let c = chat(&with(
            base(),
            "thinking",
            json!({"type": "enabled", "budget_tokens": budget}),
        ));
        assert_eq!(c["reasoning_effort"], effort, "budget {budget}");
    }
    let c = chat(&with(base(), "thinking", json!({"type": "disabled"})));
    assert!(c.get("reasoning_effort").is_none());
    // null reads as absent.
    let c = chat(&with(base(), "temperature", Value::Null));
    assert!(c.get("temperature").is_none());
}

#[test]
fn error_paths() {
    let user = |content: Value| json!([{"role": "user", "content": content}]);
    let asst = |content: Value| json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": content}]);
    let cases: Vec<(Value, &str)> = vec![
        (json!([1]), "body"),
        (json!({"max_tokens": 1, "messages": []}), "model"),
        (with(base(), "model", json!("")), "model"),
        (with(base(), "model", json!(7)), "model"),
        (with(base(), "max_tokens", Value::Null), "max_tokens"),
        (with(base(), "max_tokens", json!(0)), "max_tokens"),
        (with(base(), "max_tokens", json!(-5)), "max_tokens"),
        (with(base(), "max_tokens", json!(1.5)), "max_tokens"),
        (with(base(), "max_tokens", json!("10")), "max_tokens"),
        (with(base(), "messages", Value::Null), "messages"),
        (with(base(), "messages", json!({})), "messages"),
        (with(base(), "messages", json!([])), "messages"),
        (with(base(), "messages", json!(["hi"])), "messages[0]"),
        (
            with(
                base(),
                "messages",
                json!([{"role": "system", "content": "x"}]),
            ),
            "messages[0].role",
        ),
        (
            with(base(), "messages", json!([{"role": "user"}])),
            "messages[0].content",
        ),
        (
            with(base(), "messages", user(json!(5))),
            "messages[0].content",
        ),
        (
            with(base(), "messages", user(json!([{"text": "no type"}]))),
            "messages[0].content[0].type",
        ),
        (
            with(base(), "messages", user(json!([{"type": "text"}]))),
            "messages[0].content[0].text",
        ),
        (
            with(
                base(),
                "messages",
                user(json!([{"type": "document", "source": {}}])),
            ),
            "messages[0].content[0].type",
        ),
        (
            with(base(), "messages", user(json!([{"type": "search_result"}]))),
            "messages[0].content[0].type",
        ),
        (
            with(base(), "messages", user(json!([{"type": "bogus"}]))),
            "messages[0].content[0].type",
        ),
        (
            with(
                base(),
                "messages",
                user(
                    json!([{"type": "text", "text": "ok"}, {"type": "image", "source": {"type": "file", "file_id": "f"}}]),
                ),
            ),
            "messages[0].content[1].source.type",
        ),
        (
            with(
                base(),
                "messages",
                user(
                    json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]),
                ),
            ),
            "messages[0].content[0].source.data",
        ),
        (
            with(base(), "messages", user(json!([{"type": "image"}]))),
            "messages[0].content[0].source",
        ),
        (
            with(
                base(),
                "messages",
                user(json!([{"type": "tool_use", "id": "a", "name": "f", "input": {}}])),
            ),
            "messages[0].content[0].type",
        ),
        (
            with(
                base(),
                "messages",
                user(
                    json!([{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "document"}]}]),
                ),
            ),
            "messages[0].content[0].content[0].type",
        ),
        (
            with(
                base(),
                "messages",
                user(json!([{"type": "tool_result", "tool_use_id": "a", "content": 5}])),
            ),
            "messages[0].content[0].content",
        ),
        (
            with(
                base(),
                "messages",
                user(json!([{"type": "tool_result", "tool_use_id": "a", "is_error": "yes"}])),
            ),
            "messages[0].content[0].is_error",
        ),
        (
            with(
                base(),
                "messages",
                user(json!([{"type": "tool_result", "content": "x"}])),
            ),
            "messages[0].content[0].tool_use_id",
        ),
        (
            with(
                base(),
                "messages",
                asst(json!([{"type": "tool_result", "tool_use_id": "a"}])),
            ),
            "messages[1].content[0].type",
        ),
        (
            with(
                base(),
                "messages",
                asst(json!([{"type": "tool_use", "id": "a", "name": "f", "input": [1]}])),
            ),
            "messages[1].content[0].input",
        ),
        (
            with(
                base(),
                "messages",
                asst(json!([{"type": "tool_use", "id": "a", "input": {}}])),
            ),
            "messages[1].content[0].name",
        ),
        (
            with(
                base(),
                "messages",
                asst(json!([{"type": "image", "source": {"type": "url", "url": "u"}}])),
            ),
            "messages[1].content[0].type",
        ),
        (
            with(
                base(),
                "messages",
                asst(
                    json!([{"type": "server_tool_use", "id": "a", "name": "web_search", "input": {}}]),
                ),
            ),
            "messages[1].content[0].type",
        ),
        (
            with(base(), "system", json!([{"type": "image"}])),
            "system[0].type",
        ),
        (with(base(), "system", json!(3)), "system"),
        (
            with(
                base(),
                "tools",
                json!([{"name": "f", "input_schema": {}}, {"type": "web_search_20250305", "name": "web_search"}]),
            ),
            "tools[1].type",
        ),
        (
            with(
                base(),
                "tools",
                json!([{"type": "bash_20250124", "name": "bash"}]),
            ),
            "tools[0].type",
        ),
        (
            with(base(), "tools", json!([{"name": "f"}])),
            "tools[0].input_schema",
        ),
        (
            with(base(), "tools", json!([{"name": "f", "input_schema": "x"}])),
            "tools[0].input_schema",
        ),
        (
            with(base(), "tools", json!([{"input_schema": {}}])),
            "tools[0].name",
        ),
        (with(base(), "tools", json!({})), "tools"),
        (
            with(base(), "tool_choice", json!({"type": "bogus"})),
            "tool_choice.type",
        ),
        (
            with(base(), "tool_choice", json!({"type": "tool"})),
            "tool_choice.name",
        ),
        (
            with(
                base(),
                "tool_choice",
                json!({"type": "auto", "disable_parallel_tool_use": 1}),
            ),
            "tool_choice.disable_parallel_tool_use",
        ),
        (with(base(), "tool_choice", json!("auto")), "tool_choice"),
        (with(base(), "temperature", json!("hot")), "temperature"),
        (with(base(), "top_p", json!([])), "top_p"),
        (with(base(), "top_k", json!(-1)), "top_k"),
        (
            with(base(), "stop_sequences", json!(["a", 1])),
            "stop_sequences[1]",
        ),
        (with(base(), "stop_sequences", json!("a")), "stop_sequences"),
        (
            with(base(), "metadata", json!({"user_id": 5})),
            "metadata.user_id",
        ),
        (with(base(), "metadata", json!([])), "metadata"),
        (
            with(base(), "thinking", json!({"type": "enabled"})),
            "thinking.budget_tokens",
        ),
        (with(base(), "thinking", json!({})), "thinking.type"),
        (with(base(), "stream", json!("yes")), "stream"),
    ];
    for (body, param) in cases {
        let e = err(&body);
        assert_eq!(e.param, param, "body {body}: {e}");
        assert!(!e.message.is_empty());
    }
    assert_eq!(to_chat(b"not json").unwrap_err().param, "body");
    assert_eq!(to_chat(b"").unwrap_err().param, "body");
}

#[test]
fn error_messages_say_what_to_send() {
    let e = err(&with(
        base(),
        "tools",
        json!([{"type": "web_search_20250305", "name": "web_search"}]),
    ));
    assert!(e.message.contains("only custom tools"), "{}", e.message);
    let e = err(&with(base(), "max_tokens", json!(0)));
    assert!(e.message.contains("positive integer"));
    let e = err(&with(base(), "model", json!(7)));
    assert!(e.message.contains("a string") && e.message.contains("a number"));
}

// ---- count_tokens ---------------------------------------------------------------------

fn count(body: &Value) -> Result<u64, Invalid> {
    count_tokens(&serde_json::to_vec(body).unwrap())
}

#[test]
fn count_tokens_estimates() {
    // 4 bytes of system + 12 of text = 16 bytes = 4 tokens, plus 4 for the message.
    let b = json!({"model": "m", "system": "abcd",
                   "messages": [{"role": "user", "content": "hello world!"}]});
    assert_eq!(count(&b), Ok(8));
    // max_tokens is not required, and the same body counts the same.
    assert_eq!(count(&b), Ok(8));

    let b = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "abcd"},
        {"type": "image", "source": {"type": "url", "url": "https://x"}}
    ]}]});
    assert_eq!(count(&b), Ok(1 + 4 + 1_600));

    // tool_use input and tool_result text and tool definitions count too.
    let small = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let big = json!({"model": "m",
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {"k": "v"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "some result text"}]}
    ]});
    let (s, b) = (count(&small).unwrap(), count(&big).unwrap());
    assert!(b > s + 8 + 4, "{s} {b}");
}

#[test]
fn count_tokens_validates() {
    assert_eq!(
        count(&json!({"messages": [{"role": "user", "content": "x"}]}))
            .unwrap_err()
            .param,
        "model"
    );
    assert_eq!(count(&json!({"model": "m"})).unwrap_err().param, "messages");
    assert_eq!(
        count(&json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}))
            .unwrap_err()
            .param,
        "messages[0].role"
    );
    assert_eq!(
        count(
            &json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                      "tools": [{"type": "web_search_20250305", "name": "w"}]})
        )
        .unwrap_err()
        .param,
        "tools[0].type"
    );
}

// ---- reply_from_chat ------------------------------------------------------------------

fn reply(chat: Value) -> Value {
    let bytes =
        reply_from_chat(&serde_json::to_vec(&chat).unwrap(), "claude-x", "msg_given").unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn reply_text() {
    let r = reply(json!({
        "id": "chatcmpl-9", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 40}}
    }));
    assert_eq!(
        r,
        json!({
            "id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Hello"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 60, "output_tokens": 7,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 40}
        })
    );
}

#[test]
fn reply_tools_and_reasoning() {
    let r = reply(json!({
        "id": "c1",
        "choices": [{"message": {
            "role": "assistant", "content": null, "reasoning_content": "let me think",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"type": "function", "function": {"name": "broken", "arguments": "{not json"}},
                {"id": "call_3", "type": "function", "function": {"name": "arr", "arguments": "[1,2]"}}
            ]}, "finish_reason": "tool_calls"}]
    }));
    assert_eq!(r["stop_reason"], "tool_use");
    let c = r["content"].as_array().unwrap();
    assert_eq!(c.len(), 4);
    assert_eq!(
        c[0],
        json!({"type": "thinking", "thinking": "let me think", "signature": ""})
    );
    assert_eq!(
        c[1],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(c[2]["input"], json!({}));
    assert_eq!(c[2]["name"], "broken");
    assert!(c[2]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(c[3]["input"], json!({}));
    // Usage absent → zeros.
    assert_eq!(r["usage"]["input_tokens"], 0);
    assert_eq!(r["usage"]["output_tokens"], 0);

    // Text alongside tool calls is kept; "stop" with tool calls still means tool_use.
    let r = reply(
        json!({"choices": [{"message": {"content": "ok", "tool_calls": [
        {"id": "x", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "stop"}]}),
    );
    assert_eq!(r["content"][0], json!({"type": "text", "text": "ok"}));
    assert_eq!(r["content"][1]["type"], "tool_use");
    assert_eq!(r["stop_reason"], "tool_use");
    assert_eq!(r["id"], "msg_given");
}

#[test]
fn reply_stop_reasons_and_empty() {
    for (finish, want) in [
        (json!("stop"), "end_turn"),
        (json!("length"), "max_tokens"),
        (json!("content_filter"), "refusal"),
        (json!("function_call"), "tool_use"),
        (Value::Null, "end_turn"),
        (json!("weird"), "end_turn"),
    ] {
        let r = reply(json!({"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}));
        assert_eq!(r["stop_reason"], want);
    }
    let r = reply(json!({"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]}));
    assert_eq!(r["content"], json!([]));
    let r = reply(json!({"choices": [{"message": {"content": null, "refusal": "no"}}]}));
    assert_eq!(r["content"], json!([{"type": "text", "text": "no"}]));
    let r = reply(
        json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}),
    );
    assert_eq!(r["content"], json!([{"type": "text", "text": "ab"}]));
    // Legacy function_call.
    let r = reply(
        json!({"choices": [{"message": {"function_call": {"name": "f", "arguments": "{\"a\":1}"}}, "finish_reason": "function_call"}]}),
    );
    assert_eq!(r["content"][0]["name"], "f");
    assert_eq!(r["content"][0]["input"], json!({"a": 1}));
    // Cached more than prompt: saturates.
    let r = reply(json!({"choices": [{"message": {"content": "x"}}],
        "usage": {"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 5}}}));
    assert_eq!(r["usage"]["input_tokens"], 0);
}

#[test]
fn reply_unreadable() {
    for bad in [
        &b"nope"[..],
        b"[]",
        b"{}",
        b"{\"choices\": {}}",
        b"{\"choices\": []}",
        b"{\"choices\": [1]}",
        b"{\"choices\": [{}]}",
        b"{\"choices\": [{\"message\": \"x\"}]}",
    ] {
        assert!(
            reply_from_chat(bad, "m", "id").is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

// ---- Stream ---------------------------------------------------------------------------

/// The events written, as (event name, data); checks the name is the data's type.
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"));
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_string();
            let data: Value =
                serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap())
                    .unwrap();
            assert_eq!(data["type"], name.as_str());
            assert!(lines.next().is_none());
            (name, data)
        })
        .collect()
}

fn names(ev: &[(String, Value)]) -> Vec<&str> {
    ev.iter().map(|(n, _)| n.as_str()).collect()
}

fn feed(s: &mut Stream, chunks: &[Value], out: &mut Vec<u8>) {
    for c in chunks {
        s.chunk(&serde_json::to_vec(c).unwrap(), out);
    }
}

fn delta(d: Value) -> Value {
    json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": null}]})
}

fn tc(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut f = json!({"arguments": args});
    if let Some(n) = name {
        f["name"] = json!(n);
    }
    let mut call = json!({"index": index, "function": f});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    delta(json!({"tool_calls": [call]}))
}

/// Concatenated partial_json per block index.
fn inputs(ev: &[(String, Value)]) -> std::collections::BTreeMap<u64, String> {
    let mut m = std::collections::BTreeMap::new();
    for (_, d) in ev {
        if d["type"] == "content_block_delta" && d["delta"]["type"] == "input_json_delta" {
            m.entry(d["index"].as_u64().unwrap())
                .or_insert_with(String::new)
                .push_str(d["delta"]["partial_json"].as_str().unwrap());
        }
    }
    m
}

#[test]
fn stream_text_then_interleaved_tools() {
    let mut s = Stream::new("claude-x", "msg_given");
    let mut out = Vec::new();
    feed(
        &mut s,
        &[
            delta(json!({"role": "assistant", "content": ""})),
            delta(json!({"content": "Hel"})),
            delta(json!({"content": "lo"})),
            tc(0, Some("call_a"), Some("get_weather"), ""),
            tc(1, Some("call_b"), Some("get_time"), "{\"tz\":"),
            tc(0, None, None, "{\"city\":"),
            tc(1, None, None, "\"UTC\"}"),
            tc(0, None, None, "\"Paris\"}"),
            json!({"id": "chatcmpl-7", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"id": "chatcmpl-7", "choices": [],
                   "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 30}}}),
        ],
        &mut out,
    );
    s.finish(&mut out);
    let ev = events(&out);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(
        ev[0].1,
        json!({"type": "message_start", "message": {
            "id": "msg_chatcmpl-7", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})
    );
    assert_eq!(
        ev[2].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(
        ev[3].1["delta"],
        json!({"type": "text_delta", "text": "Hel"})
    );
    assert_eq!(ev[4].1["delta"]["text"], "lo");
    assert_eq!(ev[5].1, json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        ev[6].1,
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}})
    );
    assert_eq!(ev[10].1["content_block"]["id"], "call_b");
    assert_eq!(ev[10].1["content_block"]["name"], "get_time");
    assert_eq!(ev[10].1["index"], 2);
    assert_eq!(ev[12].1["index"], 2);
    let inputs = inputs(&ev);
    let parse = |i: u64| serde_json::from_str::<Value>(&inputs[&i]).unwrap();
    assert_eq!(parse(1), json!({"city": "Paris"}));
    assert_eq!(parse(2), json!({"tz": "UTC"}));
    assert_eq!(
        ev[13].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"input_tokens": 70, "output_tokens": 20, "cache_read_input_tokens": 30}})
    );
    // Nothing after the end.
    let mut more = Vec::new();
    s.chunk(
        &serde_json::to_vec(&delta(json!({"content": "late"}))).unwrap(),
        &mut more,
    );
    s.finish(&mut more);
    s.fail(
        &StreamFailure {
            status: 502,
            upstream_status: None,
            code: "x",
            message: "m",
        },
        &mut more,
    );
    assert!(more.is_empty());
}

#[test]
fn stream_sequential_tools_are_live() {
    let mut s = Stream::new("m", "msg_given");
    let mut out = Vec::new();
    feed(
        &mut s,
        &[
            tc(0, Some("a"), Some("f"), "{\"x\":"),
            tc(0, None, None, "1}"),
            tc(1, Some("b"), Some("g"), "{}"),
            // One chunk may carry several complete calls.
            delta(json!({"tool_calls": [
                {"index": 2, "id": "c", "function": {"name": "h", "arguments": "{\"y\":2}"}},
                {"index": 3, "id": "d", "function": {"name": "k", "arguments": "{}"}}
            ]})),
        ],
        &mut out,
    );
    let live = events(&out);
    // Each call started as soon as it came: 4 blocks open, 3 closed before finish.
    assert_eq!(
        live.iter()
            .filter(|(n, _)| n == "content_block_start")
            .count(),
        4
    );
    assert_eq!(
        live.iter()
            .filter(|(n, _)| n == "content_block_stop")
            .count(),
        3
    );
    s.finish(&mut out);
    let ev = events(&out);
    let inputs = inputs(&ev);
    assert_eq!(inputs[&0], "{\"x\":1}");
    assert_eq!(inputs[&1], "{}");
    assert_eq!(inputs[&2], "{\"y\":2}");
    assert_eq!(inputs[&3], "{}");
    // No finish_reason came, but tools were called.
    let md = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(md.1["delta"]["stop_reason"], "tool_use");
}

#[test]
fn stream_tools_without_index_or_with_reused_index() {
    // No index (some providers): each id starts a call; fragments without id go to the last.
    let mut s = Stream::new("m", "msg_given");
    let mut out = Vec::new();
    feed(
        &mut s,
        &[
            delta(
                json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"p\":"}}]}),
            ),
            delta(json!({"tool_calls": [{"function": {"arguments": "1}"}}]})),
            delta(
                json!({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
            ),
            // Index 0 reused by a new id.
            tc(0, Some("c"), Some("h"), "{}"),
            tc(0, Some("d"), Some("k"), "{}"),
        ],
        &mut out,
    );
    s.finish(&mut out);
    let ev = events(&out);
    let ids: Vec<&str> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["content_block"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert_eq!(inputs(&ev)[&0], "{\"p\":1}");
}

#[test]
fn stream_tool_arguments_held_until_the_end() {
    // The live call's arguments never complete: the other call goes out whole at the end,
    // and a call whose name never came gets an empty one and a made-up id.
    let mut s = Stream::new("m", "msg_given");
    let mut out = Vec::new();
    feed(
        &mut s,
        &[
            tc(0, Some("a"), Some("f"), "{\"x\":"),
            tc(1, Some("b"), Some("g"), "{\"y\":"),
            tc(1, None, None, "2}"),
            tc(2, None, None, "{}"),
        ],
        &mut out,
    );
    s.finish(&mut out);
    let ev = events(&out);
    let starts: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| &d["content_block"])
        .collect();
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[1]["id"], "b");
    assert_eq!(starts[2]["name"], "");
    assert!(starts[2]["id"].as_str().unwrap().starts_with("toolu_"));
    let inputs = inputs(&ev);
    assert_eq!(inputs[&0], "{\"x\":");
    assert_eq!(inputs[&1], "{\"y\":2}");
    assert_eq!(inputs[&2], "{}");
    let n = names(&ev);
    assert_eq!(&n[n.len() - 2..], ["message_delta", "message_stop"]);
}

#[test]
fn stream_reasoning_then_text() {
    let mut s = Stream::new("m", "msg_given");
    let mut out = Vec::new();
    feed(
        &mut s,
        &[
            delta(json!({"reasoning_content": "think"})),
            delta(json!({"reasoning_content": "ing"})),
            delta(json!({"content": "answer", "reasoning_content": null})),
            json!({"choices": [{"delta": {}, "finish_reason": "length"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 9}}),
        ],
        &mut out,
    );
    s.finish(&mut out);
    let ev = events(&out);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(
        ev[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "think"})
    );
    assert_eq!(ev[6].1["index"], 1);
    assert_eq!(ev[9].1["delta"]["stop_reason"], "max_tokens");
    assert_eq!(ev[9].1["usage"]["input_tokens"], 5);
    assert_eq!(ev[9].1["usage"]["output_tokens"], 9);
}

#[test]
fn stream_fail_after_partial_output() {
    let mut s = Stream::new("m", "msg_given");
    let mut out = Vec::new();
    feed(&mut s, &[delta(json!({"content": "partial"}))], &mut out);
    s.fail(
        &StreamFailure {
            status: 502,
            upstream_status: Some(529),
            code: "upstream_error",
            message: "overloaded upstream",
        },
        &mut out,
    );
    let ev = events(&out);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        ev[4].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "overloaded upstream"}})
    );
    let mut more = Vec::new();
    s.finish(&mut more);
    assert!(more.is_empty());

    // Failing before anything came: only the error.
    let mut s = Stream::new("m", "msg_given");
    let mut out = Vec::new();
    s.fail(
        &StreamFailure {
            status: 504,
            upstream_status: None,
            code: "upstream_timeout",
            message: "t",
        },
        &mut out,
    );
    let ev = events(&out);
    assert_eq!(names(&ev), ["error"]);
    assert_eq!(ev[0].1["error"]["type"], "timeout_error");
}

#[test]
fn stream_finish_without_chunks() {
    let mut s = Stream::new("claude-x", "msg_given");
    let mut out = Vec::new();
    s.chunk(b"not json", &mut out);
    s.chunk(b"[1,2]", &mut out);
    assert!(out.is_empty());
    s.finish(&mut out);
    let ev = events(&out);
    assert_eq!(
        names(&ev),
        ["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(ev[0].1["message"]["id"], "msg_given");
    assert_eq!(
        ev[2].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0}})
    );
}

#[test]
fn error_type_and_body() {
    assert_eq!(error_type(400, None), "invalid_request_error");
    assert_eq!(error_type(502, Some(529)), "overloaded_error");
    assert_eq!(error_type(502, None), "api_error");
    let b: Value = serde_json::from_slice(&error_body("api_error", "boom")).unwrap();
    assert_eq!(
        b,
        json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})
    );
}

// ---- never panics ---------------------------------------------------------------------

/// Every node of `v` replaced, one at a time, by each of `nasty`.
fn mutations(v: &Value, nasty: &[Value]) -> Vec<Value> {
    fn walk(v: &Value, path: &mut Vec<PathStep>, paths: &mut Vec<Vec<PathStep>>) {
        paths.push(path.clone());
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    walk(x, path, paths);
                    path.pop();
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    path.push(PathStep::Key(k.clone()));
                    walk(x, path, paths);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut paths = Vec::new();
    walk(v, &mut Vec::new(), &mut paths);
    let mut out = Vec::new();
    for p in &paths {
        for n in nasty {
            let mut copy = v.clone();
            let mut node = &mut copy;
            for step in p {
                node = match step {
                    PathStep::Index(i) => &mut node[*i],
                    PathStep::Key(k) => &mut node[k.as_str()],
                };
            }
            *node = n.clone();
            out.push(copy);
        }
    }
    out
}

#[derive(Clone)]
enum PathStep {
    Index(usize),
    Key(String),
}

fn nasty_values() -> Vec<Value> {
    let mut deep = json!("bottom");
    for _ in 0..100 {
        deep = json!([deep, {"k": 1}]);
    }
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.0e300),
        json!(""),
        json!("\u{0}\u{ffff}💥"),
        json!([]),
        json!({}),
        json!([null, 1, "x", {}]),
        json!({"type": "text"}),
        json!({"type": "image", "source": {"type": "base64"}}),
        json!({"type": "tool_result", "content": [{"type": "image"}]}),
        deep,
    ]
}

fn raw_nasty() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"{\"model\":\"\xff\"}".to_vec(),
        b"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\"}]}"
            .to_vec(),
        b"null".to_vec(),
        b"{".to_vec(),
        b"{\"max_tokens\": 1e999999}".to_vec(),
        b"{\"max_tokens\": 123456789012345678901234567890}".to_vec(),
        b"\"\\ud800\"".to_vec(),
    ];
    v.push("[".repeat(100_000).into_bytes());
    v.push(format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)).into_bytes());
    v.push(
        format!(
            "{{\"model\":\"m\",\"max_tokens\":1,\"messages\":{}",
            "[".repeat(10_000)
        )
        .into_bytes(),
    );
    v
}

#[test]
fn garbage_never_panics() {
    let rich_request = json!({
        "model": "m", "max_tokens": 10, "stream": true, "temperature": 1, "top_k": 3,
        "stop_sequences": ["x"], "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 5000},
        "system": [{"type": "text", "text": "s"}],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "t"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "x"},
                {"type": "tool_use", "id": "a", "name": "f", "input": {"q": [1]}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a", "is_error": false,
                 "content": [{"type": "text", "text": "r"}, {"type": "image", "source": {"type": "url", "url": "u"}}]}]}
        ]
    });
    let rich_reply = json!({
        "id": "c", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "content": "x", "reasoning_content": "r", "refusal": null,
            "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 9}}
    });
    let rich_chunk = json!({
        "id": "c", "choices": [{"index": 0, "finish_reason": "stop", "delta": {
            "content": "x", "reasoning_content": "r",
            "tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"a\":"}},
                           {"index": 1, "function": {"arguments": "\"\\\"}]"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4}
    });
    let nasty = nasty_values();
    let mut inputs: Vec<Vec<u8>> = raw_nasty();
    for v in [&rich_request, &rich_reply, &rich_chunk] {
        inputs.push(serde_json::to_vec(v).unwrap());
        for m in mutations(v, &nasty) {
            inputs.push(serde_json::to_vec(&m).unwrap());
        }
    }
    for n in &nasty {
        inputs.push(serde_json::to_vec(n).unwrap());
    }
    assert!(to_chat(&serde_json::to_vec(&rich_request).unwrap()).is_ok());
    assert!(count_tokens(&serde_json::to_vec(&rich_request).unwrap()).is_ok());
    assert!(reply_from_chat(&serde_json::to_vec(&rich_reply).unwrap(), "m", "i").is_ok());

    let mut stream = Stream::new("m", "i");
    let mut out = Vec::new();
    for input in &inputs {
        let _ = to_chat(input);
        let _ = count_tokens(input);
        let _ = reply_from_chat(input, "m", "i");
        stream.chunk(input, &mut out);
        // Also each alone, in a fresh stream that then ends both ways.
        let mut s = Stream::new("m", "i");
        let mut o = Vec::new();
        s.chunk(input, &mut o);
        s.chunk(input, &mut o);
        s.finish(&mut o);
        events(&o);
    }
    stream.finish(&mut out);
    let ev = events(&out);
    assert_eq!(ev.last().unwrap().0, "message_stop");
}
