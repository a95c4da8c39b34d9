//! OpenAI Chat Completions request -> Anthropic Messages API request.
//!
//! The Messages API differs from OpenAI's in ways a client cannot see, so the translation
//! fixes them up instead of refusing: the system prompt is a top-level field, roles must
//! alternate user/assistant (consecutive messages of one role are merged), tool results
//! are `tool_result` blocks inside a user message, and `max_tokens` is required.

use crate::config::Settings;
use plugin_api::ProviderError;
use serde_json::{json, Map, Value};

/// Image types the Messages API accepts in a base64 source.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Placeholder first turn for conversations that open with the assistant: the Messages
/// API wants the first message to be a user message.
const OPENING_USER_TEXT: &str = ".";

fn bad(msg: impl Into<String>) -> ProviderError {
    ProviderError::bad_request(msg)
}

/// One Messages API turn being built.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// Builds the Messages API body for `model` from the client's OpenAI request.
pub fn translate(
    req: &Value,
    model: &str,
    stream: bool,
    settings: &Settings,
) -> Result<Value, ProviderError> {
    let req = req
        .as_object()
        .ok_or_else(|| bad("the request body must be a JSON object"))?;
    let messages = match req.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(bad("'messages' must not be empty")),
        _ => return Err(bad("'messages' must be a non-empty array of chat messages")),
    };

    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let msg = msg
            .as_object()
            .ok_or_else(|| bad(format!("{at} must be an object")))?;
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.role must be a string")))?;
        let content = msg.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(content, &at)?);
                continue;
            }
            "user" => ("user", user_blocks(content, &at)?),
            "assistant" => ("assistant", assistant_blocks(msg, &at)?),
            "tool" => ("user", vec![tool_result(msg, &at)?]),
            "function" => {
                return Err(bad(format!(
                    "{at}: the legacy 'function' role is not supported; use 'tool' messages"
                )))
            }
            other => return Err(bad(format!("{at}: unknown role '{other}'"))),
        };
        // A message without content (e.g. `""`) carries nothing; the API refuses it.
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }

    if turns.is_empty() {
        return Err(bad(
            "'messages' must contain at least one user or assistant message with content",
        ));
    }
    for turn in turns.iter_mut().filter(|t| t.role == "user") {
        // The API wants tool results before any other block of their user message.
        let (mut results, rest): (Vec<Value>, Vec<Value>) = std::mem::take(&mut turn.blocks)
            .into_iter()
            .partition(|b| b["type"] == "tool_result");
        results.extend(rest);
        turn.blocks = results;
    }
    if turns[0].role != "user" {
        turns.insert(
            0,
            Turn {
                role: "user",
                blocks: vec![json!({"type": "text", "text": OPENING_USER_TEXT})],
            },
        );
    }
    trim_prefill(&mut turns);

    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert(
        "max_tokens".into(),
        max_tokens(req, settings.max_tokens_default)?.into(),
    );

    if let Some(instruction) = response_format_instruction(req.get("response_format"))? {
        system.push(json!({"type": "text", "text": instruction}));
    }
    if !system.is_empty() {
        body.insert("system".into(), system_value(system));
    }

    let messages: Vec<Value> = turns
        .into_iter()
        .map(|t| json!({"role": t.role, "content": t.blocks}))
        .collect();
    body.insert("messages".into(), messages.into());

    if let Some(n) = req.get("n").and_then(Value::as_u64) {
        if n > 1 {
            return Err(bad("n > 1 is not supported by anthropic"));
        }
    }
    if let Some(t) = number(req, "temperature")? {
        // OpenAI allows 0..2, Anthropic 0..1: clamp instead of failing the call.
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = number(req, "top_p")? {
        body.insert("top_p".into(), json!(p));
    }
    // Not OpenAI, but clients talking to several providers send it.
    if let Some(k) = req.get("top_k").and_then(Value::as_u64) {
        body.insert("top_k".into(), k.into());
    }
    if let Some(stops) = stop_sequences(req.get("stop"))? {
        body.insert("stop_sequences".into(), stops.into());
    }

    let tools = tools(req.get("tools"))?;
    if !tools.is_empty() {
        body.insert("tools".into(), tools.into());
        let mut choice = tool_choice(req.get("tool_choice"))?;
        if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
            let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if c["type"] != "none" {
                c["disable_parallel_tool_use"] = true.into();
            }
        }
        if let Some(c) = choice {
            body.insert("tool_choice".into(), c);
        }
    } else {
        // A tool_choice without tools is refused upstream; checked, then dropped.
        tool_choice(req.get("tool_choice"))?;
    }

    if let Some(user) = req.get("user").and_then(Value::as_str) {
        if !user.is_empty() {
            body.insert("metadata".into(), json!({"user_id": user}));
        }
    }
    // Extended thinking has no OpenAI field; clients that know Anthropic send it as is.
    if let Some(thinking) = req.get("thinking").filter(|t| t.is_object()) {
        body.insert("thinking".into(), thinking.clone());
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    Ok(Value::Object(body))
}

