//! The reply side: Response objects and their output items, shared by the whole reply
//! and the stream so both give the same shapes.

use super::{Meta, Request};
use crate::ChatUsage;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PartKind {
    Text,
    Refusal,
}

/// One content part of an output message.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) kind: PartKind,
    pub(super) text: String,
}

impl Part {
    pub(super) fn json(&self) -> Value {
        match self.kind {
            PartKind::Text => {
                json!({"type": "output_text", "text": self.text, "annotations": []})
            }
            PartKind::Refusal => json!({"type": "refusal", "refusal": self.text}),
        }
    }
}

/// One output item.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Message {
        id: String,
        parts: Vec<Part>,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    pub(super) fn id(&self) -> &str {
        match self {
            Item::Message { id, .. } | Item::Call { id, .. } => id,
        }
    }

    /// The item as the API shows it; `status` is in_progress, completed or incomplete.
    pub(super) fn json(&self, status: &str) -> Value {
        match self {
            Item::Message { id, parts } => json!({
                "type": "message",
                "id": id,
                "status": status,
                "role": "assistant",
                "content": parts.iter().map(Part::json).collect::<Vec<_>>(),
            }),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
            } => json!({
                "type": "function_call",
                "id": id,
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
                "status": status,
            }),
        }
    }
}

/// The part of the response id that item ids are made from (`resp_abc` → `abc`).
pub(super) fn id_suffix(meta: &Meta) -> &str {
    meta.id.strip_prefix("resp_").unwrap_or(&meta.id)
}

pub(super) fn message_id(meta: &Meta, output_index: usize) -> String {
    format!("msg_{}_{output_index}", id_suffix(meta))
}

pub(super) fn call_item_id(meta: &Meta, output_index: usize) -> String {
    format!("fc_{}_{output_index}", id_suffix(meta))
}

/// For a call the provider gave no id (the client needs one to answer it).
pub(super) fn fallback_call_id(meta: &Meta, output_index: usize) -> String {
    format!("call_{}_{output_index}", id_suffix(meta))
}

/// How a response ended.
pub(super) struct Outcome {
    /// in_progress, completed, incomplete or failed.
    pub(super) status: &'static str,
    /// For `incomplete`: max_output_tokens or content_filter.
    pub(super) incomplete_reason: Option<&'static str>,
    /// For `failed`: `{"code", "message"}`.
    pub(super) error: Option<Value>,
    pub(super) usage: Option<ChatUsage>,
}

impl Outcome {
    /// The outcome of a chat that ended with `finish_reason`.
    pub(super) fn finished(finish_reason: Option<&str>, usage: Option<ChatUsage>) -> Self {
        let incomplete_reason = match finish_reason {
            Some("length") => Some("max_output_tokens"),
            Some("content_filter") => Some("content_filter"),
            _ => None,
        };
        Outcome {
            status: if incomplete_reason.is_some() {
                "incomplete"
            } else {
                "completed"
            },
            incomplete_reason,
            error: None,
            usage,
        }
    }
}

pub(super) fn usage_json(u: &ChatUsage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        // cache_write_tokens: required by the newest SDKs; chat usage does not report it.
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.prompt_tokens.saturating_add(u.completion_tokens),
    })
}

