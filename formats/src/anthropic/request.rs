//! Messages request → Chat Completions request, validated field by field; also the
//! tally that `count_tokens` estimates from (same walk, so both refuse the same bodies).

use crate::Invalid;
use serde_json::{json, Map, Value};

type Obj = Map<String, Value>;

/// What a `tool_result` image becomes: chat tool messages carry text only.
pub(super) const IMAGE_MARKER: &str = "[image omitted]";

/// A fixed estimate per image, whatever its size (Anthropic bills by pixels, which
/// would mean decoding the image).
const TOKENS_PER_IMAGE: u64 = 1_600;
const TOKENS_PER_MESSAGE: u64 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// `/v1/messages`: `max_tokens` is required.
    Chat,
    /// `/v1/messages/count_tokens`: no generation parameters.
    Count,
}

pub(super) struct Translated {
    pub body: Value,
    pub model: String,
    pub stream: bool,
    pub tally: Tally,
}

/// What the token estimate is made of.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub text_bytes: u64,
    pub messages: u64,
    pub images: u64,
}

impl Tally {
    fn text(&mut self, s: &str) {
        self.text_bytes = self.text_bytes.saturating_add(s.len() as u64);
    }

    pub fn estimate(&self) -> u64 {
        self.text_bytes
            .div_ceil(4)
            .saturating_add(self.messages.saturating_mul(TOKENS_PER_MESSAGE))
            .saturating_add(self.images.saturating_mul(TOKENS_PER_IMAGE))
    }
}

pub(super) fn translate(body: &[u8], purpose: Purpose) -> Result<Translated, Invalid> {
    // serde_json bounds nesting (128 levels), so nothing below recurses unboundedly.
    let root: Value = serde_json::from_slice(body).map_err(|e| {
        Invalid::new(
            "body",
            format!("the body is not valid JSON ({e}); send a JSON object"),
        )
    })?;
    let req = root
        .as_object()
        .ok_or_else(|| Invalid::new("body", "send a JSON object"))?;
    let mut tally = Tally::default();
    let mut out = Obj::new();

    let model = req_str(req, "model", "")?;
    if model.is_empty() {
        return Err(Invalid::new("model", "model must be a non-empty string"));
    }
    out.insert("model".into(), json!(model));

    let mut messages = Vec::new();
    if let Some(system) = field(req, "system") {
        let text = system_text(system, &mut tally)?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let list = field(req, "messages").ok_or_else(|| {
        Invalid::new(
            "messages",
            "messages is required: an array of user and assistant messages",
        )
    })?;
    let list = array(list, "messages")?;
    if list.is_empty() {
        return Err(Invalid::new("messages", "send at least one message"));
    }
    for (i, m) in list.iter().enumerate() {
        message(m, i, &mut messages, &mut tally)?;
    }
    out.insert("messages".into(), Value::Array(messages));

    let has_tools = tools(req, &mut out, &mut tally)?;
    tool_choice(req, has_tools, &mut out)?;

    if purpose == Purpose::Count {
        return Ok(Translated {
            body: Value::Object(out),
            model: model.to_string(),
            stream: false,
            tally,
        });
    }

    let max = field(req, "max_tokens")
        .ok_or_else(|| Invalid::new("max_tokens", "max_tokens is required: a positive integer"))?;
    match max.as_u64() {
        Some(n) if n > 0 => out.insert("max_tokens".into(), json!(n)),
        _ => {
            return Err(Invalid::new(
                "max_tokens",
                "max_tokens must be a positive integer",
            ))
        }
    };
    for key in ["temperature", "top_p"] {
        if let Some(v) = field(req, key) {
            if !v.is_number() {
                return Err(wrong(key, "a number", v));
            }
            out.insert(key.into(), v.clone());
        }
    }
    // Chat Completions has no top_k: checked, then dropped.
    if let Some(v) = field(req, "top_k") {
        if v.as_u64().is_none() {
            return Err(wrong("top_k", "a non-negative integer", v));
        }
    }
    if let Some(v) = field(req, "stop_sequences") {
        let list = array(v, "stop_sequences")?;
        let mut stop = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            stop.push(json!(string(s, &format!("stop_sequences[{i}]"))?));
        }
        if !stop.is_empty() {
            out.insert("stop".into(), Value::Array(stop));
        }
    }
    if let Some(v) = field(req, "metadata") {
        let meta = object(v, "metadata")?;
        if let Some(user) = opt_str(meta, "user_id", "metadata")? {
            out.insert("user".into(), json!(user));
        }
    }
    if let Some(v) = field(req, "thinking") {
        if let Some(effort) = reasoning_effort(v)? {
            out.insert("reasoning_effort".into(), json!(effort));
        }
    }
    let stream = match field(req, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(wrong("stream", "a boolean", v)),
    };
    if stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Translated {
        body: Value::Object(out),
        model: model.to_string(),
        stream,
        tally,
    })
}