fn max_tokens(req: &Map<String, Value>, default: u64) -> Result<u64, ProviderError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return match v.as_u64() {
                    Some(n) if n > 0 => Ok(n),
                    _ => Err(bad(format!("'{key}' must be a positive integer, got {v}"))),
                }
            }
        }
    }
    Ok(default)
}

fn number(req: &Map<String, Value>, key: &str) -> Result<Option<f64>, ProviderError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(format!("'{key}' must be a number, got {v}"))),
    }
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Vec<Value>>, ProviderError> {
    let list: Vec<Value> = match stop {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => vec![s.clone().into()],
        Some(Value::Array(items)) => {
            for item in items {
                if !item.is_string() {
                    return Err(bad(format!("'stop' must hold strings, got {item}")));
                }
            }
            items.clone()
        }
        Some(other) => {
            return Err(bad(format!(
                "'stop' must be a string or an array of strings, got {other}"
            )))
        }
    };
    // The API refuses empty stop sequences; they stop nothing anyway.
    let list: Vec<Value> = list
        .into_iter()
        .filter(|s| s.as_str().is_some_and(|s| !s.is_empty()))
        .collect();
    Ok((!list.is_empty()).then_some(list))
}

/// A plain string when no block carries `cache_control`, so simple prompts stay simple.
fn system_value(blocks: Vec<Value>) -> Value {
    if blocks.iter().any(|b| b.get("cache_control").is_some()) {
        return blocks.into();
    }
    let texts: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
    texts.join("\n\n").into()
}

/// JSON mode has no direct Messages API switch: the instruction goes into the system
/// prompt, which the current models follow reliably.
fn response_format_instruction(format: Option<&Value>) -> Result<Option<String>, ProviderError> {
    let format = match format {
        None | Some(Value::Null) => return Ok(None),
        Some(f) => f,
    };
    const JSON_ONLY: &str =
        "Respond with a single valid JSON object only, with no text, code fences or explanation before or after it.";
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(JSON_ONLY.to_string())),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let schema = spec.get("schema").cloned().unwrap_or(json!({}));
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("response");
            let mut text = format!(
                "{JSON_ONLY} The object must conform to this JSON schema (named \"{name}\"):\n{schema}"
            );
            if let Some(desc) = spec.get("description").and_then(Value::as_str) {
                text.push_str(&format!("\nSchema description: {desc}"));
            }
            Ok(Some(text))
        }
        _ => Err(bad(format!(
            "'response_format' must be of type text, json_object or json_schema, got {format}"
        ))),
    }
}

/// Text blocks of a system message (a string or text parts).
fn text_blocks(content: &Value, at: &str) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text_block(s, None).into_iter().collect()),
        Value::Array(parts) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str);
                match (kind, part.get("text").and_then(Value::as_str)) {
                    (Some("text") | None, Some(text)) => {
                        blocks.extend(text_block(text, part.get("cache_control")))
                    }
                    _ => {
                        return Err(bad(format!(
                            "{at}.content[{j}]: system messages may only hold text parts"
                        )))
                    }
                }
            }
            Ok(blocks)
        }
        other => Err(bad(format!(
            "{at}.content must be a string or an array of parts, got {other}"
        ))),
    }
}

/// A text block; none for blank text, which the API refuses.
fn text_block(text: &str, cache_control: Option<&Value>) -> Option<Value> {
    if text.trim().is_empty() {
        return None;
    }
    let mut block = json!({"type": "text", "text": text});
    if let Some(cc) = cache_control {
        block["cache_control"] = cc.clone();
    }
    Some(block)
}

