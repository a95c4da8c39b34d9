//! Gemini `GenerateContentResponse`s read back into the OpenAI shape: shared by whole
//! replies and stream events.

use crate::errors;
use plugin_api::openai::unix_now;
use plugin_api::serde_json::{self, json, Map, Value};
use plugin_api::{Call, ProviderError, Reply, Usage};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A completion id for replies that carry no `responseId`.
pub fn new_id() -> String {
    format!(
        "chatcmpl-gemini-{}-{}",
        unix_now(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// Token counts from `usageMetadata`. Gemini counts thinking apart from the answer
/// (`thoughtsTokenCount`) but bills it as output, so it is part of `output_tokens`;
/// cached tokens are already inside `promptTokenCount`. Tool-use prompt tokens (results
/// of Google's own tools) bill as input.
pub fn usage(meta: &Value) -> Usage {
    let n = |k: &str| meta.get(k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input_tokens: n("promptTokenCount") + n("toolUsePromptTokenCount"),
        output_tokens: n("candidatesTokenCount") + thoughts,
        cached_input_tokens: n("cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`.
pub fn finish_reason(reason: &str, made_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if made_calls => "tool_calls",
        _ => "stop",
    }
}

/// A candidate's `finishReason`, if it has a real one.
pub fn finish_of(candidate: &Value) -> Option<&str> {
    candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && *r != "FINISH_REASON_UNSPECIFIED")
}

/// The error for a prompt Gemini refused to answer (`promptFeedback.blockReason`), which
/// comes as a 2xx reply without candidates.
pub fn prompt_blocked(reply: &Value) -> Option<ProviderError> {
    let feedback = reply.get("promptFeedback")?;
    let reason = feedback.get("blockReason").and_then(Value::as_str)?;
    let mut message = format!("the prompt was blocked by Gemini ({reason})");
    if let Some(why) = feedback.get("blockReasonMessage").and_then(Value::as_str) {
        message.push_str(": ");
        message.push_str(why);
    }
    Some(ProviderError::bad_request(message).with_code("prompt_blocked"))
}

/// What one candidate's parts say, in OpenAI terms.
#[derive(Debug, Default)]
pub struct Parts {
    pub text: String,
    /// OpenAI `tool_calls` entries, numbered from the `first_call` given.
    pub calls: Vec<Value>,
}

/// Reads the parts of `candidate.content`, skipping thoughts (reasoning summaries are not
/// part of the answer). Function calls get ids `call_<n>` unless Gemini gave one; their
/// thought signature rides along as `extra_content.google.thought_signature`, where
/// Google's OpenAI-compatible endpoint puts it, so a client that keeps it sends it back.
pub fn parts(candidate: &Value, first_call: usize) -> Parts {
    let mut out = Parts::default();
    let list = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for part in list {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            out.text.push_str(t);
        }
        if let Some(fc) = part.get("functionCall") {
            let n = first_call + out.calls.len();
            let id = fc
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| format!("call_{n}"), str::to_string);
            let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
            let mut call = json!({
                "id": id,
                "type": "function",
                "function": {
                    "name": fc.get("name").and_then(Value::as_str).unwrap_or(""),
                    "arguments": args.to_string(),
                },
            });
            if let Some(sig) = part.get("thoughtSignature").and_then(Value::as_str) {
                call["extra_content"] = json!({"google": {"thought_signature": sig}});
            }
            out.calls.push(call);
        }
    }
    out
}

fn unreadable(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::upstream(format!("Gemini sent an unreadable reply: {e}"))
}

/// A whole 2xx `generateContent` reply as a `chat.completion`.
pub fn chat(call: &Call<'_>, body: &[u8]) -> Result<Reply, ProviderError> {
    let v: Value = serde_json::from_slice(body).map_err(unreadable)?;
    if let Some(err) = errors::error_object(&v) {
        return Err(errors::from_error_value(err));
    }
    let obj = v
        .as_object()
        .ok_or_else(|| unreadable("not a JSON object"))?;
    let usage = obj.get("usageMetadata").map(usage);
    let candidates = match obj.get("candidates") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(c)) => c.as_slice(),
        Some(_) => return Err(unreadable("'candidates' is not an array")),
    };
    if candidates.is_empty() {
        return Err(prompt_blocked(&v)
            .unwrap_or_else(|| ProviderError::upstream("Gemini returned no candidates")));
    }

    let mut choices = Vec::with_capacity(candidates.len());
    for (pos, c) in candidates.iter().enumerate() {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
        let p = parts(c, 0);
        let finish = finish_reason(finish_of(c).unwrap_or("STOP"), !p.calls.is_empty());
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        let content = if p.text.is_empty() && !p.calls.is_empty() {
            Value::Null
        } else {
            json!(p.text)
        };
        message.insert("content".into(), content);
        if !p.calls.is_empty() {
            message.insert("tool_calls".into(), Value::Array(p.calls));
        }
        choices.push(json!({
            "index": index,
            "message": message,
            "finish_reason": finish,
            "logprobs": null,
        }));
    }

    let id = obj
        .get("responseId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(new_id, str::to_string);
    let model = obj
        .get("modelVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(call.model);
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": choices,
        "usage": usage.unwrap_or_default().to_openai(),
    });
    Reply::json(&body, usage)
}
