//! A whole `chat.completion` as a Messages reply.

use super::{input_tokens, message_id, stop_reason, thinking_block, tool_id};
use crate::ChatUsage;
use serde_json::{json, Map, Value};

pub(super) fn reply_from_chat(chat: &[u8], model: &str, id: &str) -> Result<Vec<u8>, String> {
    let v: Value =
        serde_json::from_slice(chat).map_err(|e| format!("the chat reply is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("the chat reply is not a JSON object")?;
    let choice = obj
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("the chat reply has no choices array")?
        .first()
        .and_then(Value::as_object)
        .ok_or("the chat reply has no choice")?;
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .ok_or("the chat reply's choice has no message")?;
    let msg_id = message_id(obj.get("id"), id);

    let mut content = Vec::new();
    if let Some(r) = reasoning(message) {
        content.push(thinking_block(r));
    }
    let text = text(message);
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = tool_uses(message, &msg_id);
    let had_calls = !calls.is_empty();
    content.extend(calls);

    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let usage = obj
        .get("usage")
        .map(ChatUsage::from_value)
        .unwrap_or_default();
    let reply = json!({
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish, had_calls),
        "stop_sequence": null,
        "usage": {
            "input_tokens": input_tokens(&usage),
            "output_tokens": usage.completion_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached_tokens,
        },
    });
    serde_json::to_vec(&reply).map_err(|e| e.to_string())
}

/// Reasoning text, as DeepSeek (`reasoning_content`) or OpenRouter (`reasoning`) send it.
pub(super) fn reasoning(m: &Map<String, Value>) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
}

/// The reply's text: a string, text parts, or failing those the refusal.
fn text(m: &Map<String, Value>) -> String {
    match m.get("content") {
        Some(Value::String(s)) if !s.is_empty() => return s.clone(),
        Some(Value::Array(parts)) => {
            let joined: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            if !joined.is_empty() {
                return joined;
            }
        }
        _ => {}
    }
    m.get("refusal")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `tool_calls` (or the legacy `function_call`) as `tool_use` blocks.
fn tool_uses(m: &Map<String, Value>, msg_id: &str) -> Vec<Value> {
    let calls: Vec<&Value> = match m.get("tool_calls").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => m.get("function_call").into_iter().collect(),
    };
    calls
        .into_iter()
        .filter(|c| c.is_object())
        .enumerate()
        .map(|(n, c)| {
            // A tool_calls entry nests the call in `function`; function_call is the call.
            let f = c.get("function").unwrap_or(c);
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| tool_id(msg_id, n), str::to_string);
            let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
            json!({
                "type": "tool_use",
                "id": id,
                "name": name,
                "input": input(f.get("arguments")),
            })
        })
        .collect()
}

/// The call's arguments as an object: Anthropic's `input` is always one.
fn input(args: Option<&Value>) -> Value {
    let parsed = match args {
        Some(Value::String(s)) => serde_json::from_str(s).ok(),
        Some(v @ Value::Object(_)) => Some(v.clone()),
        _ => None,
    };
    match parsed {
        Some(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}
