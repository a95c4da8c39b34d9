//! The OpenAI shapes plugins read and write: typed readers for the parts of a chat
//! request every translator needs (tools, tool calls, data URLs, scalar fields), each
//! refusing bad input with a message that names its JSON path, and small builders for
//! the response shapes most plugins emit.

pub mod data_url;
pub mod params;
pub mod tools;

pub use data_url::{check_base64, data_url, is_data_url, Base64Error, DataUrl, DataUrlError};
pub use tools::{
    function_call, function_tools, tool_arguments, tool_calls, tool_choice, FunctionCall,
    FunctionTool, ToolCall, ToolChoice,
};

use crate::types::Usage;
use base64::Engine;
use serde_json::{json, Value};

/// Longest piece of client text quoted back in an error message.
const SHOWN_CHARS: usize = 40;

/// A client value for an error message: scalars as JSON, long strings cut short on a
/// character boundary, arrays and objects by kind only (they can be huge).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => shown_str(s),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

/// A client string for an error message, JSON-quoted and cut short.
fn shown_str(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        None => Value::from(s).to_string(),
        Some((end, _)) => {
            let quoted = Value::from(&s[..end]).to_string();
            format!("{}…\"", &quoted[..quoted.len() - 1])
        }
    }
}

/// An embedding as OpenAI sends it for `encoding_format: "base64"`: the values as
/// little-endian `f32`, base64-encoded.
pub fn embedding_base64(values: &[f64]) -> String {
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether an embeddings request asked for base64 vectors (`encoding_format`; the OpenAI
/// Python SDK asks by default). Anything but `float` or `base64` is the client's error.
pub fn wants_base64(body: &Value) -> Result<bool, String> {
    Ok(params::one_of(body, "encoding_format", &["float", "base64"])? == Some("base64"))
}

/// The `data` list of an OpenAI embeddings reply for `vectors`, in order.
pub fn embedding_data(vectors: &[Vec<f64>], base64: bool) -> Vec<Value> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, vec)| {
            let embedding = if base64 {
                json!(embedding_base64(vec))
            } else {
                json!(vec)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect()
}

/// The `messages` of a chat body: present, an array, not empty.
pub fn chat_messages(body: &Value) -> Result<&Vec<Value>, String> {
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => Ok(m),
        Some(Value::Array(_)) => Err("'messages' must not be empty".into()),
        Some(_) => Err("'messages' must be an array of chat messages".into()),
        None => Err("'messages' is required".into()),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_values_stay_short() {
        assert_eq!(shown(&json!(7)), "7");
        assert_eq!(shown(&json!(null)), "null");
        assert_eq!(shown(&json!("a\"b")), "\"a\\\"b\"");
        assert_eq!(shown(&json!([1])), "an array");
        assert_eq!(shown(&json!({"a": 1})), "an object");
        let long = "é".repeat(1000);
        let s = shown_str(&long);
        assert_eq!(s, format!("\"{}…\"", "é".repeat(SHOWN_CHARS)));
    }

    #[test]
    fn embeddings_encode_as_openai_does() {
        assert_eq!(embedding_base64(&[1.0]), "AACAPw==");
        assert_eq!(embedding_base64(&[]), "");
        assert_eq!(embedding_base64(&[0.5, -2.0]), "AAAAPwAAAMA=");
    }
}
