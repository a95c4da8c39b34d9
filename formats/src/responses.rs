//! OpenAI Responses (`POST /v1/responses`) and Chat Completions.

use crate::{ChatRequest, Invalid, StreamFailure, StreamWriter};

/// A checked Responses request.
#[derive(Debug, Clone)]
pub struct Request {
    pub model: String,
    pub stream: bool,
    /// `store` (default true): the response is kept for `previous_response_id` and GET.
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// The parsed body (kept for translation and for echoing request fields back).
    pub body: serde_json::Value,
}

/// Reads and checks a Responses body: `model`, `input` (a string or items: messages with
/// `input_text` / `input_image` / `output_text` parts, `function_call`,
/// `function_call_output`), `instructions`, function `tools`, `tool_choice`,
/// `text.format`, `reasoning.effort`, `max_output_tokens`, `temperature`, `top_p`,
/// `parallel_tool_calls`, `user`, `metadata`, `store`, `stream`, `previous_response_id`.
pub fn parse(body: &[u8]) -> Result<Request, Invalid> {
    let _ = body;
    Err(Invalid::new("body", "not built yet"))
}

impl Request {
    /// The chat request for this call. `history` is the conversation stored with the
    /// previous response (what [`conversation`] returned for it), when there is one.
    pub fn to_chat(&self, history: Option<&[u8]>) -> Result<ChatRequest, Invalid> {
        let _ = history;
        Err(Invalid::new("body", "not built yet"))
    }
}

/// What the host chose for a response: its id (`resp_...`) and creation time.
#[derive(Debug, Clone)]
pub struct Meta {
    pub id: String,
    pub created_at: u64,
    /// The model name to show.
    pub model: String,
}

/// A `chat.completion` as a Response object (`object: "response"`, `status`, `output`
/// items, `output_text`-bearing messages and `function_call` items, `usage` with
/// `input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens`,
/// request fields echoed).
pub fn reply_from_chat(req: &Request, meta: &Meta, chat: &[u8]) -> Result<Vec<u8>, String> {
    let _ = (req, meta, chat);
    Err("not built yet".into())
}

/// The conversation to keep with a response, for a later `previous_response_id`: the
/// history, this request's input and the response's output, as a JSON array of chat
/// messages (what [`Request::to_chat`] takes back as `history`). `instructions` are not
/// carried over, as in OpenAI's API.
pub fn conversation(
    req: &Request,
    history: Option<&[u8]>,
    response: &[u8],
) -> Result<Vec<u8>, String> {
    let _ = (req, history, response);
    Err("not built yet".into())
}

/// Chat chunks → the Responses event stream (`response.created`, `response.in_progress`,
/// `response.output_item.added`, `response.content_part.added`,
/// `response.output_text.delta` / `.done`, `response.content_part.done`,
/// `response.function_call_arguments.delta` / `.done`, `response.output_item.done`,
/// `response.completed`; `response.failed` on failure), each with `sequence_number`.
pub struct Stream {
    _req: Request,
    _meta: Meta,
}

impl Stream {
    pub fn new(req: &Request, meta: &Meta) -> Self {
        Stream {
            _req: req.clone(),
            _meta: meta.clone(),
        }
    }

    /// The final Response object once the stream finished (or failed), for storing.
    pub fn response(&self) -> Option<Vec<u8>> {
        None
    }
}

impl StreamWriter for Stream {
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let _ = (chunk, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }
    fn fail(&mut self, failure: &StreamFailure<'_>, out: &mut Vec<u8>) {
        let _ = (failure, out);
    }
}
