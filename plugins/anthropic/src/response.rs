//! Anthropic Messages API reply -> OpenAI `chat.completion`, and the mappings shared with
//! the stream decoder: stop reasons, usage, error classes.

use plugin_api::openai::unix_now;
use plugin_api::{retry_after_ms, ErrorClass, ProviderError, Reply, Response, Usage};
use serde_json::{json, Value};

/// OpenAI `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and reasons added later.
        _ => "stop",
    }
}

/// Anthropic's token counts as reported; the fields are disjoint (`input_tokens` excludes
/// cached and cache-written tokens), unlike OpenAI's `prompt_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl RawUsage {
    /// Takes the fields present in an Anthropic `usage` object, keeping the others: a
    /// stream's `message_delta` may carry only `output_tokens`.
    pub fn merge(&mut self, usage: &Value) {
        let get = |k: &str| usage.get(k).and_then(Value::as_u64);
        if let Some(n) = get("input_tokens") {
            self.input = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output = n;
        }
        if let Some(n) = get("cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = get("cache_creation_input_tokens") {
            self.cache_write = n;
        }
    }

    /// The gateway's usage: cached and cache-written tokens count as input.
    pub fn to_usage(self) -> Usage {
        Usage {
            input_tokens: self.input + self.cache_read + self.cache_write,
            output_tokens: self.output,
            cached_input_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: 0,
        }
    }
}

/// The class an Anthropic `error.type` implies (used where there is no HTTP status: in a
/// stream, or an error body sent with 200).
pub fn class_for_error_type(kind: &str) -> ErrorClass {
    match kind {
        "authentication_error" | "permission_error" | "billing_error" => ErrorClass::Auth,
        "rate_limit_error" => ErrorClass::RateLimited,
        "invalid_request_error" | "not_found_error" | "request_too_large" => ErrorClass::BadRequest,
        "timeout_error" => ErrorClass::Timeout,
        // overloaded_error, api_error and types added later.
        _ => ErrorClass::Upstream,
    }
}

/// An error from an Anthropic error body `{"type":"error","error":{"type","message"}}`
/// with no status to go by.
pub fn error_from_body(v: &Value) -> ProviderError {
    let err = v.get("error").unwrap_or(&Value::Null);
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or("anthropic reported an error");
    let e = ProviderError::new(class_for_error_type(kind), message);
    match kind {
        "" => e,
        // The status Anthropic answers an overload with: an overload reported in a
        // stream or a 2xx body reaches the host as the 529 it is.
        "overloaded_error" => e.with_code(kind).with_status(OVERLOADED_STATUS),
        _ => e.with_code(kind),
    }
}

/// Anthropic's status for `overloaded_error`.
pub const OVERLOADED_STATUS: u16 = 529;

/// A 2xx body that is not a readable Messages reply.
pub fn unreadable_reply(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::upstream(format!("anthropic returned an unreadable reply: {e}"))
}

/// A 2xx reply that is JSON but not a message.
pub fn no_content() -> ProviderError {
    ProviderError::upstream("anthropic returned a reply without a 'content' array")
}

/// A non-2xx reply: classed by status (Anthropic's statuses are reliable), worded and
/// coded by the body when it is Anthropic's JSON.
pub fn error_from_response(resp: &Response<'_>) -> ProviderError {
    let status = resp.status;
    let class = match status {
        // Out of credits: this key is useless until someone pays, like a revoked one.
        402 => ErrorClass::Auth,
        _ => ProviderError::class_for_status(status),
    };
    let parsed: Option<Value> = serde_json::from_slice(resp.body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = err.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| fallback_message(status, resp.body));
    let mut e = ProviderError::new(class, message).with_status(status);
    if let Some(kind) = kind {
        e = e.with_code(kind);
    }
    e.retry_after_ms = retry_after_ms(resp.header("retry-after"));
    e
}

/// A non-JSON error body (a proxy's HTML page): its start, so the operator sees it.
fn fallback_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("anthropic returned HTTP {status}");
    }
    let short: String = text.chars().take(300).collect();
    let more = if short.len() < text.len() { "..." } else { "" };
    format!("anthropic returned HTTP {status}: {short}{more}")
}

/// A 2xx reply turned into a `chat.completion`.
pub fn completion(fallback_model: &str, body: &[u8]) -> Result<Reply, ProviderError> {
    let v: Value = serde_json::from_slice(body).map_err(unreadable_reply)?;
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_from_body(&v));
    }
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(no_content)?;

    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            Some("tool_use") => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let arguments = serde_json::to_string(&input).map_err(|e| {
                    ProviderError::internal(format!("cannot encode tool input: {e}"))
                })?;
                tool_calls.push(json!({
                    "id": block.get("id").and_then(Value::as_str).unwrap_or(""),
                    "type": "function",
                    "function": {
                        "name": block.get("name").and_then(Value::as_str).unwrap_or(""),
                        "arguments": arguments,
                    },
                }));
            }
            // redacted_thinking, server tool blocks: nothing OpenAI clients could use.
            _ => {}
        }
    }

    let mut raw = RawUsage::default();
    if let Some(u) = v.get("usage") {
        raw.merge(u);
    }
    let usage = raw.to_usage();

    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = tool_calls.into();
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    let finish = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(finish_reason)
        .unwrap_or("stop");
    let model = v
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(fallback_model);
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("chatcmpl-anthropic-{}", unix_now()));
    let out = json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage.to_openai(),
    });
    Reply::json(&out, Some(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_cache_as_input() {
        let mut raw = RawUsage::default();
        raw.merge(&json!({"input_tokens": 10, "cache_read_input_tokens": 100,
                          "cache_creation_input_tokens": 5, "output_tokens": 1}));
        raw.merge(&json!({"output_tokens": 42}));
        let u = raw.to_usage();
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.cache_write_tokens
            ),
            (115, 42, 100, 5)
        );
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
    }

    #[test]
    fn long_non_json_error_bodies_are_cut() {
        let body = "x".repeat(1000);
        let m = fallback_message(502, body.as_bytes());
        assert!(m.starts_with("anthropic returned HTTP 502: xxx") && m.ends_with("..."));
        assert!(m.len() < 400);
    }
}
