//! Decoding an OpenAI(-compatible) chat completion event stream.
//!
//! Chunks are already in the shape the client wants, so they pass through byte for byte.
//! The decoder only watches for usage (recorded always, shown to the client only if it
//! asked), for in-stream errors, and for `[DONE]`, the one sign that the upstream
//! finished rather than being cut.
//!
//! A Responses-format call's stream runs through the same decoder as pass-through
//! ([`OpenAiStream::responses`]), reading only the events that end it (see `responses`).

use crate::errors;
use crate::usage;
use plugin_api::json::{is_empty_array, looks_like_object, RawObject};
use plugin_api::openai::usage_chunk;
use plugin_api::serde_json::value::RawValue;
use plugin_api::serde_json::Value;
use plugin_api::sse::{SseEvent, SseParser};
use plugin_api::{ProviderError, StreamDecoder, StreamOutput, Usage};
use serde::Deserialize;

/// How much of a body that never produced an SSE event is kept to explain it (a JSON
/// error sent with a 2xx status, or a server that ignored `stream: true`).
const PRELUDE_LIMIT: usize = 64 * 1024;

/// The fields of a chunk the decoder looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, borrow)]
    choices: Option<&'a RawValue>,
    /// Groq reports stream usage in `x_groq.usage`.
    #[serde(default)]
    x_groq: Option<Value>,
    // Kept raw: read only once, and leniently, for a usage chunk we may have to write.
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    #[serde(default, borrow)]
    created: Option<&'a RawValue>,
}

/// What a usage chunk written by the decoder says about the completion.
struct Meta {
    id: String,
    model: String,
    created: u64,
}

impl Meta {
    fn of(probe: &ChunkProbe<'_>) -> Self {
        let text = |raw: Option<&RawValue>| {
            raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
                .unwrap_or_default()
        };
        Meta {
            id: text(probe.id),
            model: text(probe.model),
            created: probe
                .created
                .and_then(|r| serde_json::from_str::<u64>(r.get()).ok())
                .unwrap_or(0),
        }
    }
}

pub struct OpenAiStream {
    sse: SseParser,
    /// The client asked for `stream_options.include_usage`.
    include_usage: bool,
    /// `[DONE]` arrived; anything after it is ignored.
    done: bool,
    /// An error was reported; the stream is over for us.
    stopped: bool,
    saw_event: bool,
    prelude: Vec<u8>,
    /// The latest usage the upstream reported.
    usage: Option<Usage>,
    /// A chunk carrying a top-level `usage` reached the client.
    usage_shown: bool,
    meta: Option<Meta>,
    /// The host forwards the upstream bytes itself; chunks made here are ignored.
    pass_through: bool,
    /// A Responses event stream (always pass-through), not chat chunks.
    responses: bool,
    /// Not an event stream at all (speech audio): passed through, over when the body ends.
    bytes: bool,
}

impl OpenAiStream {
    pub(crate) fn new(include_usage: bool) -> Self {
        OpenAiStream {
            sse: SseParser::new(),
            include_usage,
            done: false,
            stopped: false,
            saw_event: false,
            prelude: Vec::new(),
            usage: None,
            usage_shown: false,
            meta: None,
            pass_through: false,
            responses: false,
            bytes: false,
        }
    }

    /// The decoder of a Responses-format call: the client gets the upstream's events as
    /// they are; this reports usage, the end and failures.
    pub(crate) fn responses() -> Self {
        OpenAiStream {
            responses: true,
            ..Self::new(false).with_pass_through(true)
        }
    }

    /// A body of bytes (speech audio): the host forwards it; it ends with the body.
    pub(crate) fn bytes() -> Self {
        OpenAiStream {
            bytes: true,
            ..Self::new(false).with_pass_through(true)
        }
    }

    pub(crate) fn with_pass_through(mut self, on: bool) -> Self {
        self.pass_through = on;
        self
    }

