//! Anthropic Messages (`POST /v1/messages`) and Chat Completions.

use crate::{ChatRequest, Invalid, StreamFailure, StreamWriter};

/// A Messages request as a Chat Completions request: `system` (string or text blocks),
/// `messages` with text, image (base64 and url sources), `tool_use` and `tool_result`
/// blocks, `tools`, `tool_choice`, `max_tokens`, `temperature`, `top_p`, `top_k` (dropped),
/// `stop_sequences`, `stream`, `metadata.user_id` (→ `user`), `thinking` (→
/// `reasoning_effort` by budget).
pub fn to_chat(body: &[u8]) -> Result<ChatRequest, Invalid> {
    let _ = body;
    Err(Invalid::new("body", "Anthropic Messages translation is not built yet"))
}

/// A `chat.completion` reply as a Messages reply (`type: "message"`). `model` is the
/// name to show; `id` the message id to use when the reply has none of its own.
pub fn reply_from_chat(chat: &[u8], model: &str, id: &str) -> Result<Vec<u8>, String> {
    let _ = (chat, model, id);
    Err("not built yet".into())
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
    let _ = body;
    Err(Invalid::new("body", "not built yet"))
}

/// Chat chunks → the Messages event sequence: `message_start`, `content_block_start` /
/// `content_block_delta` (`text_delta`, `input_json_delta`) / `content_block_stop`,
/// `message_delta` (stop reason, usage), `message_stop`; `error` on failure.
pub struct Stream {
    _model: String,
    _id: String,
}

impl Stream {
    pub fn new(model: &str, id: &str) -> Self {
        Stream {
            _model: model.to_string(),
            _id: id.to_string(),
        }
    }
}

impl StreamWriter for Stream {
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let _ = (chunk, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }
    fn fail(&mut self, failure: &StreamFailure<'_>, out: &mut Vec<u8>) {
        let _ = (failure, out);
    }
}