/// `system`: a string, or text blocks joined by a blank line.
fn system_text(v: &Value, tally: &mut Tally) -> Result<String, Invalid> {
    if let Some(s) = v.as_str() {
        tally.text(s);
        return Ok(s.to_string());
    }
    let Some(blocks) = v.as_array() else {
        return Err(wrong("system", "a string or an array of text blocks", v));
    };
    let mut texts = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("system[{i}]");
        let b = object(b, &at)?;
        if req_str(b, "type", &at)? != "text" {
            return Err(Invalid::new(
                join(&at, "type"),
                "system blocks must be text blocks",
            ));
        }
        let t = req_str(b, "text", &at)?;
        tally.text(t);
        texts.push(t);
    }
    Ok(texts.join("\n\n"))
}

fn message(m: &Value, i: usize, out: &mut Vec<Value>, tally: &mut Tally) -> Result<(), Invalid> {
    let at = format!("messages[{i}]");
    let m = object(m, &at)?;
    let role = req_str(m, "role", &at)?;
    let content_at = join(&at, "content");
    let content = field(m, "content").ok_or_else(|| {
        Invalid::new(
            &content_at,
            "content is required: a string or an array of content blocks",
        )
    })?;
    tally.messages += 1;
    match role {
        "user" => user(content, &content_at, out, tally),
        "assistant" => assistant(content, &content_at, out, tally),
        _ => Err(Invalid::new(
            join(&at, "role"),
            "role must be \"user\" or \"assistant\" (system text goes in the top-level system field)",
        )),
    }
}

fn blocks<'a>(content: &'a Value, at: &str) -> Result<&'a Vec<Value>, Invalid> {
    content
        .as_array()
        .ok_or_else(|| wrong(at, "a string or an array of content blocks", content))
}

