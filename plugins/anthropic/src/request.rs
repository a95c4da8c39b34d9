//! OpenAI Chat Completions request -> Anthropic Messages API request.
//!
//! The Messages API differs from OpenAI's in ways a client cannot see, so the translation
//! fixes them up instead of refusing: the system prompt is a top-level field, roles must
//! alternate user/assistant (consecutive messages of one role are merged), tool results
//! are `tool_result` blocks inside a user message, and `max_tokens` is required.

use crate::config::Settings;
use plugin_api::openai::{self, params, DataUrl, FunctionTool, ToolChoice};
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
    body: &Value,
    model: &str,
    stream: bool,
    settings: &Settings,
) -> Result<Value, ProviderError> {
    let req = body
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

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let max_tokens = params::max_tokens(body).map_err(bad)?;
    out.insert(
        "max_tokens".into(),
        max_tokens.unwrap_or(settings.max_tokens_default).into(),
    );

    if let Some(instruction) = response_format_instruction(req.get("response_format"))? {
        system.push(json!({"type": "text", "text": instruction}));
    }
    if !system.is_empty() {
        out.insert("system".into(), system_value(system));
    }

    let messages: Vec<Value> = turns
        .into_iter()
        .map(|t| json!({"role": t.role, "content": t.blocks}))
        .collect();
    out.insert("messages".into(), messages.into());

    if params::count(body, "n")
        .map_err(bad)?
        .is_some_and(|n| n > 1)
    {
        return Err(bad("n > 1 is not supported by anthropic"));
    }
    if let Some(t) = params::number(body, "temperature").map_err(bad)? {
        // OpenAI allows 0..2, Anthropic 0..1: clamp instead of failing the call.
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = params::number(body, "top_p").map_err(bad)? {
        out.insert("top_p".into(), json!(p));
    }
    // Not OpenAI, but clients talking to several providers send it.
    if let Some(k) = params::count(body, "top_k").map_err(bad)? {
        out.insert("top_k".into(), k.into());
    }
    let stops = params::stop(body).map_err(bad)?;
    if !stops.is_empty() {
        out.insert("stop_sequences".into(), stops.into());
    }

    tools(req, &mut out)?;

    if let Some(user) = req.get("user").and_then(Value::as_str) {
        if !user.is_empty() {
            out.insert("metadata".into(), json!({"user_id": user}));
        }
    }
    // Extended thinking has no OpenAI field; clients that know Anthropic send it as is.
    if let Some(thinking) = req.get("thinking").filter(|t| t.is_object()) {
        out.insert("thinking".into(), thinking.clone());
    }
    if stream {
        out.insert("stream".into(), true.into());
    }
    Ok(Value::Object(out))
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

/// The checked data URL at `at`, or why it is unusable.
fn data_url<'a>(url: &'a str, at: &str) -> Result<DataUrl<'a>, ProviderError> {
    openai::data_url(url).map_err(|e| bad(format!("{at}: {e}")))
}