/// A whole Response object: the outcome, the output items and the request's own
/// settings echoed back (with OpenAI's defaults for those the client left out).
pub(super) fn response(req: &Request, meta: &Meta, outcome: Outcome, output: Vec<Value>) -> Value {
    let body = req.body.as_object();
    let given = |key: &str| {
        body.and_then(|b| b.get(key))
            .filter(|v| !v.is_null())
            .cloned()
    };
    let effort = req
        .body
        .pointer("/reasoning/effort")
        .cloned()
        .unwrap_or(Value::Null);
    let format = req
        .body
        .pointer("/text/format")
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "text"}));
    let mut r = Map::new();
    r.insert("id".into(), Value::String(meta.id.clone()));
    r.insert("object".into(), Value::String("response".into()));
    r.insert("created_at".into(), Value::from(meta.created_at));
    r.insert("status".into(), Value::String(outcome.status.into()));
    r.insert("error".into(), outcome.error.unwrap_or(Value::Null));
    r.insert(
        "incomplete_details".into(),
        match outcome.incomplete_reason {
            Some(reason) => json!({"reason": reason}),
            None => Value::Null,
        },
    );
    r.insert("model".into(), Value::String(meta.model.clone()));
    r.insert("output".into(), Value::Array(output));
    r.insert(
        "usage".into(),
        outcome.usage.as_ref().map_or(Value::Null, usage_json),
    );
    r.insert(
        "instructions".into(),
        given("instructions").unwrap_or(Value::Null),
    );
    r.insert(
        "max_output_tokens".into(),
        given("max_output_tokens").unwrap_or(Value::Null),
    );
    r.insert(
        "metadata".into(),
        given("metadata").unwrap_or_else(|| json!({})),
    );
    r.insert(
        "parallel_tool_calls".into(),
        given("parallel_tool_calls").unwrap_or(Value::Bool(true)),
    );
    r.insert(
        "previous_response_id".into(),
        req.previous_response_id
            .clone()
            .map_or(Value::Null, Value::String),
    );
    r.insert(
        "reasoning".into(),
        json!({"effort": effort, "summary": null}),
    );
    r.insert("store".into(), Value::Bool(req.store));
    r.insert(
        "temperature".into(),
        given("temperature").unwrap_or(Value::Null),
    );
    r.insert("top_p".into(), given("top_p").unwrap_or(Value::Null));
    r.insert("text".into(), json!({"format": format}));
    r.insert(
        "tool_choice".into(),
        given("tool_choice").unwrap_or_else(|| Value::String("auto".into())),
    );
    r.insert("tools".into(), Value::Array(echo_tools(req)));
    r.insert("truncation".into(), Value::String("disabled".into()));
    r.insert("user".into(), given("user").unwrap_or(Value::Null));
    Value::Object(r)
}

/// The function tools as the Response object lists them (every field present).
fn echo_tools(req: &Request) -> Vec<Value> {
    let Some(tools) = req.body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .map(|t| {
            let get = |k: &str| t.get(k).cloned().unwrap_or(Value::Null);
            json!({
                "type": "function",
                "name": get("name"),
                "description": get("description"),
                "parameters": get("parameters"),
                "strict": get("strict"),
            })
        })
        .collect()
}

/// Chat message content as text: a string, or the text of its parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Arguments as the JSON string the API carries (some providers send an object).
pub(super) fn arguments_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

pub(super) fn from_chat(req: &Request, meta: &Meta, chat: &[u8]) -> Result<Value, String> {
    let chat: Value =
        serde_json::from_slice(chat).map_err(|e| format!("the chat reply is not JSON: {e}"))?;
    let choices = chat
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("the chat reply has no choices array")?;
    let choice = choices.first();
    let message = match choice {
        None => None,
        Some(c) => Some(
            c.get("message")
                .filter(|m| m.is_object())
                .ok_or("the chat reply's choice has no message")?,
        ),
    };
    let mut items = Vec::new();
    if let Some(message) = message {
        let mut parts = Vec::new();
        let text = content_text(message.get("content"));
        if !text.is_empty() {
            parts.push(Part {
                kind: PartKind::Text,
                text,
            });
        }
        if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
            if !refusal.is_empty() {
                parts.push(Part {
                    kind: PartKind::Refusal,
                    text: refusal.to_string(),
                });
            }
        }
        if !parts.is_empty() {
            items.push(Item::Message {
                id: message_id(meta, 0),
                parts,
            });
        }
        for call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = items.len();
            let function = call.get("function");
            items.push(Item::Call {
                id: call_item_id(meta, index),
                call_id: call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| fallback_call_id(meta, index), String::from),
                name: function
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                arguments: arguments_text(function.and_then(|f| f.get("arguments"))),
            });
        }
    }
    let finish_reason = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let usage = chat
        .get("usage")
        .filter(|u| u.is_object())
        .map(ChatUsage::from_value);
    let output = items.iter().map(|i| i.json("completed")).collect();
    Ok(response(
        req,
        meta,
        Outcome::finished(finish_reason, usage),
        output,
    ))
}

/// A Response's output items as one assistant chat message (None when it said nothing).
pub(super) fn assistant_message(items: &[Value]) -> Option<Value> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let piece = match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => part.get("text"),
                        Some("refusal") => part.get("refusal"),
                        _ => None,
                    };
                    if let Some(piece) = piece.and_then(Value::as_str) {
                        text.push_str(piece);
                    }
                }
            }
            Some("function_call") => {
                let s = |k: &str| {
                    item.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                calls.push(json!({
                    "id": s("call_id"),
                    "type": "function",
                    "function": {"name": s("name"), "arguments": s("arguments")},
                }));
            }
            _ => {}
        }
    }
    if text.is_empty() && calls.is_empty() {
        return None;
    }
    let mut message = Map::new();
    message.insert("role".into(), Value::String("assistant".into()));
    message.insert(
        "content".into(),
        if text.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        },
    );
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    Some(Value::Object(message))
}
