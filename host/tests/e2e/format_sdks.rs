//! The official `anthropic` and `openai` Python SDKs against aihub's Messages and
//! Responses endpoints: through echo, through the openai plugin against a Chat-only mock
//! (translated, with tools), and through the anthropic plugin (native, untranslated).

use crate::common;

use common::formats as client_formats;
use common::python_sdk::{run_script, sdk_python};
use serde_json::{json, Value};

const ANTHROPIC_SCRIPT: &str = r#"
import json, sys
import anthropic

base, key = sys.argv[1], sys.argv[2]
c = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
out = {}
msgs = [{"role": "user", "content": "hello anthropic sdk"}]

r = c.messages.create(model="echo/echo-1", max_tokens=100, messages=msgs)
with c.messages.stream(model="echo/echo-1", max_tokens=100, messages=msgs) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
out["echo"] = {"text": r.content[0].text, "stop": r.stop_reason, "type": r.type,
               "stream_text": text, "stream_stop": final.stop_reason}

tools = [{"name": "get_weather", "description": "Weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]
ask = [{"role": "user", "content": "weather in Paris?"}]
r = c.messages.create(model="compat/gpt-x", max_tokens=100, tools=tools, messages=ask)
tu = [b for b in r.content if b.type == "tool_use"][0]
follow = ask + [
    {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "sunny"}]},
]
r2 = c.messages.create(model="compat/gpt-x", max_tokens=100, tools=tools, messages=follow)
with c.messages.stream(model="compat/gpt-x", max_tokens=100, tools=tools, messages=ask) as s:
    final = s.get_final_message()
stus = [b for b in final.content if b.type == "tool_use"]
out["tools"] = {"stop": r.stop_reason, "name": tu.name, "input": tu.input,
                "final": r2.content[0].text, "final_stop": r2.stop_reason,
                "stream_stop": final.stop_reason,
                "stream_input": stus[0].input if stus else None,
                "stream_output_tokens": final.usage.output_tokens}

params = dict(
    model="claude-sonnet-4-5", max_tokens=1024,
    system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    messages=[{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
    thinking={"type": "enabled", "budget_tokens": 2048},
    metadata={"user_id": "u-42"},
    tool_choice={"type": "auto"},
    tools=tools,
)
beta = {"anthropic-beta": "extended-cache-ttl-2025-04-11"}
extra = {"future_field": {"x": 1}}
r = c.messages.create(**params, extra_headers=beta, extra_body=extra)
with c.messages.stream(**params, extra_headers=beta, extra_body=extra) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
sent = dict(params)
sent.update(extra)
out["native"] = {"sent": sent, "text": r.content[0].text, "id": r.id,
                 "stream_text": text, "stream_usage": final.usage.output_tokens}
print(json.dumps(out))
"#;

const OPENAI_SCRIPT: &str = r#"
import json, sys
import openai
from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
c = OpenAI(base_url=base, api_key=key, max_retries=0)
out = {}
for model in ["echo/echo-1", "compat/gpt-x"]:
    r = c.responses.create(model=model, input="hello responses", instructions="Be brief.")
    events, text = [], ""
    for ev in c.responses.create(model=model, input="hello stream", stream=True):
        events.append(ev.type)
        if ev.type == "response.output_text.delta":
            text += ev.delta
    r2 = c.responses.create(model=model, input="and again", previous_response_id=r.id)
    got = c.responses.retrieve(r.id)
    c.responses.delete(r.id)
    try:
        c.responses.retrieve(r.id)
        after = "found"
    except openai.NotFoundError:
        after = "404"
    out[model] = {"text": r.output_text, "status": r.status, "total": r.usage.total_tokens,
                  "events": events, "stream_text": text, "followup": r2.output_text,
                  "retrieved": got.id == r.id, "after_delete": after}

tools = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}]
r = c.responses.create(model="compat/gpt-x", input="weather in Paris?", tools=tools)
fc = [o for o in r.output if o.type == "function_call"][0]
r2 = c.responses.create(model="compat/gpt-x", previous_response_id=r.id, tools=tools,
                        input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "sunny"}])
events, args = [], ""
for ev in c.responses.create(model="compat/gpt-x", input="weather?", tools=tools, stream=True):
    events.append(ev.type)
    if ev.type == "response.function_call_arguments.delta":
        args += ev.delta
out["tools"] = {"name": fc.name, "args": json.loads(fc.arguments), "final": r2.output_text,
                "stream_events": events, "stream_args": json.loads(args) if args else None}
print(json.dumps(out))
"#;

