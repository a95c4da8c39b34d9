//! Chat chunks → the Messages event stream.
//!
//! Messages content blocks are strictly sequential (start, deltas, stop, then the next),
//! while chat tool calls may interleave their argument fragments by `index`. So one tool
//! call is streamed live at a time; another one's fragments are held until the live one's
//! arguments form a complete JSON value (tracked byte by byte, no re-parsing), or until
//! the end, and then sent as one `input_json_delta`. Providers that send calls one after
//! another (the usual case) are therefore streamed live throughout.

use super::{input_tokens, message_id, stop_reason, thinking_block, tool_id};
use crate::{sse_event, ChatUsage, StreamFailure, StreamWriter};
use serde_json::{json, Map, Value};

/// Chat chunks → the Messages event sequence: `message_start`, `content_block_start` /
/// `content_block_delta` (`text_delta`, `input_json_delta`) / `content_block_stop`,
/// `message_delta` (stop reason, usage), `message_stop`; `error` on failure.
pub struct Stream {
    model: String,
    /// The given id until the first chunk names its own.
    id: String,
    started: bool,
    done: bool,
    next_block: u64,
    open: Option<Open>,
    tools: Vec<Tool>,
    finish_reason: Option<String>,
    usage: ChatUsage,
}

/// The content block now open (its Messages index).
#[derive(Debug, Clone, Copy)]
enum Open {
    Text(u64),
    Thinking(u64),
    Tool { block: u64, slot: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started yet; its fragments are held in `held`.
    Waiting,
    Live,
    /// Its block was closed; late fragments cannot be sent any more and are dropped.
    Closed,
}

struct Tool {
    /// The chat `index`; `None` once a new call reused the index.
    key: Option<u64>,
    id: Option<String>,
    name: Option<String>,
    state: State,
    held: String,
    args: Balance,
}

/// Whether streamed arguments have formed one complete JSON object or array yet.
#[derive(Debug, Default, Clone, Copy)]
struct Balance {
    depth: u32,
    started: bool,
    closed: bool,
    in_string: bool,
    escaped: bool,
    broken: bool,
}

impl Balance {
    fn feed(&mut self, s: &str) {
        for b in s.bytes() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            if b.is_ascii_whitespace() {
                continue;
            }
            if self.closed || (!self.started && b != b'{' && b != b'[') {
                self.broken = true;
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.started = true;
                    self.depth = self.depth.saturating_add(1);
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.closed = true;
                    }
                }
                _ => {}
            }
        }
    }

    fn complete(&self) -> bool {
        self.closed && !self.broken
    }
}

