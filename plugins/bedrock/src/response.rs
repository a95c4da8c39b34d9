//! Converse replies read back into the OpenAI shape; shared by whole replies and stream
//! events.

use plugin_api::openai::unix_now;
use plugin_api::serde_json::{self, json, Value};
use plugin_api::{Call, ProviderError, Reply, Response, Usage};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A completion id: Converse replies carry none, so the request id AWS gives in
/// `x-amzn-requestid` is used when there is one.
pub fn new_id(request_id: Option<&str>) -> String {
    match request_id.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("chatcmpl-{r}"),
        None => format!(
            "chatcmpl-bedrock-{}-{}",
            unix_now(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

/// Token counts from a Converse `usage`. Bedrock counts cache reads and writes apart
/// from `inputTokens` (its `totalTokens` is the sum of all four); the [`Usage`]
/// convention counts them as input. Should a model report them inside `inputTokens`
/// instead (the total then adds up without them), they are not added twice.
pub fn usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (n("inputTokens"), n("outputTokens"));
    let (read, write) = (n("cacheReadInputTokens"), n("cacheWriteInputTokens"));
    let included = match u.get("totalTokens").and_then(Value::as_u64) {
        Some(total) => total == input + output && read + write > 0,
        None => false,
    };
    Usage {
        input_tokens: if included {
            input
        } else {
            input + read + write
        },
        output_tokens: output,
        cached_input_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: 0,
    }
}

/// OpenAI's `finish_reason` for a Converse `stopReason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, and any reason added later.
        _ => "stop",
    }
}

fn unreadable(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::upstream(format!("Bedrock sent an unreadable reply: {e}"))
}

/// A whole 2xx Converse reply as a `chat.completion`.
pub fn chat(call: &Call<'_>, resp: &Response<'_>) -> Result<Reply, ProviderError> {
    let v: Value = serde_json::from_slice(resp.body).map_err(unreadable)?;
    let blocks = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| unreadable("no output.message.content"))?;

    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(t) = b
            .pointer("/reasoningContent/reasoningText/text")
            .and_then(Value::as_str)
        {
            reasoning.push_str(t);
        } else if let Some(tu) = b.get("toolUse") {
            let input = tu.get("input").cloned().unwrap_or_else(|| json!({}));
            tool_calls.push(json!({
                "id": tu.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
                "type": "function",
                "function": {
                    "name": tu.get("name").and_then(Value::as_str).unwrap_or(""),
                    "arguments": input.to_string(),
                },
            }));
        }
        // Images, citations, guard content: nothing an OpenAI client reads.
    }
    let usage = v.get("usage").map(usage);
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let finish = v
        .get("stopReason")
        .and_then(Value::as_str)
        .map_or("stop", finish_reason);
    let body = json!({
        "id": new_id(resp.header("x-amzn-requestid")),
        "object": "chat.completion",
        "created": unix_now(),
        "model": call.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage.unwrap_or_default().to_openai(),
    });
    Reply::json(&body, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_tokens_count_as_input_once() {
        let u = usage(
            &json!({"inputTokens": 10, "outputTokens": 5, "totalTokens": 135,
                               "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20}),
        );
        assert_eq!(
            (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens),
            (130, 100, 20)
        );
        let u = usage(
            &json!({"inputTokens": 130, "outputTokens": 5, "totalTokens": 135,
                               "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20}),
        );
        assert_eq!(u.input_tokens, 130);
        let u = usage(&json!({"inputTokens": 7, "outputTokens": 1}));
        assert_eq!((u.input_tokens, u.output_tokens), (7, 1));
    }

    #[test]
    fn stop_reasons() {
        for (r, f) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(finish_reason(r), f, "{r}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(new_id(Some("4f8b-1")), "chatcmpl-4f8b-1");
        assert!(new_id(None).starts_with("chatcmpl-bedrock-"));
        assert_ne!(new_id(Some(" ")), new_id(Some(" ")));
    }
}
