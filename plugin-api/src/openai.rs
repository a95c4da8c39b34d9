//! Small builders for the OpenAI response shapes most plugins emit.

use crate::types::Usage;
use serde_json::{json, Value};

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A `chat.completion` with one assistant text choice.
pub fn completion(
    id: &str,
    model: &str,
    created: u64,
    content: &str,
    finish_reason: &str,
    usage: &Usage,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": finish_reason,
        }],
        "usage": usage.to_openai(),
    })
}

/// A `chat.completion.chunk` with one choice carrying `delta`.
pub fn chunk(
    id: &str,
    model: &str,
    created: u64,
    delta: Value,
    finish_reason: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })
}

/// The final chunk OpenAI sends when `stream_options.include_usage` is set: no choices.
pub fn usage_chunk(id: &str, model: &str, created: u64, usage: &Usage) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.to_openai(),
    })
}

/// The text of the last `user` message of a chat request (string or text parts).
pub fn last_user_text(request: &Value) -> Option<String> {
    let messages = request.get("messages")?.as_array()?;
    let msg = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    Some(content_text(msg.get("content")?))
}

/// The text of a message `content`: a string, or the `text` parts of an array joined.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}