/// Blocks of a user message (or of a tool result): text, images, PDF files.
fn user_blocks(content: &Value, at: &str) -> Result<Vec<Value>, ProviderError> {
    let parts = match content {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) => return Ok(text_block(s, None).into_iter().collect()),
        Value::Array(parts) => parts,
        other => {
            return Err(bad(format!(
                "{at}.content must be a string or an array of parts, got {other}"
            )))
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        let cache_control = part.get("cache_control");
        let block = match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{at}.text must be a string")))?;
                match text_block(text, cache_control) {
                    Some(b) => b,
                    None => continue,
                }
            }
            Some("image_url") => {
                let url = match part.get("image_url") {
                    Some(Value::String(u)) => u.as_str(),
                    Some(obj) => obj.get("url").and_then(Value::as_str).unwrap_or_default(),
                    None => "",
                };
                let mut block = image_block(url, &at)?;
                if let Some(cc) = cache_control {
                    block["cache_control"] = cc.clone();
                }
                block
            }
            Some("file") => file_block(part.get("file").unwrap_or(&Value::Null), &at)?,
            Some("input_audio") => {
                return Err(bad(format!(
                    "{at}: audio input is not supported by anthropic"
                )))
            }
            Some(other) => return Err(bad(format!("{at}: unsupported content part '{other}'"))),
            None => return Err(bad(format!("{at}: a content part needs a 'type'"))),
        };
        blocks.push(block);
    }
    Ok(blocks)
}

/// Splits `data:<media type>[;params];base64,<data>`.
fn data_url(url: &str) -> Option<(String, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let mut params = header.split(';');
    let media = params.next()?.trim().to_ascii_lowercase();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return None;
    }
    Some((media, data))
}

fn image_block(url: &str, at: &str) -> Result<Value, ProviderError> {
    if url.starts_with("data:") {
        let (media, data) = data_url(url).ok_or_else(|| {
            bad(format!(
                "{at}: an image data URL must look like data:image/png;base64,..."
            ))
        })?;
        let media = if media == "image/jpg" {
            "image/jpeg".to_string()
        } else {
            media
        };
        if !IMAGE_TYPES.contains(&media.as_str()) {
            return Err(bad(format!(
                "{at}: image type '{media}' is not supported by anthropic (jpeg, png, gif, webp)"
            )));
        }
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media, "data": data},
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(bad(format!(
        "{at}: image_url.url must be an http(s) URL or a base64 data URL"
    )))
}

/// OpenAI `file` parts carry a data URL; Anthropic reads PDFs as `document` blocks.
fn file_block(file: &Value, at: &str) -> Result<Value, ProviderError> {
    let data = file.get("file_data").and_then(Value::as_str).unwrap_or("");
    match data_url(data) {
        Some((media, data)) if media == "application/pdf" => Ok(json!({
            "type": "document",
            "source": {"type": "base64", "media_type": media, "data": data},
        })),
        _ => Err(bad(format!(
            "{at}: only PDF files given inline as file_data (data:application/pdf;base64,...) are supported by anthropic"
        ))),
    }
}

fn assistant_blocks(msg: &Map<String, Value>, at: &str) -> Result<Vec<Value>, ProviderError> {
    let mut blocks = Vec::new();
    match msg.get("content").unwrap_or(&Value::Null) {
        Value::Null => {}
        Value::String(s) => blocks.extend(text_block(s, None)),
        Value::Array(parts) => {
            for (j, part) in parts.iter().enumerate() {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => None,
                };
                let text = text.and_then(Value::as_str).ok_or_else(|| {
                    bad(format!(
                        "{at}.content[{j}]: assistant messages may only hold text or refusal parts"
                    ))
                })?;
                blocks.extend(text_block(text, part.get("cache_control")));
            }
        }
        other => {
            return Err(bad(format!(
                "{at}.content must be a string or an array of parts, got {other}"
            )))
        }
    }
    match msg.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (j, call) in calls.iter().enumerate() {
                blocks.push(tool_use(call, &format!("{at}.tool_calls[{j}]"))?);
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "{at}.tool_calls must be an array, got {other}"
            )))
        }
    }
    Ok(blocks)
}

