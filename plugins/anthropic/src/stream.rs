//! Anthropic streaming events -> OpenAI `chat.completion.chunk` objects.
//!
//! The Messages API streams `message_start`, then per content block
//! `content_block_start` / `content_block_delta`* / `content_block_stop`, then
//! `message_delta` (stop reason, output usage) and `message_stop`; `ping` may come
//! anywhere and `error` ends the stream. Only `message_stop` counts as a proper end.
//!
//! For a client that speaks the Messages API itself the same decoder runs as a
//! pass-through one ([`AnthropicStream::native`]): the host forwards the upstream's
//! bytes and the decoder reads only usage, the end and errors, leaving the content
//! events unparsed.

use crate::response::{error_from_body, finish_reason, RawUsage};
use plugin_api::openai::{chunk, usage_chunk};
use plugin_api::sse::{SseEvent, SseParser};
use plugin_api::{ProviderError, StreamDecoder, StreamOutput};
use serde_json::{json, Value};
use std::collections::HashMap;

pub struct AnthropicStream {
    sse: SseParser,
    include_usage: bool,
    created: u64,
    /// Anthropic's message id and model, known from `message_start`.
    id: String,
    model: String,
    usage: RawUsage,
    /// Whether the opening `role` chunk went out.
    started: bool,
    /// Anthropic content block index -> OpenAI tool call index (counting tool blocks).
    tools: HashMap<u64, u64>,
    next_tool: u64,
    /// `message_stop` seen, or an error returned: later input is ignored.
    ended: bool,
    /// The host forwards the upstream bytes; no chunks are made.
    pass_through: bool,
}

impl AnthropicStream {
    /// `model` is used until `message_start` names the upstream's own.
    pub fn new(model: &str, include_usage: bool, created: u64) -> Self {
        AnthropicStream {
            sse: SseParser::new(),
            include_usage,
            created,
            id: format!("chatcmpl-anthropic-{created}"),
            model: model.to_string(),
            usage: RawUsage::default(),
            started: false,
            tools: HashMap::new(),
            next_tool: 0,
            ended: false,
            pass_through: false,
        }
    }

    /// A decoder of a Messages-format call: the client gets the upstream's events as
    /// they are; this reports their usage, `message_stop` and `error`.
    pub fn native() -> Self {
        AnthropicStream {
            pass_through: true,
            ..Self::new("", false, 0)
        }
    }

    /// What pass-through reads of an event. Content events are skipped by name,
    /// without parsing their data.
    fn watch(&mut self, ev: &SseEvent, out: &mut StreamOutput) -> Result<(), ProviderError> {
        const WATCHED: [&str; 4] = ["message_start", "message_delta", "message_stop", "error"];
        if ev
            .event
            .as_deref()
            .is_some_and(|name| !WATCHED.contains(&name))
        {
            return Ok(());
        }
        let v = read_event(ev)?;
        match event_type(&v, ev) {
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    self.usage.merge(u);
                    out.usage(self.usage.to_usage());
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.usage.merge(u);
                    out.usage(self.usage.to_usage());
                }
            }
            "message_stop" => {
                out.usage(self.usage.to_usage());
                out.done();
                self.ended = true;
            }
            "error" => {
                self.ended = true;
                return Err(error_from_body(&v));
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, ev: &SseEvent, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if self.pass_through {
            self.watch(ev, out)
        } else {
            self.event(ev, out)
        }
    }

    fn emit(
        &self,
        out: &mut StreamOutput,
        delta: Value,
        finish: Option<&str>,
    ) -> Result<(), ProviderError> {
        out.chunk(&chunk(&self.id, &self.model, self.created, delta, finish))
    }

    /// The opening chunk, also for a stream that skipped `message_start`.
    fn start(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if !self.started {
            self.started = true;
            self.emit(out, json!({"role": "assistant", "content": ""}), None)?;
        }
        Ok(())
    }

