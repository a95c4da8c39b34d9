use super::*;
use serde_json::json;

fn chat(body: Value) -> ChatRequest {
    to_chat(&serde_json::to_vec(&body).unwrap()).unwrap()
}

fn err(body: Value) -> Invalid {
    to_chat(&serde_json::to_vec(&body).unwrap()).unwrap_err()
}

fn body_of(c: &ChatRequest) -> Value {
    serde_json::from_slice(&c.body).unwrap()
}

/// `data:` events → their payloads (`[DONE]` as a string).
fn data_events(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"));
    text.split_terminator("\n\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").unwrap();
            assert!(!data.contains('\n'));
            if data == "[DONE]" {
                Value::String(data.into())
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

#[test]
fn minimal_request() {
    let c = chat(json!({"model": "m", "prompt": "Once upon"}));
    assert_eq!(c.model, "m");
    assert!(!c.stream);
    assert!(!c.include_usage);
    assert_eq!(
        body_of(&c),
        json!({"model": "m", "messages": [{"role": "user", "content": "Once upon"}], "max_tokens": 16})
    );
    let c = chat(json!({"model": "m", "prompt": ["only one"], "max_tokens": null}));
    assert_eq!(body_of(&c)["messages"][0]["content"], "only one");
    assert_eq!(body_of(&c)["max_tokens"], 16);
}

#[test]
fn carried_fields() {
    let c = chat(json!({
        "model": "m", "prompt": "p", "max_tokens": 99, "temperature": 0.3, "top_p": 0.8, "n": 2,
        "stop": ["\n", "END"], "presence_penalty": 0.1, "frequency_penalty": -0.2, "seed": -7,
        "user": "u", "logit_bias": {"50256": -100}, "stream": true,
        "stream_options": {"include_usage": true},
        "echo": false, "best_of": 1, "suffix": null, "logprobs": null
    }));
    assert!(c.stream);
    assert!(c.include_usage);
    assert_eq!(
        body_of(&c),
        json!({
            "model": "m", "messages": [{"role": "user", "content": "p"}], "max_tokens": 99,
            "temperature": 0.3, "top_p": 0.8, "n": 2, "stop": ["\n", "END"],
            "presence_penalty": 0.1, "frequency_penalty": -0.2, "seed": -7, "user": "u",
            "logit_bias": {"50256": -100}, "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
    // a stream the client wants no usage for still asks the upstream for it
    let c = chat(json!({"model": "m", "prompt": "p", "stream": true, "stop": "x"}));
    assert!(c.stream && !c.include_usage);
    assert_eq!(
        body_of(&c)["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(body_of(&c)["stop"], "x");
}

#[test]
fn refusals_and_type_errors_name_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"prompt": "p"}), "model"),
        (json!({"model": "", "prompt": "p"}), "model"),
        (json!({"model": 1, "prompt": "p"}), "model"),
        (json!({"model": "m"}), "prompt"),
        (json!({"model": "m", "prompt": 5}), "prompt"),
        (json!({"model": "m", "prompt": []}), "prompt"),
        (json!({"model": "m", "prompt": ["a", "b"]}), "prompt"),
        (json!({"model": "m", "prompt": [1, 2, 3]}), "prompt"),
        (json!({"model": "m", "prompt": [[1, 2]]}), "prompt"),
        (json!({"model": "m", "prompt": "p", "echo": true}), "echo"),
        (json!({"model": "m", "prompt": "p", "echo": "yes"}), "echo"),
        (
            json!({"model": "m", "prompt": "p", "suffix": "end"}),
            "suffix",
        ),
        (
            json!({"model": "m", "prompt": "p", "best_of": 3}),
            "best_of",
        ),
        (
            json!({"model": "m", "prompt": "p", "best_of": "3"}),
            "best_of",
        ),
        (
            json!({"model": "m", "prompt": "p", "logprobs": 2}),
            "logprobs",
        ),
        (
            json!({"model": "m", "prompt": "p", "max_tokens": -1}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "prompt": "p", "temperature": "hot"}),
            "temperature",
        ),
        (json!({"model": "m", "prompt": "p", "top_p": []}), "top_p"),
        (json!({"model": "m", "prompt": "p", "n": 1.5}), "n"),
        (json!({"model": "m", "prompt": "p", "stop": [1]}), "stop"),
        (
            json!({"model": "m", "prompt": "p", "presence_penalty": {}}),
            "presence_penalty",
        ),
        (
            json!({"model": "m", "prompt": "p", "frequency_penalty": true}),
            "frequency_penalty",
        ),
        (json!({"model": "m", "prompt": "p", "seed": 0.5}), "seed"),
        (json!({"model": "m", "prompt": "p", "user": 1}), "user"),
        (
            json!({"model": "m", "prompt": "p", "logit_bias": []}),
            "logit_bias",
        ),
        (
            json!({"model": "m", "prompt": "p", "stream": "true"}),
            "stream",
        ),
        (
            json!({"model": "m", "prompt": "p", "stream_options": 1}),
            "stream_options",
        ),
        (
            json!({"model": "m", "prompt": "p", "stream_options": {"include_usage": 1}}),
            "stream_options.include_usage",
        ),
    ];
    for (body, field) in cases {
        let e = err(body.clone());
        assert_eq!(e.param, field, "{body} → {e}");
        assert!(!e.message.is_empty());
    }
    assert_eq!(to_chat(b"nope").unwrap_err().param, "body");
    assert_eq!(to_chat(b"[]").unwrap_err().param, "body");
    assert!(err(json!({"model": "m", "prompt": [1, 2]}))
        .message
        .contains("token"));
}

#[test]
fn whole_reply() {
    let reply = br#"{"id":"chatcmpl-xyz","object":"chat.completion","created":123,"model":"up",
        "choices":[{"index":0,"message":{"role":"assistant","content":"there"},"finish_reason":"stop"},
                   {"index":1,"message":{"role":"assistant","content":null,"tool_calls":[]},"finish_reason":"tool_calls"},
                   {"index":2,"message":{"role":"assistant","content":"cu"},"finish_reason":"length"}],
        "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
    let v: Value = serde_json::from_slice(&reply_from_chat(reply).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({
            "id": "cmpl-xyz", "object": "text_completion", "created": 123, "model": "up",
            "choices": [
                {"text": "there", "index": 0, "logprobs": null, "finish_reason": "stop"},
                {"text": "", "index": 1, "logprobs": null, "finish_reason": "stop"},
                {"text": "cu", "index": 2, "logprobs": null, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        })
    );
    let v: Value = serde_json::from_slice(
        &reply_from_chat(br#"{"id":"other","choices":[{"message":{"content":"x"},"finish_reason":"content_filter"}]}"#)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["id"], "cmpl-other");
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(v.get("usage").is_none());
    for bad in [&b""[..], b"x", b"{}", b"[]", b"{\"choices\":{}}"] {
        assert!(reply_from_chat(bad).is_err());
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": "chatcmpl-s", "object": "chat.completion.chunk",
        "created": 9, "model": "up", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
    .unwrap()
}

const USAGE: &[u8] =
    br#"{"id":"chatcmpl-s","created":9,"model":"up","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}"#;

#[test]
fn stream_with_usage() {
    let mut s = Stream::new(true);
    let mut out = Vec::new();
    s.chunk(
        &chunk(json!({"role": "assistant", "content": ""}), None),
        &mut out,
    );
    s.chunk(&chunk(json!({"content": "Hi"}), None), &mut out);
    s.chunk(b"not json", &mut out);
    s.chunk(&chunk(json!({}), Some("stop")), &mut out);
    s.chunk(USAGE, &mut out);
    s.finish(&mut out);
    assert_eq!(
        data_events(&out),
        vec![
            json!({"id": "cmpl-s", "object": "text_completion", "created": 9, "model": "up",
                "choices": [{"text": "Hi", "index": 0, "logprobs": null, "finish_reason": null}]}),
            json!({"id": "cmpl-s", "object": "text_completion", "created": 9, "model": "up",
                "choices": [{"text": "", "index": 0, "logprobs": null, "finish_reason": "stop"}]}),
            json!({"id": "cmpl-s", "object": "text_completion", "created": 9, "model": "up",
                "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}),
            json!("[DONE]"),
        ]
    );
    let mut more = Vec::new();
    s.chunk(&chunk(json!({"content": "late"}), None), &mut more);
    s.finish(&mut more);
    assert!(more.is_empty());
}

#[test]
fn stream_without_usage_and_finish_reasons() {
    let mut s = Stream::new(false);
    let mut out = Vec::new();
    s.chunk(
        &chunk(json!({"tool_calls": [{"index": 0}]}), None),
        &mut out,
    );
    s.chunk(&chunk(json!({}), Some("tool_calls")), &mut out);
    s.chunk(USAGE, &mut out);
    s.finish(&mut out);
    let evs = data_events(&out);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0]["choices"][0]["finish_reason"], "stop");
    assert_eq!(evs[1], "[DONE]");

    let mut s = Stream::new(true);
    let mut out = Vec::new();
    s.finish(&mut out);
    assert_eq!(out, b"data: [DONE]\n\n");
}

#[test]
fn stream_failure() {
    let mut s = Stream::new(true);
    let mut out = Vec::new();
    s.chunk(&chunk(json!({"content": "pa"}), None), &mut out);
    s.fail(
        &StreamFailure {
            status: 504,
            upstream_status: None,
            code: "upstream_timeout",
            message: "timed out",
        },
        &mut out,
    );
    let evs = data_events(&out);
    assert_eq!(evs.len(), 2);
    assert_eq!(
        evs[1],
        json!({"error": {"message": "timed out", "type": "timeout_error", "code": "upstream_timeout"}})
    );
    let mut more = Vec::new();
    s.finish(&mut more);
    assert!(more.is_empty(), "no [DONE] after a failure");

    let mut s = Stream::new(false);
    let mut out = Vec::new();
    s.fail(
        &StreamFailure {
            status: 502,
            upstream_status: Some(503),
            code: "upstream_error",
            message: "bad gateway",
        },
        &mut out,
    );
    let evs = data_events(&out);
    assert_eq!(evs[0]["error"]["type"], "upstream_error");
    assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));
}

#[test]
fn never_panics() {
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let nasty = vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!("\u{0}"),
        json!([]),
        json!({}),
        json!([null]),
        deep,
    ];
    let base = json!({"model": "m", "prompt": ["p"], "max_tokens": 1, "temperature": 1,
        "top_p": 1, "n": 1, "stop": ["s"], "presence_penalty": 0, "frequency_penalty": 0,
        "seed": 1, "user": "u", "logit_bias": {"1": 1}, "stream": true,
        "stream_options": {"include_usage": true}, "echo": false, "best_of": 1});
    let whole = json!({"id": "chatcmpl-1", "created": 1, "model": "m", "choices": [{"index": 0,
        "message": {"content": "c"}, "delta": {"content": "c"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "total_tokens": 2}});
    let mut inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xff\xfe".to_vec(),
        b"{\"model\":\"m\",\"prompt\":\"\xc3\"}".to_vec(),
        b"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":1e999}".to_vec(),
        b"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":99999999999999999999999999}".to_vec(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
    ];
    for doc in [&base, &whole] {
        for (key, _) in doc.as_object().unwrap() {
            for n in &nasty {
                let mut b = doc.clone();
                b[key] = n.clone();
                inputs.push(serde_json::to_vec(&b).unwrap());
            }
        }
        for ptr in [
            "/choices/0/message",
            "/choices/0/delta",
            "/choices/0/delta/content",
            "/choices/0/index",
            "/usage/prompt_tokens",
        ] {
            for n in &nasty {
                let mut b = doc.clone();
                if let Some(slot) = b.pointer_mut(ptr) {
                    *slot = n.clone();
                }
                inputs.push(serde_json::to_vec(&b).unwrap());
            }
        }
    }
    for include_usage in [true, false] {
        let mut s = Stream::new(include_usage);
        let mut out = Vec::new();
        for input in &inputs {
            let _ = to_chat(input);
            let _ = reply_from_chat(input);
            s.chunk(input, &mut out);
        }
        s.finish(&mut out);
        assert!(out.ends_with(b"data: [DONE]\n\n"));
        data_events(&out);
    }
}
