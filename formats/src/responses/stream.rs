//! Chat chunks → the Responses event stream.

use super::output::{
    arguments_text, call_item_id, fallback_call_id, message_id, response, Item, Outcome, Part,
    PartKind,
};
use super::{Meta, Request};
use crate::{sse_event, ChatUsage, StreamFailure, StreamWriter};
use serde_json::{json, Value};

/// Chat chunks → the Responses event stream (`response.created`, `response.in_progress`,
/// `response.output_item.added`, `response.content_part.added`,
/// `response.output_text.delta` / `.done`, `response.content_part.done`,
/// `response.function_call_arguments.delta` / `.done`, `response.output_item.done`,
/// `response.completed`; `response.failed` on failure), each with `sequence_number`.
///
/// A response cut short by `max_output_tokens` or a content filter ends with
/// `response.incomplete` instead of `response.completed`, as OpenAI's own stream does.
/// Refusals stream as `response.refusal.delta` / `.done` in a `refusal` content part.
pub struct Stream {
    req: Request,
    meta: Meta,
    seq: u64,
    started: bool,
    /// The output items so far; an item's position is its `output_index`.
    items: Vec<Slot>,
    /// The message item taking text now; closed when a tool call starts.
    message: Option<usize>,
    /// Chat tool-call `index` → output index of its `function_call` item.
    calls: Vec<(u64, usize)>,
    /// The latest usage seen (the usage chunk may come after the finish_reason chunk).
    usage: Option<ChatUsage>,
    finish_reason: Option<String>,
    /// The final Response object, once the stream ended.
    ended: Option<Vec<u8>>,
}

struct Slot {
    item: Item,
    done: bool,
}

impl Stream {
    pub fn new(req: &Request, meta: &Meta) -> Self {
        Stream {
            req: req.clone(),
            meta: meta.clone(),
            seq: 0,
            started: false,
            items: Vec::new(),
            message: None,
            calls: Vec::new(),
            usage: None,
            finish_reason: None,
            ended: None,
        }
    }

    /// The final Response object once the stream finished (or failed), for storing.
    pub fn response(&self) -> Option<Vec<u8>> {
        self.ended.clone()
    }

    fn emit(&mut self, kind: &str, mut data: Value, out: &mut Vec<u8>) {
        if let Value::Object(map) = &mut data {
            map.insert("type".into(), Value::String(kind.into()));
            map.insert("sequence_number".into(), Value::from(self.seq));
        }
        self.seq += 1;
        sse_event(Some(kind), &data, out);
    }

