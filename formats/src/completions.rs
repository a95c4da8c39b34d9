//! Legacy text completions (`POST /v1/completions`) and Chat Completions.

use crate::{sse_event, ChatRequest, ChatUsage, Invalid, StreamFailure, StreamWriter};
use serde_json::{json, Map, Value};

type Obj = Map<String, Value>;

/// OpenAI's legacy default: a completion without `max_tokens` stops after 16 tokens.
const DEFAULT_MAX_TOKENS: u64 = 16;

/// A field's value; JSON `null` counts as absent.
fn field<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn check(obj: &Obj, key: &str, ok: fn(&Value) -> bool, what: &str) -> Result<(), Invalid> {
    match field(obj, key) {
        Some(v) if !ok(v) => Err(Invalid::new(key, format!("must be {what}"))),
        _ => Ok(()),
    }
}

fn is_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

fn is_stop(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(a) => a.iter().all(Value::is_string),
        _ => false,
    }
}

fn prompt(obj: &Obj) -> Result<&str, Invalid> {
    match field(obj, "prompt") {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(a)) => match a.as_slice() {
            [Value::String(s)] => Ok(s),
            [] => Err(Invalid::new(
                "prompt",
                "must not be empty: send the prompt as a string",
            )),
            many if !many.is_empty() && many.iter().all(Value::is_string) => Err(Invalid::new(
                "prompt",
                "only one prompt can be completed per request through this provider; send \
                 the prompt as a string",
            )),
            _ => Err(Invalid::new(
                "prompt",
                "token-id prompts cannot be used through this provider; send the prompt as a \
                 string",
            )),
        },
        None => Err(Invalid::new(
            "prompt",
            "required: send the prompt as a string",
        )),
        Some(_) => Err(Invalid::new("prompt", "must be a string")),
    }
}

/// What chat cannot do, refused with the field named rather than silently dropped.
fn refuse_unsupported(obj: &Obj) -> Result<(), Invalid> {
    match field(obj, "echo") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(Invalid::new(
                "echo",
                "echo cannot be used through this provider; leave echo out",
            ))
        }
        Some(_) => return Err(Invalid::new("echo", "must be true or false")),
    }
    if field(obj, "suffix").is_some() {
        return Err(Invalid::new(
            "suffix",
            "suffix (insertion) cannot be used through this provider; leave suffix out",
        ));
    }
    match field(obj, "best_of") {
        None => {}
        Some(v) if v.as_u64().is_some_and(|n| n <= 1) => {}
        Some(v) if is_int(v) => {
            return Err(Invalid::new(
                "best_of",
                "best_of above 1 cannot be used through this provider; leave best_of out",
            ))
        }
        Some(_) => return Err(Invalid::new("best_of", "must be an integer")),
    }
    if field(obj, "logprobs").is_some() {
        return Err(Invalid::new(
            "logprobs",
            "logprobs cannot be used through this provider; leave logprobs out",
        ));
    }
    Ok(())
}

/// A completions request as a chat request: `prompt` (a string, or an array of one
/// string) becomes one user message; `max_tokens`, `temperature`, `top_p`, `n`, `stop`,
/// `presence_penalty`, `frequency_penalty`, `seed`, `user`, `logit_bias`, `stream`
/// carry over; what chat cannot do (`echo`, `suffix`, `best_of` > 1, `logprobs`, several
/// prompts) is refused with the field named.
pub fn to_chat(body: &[u8]) -> Result<ChatRequest, Invalid> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("body", format!("the body must be a JSON object ({e})")))?;
    let obj = body
        .as_object()
        .ok_or_else(|| Invalid::new("body", "the body must be a JSON object"))?;
    let model = match field(obj, "model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) => {
            return Err(Invalid::new(
                "model",
                "must not be empty: send the model name",
            ))
        }
        Some(_) => return Err(Invalid::new("model", "must be a string")),
        None => return Err(Invalid::new("model", "required: send the model name")),
    };
    let prompt = prompt(obj)?;
    refuse_unsupported(obj)?;
    check(obj, "max_tokens", |v| v.is_u64(), "a non-negative integer")?;
    for key in [
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
    ] {
        check(obj, key, Value::is_number, "a number")?;
    }
    check(obj, "n", |v| v.is_u64(), "a positive integer")?;
    check(obj, "seed", is_int, "an integer")?;
    check(obj, "stop", is_stop, "a string or an array of strings")?;
    check(obj, "user", Value::is_string, "a string")?;
    check(obj, "logit_bias", Value::is_object, "an object")?;
    check(obj, "stream", Value::is_boolean, "true or false")?;
    check(obj, "stream_options", Value::is_object, "an object")?;
    let stream = field(obj, "stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let include_usage = match obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
    {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Invalid::new(
                "stream_options.include_usage",
                "must be true or false",
            ))
        }
    };

    let mut chat = Obj::new();
    chat.insert("model".into(), Value::String(model.clone()));
    chat.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    chat.insert(
        "max_tokens".into(),
        field(obj, "max_tokens")
            .cloned()
            .unwrap_or(Value::from(DEFAULT_MAX_TOKENS)),
    );
    for key in [
        "temperature",
        "top_p",
        "n",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "user",
        "logit_bias",
    ] {
        if let Some(v) = field(obj, key) {
            chat.insert(key.into(), v.clone());
        }
    }
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(ChatRequest {
        body: serde_json::to_vec(&Value::Object(chat)).unwrap_or_default(),
        model,
        stream,
        include_usage,
    })
}