/// A user turn: its `tool_result` blocks become `tool` messages first (they must follow
/// the assistant's tool calls directly), then the rest one user message.
fn user(content: &Value, at: &str, out: &mut Vec<Value>, tally: &mut Tally) -> Result<(), Invalid> {
    if let Some(s) = content.as_str() {
        tally.text(s);
        out.push(json!({"role": "user", "content": s}));
        return Ok(());
    }
    let list = blocks(content, at)?;
    let mut tool_msgs = Vec::new();
    let mut parts = Vec::new();
    let mut texts = Vec::new();
    let mut has_image = false;
    for (k, b) in list.iter().enumerate() {
        let bat = format!("{at}[{k}]");
        let b = object(b, &bat)?;
        match req_str(b, "type", &bat)? {
            "text" => {
                let t = req_str(b, "text", &bat)?;
                tally.text(t);
                texts.push(t);
                parts.push(json!({"type": "text", "text": t}));
            }
            "image" => {
                parts.push(image(b, &bat, tally)?);
                has_image = true;
            }
            "tool_result" => tool_msgs.push(tool_result(b, &bat, tally)?),
            "tool_use" => {
                return Err(Invalid::new(
                    join(&bat, "type"),
                    "tool_use blocks belong in assistant messages",
                ))
            }
            other => return Err(unsupported(&bat, other)),
        }
    }
    let had_tool_results = !tool_msgs.is_empty();
    out.extend(tool_msgs);
    if !parts.is_empty() || !had_tool_results {
        let content = if has_image {
            Value::Array(parts)
        } else {
            Value::String(texts.join("\n\n"))
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

/// An assistant turn: text joined into `content`, `tool_use` blocks as `tool_calls`;
/// thinking is dropped (chat has no place for it).
fn assistant(
    content: &Value,
    at: &str,
    out: &mut Vec<Value>,
    tally: &mut Tally,
) -> Result<(), Invalid> {
    if let Some(s) = content.as_str() {
        tally.text(s);
        out.push(json!({"role": "assistant", "content": s}));
        return Ok(());
    }
    let list = blocks(content, at)?;
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (k, b) in list.iter().enumerate() {
        let bat = format!("{at}[{k}]");
        let b = object(b, &bat)?;
        match req_str(b, "type", &bat)? {
            "text" => {
                let t = req_str(b, "text", &bat)?;
                tally.text(t);
                texts.push(t);
            }
            "tool_use" => {
                let id = req_str(b, "id", &bat)?;
                let name = req_str(b, "name", &bat)?;
                let args = match field(b, "input") {
                    None => "{}".to_string(),
                    Some(v) => {
                        object(v, &join(&bat, "input"))?;
                        serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
                    }
                };
                tally.text(name);
                tally.text(&args);
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            "tool_result" => {
                return Err(Invalid::new(
                    join(&bat, "type"),
                    "tool_result blocks belong in user messages",
                ))
            }
            "image" => {
                return Err(Invalid::new(
                    join(&bat, "type"),
                    "assistant messages cannot carry images",
                ))
            }
            other => return Err(unsupported(&bat, other)),
        }
    }
    let mut msg = Obj::new();
    msg.insert("role".into(), json!("assistant"));
    let text = if texts.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(texts.join("\n\n"))
    };
    msg.insert("content".into(), text);
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(msg));
    Ok(())
}

/// An image block as a chat `image_url` part (a data URL for base64 sources).
fn image(b: &Obj, at: &str, tally: &mut Tally) -> Result<Value, Invalid> {
    let sat = join(at, "source");
    let src = field(b, "source").ok_or_else(|| {
        Invalid::new(
            &sat,
            "source is required: {type: \"base64\", media_type, data} or {type: \"url\", url}",
        )
    })?;
    let src = object(src, &sat)?;
    let url = match req_str(src, "type", &sat)? {
        "base64" => {
            let media_type = req_str(src, "media_type", &sat)?;
            let data = req_str(src, "data", &sat)?;
            format!("data:{media_type};base64,{data}")
        }
        "url" => req_str(src, "url", &sat)?.to_string(),
        _ => {
            return Err(Invalid::new(
                join(&sat, "type"),
                "only base64 and url image sources can be translated to this provider",
            ))
        }
    };
    tally.images += 1;
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result` block as a chat `tool` message (text only; see [`IMAGE_MARKER`]).
fn tool_result(b: &Obj, at: &str, tally: &mut Tally) -> Result<Value, Invalid> {
    let id = req_str(b, "tool_use_id", at)?;
    if let Some(v) = field(b, "is_error") {
        if !v.is_boolean() {
            return Err(wrong(&join(at, "is_error"), "a boolean", v));
        }
    }
    let cat = join(at, "content");
    let text = match field(b, "content") {
        None => String::new(),
        Some(Value::String(s)) => {
            tally.text(s);
            s.clone()
        }
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for (j, item) in items.iter().enumerate() {
                let iat = format!("{cat}[{j}]");
                let item = object(item, &iat)?;
                match req_str(item, "type", &iat)? {
                    "text" => {
                        let t = req_str(item, "text", &iat)?;
                        tally.text(t);
                        texts.push(t);
                    }
                    "image" => {
                        image(item, &iat, tally)?;
                        texts.push(IMAGE_MARKER);
                    }
                    _ => return Err(Invalid::new(
                        join(&iat, "type"),
                        "tool_result content can only be text and image blocks for this provider",
                    )),
                }
            }
            texts.join("\n\n")
        }
        Some(v) => {
            return Err(wrong(
                &cat,
                "a string or an array of text and image blocks",
                v,
            ))
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// Custom tools as chat functions; server tools are refused. True when any were sent.
fn tools(req: &Obj, out: &mut Obj, tally: &mut Tally) -> Result<bool, Invalid> {
    let Some(v) = field(req, "tools") else {
        return Ok(false);
    };
    let list = array(v, "tools")?;
    let mut fns = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let t = object(t, &at)?;
        match opt_str(t, "type", &at)? {
            None | Some("custom") => {}
            Some(_) => {
                return Err(Invalid::new(
                    join(&at, "type"),
                    "only custom tools (name, description, input_schema) can be translated to this provider; Anthropic server tools (web search, bash, text editor, ...) cannot",
                ))
            }
        }
        let name = req_str(t, "name", &at)?;
        if name.is_empty() {
            return Err(Invalid::new(join(&at, "name"), "name must not be empty"));
        }
        let description = opt_str(t, "description", &at)?;
        let sat = join(&at, "input_schema");
        let schema = field(t, "input_schema")
            .ok_or_else(|| Invalid::new(&sat, "input_schema is required: a JSON Schema object"))?;
        object(schema, &sat)?;
        let mut def = json!({"name": name, "input_schema": schema});
        let mut function = json!({"name": name, "parameters": schema});
        if let Some(d) = description {
            def["description"] = json!(d);
            function["description"] = json!(d);
        }
        tally.text(&serde_json::to_string(&def).unwrap_or_default());
        fns.push(json!({"type": "function", "function": function}));
    }
    let any = !fns.is_empty();
    if any {
        out.insert("tools".into(), Value::Array(fns));
    }
    Ok(any)
}

fn tool_choice(req: &Obj, has_tools: bool, out: &mut Obj) -> Result<(), Invalid> {
    let Some(v) = field(req, "tool_choice") else {
        return Ok(());
    };
    let tc = object(v, "tool_choice")?;
    let choice = match req_str(tc, "type", "tool_choice")? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = req_str(tc, "name", "tool_choice")?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(Invalid::new(
                "tool_choice.type",
                "tool_choice.type must be \"auto\", \"any\", \"tool\" or \"none\"",
            ))
        }
    };
    let serial = match field(tc, "disable_parallel_tool_use") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(wrong(
                "tool_choice.disable_parallel_tool_use",
                "a boolean",
                v,
            ))
        }
    };
    if has_tools {
        out.insert("tool_choice".into(), choice);
        if serial {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    Ok(())
}

/// `thinking: {type: "enabled", budget_tokens}` as a chat `reasoning_effort`.
fn reasoning_effort(v: &Value) -> Result<Option<&'static str>, Invalid> {
    let t = object(v, "thinking")?;
    match req_str(t, "type", "thinking")? {
        "enabled" => {
            let budget = field(t, "budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    Invalid::new(
                        "thinking.budget_tokens",
                        "budget_tokens is required with thinking enabled: a positive integer",
                    )
                })?;
            Ok(Some(match budget {
                0..=4095 => "low",
                4096..=16383 => "medium",
                _ => "high",
            }))
        }
        _ => Ok(None),
    }
}

/// Unknown and untranslatable block types, refused with the reason.
fn unsupported(at: &str, ty: &str) -> Invalid {
    let message = match ty {
        "thinking" | "redacted_thinking" => "thinking blocks belong in assistant messages".into(),
        "document"
        | "search_result"
        | "container_upload"
        | "server_tool_use"
        | "web_search_tool_result"
        | "web_fetch_tool_result"
        | "code_execution_tool_result"
        | "bash_code_execution_tool_result"
        | "text_editor_code_execution_tool_result"
        | "mcp_tool_use"
        | "mcp_tool_result" => {
            format!("{ty} blocks cannot be translated to this provider; send the content as text")
        }
        _ => format!(
            "unknown content block type \"{}\"; send text, image, tool_use or tool_result blocks",
            short(ty)
        ),
    };
    Invalid::new(join(at, "type"), message)
}

/// A client's string, cut for quoting in an error message.
fn short(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A field, with JSON `null` read as absent.
fn field<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(at: &str, want: &str, got: &Value) -> Invalid {
    Invalid::new(at, format!("expected {want}, got {}", kind(got)))
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Obj, Invalid> {
    v.as_object().ok_or_else(|| wrong(at, "an object", v))
}

fn array<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, Invalid> {
    v.as_array().ok_or_else(|| wrong(at, "an array", v))
}

fn string<'a>(v: &'a Value, at: &str) -> Result<&'a str, Invalid> {
    v.as_str().ok_or_else(|| wrong(at, "a string", v))
}

fn opt_str<'a>(obj: &'a Obj, key: &str, at: &str) -> Result<Option<&'a str>, Invalid> {
    field(obj, key)
        .map(|v| string(v, &join(at, key)))
        .transpose()
}

fn req_str<'a>(obj: &'a Obj, key: &str, at: &str) -> Result<&'a str, Invalid> {
    let path = join(at, key);
    match field(obj, key) {
        Some(v) => string(v, &path),
        None => Err(Invalid::new(path, format!("{key} is required: a string"))),
    }
}