    /// `response.created` and `response.in_progress`, before anything else (the SDK
    /// refuses a stream that does not open with `response.created`).
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let outcome = Outcome {
            status: "in_progress",
            incomplete_reason: None,
            error: None,
            usage: None,
        };
        let r = response(&self.req, &self.meta, outcome, Vec::new());
        self.emit("response.created", json!({"response": r.clone()}), out);
        self.emit("response.in_progress", json!({"response": r}), out);
    }

    fn parts(&mut self, index: usize) -> Option<&mut Vec<Part>> {
        match self.items.get_mut(index).map(|s| &mut s.item) {
            Some(Item::Message { parts, .. }) => Some(parts),
            _ => None,
        }
    }

    fn item_id(&self, index: usize) -> String {
        self.items
            .get(index)
            .map(|s| s.item.id().to_string())
            .unwrap_or_default()
    }

    fn text(&mut self, kind: PartKind, delta: &str, out: &mut Vec<u8>) {
        let index = match self.message {
            Some(i) => i,
            None => {
                let i = self.items.len();
                let item = Item::Message {
                    id: message_id(&self.meta, i),
                    parts: Vec::new(),
                };
                let shown = item.json("in_progress");
                self.items.push(Slot { item, done: false });
                self.message = Some(i);
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": i, "item": shown}),
                    out,
                );
                i
            }
        };
        let item_id = self.item_id(index);
        let last_kind = self.parts(index).and_then(|p| p.last()).map(|p| p.kind);
        if last_kind != Some(kind) {
            if last_kind.is_some() {
                self.close_part(index, out);
            }
            let Some(parts) = self.parts(index) else {
                return;
            };
            let part = Part {
                kind,
                text: String::new(),
            };
            let shown = part.json();
            parts.push(part);
            let content_index = parts.len() - 1;
            self.emit(
                "response.content_part.added",
                json!({
                    "item_id": item_id,
                    "output_index": index,
                    "content_index": content_index,
                    "part": shown,
                }),
                out,
            );
        }
        let Some(parts) = self.parts(index) else {
            return;
        };
        let content_index = parts.len().saturating_sub(1);
        if let Some(part) = parts.last_mut() {
            part.text.push_str(delta);
        }
        let (event, mut data) = match kind {
            PartKind::Text => ("response.output_text.delta", json!({"logprobs": []})),
            PartKind::Refusal => ("response.refusal.delta", json!({})),
        };
        data["item_id"] = Value::String(item_id);
        data["output_index"] = Value::from(index);
        data["content_index"] = Value::from(content_index);
        data["delta"] = Value::String(delta.into());
        self.emit(event, data, out);
    }

    /// The `.done` events of a message's last content part.
    fn close_part(&mut self, index: usize, out: &mut Vec<u8>) {
        let item_id = self.item_id(index);
        let Some(parts) = self.parts(index) else {
            return;
        };
        let content_index = parts.len().saturating_sub(1);
        let Some(part) = parts.last().cloned() else {
            return;
        };
        let mut data = json!({
            "item_id": item_id,
            "output_index": index,
            "content_index": content_index,
        });
        match part.kind {
            PartKind::Text => {
                data["text"] = Value::String(part.text.clone());
                data["logprobs"] = json!([]);
                self.emit("response.output_text.done", data.clone(), out);
            }
            PartKind::Refusal => {
                data["refusal"] = Value::String(part.text.clone());
                self.emit("response.refusal.done", data.clone(), out);
            }
        }
        if let Value::Object(map) = &mut data {
            map.remove("text");
            map.remove("logprobs");
            map.remove("refusal");
            map.insert("part".into(), part.json());
        }
        self.emit("response.content_part.done", data, out);
    }

    fn close_item(&mut self, index: usize, out: &mut Vec<u8>) {
        let Some(slot) = self.items.get(index) else {
            return;
        };
        if slot.done {
            return;
        }
        match &slot.item {
            Item::Message { .. } => self.close_part(index, out),
            Item::Call {
                id,
                name,
                arguments,
                ..
            } => {
                let data = json!({
                    "item_id": id,
                    "output_index": index,
                    "arguments": arguments,
                    "name": name,
                });
                self.emit("response.function_call_arguments.done", data, out);
            }
        }
        let Some(slot) = self.items.get_mut(index) else {
            return;
        };
        slot.done = true;
        let shown = slot.item.json("completed");
        if self.message == Some(index) {
            self.message = None;
        }
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": shown}),
            out,
        );
    }

    fn tool_delta(&mut self, position: usize, call: &Value, out: &mut Vec<u8>) {
        if !call.is_object() {
            return;
        }
        if let Some(m) = self.message {
            self.close_item(m, out);
        }
        let chat_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let delta = arguments_text(function.and_then(|f| f.get("arguments")));
        let index = match self.calls.iter().find(|(c, _)| *c == chat_index) {
            Some(&(_, index)) => index,
            None => {
                let index = self.items.len();
                let call_id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map_or_else(|| fallback_call_id(&self.meta, index), String::from);
                let item = Item::Call {
                    id: call_item_id(&self.meta, index),
                    call_id,
                    name: name.to_string(),
                    arguments: String::new(),
                };
                let shown = item.json("in_progress");
                self.items.push(Slot { item, done: false });
                self.calls.push((chat_index, index));
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": index, "item": shown}),
                    out,
                );
                index
            }
        };
        let Some(Slot {
            item:
                Item::Call {
                    id,
                    name: known_name,
                    arguments,
                    ..
                },
            done: false,
        }) = self.items.get_mut(index)
        else {
            return;
        };
        // Some providers repeat the name in every delta: the first one stands.
        if known_name.is_empty() {
            *known_name = name.to_string();
        }
        if delta.is_empty() {
            return;
        }
        arguments.push_str(&delta);
        let data = json!({"item_id": id.clone(), "output_index": index, "delta": delta});
        self.emit("response.function_call_arguments.delta", data, out);
    }

    fn output(&self, open_status: &str) -> Vec<Value> {
        self.items
            .iter()
            .map(|s| s.item.json(if s.done { "completed" } else { open_status }))
            .collect()
    }
}

impl StreamWriter for Stream {
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.ended.is_some() {
            return;
        }
        let Ok(Value::Object(chunk)) = serde_json::from_slice::<Value>(chunk) else {
            return;
        };
        self.start(out);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(ChatUsage::from_value(usage));
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        // Responses has one output: only the first choice is shown.
        for choice in choices
            .iter()
            .filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            if let Some(delta) = choice.get("delta") {
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    if !text.is_empty() {
                        self.text(PartKind::Text, text, out);
                    }
                }
                if let Some(refusal) = delta.get("refusal").and_then(Value::as_str) {
                    if !refusal.is_empty() {
                        self.text(PartKind::Refusal, refusal, out);
                    }
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    for (position, call) in calls.iter().enumerate() {
                        self.tool_delta(position, call, out);
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_string());
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended.is_some() {
            return;
        }
        self.start(out);
        for index in 0..self.items.len() {
            self.close_item(index, out);
        }
        let outcome = Outcome::finished(self.finish_reason.as_deref(), self.usage);
        let event = if outcome.status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let r = response(&self.req, &self.meta, outcome, self.output("completed"));
        self.ended = Some(serde_json::to_vec(&r).unwrap_or_default());
        self.emit(event, json!({"response": r}), out);
    }

    fn fail(&mut self, failure: &StreamFailure<'_>, out: &mut Vec<u8>) {
        if self.ended.is_some() {
            return;
        }
        self.start(out);
        // ResponseError.code is a closed set that the gateway's own codes are not in.
        let code = if failure.status == 429 || failure.upstream_status == Some(429) {
            "rate_limit_exceeded"
        } else {
            "server_error"
        };
        let outcome = Outcome {
            status: "failed",
            incomplete_reason: None,
            error: Some(json!({"code": code, "message": failure.message})),
            usage: self.usage,
        };
        let r = response(&self.req, &self.meta, outcome, self.output("incomplete"));
        self.ended = Some(serde_json::to_vec(&r).unwrap_or_default());
        self.emit("response.failed", json!({"response": r}), out);
    }
}
