//! Anthropic Messages (`POST /v1/messages`) and Chat Completions.
//!
//! Choices the brief left open, made here:
//! - Images inside a `tool_result` cannot ride in a chat `tool` message (text only), so
//!   each is replaced by the marker `[image omitted]`; the image is still validated.
//! - Several text blocks of one message are joined with a blank line (`\n\n`).
//! - `tool_choice` (and `parallel_tool_calls`) is only sent when there are tools: chat
//!   providers refuse a tool choice without tools.
//! - A reply that carries tool calls ends with `tool_use` even when the provider said
//!   `stop` (several do), so clients that look at `stop_reason` run the tools.
//! - Empty text is never sent as a text block (Anthropic refuses empty text blocks when
//!   the client sends the turn back), so `content` may be `[]`.
//! - `thinking` types other than `enabled`/`disabled` are ignored, like unknown fields.
//! - Reasoning is read from `reasoning_content` (DeepSeek) or `reasoning` (OpenRouter).

mod reply;
mod request;
mod stream;

use crate::{ChatRequest, ChatUsage, Invalid};
use serde_json::{json, Value};

pub use stream::Stream;

/// A Messages request as a Chat Completions request: `system` (string or text blocks),
/// `messages` with text, image (base64 and url sources), `tool_use` and `tool_result`
/// blocks, `tools`, `tool_choice`, `max_tokens`, `temperature`, `top_p`, `top_k` (dropped),
/// `stop_sequences`, `stream`, `metadata.user_id` (→ `user`), `thinking` (→
/// `reasoning_effort` by budget).
pub fn to_chat(body: &[u8]) -> Result<ChatRequest, Invalid> {
    let t = request::translate(body, request::Purpose::Chat)?;
    Ok(ChatRequest {
        body: serde_json::to_vec(&t.body).unwrap_or_default(),
        model: t.model,
        stream: t.stream,
        include_usage: false,
    })
}

/// A `chat.completion` reply as a Messages reply (`type: "message"`). `model` is the
/// name to show; `id` the message id to use when the reply has none of its own.
pub fn reply_from_chat(chat: &[u8], model: &str, id: &str) -> Result<Vec<u8>, String> {
    reply::reply_from_chat(chat, model, id)
}

/// Anthropic's error type for a gateway status (and the upstream's own, for 529).
pub fn error_type(status: u16, upstream_status: Option<u16>) -> &'static str {
    if upstream_status == Some(529) {
        return "overloaded_error";
    }
    match status {
        400 | 405 | 408 | 413 | 414 | 422 | 431 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"}}`.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    let v = serde_json::json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// An estimate of a Messages request's input tokens (`/v1/messages/count_tokens`), for
/// providers that cannot count them: about four bytes of text per token.
pub fn count_tokens(body: &[u8]) -> Result<u64, Invalid> {
    Ok(request::translate(body, request::Purpose::Count)?
        .tally
        .estimate())
}

/// The Messages `stop_reason` for a chat `finish_reason`.
fn stop_reason(finish: Option<&str>, had_tool_calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if had_tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// Anthropic counts cached prompt tokens apart from `input_tokens`.
fn input_tokens(u: &ChatUsage) -> u64 {
    u.prompt_tokens.saturating_sub(u.cached_tokens)
}

/// The Messages id for a chat id (`msg_` + it), or `fallback` when there is none.
fn message_id(chat_id: Option<&Value>, fallback: &str) -> String {
    match chat_id.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(s) if s.starts_with("msg_") => s.to_string(),
        Some(s) => format!("msg_{s}"),
        None => fallback.to_string(),
    }
}

/// An id for a tool call the provider sent without one: unique within the message.
fn tool_id(msg_id: &str, n: usize) -> String {
    format!("toolu_{n}_{msg_id}")
}

/// A thinking block (reply) or its empty opening (stream); chat reasoning has no
/// signature, and the SDKs expect the field.
fn thinking_block(text: &str) -> Value {
    json!({"type": "thinking", "thinking": text, "signature": ""})
}

#[cfg(test)]
mod tests;