    fn event(&mut self, event: SseEvent, out: &mut StreamOutput) -> Result<(), ProviderError> {
        self.saw_event = true;
        if self.done {
            return Ok(());
        }
        if self.responses {
            if crate::responses::event(&event, out)? {
                self.done = true;
                out.done();
            }
            return Ok(());
        }
        if event.event.as_deref() == Some("error") {
            let payload =
                serde_json::from_str::<Value>(&event.data).unwrap_or(Value::String(event.data));
            let error = match &payload {
                Value::Object(m) => m.get("error").unwrap_or(&payload),
                _ => &payload,
            };
            return Err(errors::from_payload(error));
        }
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            self.usage_chunk_if_missing(out)?;
            out.done();
            return Ok(());
        }
        self.chunk(event.data, out)
    }

    fn chunk(&mut self, data: String, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if !looks_like_object(data.as_bytes()) {
            return Err(malformed("not a JSON object"));
        }
        let probe: ChunkProbe<'_> =
            serde_json::from_str(&data).map_err(|e| malformed(&e.to_string()))?;
        if let Some(error) = probe.error.as_ref().filter(|e| !e.is_null()) {
            return Err(errors::from_payload(error));
        }
        let top_usage = probe.usage.as_ref().and_then(usage::from_value);
        let groq_usage = probe
            .x_groq
            .as_ref()
            .and_then(|x| x.get("usage"))
            .and_then(usage::from_value);
        if let Some(u) = top_usage.or(groq_usage) {
            out.usage(u);
            self.usage = Some(u);
        }
        if self.meta.is_none() {
            self.meta = Some(Meta::of(&probe));
        }
        // OpenAI sends `"usage": null` on every other chunk once usage is on; those and
        // Groq's extension pass as they are. A real `usage` the client did not ask for
        // is hidden: dropped with its chunk if the chunk carries nothing else, cut out
        // of it otherwise (Mistral and others put usage on the last content chunk).
        if top_usage.is_none() || self.include_usage {
            self.usage_shown |= top_usage.is_some();
            out.raw_chunk(data.into_bytes());
            return Ok(());
        }
        let no_choices = match probe.choices {
            None => true,
            Some(c) => is_empty_array(c.get()),
        };
        if no_choices {
            return Ok(());
        }
        let mut obj = RawObject::parse(data.as_bytes()).map_err(|e| malformed(&e.to_string()))?;
        obj.remove("usage");
        out.raw_chunk(obj.to_vec()?);
        Ok(())
    }

    /// A client that asked for usage gets OpenAI's final usage chunk even from upstreams
    /// that report usage elsewhere (Groq's `x_groq.usage`).
    fn usage_chunk_if_missing(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if !self.include_usage || self.usage_shown {
            return Ok(());
        }
        let (Some(usage), Some(meta)) = (self.usage, self.meta.as_ref()) else {
            return Ok(());
        };
        out.chunk(&usage_chunk(&meta.id, &meta.model, meta.created, &usage))?;
        self.usage_shown = true;
        Ok(())
    }

    /// Runs `events` in order and stops at the first error. What they produced before it
    /// still reaches the client: the output and the error cross the boundary together.
    fn run(&mut self, events: Vec<SseEvent>, out: &mut StreamOutput) -> Result<(), ProviderError> {
        for event in events {
            if let Err(e) = self.event(event, out) {
                self.stopped = true;
                return Err(e);
            }
        }
        Ok(())
    }
}

fn malformed(why: &str) -> ProviderError {
    ProviderError::upstream(format!("malformed stream chunk from upstream: {why}"))
}

impl StreamDecoder for OpenAiStream {
    fn pass_through(&self) -> bool {
        self.pass_through
    }

    fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
        if self.stopped || self.done || self.bytes {
            return Ok(());
        }
        if !self.saw_event && self.prelude.len() < PRELUDE_LIMIT {
            let room = PRELUDE_LIMIT - self.prelude.len();
            self.prelude
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        let events = match self.sse.feed(bytes) {
            Ok(events) => events,
            Err(e) => {
                self.stopped = true;
                return Err(e.into());
            }
        };
        if !events.is_empty() {
            self.prelude = Vec::new();
        }
        self.run(events, out)
    }

    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if self.bytes {
            out.done = true;
            return Ok(());
        }
        if self.stopped || self.done {
            return Ok(());
        }
        let last = match self.sse.finish() {
            Ok(last) => last,
            Err(e) => {
                self.stopped = true;
                return Err(e.into());
            }
        };
        if let Some(last) = last {
            // An event the upstream did not close with a blank line: `[DONE]` like that
            // is common; a chunk cut in half is a cut stream, not a malformed one.
            let whole = serde_json::from_str::<serde::de::IgnoredAny>(&last.data).is_ok();
            let complete = if self.responses {
                whole
            } else {
                whole || last.data.trim() == "[DONE]" || last.event.is_some()
            };
            if complete {
                return self.event(last, out);
            }
            return Ok(());
        }
        if !self.saw_event {
            return not_a_stream(&self.prelude);
        }
        Ok(())
    }
}

/// The upstream answered 2xx without a single event. A JSON body is an answer we can
/// explain (an error sent with a 2xx status, or `stream: true` ignored); anything else
/// is treated as a cut stream.
fn not_a_stream(body: &[u8]) -> Result<(), ProviderError> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
        return Err(errors::from_payload(error));
    }
    Err(ProviderError::upstream(
        "upstream answered a streamed call with a plain JSON body, not an event stream",
    ))
}
