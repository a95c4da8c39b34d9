//! Calls in OpenAI's Responses format ([`Format::OpenAiResponses`](plugin_api::Format)),
//! which only OpenAI itself takes.
//!
//! The client speaks the upstream's own API, so nothing is translated: the body goes to
//! `/responses` as sent (only `model` becomes the upstream name), and the reply and the
//! event stream come back as pass-through. The plugin reads usage (the Responses
//! `usage` object, whose `input_tokens` count cached tokens as chat's `prompt_tokens`
//! do), the end of a stream and failures.

use crate::{errors, usage};
use plugin_api::json::{looks_like_object, RawObject};
use plugin_api::serde_json::Value;
use plugin_api::sse::SseEvent;
use plugin_api::{ProviderError, Reply, StreamOutput};

/// Events a pass-through stream reads; every other one (the deltas) goes by unparsed.
const WATCHED: [&str; 4] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
];

/// A 2xx Responses reply, forwarded unchanged with its usage. A failed response (or a
/// compatible server's error body sent with 2xx) is the error it carries.
pub(crate) fn reply(body: &[u8]) -> Result<Reply, ProviderError> {
    if !looks_like_object(body) {
        return Err(ProviderError::upstream(
            "unreadable reply from upstream: expected a JSON object",
        ));
    }
    let obj = RawObject::parse(body)
        .map_err(|e| ProviderError::upstream(format!("unreadable reply from upstream: {e}")))?;
    let field = |key: &str| -> Result<Option<Value>, ProviderError> {
        obj.get(key)
            .map(|raw| {
                serde_json::from_str::<Value>(raw).map_err(|e| {
                    ProviderError::upstream(format!("unreadable reply from upstream: {e}"))
                })
            })
            .transpose()
    };
    if let Some(error) = field("error")?.filter(|e| !e.is_null()) {
        return Err(errors::from_payload(&error));
    }
    Ok(Reply::pass_through(
        field("usage")?.as_ref().and_then(usage::from_value),
    ))
}

/// What one Responses stream event means; `Ok(true)` once the response ended properly.
pub(crate) fn event(ev: &SseEvent, out: &mut StreamOutput) -> Result<bool, ProviderError> {
    if ev
        .event
        .as_deref()
        .is_some_and(|name| !WATCHED.contains(&name))
    {
        return Ok(false);
    }
    let data = ev.data.trim();
    if ev.event.is_none() && (data.is_empty() || data == "[DONE]") {
        return Ok(false);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| {
        ProviderError::upstream(format!("malformed stream event from upstream: {e}"))
    })?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or("");
    let response = v.get("response").unwrap_or(&Value::Null);
    if matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed"
    ) {
        if let Some(u) = response.get("usage").and_then(usage::from_value) {
            out.usage(u);
        }
    }
    match kind {
        "response.completed" | "response.incomplete" => Ok(true),
        "response.failed" => Err(match response.get("error").filter(|e| !e.is_null()) {
            Some(error) => errors::from_payload(error),
            None => ProviderError::upstream("the upstream reported the response as failed"),
        }),
        // `{"type":"error","code","message","param"}`; some servers nest an `error`.
        "error" => Err(errors::from_payload(&v)),
        _ => Ok(false),
    }
}