    fn event(&mut self, ev: &SseEvent, out: &mut StreamOutput) -> Result<(), ProviderError> {
        let v = read_event(ev)?;
        match event_type(&v, ev) {
            "message_start" => {
                let msg = v.get("message").unwrap_or(&Value::Null);
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.id = id.to_string();
                }
                if let Some(model) = msg.get("model").and_then(Value::as_str) {
                    self.model = model.to_string();
                }
                if let Some(u) = msg.get("usage") {
                    self.usage.merge(u);
                    out.usage(self.usage.to_usage());
                }
                self.start(out)?;
            }
            "content_block_start" => {
                self.start(out)?;
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let k = self.next_tool;
                        self.next_tool += 1;
                        self.tools.insert(index, k);
                        let call = json!({
                            "index": k,
                            "id": block.get("id").and_then(Value::as_str).unwrap_or(""),
                            "type": "function",
                            "function": {
                                "name": block.get("name").and_then(Value::as_str).unwrap_or(""),
                                "arguments": "",
                            },
                        });
                        self.emit(out, json!({"tool_calls": [call]}), None)?;
                    }
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            self.emit(out, json!({"content": text}), None)?;
                        }
                    }
                    // thinking arrives in deltas; server tool blocks are not the client's.
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.start(out)?;
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                let text = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") if !text("text").is_empty() => {
                        self.emit(out, json!({"content": text("text")}), None)?;
                    }
                    Some("input_json_delta") if !text("partial_json").is_empty() => {
                        // Deltas of blocks that are not client tool calls are dropped.
                        if let Some(&k) = self.tools.get(&index) {
                            let call = json!({"index": k, "function": {"arguments": text("partial_json")}});
                            self.emit(out, json!({"tool_calls": [call]}), None)?;
                        }
                    }
                    Some("thinking_delta") if !text("thinking").is_empty() => {
                        self.emit(out, json!({"reasoning_content": text("thinking")}), None)?;
                    }
                    // signature_delta, citations_delta, empty deltas.
                    _ => {}
                }
            }
            "message_delta" => {
                self.start(out)?;
                if let Some(u) = v.get("usage") {
                    self.usage.merge(u);
                    out.usage(self.usage.to_usage());
                }
                if let Some(reason) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.emit(out, json!({}), Some(finish_reason(reason)))?;
                }
            }
            "message_stop" => {
                self.start(out)?;
                let usage = self.usage.to_usage();
                if self.include_usage {
                    out.chunk(&usage_chunk(&self.id, &self.model, self.created, &usage))?;
                }
                out.usage(usage);
                out.done();
                self.ended = true;
            }
            "error" => {
                self.ended = true;
                return Err(error_from_body(&v));
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(())
    }
}

fn read_event(ev: &SseEvent) -> Result<Value, ProviderError> {
    serde_json::from_str(&ev.data).map_err(|e| {
        ProviderError::upstream(format!("anthropic sent an unreadable stream event: {e}"))
    })
}

/// The data's `type`, else the `event:` name.
fn event_type<'a>(v: &'a Value, ev: &'a SseEvent) -> &'a str {
    v.get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or("")
}

impl StreamDecoder for AnthropicStream {
    fn pass_through(&self) -> bool {
        self.pass_through
    }

    fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
        if self.ended {
            return Ok(());
        }
        for ev in self.sse.feed(bytes).inspect_err(|_| self.ended = true)? {
            self.dispatch(&ev, out)?;
            if self.ended {
                break;
            }
        }
        Ok(())
    }

    /// Without `message_stop` the stream was cut: no `done`, so the host reports it;
    /// usage seen so far was already reported.
    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if self.ended {
            return Ok(());
        }
        if let Some(ev) = self.sse.finish().inspect_err(|_| self.ended = true)? {
            // A last event without its blank line still counts when it is whole; a
            // half-received one is the cut the host reports.
            if serde_json::from_str::<Value>(&ev.data).is_ok() {
                self.dispatch(&ev, out)?;
            }
        }
        Ok(())
    }
}