fn tool_use(call: &Value, at: &str) -> Result<Value, ProviderError> {
    if let Some(kind) = call.get("type").and_then(Value::as_str) {
        if kind != "function" {
            return Err(bad(format!("{at}: unsupported tool call type '{kind}'")));
        }
    }
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("{at}.id must be a non-empty string")))?;
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("{at}.function.name must be a non-empty string")))?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            bad(format!(
                "{at}.function.arguments is not valid JSON ({e}): {s}"
            ))
        })?,
        // Some clients send the object itself.
        Some(v) => v.clone(),
    };
    if !input.is_object() {
        return Err(bad(format!(
            "{at}.function.arguments must be a JSON object, got {input}"
        )));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn tool_result(msg: &Map<String, Value>, at: &str) -> Result<Value, ProviderError> {
    let id = msg
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("{at}.tool_call_id must be a non-empty string")))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    match msg.get("content").unwrap_or(&Value::Null) {
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                block["content"] = s.clone().into();
            }
        }
        content => {
            let blocks = user_blocks(content, at)?;
            if !blocks.is_empty() {
                block["content"] = blocks.into();
            }
        }
    }
    Ok(block)
}

fn tools(tools: Option<&Value>) -> Result<Vec<Value>, ProviderError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(t)) => t,
        Some(other) => return Err(bad(format!("'tools' must be an array, got {other}"))),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            return Err(bad(format!(
                "{at}: tool type '{kind}' is not supported by anthropic"
            )));
        }
        let f = tool
            .get("function")
            .ok_or_else(|| bad(format!("{at}.function is missing")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(format!("{at}.function.name must be a non-empty string")))?;
        let schema = match f.get("parameters") {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(p) if p.is_object() => p.clone(),
            Some(other) => {
                return Err(bad(format!(
                    "{at}.function.parameters must be a JSON schema object, got {other}"
                )))
            }
        };
        let mut t = json!({"name": name, "input_schema": schema});
        if let Some(desc) = f.get("description").and_then(Value::as_str) {
            t["description"] = desc.into();
        }
        if let Some(cc) = tool.get("cache_control") {
            t["cache_control"] = cc.clone();
        }
        out.push(t);
    }
    Ok(out)
}

fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, ProviderError> {
    let choice = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(c) => c,
    };
    let out = match choice.as_str() {
        Some("auto") => json!({"type": "auto"}),
        Some("none") => json!({"type": "none"}),
        Some("required") => json!({"type": "any"}),
        Some(other) => {
            return Err(bad(format!(
                "'tool_choice' must be auto, none, required or a function, got '{other}'"
            )))
        }
        None => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| choice.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| {
                    bad(format!(
                        "'tool_choice' object must be {{\"type\":\"function\",\"function\":{{\"name\":...}}}}, got {choice}"
                    ))
                })?;
            json!({"type": "tool", "name": name})
        }
    };
    Ok(Some(out))
}

/// A final assistant message is a prefill, which may not end with whitespace.
fn trim_prefill(turns: &mut Vec<Turn>) {
    let Some(last) = turns.last_mut() else { return };
    if last.role != "assistant" {
        return;
    }
    if let Some(block) = last.blocks.last_mut() {
        if block["type"] == "text" {
            let trimmed = block["text"].as_str().unwrap_or("").trim_end().to_string();
            if trimmed.is_empty() {
                last.blocks.pop();
            } else {
                block["text"] = trimmed.into();
            }
        }
    }
    if last.blocks.is_empty() {
        turns.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(
            data_url("data:image/PNG;base64,AAAA"),
            Some(("image/png".to_string(), "AAAA"))
        );
        assert_eq!(
            data_url("data:application/pdf;name=a.pdf;base64,QQ=="),
            Some(("application/pdf".to_string(), "QQ=="))
        );
        assert_eq!(data_url("data:image/png,AAAA"), None);
        assert_eq!(data_url("https://x/y.png"), None);
    }

    #[test]
    fn prefill_is_trimmed_or_dropped() {
        let mut turns = vec![
            Turn {
                role: "user",
                blocks: vec![json!({"type": "text", "text": "hi"})],
            },
            Turn {
                role: "assistant",
                blocks: vec![json!({"type": "text", "text": "Sure: \n"})],
            },
        ];
        trim_prefill(&mut turns);
        assert_eq!(turns[1].blocks[0]["text"], "Sure:");
        turns[1].blocks[0]["text"] = "  ".into();
        trim_prefill(&mut turns);
        assert_eq!(turns.len(), 1);
    }
}
