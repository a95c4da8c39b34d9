//! `converse-stream` (binary event stream) to OpenAI `chat.completion.chunk`s.
//!
//! Events, each an event-stream message named by `:event-type` with a JSON payload:
//! `messageStart` (role), `contentBlockStart` (a tool call's id and name),
//! `contentBlockDelta` (text, a piece of a tool call's JSON input, reasoning),
//! `contentBlockStop`, `messageStop` (`stopReason`), `metadata` (usage). An exception is
//! a message with `:message-type exception` and `:exception-type`; it ends the stream
//! with a classified error.
//!
//! The stream is `done` once `messageStop` and `metadata` both came, or when the body
//! ends cleanly after `messageStop`; a body cut before `messageStop` (or inside a
//! message) is never done, so the client sees a cut stream, not a short answer.

use crate::errors;
use crate::eventstream::{Decoder, Message};
use crate::response::{finish_reason, new_id, usage};
use plugin_api::openai::{chunk, unix_now, usage_chunk};
use plugin_api::serde_json::{self, json, Value};
use plugin_api::{ProviderError, StreamDecoder, StreamOutput, Usage};
use std::collections::BTreeMap;

/// The decoder state of one streamed reply.
#[derive(Debug)]
pub struct BedrockStream {
    frames: Decoder,
    include_usage: bool,
    id: String,
    model: String,
    /// Taken once, so every chunk of the stream carries the same value.
    created: u64,
    started: bool,
    /// Tool calls by content block index: their OpenAI `tool_calls` index.
    tools: BTreeMap<u64, usize>,
    stopped: bool,
    usage: Option<Usage>,
    done: bool,
}

fn unreadable(event: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::upstream(format!("Bedrock sent an unreadable {event} event: {e}"))
}

impl BedrockStream {
    pub fn new(model: &str, include_usage: bool) -> Self {
        BedrockStream {
            frames: Decoder::new(),
            include_usage,
            id: new_id(None),
            model: model.to_string(),
            created: unix_now(),
            started: false,
            tools: BTreeMap::new(),
            stopped: false,
            usage: None,
            done: false,
        }
    }

    fn emit(
        &mut self,
        out: &mut StreamOutput,
        delta: Value,
        finish: Option<&str>,
    ) -> Result<(), ProviderError> {
        if !self.started {
            // The role opens the message, even if `messageStart` went missing.
            self.started = true;
            let role = chunk(
                &self.id,
                &self.model,
                self.created,
                json!({"role": "assistant", "content": ""}),
                None,
            );
            out.chunk(&role)?;
            if delta.as_object().is_some_and(|d| d.contains_key("role")) {
                return Ok(());
            }
        }
        out.chunk(&chunk(&self.id, &self.model, self.created, delta, finish))
    }

    fn message(&mut self, m: &Message, out: &mut StreamOutput) -> Result<(), ProviderError> {
        match m.header_str(":message-type").unwrap_or("event") {
            "event" => {}
            "exception" => {
                let kind = m.header_str(":exception-type").unwrap_or("exception");
                return Err(errors::from_exception(kind, &m.payload));
            }
            "error" => {
                let code = m.header_str(":error-code").unwrap_or("error");
                let text = m
                    .header_str(":error-message")
                    .unwrap_or("Bedrock ended the stream with an error");
                let mut e = errors::from_exception(code, b"");
                e.message = text.to_string();
                return Err(e);
            }
            other => {
                return Err(ProviderError::upstream(format!(
                    "Bedrock sent an event-stream message of unknown type {other:?}"
                )))
            }
        }
        if self.done {
            return Ok(());
        }
        let event = m.header_str(":event-type").unwrap_or("");
        let known = matches!(
            event,
            "messageStart" | "contentBlockStart" | "contentBlockDelta" | "messageStop" | "metadata"
        );
        if !known {
            // contentBlockStop, and events added later: nothing to tell the client.
            return Ok(());
        }
        let v: Value = serde_json::from_slice(&m.payload).map_err(|e| unreadable(event, e))?;
        match event {
            "messageStart" if !self.started => {
                self.emit(out, json!({"role": "assistant", "content": ""}), None)?
            }
            "contentBlockStart" => {
                if let Some(tu) = v.pointer("/start/toolUse") {
                    let block = v
                        .get("contentBlockIndex")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| unreadable(event, "no contentBlockIndex"))?;
                    let index = self.tools.len();
                    self.tools.insert(block, index);
                    let call = json!({
                        "index": index,
                        "id": tu.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
                        "type": "function",
                        "function": {
                            "name": tu.get("name").and_then(Value::as_str).unwrap_or(""),
                            "arguments": "",
                        },
                    });
                    self.emit(out, json!({ "tool_calls": [call] }), None)?;
                }
            }
            "contentBlockDelta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                if let Some(t) = delta.get("text").and_then(Value::as_str) {
                    if !t.is_empty() {
                        self.emit(out, json!({ "content": t }), None)?;
                    }
                } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str)
                {
                    let block = v.get("contentBlockIndex").and_then(Value::as_u64);
                    let index =
                        block
                            .and_then(|b| self.tools.get(&b))
                            .copied()
                            .ok_or_else(|| {
                                unreadable(
                                    event,
                                    "tool input for a block that did not start a tool call",
                                )
                            })?;
                    if !input.is_empty() {
                        let call = json!({"index": index, "function": {"arguments": input}});
                        self.emit(out, json!({ "tool_calls": [call] }), None)?;
                    }
                } else if let Some(t) = delta
                    .pointer("/reasoningContent/text")
                    .and_then(Value::as_str)
                {
                    if !t.is_empty() {
                        self.emit(out, json!({ "reasoning_content": t }), None)?;
                    }
                }
                // Reasoning signatures, redacted reasoning, citations: not for the client.
            }
            "messageStop" if !self.stopped => {
                self.stopped = true;
                let reason = v.get("stopReason").and_then(Value::as_str).unwrap_or("");
                let mut finish = finish_reason(reason);
                if finish == "stop" && !self.tools.is_empty() {
                    finish = "tool_calls";
                }
                self.emit(out, json!({}), Some(finish))?;
            }
            "metadata" => {
                if let Some(u) = v.get("usage") {
                    let u = usage(u);
                    self.usage = Some(u);
                    out.usage(u);
                }
                if self.stopped {
                    self.end(out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The usage chunk, if asked for, and done.
    fn end(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        if self.include_usage {
            let u = self.usage.unwrap_or_default();
            out.chunk(&usage_chunk(&self.id, &self.model, self.created, &u))?;
        }
        out.done();
        Ok(())
    }
}

impl StreamDecoder for BedrockStream {
    fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
        let mut messages = Vec::new();
        // Messages before a corrupt one are still told; then the corruption is.
        let framing = self.frames.feed_into(bytes, &mut messages);
        for m in &messages {
            self.message(m, out)?;
        }
        framing
    }

    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        // Cut inside a message, or before the model stopped: not done.
        if self.frames.has_partial() || !self.stopped {
            return Ok(());
        }
        // The model stopped but no metadata followed: the answer is whole, the usage
        // unknown.
        self.end(out)
    }
}
