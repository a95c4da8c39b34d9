//! OpenAI Responses (`POST /v1/responses`) and Chat Completions.
//!
//! For providers without a native Responses API: the request is checked once by
//! [`parse`] (so the host can refuse it before fetching any stored conversation), made
//! into a chat request by [`Request::to_chat`], and the chat reply made back into a
//! Response object, whole ([`reply_from_chat`]) or as the Responses event stream
//! ([`Stream`]). [`conversation`] is what the host keeps for `previous_response_id`.

mod input;
mod output;
mod stream;

use crate::{ChatRequest, Invalid};
use serde_json::{json, Map, Value};

pub use stream::Stream;

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
    /// The chat side of the body, computed once by [`parse`] (which is where every
    /// error is found, so later steps cannot fail on the client's input).
    /// The input in chat terms, or why it cannot be put in them (a provider that takes
    /// Responses natively can still serve it).
    translated: Result<input::Translated, Invalid>,
}

/// Reads and checks a Responses body: `model`, `input` (a string or items: messages with
/// `input_text` / `input_image` / `output_text` parts, `function_call`,
/// `function_call_output`), `instructions`, function `tools`, `tool_choice`,
/// `text.format`, `reasoning.effort`, `max_output_tokens`, `temperature`, `top_p`,
/// `parallel_tool_calls`, `user`, `metadata`, `store`, `stream`, `previous_response_id`.
pub fn parse(body: &[u8]) -> Result<Request, Invalid> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("body", format!("the body must be a JSON object ({e})")))?;
    let obj = body
        .as_object()
        .ok_or_else(|| Invalid::new("body", "the body must be a JSON object"))?;
    let model = input::req_str(obj, "", "model", "the model name as a string")?;
    if model.is_empty() {
        return Err(Invalid::new(
            "model",
            "must not be empty: send the model name",
        ));
    }
    let model = model.to_string();
    let stream = input::opt_bool(obj, "", "stream")?.unwrap_or(false);
    let store = input::opt_bool(obj, "", "store")?.unwrap_or(true);
    let previous_response_id = input::opt_str(obj, "", "previous_response_id")?.map(String::from);
    let translated = input::translate(obj);
    Ok(Request {
        model,
        stream,
        store,
        previous_response_id,
        body,
        translated,
    })
}

impl Request {
    /// The chat request for this call. `history` is the conversation stored with the
    /// previous response (what [`conversation`] returned for it), when there is one.
    pub fn to_chat(&self, history: Option<&[u8]>) -> Result<ChatRequest, Invalid> {
        let translated = self.translated.as_ref().map_err(Clone::clone)?;
        let mut messages = Vec::new();
        if let Some(instructions) = &translated.instructions {
            if !instructions.is_empty() {
                messages.push(json!({"role": "system", "content": instructions}));
            }
        }
        if let Some(history) = history {
            messages.extend(read_history(history).map_err(|()| {
                Invalid::new(
                    "previous_response_id",
                    "the conversation stored with this response cannot be read; start a new \
                     conversation without previous_response_id",
                )
            })?);
        }
        messages.extend(translated.messages.iter().cloned());
        if messages.is_empty() {
            return Err(Invalid::new("input", "send at least one input item"));
        }
        let mut body = Map::new();
        body.insert("model".into(), Value::String(self.model.clone()));
        body.insert("messages".into(), Value::Array(messages));
        for (k, v) in &translated.params {
            body.insert(k.clone(), v.clone());
        }
        if self.stream {
            body.insert("stream".into(), Value::Bool(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Ok(ChatRequest {
            body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
            model: self.model.clone(),
            stream: self.stream,
            include_usage: false,
        })
    }
}

/// A stored conversation: a JSON array of chat messages (objects with a string `role`).
fn read_history(history: &[u8]) -> Result<Vec<Value>, ()> {
    let v: Value = serde_json::from_slice(history).map_err(|_| ())?;
    let Value::Array(messages) = v else {
        return Err(());
    };
    if messages
        .iter()
        .all(|m| m.get("role").is_some_and(Value::is_string))
    {
        Ok(messages)
    } else {
        Err(())
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
    let response = output::from_chat(req, meta, chat)?;
    serde_json::to_vec(&response).map_err(|e| e.to_string())
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
    let mut messages = match history {
        Some(h) => read_history(h).map_err(|()| "the stored conversation cannot be read")?,
        None => Vec::new(),
    };
    let translated = req.translated.as_ref().map_err(|e| e.to_string())?;
    messages.extend(translated.messages.iter().cloned());
    let response: Value =
        serde_json::from_slice(response).map_err(|e| format!("the response is not JSON: {e}"))?;
    let items = response
        .get("output")
        .and_then(Value::as_array)
        .ok_or("the response has no output array")?;
    if let Some(reply) = output::assistant_message(items) {
        messages.push(reply);
    }
    serde_json::to_vec(&Value::Array(messages)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
