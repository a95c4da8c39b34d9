//! `streamGenerateContent?alt=sse` to OpenAI `chat.completion.chunk`s.
//!
//! Each SSE event is a whole `GenerateContentResponse` holding the next piece of each
//! candidate; function calls arrive whole, never split across events; `usageMetadata`
//! is cumulative. Gemini sends no terminal sentinel: a stream is complete when every
//! candidate it started has a `finishReason`, and only then is `done` reported, so a
//! cut connection never looks like a clean finish.

use crate::errors;
use crate::response::{self, finish_of, finish_reason, new_id, prompt_blocked};
use plugin_api::openai::{chunk, unix_now, usage_chunk};
use plugin_api::serde_json::{self, json, Value};
use plugin_api::sse::SseParser;
use plugin_api::{ProviderError, StreamDecoder, StreamOutput, Usage};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// What is known of one candidate (OpenAI choice) so far.
#[derive(Debug, Default)]
struct Choice {
    /// Tool calls sent, to number the next one.
    calls: usize,
    finished: bool,
}

/// The decoder state of one streamed reply.
#[derive(Debug)]
pub struct GeminiStream {
    sse: SseParser,
    include_usage: bool,
    /// Taken once, so every chunk of the stream carries the same value.
    created: u64,
    /// Id and model come from the first event (`responseId`, `modelVersion`).
    id: Option<String>,
    model: String,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Usage>,
}

impl GeminiStream {
    pub fn new(model: &str, include_usage: bool) -> Self {
        GeminiStream {
            sse: SseParser::new(),
            include_usage,
            created: unix_now(),
            id: None,
            model: model.to_string(),
            choices: BTreeMap::new(),
            usage: None,
        }
    }

    /// The `created` all chunks of this stream carry.
    pub fn created(&self) -> u64 {
        self.created
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    fn emit(
        &self,
        out: &mut StreamOutput,
        index: u64,
        delta: Value,
        finish: Option<&str>,
    ) -> Result<(), ProviderError> {
        let mut c = chunk(self.id(), &self.model, self.created, delta, finish);
        if let Some(choice) = c.pointer_mut("/choices/0") {
            choice["index"] = json!(index);
        }
        out.chunk(&c)
    }

    fn event(&mut self, data: &str, out: &mut StreamOutput) -> Result<(), ProviderError> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            ProviderError::upstream(format!("malformed stream event from Gemini: {e}"))
        })?;
        if let Some(err) = errors::error_object(&v) {
            return Err(errors::from_error_value(err));
        }
        if !v.is_object() {
            return Err(ProviderError::upstream(
                "malformed stream event from Gemini: not a JSON object",
            ));
        }
        if self.id.is_none() {
            self.id = Some(
                v.get("responseId")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map_or_else(new_id, str::to_string),
            );
            if let Some(m) = v
                .get("modelVersion")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.model = m.to_string();
            }
        }
        if let Some(meta) = v.get("usageMetadata") {
            let u = response::usage(meta);
            self.usage = Some(u);
            out.usage(u);
        }
        let candidates = match v.get("candidates") {
            Some(Value::Array(c)) if !c.is_empty() => c,
            _ => {
                return match prompt_blocked(&v) {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
        };
        for (pos, c) in candidates.iter().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let started = match self.choices.entry(index) {
                Entry::Occupied(_) => false,
                Entry::Vacant(v) => {
                    v.insert(Choice::default());
                    true
                }
            };
            if started {
                self.emit(
                    out,
                    index,
                    json!({"role": "assistant", "content": ""}),
                    None,
                )?;
            }
            let first_call = self.choices.get(&index).map_or(0, |s| s.calls);
            let p = response::parts(c, first_call);
            if !p.text.is_empty() {
                self.emit(out, index, json!({ "content": p.text }), None)?;
            }
            let made = p.calls.len();
            if made > 0 {
                let calls: Vec<Value> = p
                    .calls
                    .into_iter()
                    .enumerate()
                    .map(|(k, mut call)| {
                        call["index"] = json!(first_call + k);
                        call
                    })
                    .collect();
                self.emit(out, index, json!({ "tool_calls": calls }), None)?;
            }
            let finish = finish_of(c);
            let Some(state) = self.choices.get_mut(&index) else {
                continue;
            };
            state.calls += made;
            if let Some(reason) = finish {
                if !state.finished {
                    state.finished = true;
                    let mapped = finish_reason(reason, state.calls > 0);
                    self.emit(out, index, json!({}), Some(mapped))?;
                }
            }
        }
        Ok(())
    }

    /// Every candidate that started has finished.
    fn complete(&self) -> bool {
        !self.choices.is_empty() && self.choices.values().all(|c| c.finished)
    }
}

impl StreamDecoder for GeminiStream {
    fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
        for event in self.sse.feed(bytes)? {
            self.event(&event.data, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        // A stream that stopped inside an event, or before every candidate finished, was
        // cut: no `done`, and the host tells the client so. Usage seen so far stands.
        let partial = self.sse.has_partial();
        // Reports a stream stopped at the event cap (the lenient last event is not used:
        // an unterminated Gemini event is a cut).
        self.sse.finish()?;
        if partial || !self.complete() {
            return Ok(());
        }
        if self.include_usage {
            let usage = self.usage.unwrap_or_default();
            let c = usage_chunk(self.id(), &self.model, self.created, &usage);
            out.chunk(&c)?;
        }
        out.done();
        Ok(())
    }
}