impl Stream {
    pub fn new(model: &str, id: &str) -> Self {
        Stream {
            model: model.to_string(),
            id: id.to_string(),
            started: false,
            done: false,
            next_block: 0,
            open: None,
            tools: Vec::new(),
            finish_reason: None,
            usage: ChatUsage::default(),
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        event(
            out,
            json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            }),
        );
        event(out, json!({"type": "ping"}));
    }

    fn open_block(&mut self, block: Value, out: &mut Vec<u8>) -> u64 {
        let index = self.next_block;
        self.next_block += 1;
        event(
            out,
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = match open {
            Open::Text(i) | Open::Thinking(i) => i,
            Open::Tool { block, slot } => {
                if let Some(t) = self.tools.get_mut(slot) {
                    t.state = State::Closed;
                }
                block
            }
        };
        event(out, json!({"type": "content_block_stop", "index": index}));
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close(out);
                let i = self.open_block(json!({"type": "text", "text": ""}), out);
                self.open = Some(Open::Text(i));
                i
            }
        };
        delta(out, index, json!({"type": "text_delta", "text": text}));
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                self.close(out);
                let i = self.open_block(thinking_block(""), out);
                self.open = Some(Open::Thinking(i));
                i
            }
        };
        delta(
            out,
            index,
            json!({"type": "thinking_delta", "thinking": text}),
        );
    }

    /// Which tool a chat tool-call delta belongs to, making a new one when it starts one.
    fn slot(&mut self, call: &Map<String, Value>, id: Option<&str>) -> usize {
        let key = call.get("index").and_then(Value::as_u64);
        let found = match key {
            Some(k) => self.tools.iter().position(|t| t.key == Some(k)),
            None => match id {
                Some(id) => self.tools.iter().position(|t| t.id.as_deref() == Some(id)),
                None => self.tools.len().checked_sub(1),
            },
        };
        if let Some(s) = found {
            // The same index with a different id is a new call (some providers reuse 0).
            let reused = matches!((id, self.tools[s].id.as_deref()), (Some(a), Some(b)) if a != b);
            if !reused {
                return s;
            }
            self.tools[s].key = None;
        }
        self.tools.push(Tool {
            key,
            id: None,
            name: None,
            state: State::Waiting,
            held: String::new(),
            args: Balance::default(),
        });
        self.tools.len() - 1
    }

    fn tool_delta(&mut self, call: &Map<String, Value>, out: &mut Vec<u8>) {
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let f = call.get("function");
        let name = f
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let args = match f.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Object(_) | Value::Array(_))) => v.to_string(),
            _ => String::new(),
        };
        let s = self.slot(call, id);
        let tool = &mut self.tools[s];
        if tool.id.is_none() {
            tool.id = id.map(str::to_string);
        }
        if tool.name.is_none() {
            tool.name = name.map(str::to_string);
        }
        if !args.is_empty() {
            tool.args.feed(&args);
            match (tool.state, self.open) {
                (State::Live, Some(Open::Tool { block, slot })) if slot == s => {
                    delta(
                        out,
                        block,
                        json!({"type": "input_json_delta", "partial_json": args}),
                    );
                }
                (State::Waiting, _) => tool.held.push_str(&args),
                _ => {}
            }
        }
        self.advance(out);
    }

    /// Starts waiting tools while nothing else is live: the live tool gives way once its
    /// arguments are complete; text or thinking gives way to a tool that can start.
    fn advance(&mut self, out: &mut Vec<u8>) {
        loop {
            let next = self
                .tools
                .iter()
                .position(|t| t.state == State::Waiting && t.name.is_some());
            let Some(next) = next else {
                return;
            };
            if let Some(Open::Tool { slot, .. }) = self.open {
                if !self.tools[slot].args.complete() {
                    return;
                }
            }
            self.close(out);
            self.start_tool(next, out);
        }
    }

    fn start_tool(&mut self, slot: usize, out: &mut Vec<u8>) {
        let id = match &self.tools[slot].id {
            Some(id) => id.clone(),
            None => tool_id(&self.id, slot),
        };
        let name = self.tools[slot].name.clone().unwrap_or_default();
        let block = self.open_block(
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            out,
        );
        let held = std::mem::take(&mut self.tools[slot].held);
        if !held.is_empty() {
            delta(
                out,
                block,
                json!({"type": "input_json_delta", "partial_json": held}),
            );
        }
        self.tools[slot].state = State::Live;
        self.open = Some(Open::Tool { block, slot });
    }
}

impl StreamWriter for Stream {
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(chunk) else {
            return;
        };
        if !self.started {
            self.id = message_id(obj.get("id"), &self.id);
            self.start(out);
        }
        if let Some(u) = obj.get("usage").filter(|u| u.is_object()) {
            self.usage = ChatUsage::from_value(u);
        }
        // One choice: a Messages reply has no `n`.
        let Some(choice) = obj
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return;
        };
        if let Some(delta) = choice.get("delta").and_then(Value::as_object) {
            if let Some(r) = super::reply::reasoning(delta) {
                self.thinking(r, out);
            }
            if let Some(t) = delta
                .get("content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.text(t, out);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls.iter().filter_map(Value::as_object) {
                    self.tool_delta(call, out);
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(f.to_string());
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        self.start(out);
        self.close(out);
        // What is still waiting goes out now, whole, in order.
        for slot in 0..self.tools.len() {
            if self.tools[slot].state == State::Waiting {
                self.start_tool(slot, out);
                self.close(out);
            }
        }
        let stop = stop_reason(self.finish_reason.as_deref(), !self.tools.is_empty());
        event(
            out,
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {
                    "input_tokens": input_tokens(&self.usage),
                    "output_tokens": self.usage.completion_tokens,
                    "cache_read_input_tokens": self.usage.cached_tokens,
                },
            }),
        );
        event(out, json!({"type": "message_stop"}));
    }

    fn fail(&mut self, failure: &StreamFailure<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        let ty = super::error_type(failure.status, failure.upstream_status);
        event(
            out,
            json!({"type": "error", "error": {"type": ty, "message": failure.message}}),
        );
    }
}

/// One event, named by its data's `type`.
fn event(out: &mut Vec<u8>, data: Value) {
    let name = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
        .to_string();
    sse_event(Some(&name), &data, out);
}

fn delta(out: &mut Vec<u8>, index: u64, delta: Value) {
    event(
        out,
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    );
}
