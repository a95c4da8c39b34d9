//! Client wire formats and OpenAI Chat Completions, translated both ways.
//!
//! The gateway's canonical call is a Chat Completions request; a client that speaks
//! Anthropic Messages, OpenAI Responses or legacy completions has its request made into
//! one (`to_chat`), and the canonical reply made back into its own shape, whole
//! (`reply_from_chat`) or as a stream (a [`StreamWriter`] fed one `chat.completion.chunk`
//! at a time). Pure functions over bytes: no I/O, no clock, no randomness (ids and times
//! are passed in), so every translator can be fuzzed.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod anthropic;
pub mod completions;
pub mod responses;

/// A client request made into a Chat Completions request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The Chat Completions body (JSON). `model` is the name the client sent; when
    /// `stream` is true it carries `"stream": true` and
    /// `"stream_options": {"include_usage": true}` (the writers need the usage chunk).
    pub body: Vec<u8>,
    /// The model the client named, as sent.
    pub model: String,
    pub stream: bool,
    /// The client asked for a usage chunk at the end of its own stream (legacy
    /// completions' `stream_options.include_usage`); false for formats that always
    /// report usage.
    pub include_usage: bool,
}

/// A request the client must fix: `param` is the path of the offending field in the
/// client's own body (`messages[2].content[0].source`), `message` says what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub param: String,
    pub message: String,
}

impl Invalid {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid parameter '{}': {}", self.param, self.message)
    }
}

impl std::error::Error for Invalid {}

/// An error that ends a stream after it began, for the writer to render in its format.
#[derive(Debug, Clone, Copy)]
pub struct StreamFailure<'a> {
    /// The HTTP status the error would have had before the stream began (502, 504, ...).
    pub status: u16,
    /// The upstream's own HTTP status, when it sent one (529 = Anthropic "overloaded").
    pub upstream_status: Option<u16>,
    /// A short machine-readable code (`upstream_error`, `upstream_timeout`, ...).
    pub code: &'a str,
    /// Human-readable, already scrubbed of secrets.
    pub message: &'a str,
}

/// Turns a canonical chat stream into a client format's stream, one chunk at a time.
pub trait StreamWriter: Send {
    /// One `chat.completion.chunk` JSON object (the `data:` payload, without framing);
    /// appends what the client should see now (SSE-framed bytes) to `out`. A chunk that
    /// cannot be read is skipped.
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// The upstream finished properly: the closing events.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// The stream failed after it began: the format's error ending (never a clean end).
    fn fail(&mut self, failure: &StreamFailure<'_>, out: &mut Vec<u8>);
}

/// Token counts read from a chat `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
}

impl ChatUsage {
    /// Reads a chat `usage` object; absent or ill-typed counts are 0.
    pub fn from_value(v: &serde_json::Value) -> Self {
        let n = |ptr: &str| {
            v.pointer(ptr)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        ChatUsage {
            prompt_tokens: n("/prompt_tokens"),
            completion_tokens: n("/completion_tokens"),
            cached_tokens: n("/prompt_tokens_details/cached_tokens"),
            reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
        }
    }
}

/// One SSE event: `event: <name>\ndata: <json>\n\n` (name omitted when `None`).
pub fn sse_event(name: Option<&str>, data: &serde_json::Value, out: &mut Vec<u8>) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}