async fn run(script: &'static str, base: String, key: String) -> Value {
    let python = tokio::task::spawn_blocking(sdk_python).await.unwrap();
    tokio::task::spawn_blocking(move || run_script(&python, script, &[base, key]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_creates_and_streams_messages_through_every_kind_of_provider() {
    let f = client_formats::start("").await;
    let out = run(
        ANTHROPIC_SCRIPT,
        f.server.base_url(),
        f.server.app_key().to_string(),
    )
    .await;
    let echo = &out["echo"];
    assert_eq!(echo["text"], "hello anthropic sdk", "{out}");
    assert_eq!(echo["stream_text"], "hello anthropic sdk", "{out}");
    assert_eq!(echo["type"], "message");
    assert_eq!(echo["stop"], "end_turn");
    let tools = &out["tools"];
    assert_eq!(tools["stop"], "tool_use", "{out}");
    assert_eq!(tools["name"], "get_weather");
    assert_eq!(tools["input"], json!({"city": "Paris"}));
    assert_eq!(tools["final"], "It is sunny in Paris.");
    assert_eq!(tools["final_stop"], "end_turn");
    assert_eq!(tools["stream_stop"], "tool_use");
    assert_eq!(tools["stream_input"], json!({"city": "Paris"}));
    assert_eq!(tools["stream_output_tokens"], 7);

    let native = &out["native"];
    assert_eq!(native["text"], "The capital of Italy is Rome.", "{out}");
    assert_eq!(native["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(native["stream_text"], "Héllo, 世界! 👋 How can I help?");
    // The upstream got exactly what the SDK sent: caching ttl, thinking, metadata,
    // tool_choice and the unknown field, and the beta header.
    let reqs = f.anthropic.requests();
    assert_eq!(reqs.len(), 2);
    let mut sent = native["sent"].clone();
    assert_eq!(reqs[0].json(), sent);
    sent["stream"] = json!(true);
    assert_eq!(reqs[1].json(), sent);
    for r in &reqs {
        assert!(r
            .header("anthropic-beta")
            .is_some_and(|b| b.contains("extended-cache-ttl-2025-04-11")));
        assert!(r.header("anthropic-version").is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_uses_responses_through_echo_and_a_chat_only_provider() {
    let f = client_formats::start("").await;
    let out = run(
        OPENAI_SCRIPT,
        format!("{}/v1", f.server.base_url()),
        f.server.app_key().to_string(),
    )
    .await;
    for (model, text) in [
        ("echo/echo-1", "hello responses"),
        ("compat/gpt-x", "Hello from chat"),
    ] {
        let r = &out[model];
        assert_eq!(r["text"], text, "{model}: {out}");
        assert_eq!(r["status"], "completed");
        assert!(r["total"].as_u64().unwrap() > 0, "{model}: {r}");
        let events: Vec<&str> = r["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(events.first(), Some(&"response.created"), "{model}: {r}");
        assert_eq!(events.last(), Some(&"response.completed"), "{model}: {r}");
        assert!(
            !r["stream_text"].as_str().unwrap().is_empty(),
            "{model}: {r}"
        );
        assert!(!r["followup"].as_str().unwrap().is_empty(), "{model}: {r}");
        assert_eq!(r["retrieved"], true);
        assert_eq!(r["after_delete"], "404");
    }
    assert_eq!(out["echo/echo-1"]["followup"], "and again");
    // The follow-up on the chat provider carried the first exchange.
    let followup = f
        .chat
        .requests()
        .iter()
        .map(|r| r.json())
        .find(|b| b["messages"].as_array().is_some_and(|m| m.len() >= 3))
        .expect("a follow-up with history reached the upstream");
    let contents: Vec<String> = followup["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].to_string())
        .collect();
    assert!(
        contents.iter().any(|c| c.contains("hello responses")),
        "{followup}"
    );
    assert!(
        contents.iter().any(|c| c.contains("Hello from chat")),
        "{followup}"
    );

    let tools = &out["tools"];
    assert_eq!(tools["name"], "get_weather", "{out}");
    assert_eq!(tools["args"], json!({"city": "Paris"}));
    assert_eq!(tools["final"], "It is sunny in Paris.");
    assert_eq!(tools["stream_args"], json!({"city": "Paris"}));
    let ev = tools["stream_events"].as_array().unwrap();
    assert!(
        ev.iter()
            .any(|e| e == "response.function_call_arguments.done"),
        "{tools}"
    );
    assert_eq!(ev.last().unwrap(), "response.completed");
}