/// `chatcmpl-abc` → `cmpl-abc`: the id family legacy clients expect.
fn completion_id(chat: &Value) -> String {
    let id = chat.get("id").and_then(Value::as_str).unwrap_or_default();
    format!("cmpl-{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

/// Legacy completions know only stop, length and content_filter.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "length" => "length",
        "content_filter" => "content_filter",
        _ => "stop",
    }
}

fn usage_json(usage: &Value) -> Value {
    let u = ChatUsage::from_value(usage);
    let total = usage
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u.prompt_tokens.saturating_add(u.completion_tokens));
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": total,
    })
}

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

fn head(chat: &Value) -> Obj {
    let mut head = Obj::new();
    head.insert("id".into(), Value::String(completion_id(chat)));
    head.insert("object".into(), Value::String("text_completion".into()));
    head.insert(
        "created".into(),
        Value::from(chat.get("created").and_then(Value::as_u64).unwrap_or(0)),
    );
    head.insert(
        "model".into(),
        chat.get("model")
            .filter(|m| m.is_string())
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
    );
    head
}

/// A `chat.completion` as a `text_completion`.
pub fn reply_from_chat(chat: &[u8]) -> Result<Vec<u8>, String> {
    let chat: Value =
        serde_json::from_slice(chat).map_err(|e| format!("the chat reply is not JSON: {e}"))?;
    let choices = chat
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("the chat reply has no choices array")?;
    let mut out = head(&chat);
    let choices: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "text": content_text(c.get("message").and_then(|m| m.get("content"))),
                "index": c.get("index").and_then(Value::as_u64).unwrap_or(i as u64),
                "logprobs": null,
                "finish_reason": c.get("finish_reason").and_then(Value::as_str).map(finish_reason),
            })
        })
        .collect();
    out.insert("choices".into(), Value::Array(choices));
    if let Some(usage) = chat.get("usage").filter(|u| u.is_object()) {
        out.insert("usage".into(), usage_json(usage));
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| e.to_string())
}

/// Chat chunks → `text_completion` chunks (`data:` events, then `data: [DONE]`); the
/// usage chunk only when the client asked for it.
pub struct Stream {
    include_usage: bool,
    /// The latest usage seen, sent just before `[DONE]` (some providers repeat a running
    /// total in every chunk, and the usage chunk may follow the finish_reason chunk).
    usage: Option<Value>,
    /// id / object / created / model of the last chunk, for the usage event.
    head: Obj,
    ended: bool,
}

impl Stream {
    pub fn new(include_usage: bool) -> Self {
        Stream {
            include_usage,
            usage: None,
            head: Obj::new(),
            ended: false,
        }
    }
}

impl StreamWriter for Stream {
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(chunk) else {
            return;
        };
        if !chunk.is_object() {
            return;
        }
        self.head = head(&chunk);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage_json(usage));
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        let shown: Vec<Value> = choices
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let text = c
                    .get("delta")
                    .and_then(|d| d.get("content"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let reason = c
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .map(finish_reason);
                if text.is_empty() && reason.is_none() {
                    return None;
                }
                Some(json!({
                    "text": text,
                    "index": c.get("index").and_then(Value::as_u64).unwrap_or(i as u64),
                    "logprobs": null,
                    "finish_reason": reason,
                }))
            })
            .collect();
        if shown.is_empty() {
            return;
        }
        let mut event = self.head.clone();
        event.insert("choices".into(), Value::Array(shown));
        sse_event(None, &Value::Object(event), out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        if self.include_usage {
            if let Some(usage) = self.usage.take() {
                let mut event = self.head.clone();
                event.insert("choices".into(), json!([]));
                event.insert("usage".into(), usage);
                sse_event(None, &Value::Object(event), out);
            }
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn fail(&mut self, failure: &StreamFailure<'_>, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let kind = if failure.status == 504 {
            "timeout_error"
        } else {
            "upstream_error"
        };
        let error = json!({"error": {
            "message": failure.message,
            "type": kind,
            "code": failure.code,
        }});
        sse_event(None, &error, out);
    }
}

#[cfg(test)]
mod tests;