fn image_block(url: &str, at: &str) -> Result<Value, ProviderError> {
    if openai::is_data_url(url) {
        let DataUrl { mime, data } = data_url(url, at)?;
        let media = if mime == "image/jpg" {
            "image/jpeg".to_string()
        } else {
            mime
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
    const ONLY_PDF: &str = "only PDF files given inline as file_data (data:application/pdf;base64,...) are supported by anthropic";
    let url = file.get("file_data").and_then(Value::as_str).unwrap_or("");
    if !openai::is_data_url(url) {
        return Err(bad(format!("{at}: {ONLY_PDF}")));
    }
    let DataUrl { mime, data } = data_url(url, &format!("{at}.file.file_data"))?;
    if mime != "application/pdf" {
        return Err(bad(format!("{at}: {ONLY_PDF}")));
    }
    Ok(json!({
        "type": "document",
        "source": {"type": "base64", "media_type": mime, "data": data},
    }))
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
    let calls = openai::tool_calls(msg.get("tool_calls"), at).map_err(bad)?;
    for (j, call) in calls.into_iter().enumerate() {
        // Anthropic pairs results with calls by id.
        let id = call.id.ok_or_else(|| {
            bad(format!(
                "{at}.tool_calls[{j}].id must be a non-empty string"
            ))
        })?;
        blocks.push(json!({
            "type": "tool_use",
            "id": id,
            "name": call.function.name,
            "input": call.function.arguments,
        }));
    }
    Ok(blocks)
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

/// `tools`, `tool_choice` and `parallel_tool_calls` as Anthropic's `tools` (with
/// `input_schema`) and `tool_choice`.
fn tools(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ProviderError> {
    let mut declared = openai::function_tools(req.get("tools")).map_err(bad)?;
    let choice = openai::tool_choice(req.get("tool_choice"), &declared).map_err(bad)?;
    if declared.is_empty() {
        // A tool_choice without tools is refused upstream; checked, then dropped.
        return Ok(());
    }
    let mut choice = match choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Function(name)) => Some(json!({"type": "tool", "name": name})),
        // Anthropic has no allow-list: the other tools are withheld instead.
        Some(ToolChoice::AllowedTools { required, names }) => {
            declared.retain(|t| names.contains(&t.name));
            Some(json!({"type": if required { "any" } else { "auto" }}))
        }
    };
    if declared.is_empty() {
        // An empty allow-list: no tool may be called, so none is offered.
        return Ok(());
    }
    if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = true.into();
        }
    }
    let tools: Vec<Value> = declared.iter().map(tool).collect();
    out.insert("tools".into(), tools.into());
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    Ok(())
}

fn tool(t: &FunctionTool<'_>) -> Value {
    let schema = t
        .parameters
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let mut out = json!({"name": t.name, "input_schema": schema});
    if let Some(desc) = t.description {
        out["description"] = desc.into();
    }
    if let Some(cc) = t.raw.get("cache_control") {
        out["cache_control"] = cc.clone();
    }
    out
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

    fn settings() -> Settings {
        Settings {
            base_url: "https://api.anthropic.com".into(),
            version: "2023-06-01".into(),
            max_tokens_default: 1024,
            beta: None,
            headers: Vec::new(),
        }
    }

    fn with(extra: Value) -> Result<Value, ProviderError> {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}},
                      {"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        translate(&body, "claude", false, &settings())
    }

    #[test]
    fn allowed_tools_withhold_the_others() {
        let v = with(
            json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {
            "mode": "required", "tools": [{"type": "function", "function": {"name": "g"}}]}}}),
        )
        .unwrap();
        assert_eq!(
            v["tools"],
            json!([{"name": "g", "input_schema": {"type": "object"}}])
        );
        assert_eq!(v["tool_choice"], json!({"type": "any"}));
        let v = with(
            json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {
            "mode": "auto", "tools": []}}}),
        )
        .unwrap();
        assert!(v.get("tools").is_none() && v.get("tool_choice").is_none());
        let e = with(json!({"tool_choice": {"type": "function", "function": {"name": "h"}}}))
            .unwrap_err();
        assert!(
            e.message.contains("\"h\" is not one of the functions"),
            "{}",
            e.message
        );
    }

    #[test]
    fn tool_calls_need_ids_and_data_urls_must_decode() {
        let e = with(json!({"messages": [{"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]}))
        .unwrap_err();
        assert!(
            e.message
                .contains("messages[1].tool_calls[0].id must be a non-empty string"),
            "{}",
            e.message
        );
        let e = with(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}]}]}))
        .unwrap_err();
        assert!(
            e.message
                .starts_with("messages[0].content[0]: the data URL payload is not valid base64"),
            "{}",
            e.message
        );
        let e = with(json!({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVB=ERi0x"}}]}]}))
        .unwrap_err();
        assert!(
            e.message
                .starts_with("messages[0].content[0].file.file_data: the data URL payload"),
            "{}",
            e.message
        );
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
