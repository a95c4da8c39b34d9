//! An OpenAI chat request translated to a Bedrock Converse request.
//!
//! Converse keeps the system prompt apart (`system`), carries content as typed blocks
//! (`text`, `image`, `document`, `toolUse`, `toolResult`, `cachePoint`), wants turns to
//! alternate between `user` and `assistant` (tool results are user blocks), and refuses
//! blank text. Mistakes the client can fix are refused here, naming the field.

use plugin_api::openai::{self, params, ToolChoice};
use plugin_api::serde_json::{json, Map, Value};
use plugin_api::ProviderError;

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::bad_request(message)
}

/// The Converse body for an OpenAI chat body.
pub fn converse(body: &Value) -> Result<Value, ProviderError> {
    let messages = plugin_api::openai::chat_messages(body).map_err(bad)?;

    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages[{i}].role is required")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.extend(text_blocks(content, i, "system")?),
            "user" => push(&mut turns, "user", user_blocks(content, i)?),
            "assistant" => push(&mut turns, "assistant", assistant_blocks(m, i)?),
            "tool" => push(&mut turns, "user", vec![tool_result(m, i)?]),
            "function" => {
                return Err(bad(format!(
                    "messages[{i}]: the legacy \"function\" role is not supported by Bedrock; \
                     use tool_calls and \"tool\" messages"
                )))
            }
            other => return Err(bad(format!("messages[{i}] has unknown role {other:?}"))),
        }
    }
    if turns.is_empty() {
        return Err(bad(
            "at least one user or assistant message with content is required",
        ));
    }

    let mut req = Map::new();
    let tool_config = tool_config(body, &turns)?;
    req.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        req.insert("system".into(), Value::Array(system));
    }
    let inference = inference_config(body)?;
    if !inference.is_empty() {
        req.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tc) = tool_config {
        req.insert("toolConfig".into(), tc);
    }
    Ok(Value::Object(req))
}

/// Appends a turn, merging it into the previous one of the same role (Converse wants
/// roles to alternate; parallel tool results share one user turn).
fn push(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut() {
        if last["role"] == role {
            if let Some(have) = last["content"].as_array_mut() {
                have.extend(blocks);
                return;
            }
        }
    }
    turns.push(json!({"role": role, "content": blocks}));
}

/// A text block, none for empty text (Converse refuses blank text).
fn text(t: &str) -> Option<Value> {
    (!t.trim().is_empty()).then(|| json!({ "text": t }))
}

/// A cache point after a part marked with Anthropic-style `cache_control` (what clients
/// that cache prompts send); Bedrock caches the prompt up to it.
fn cache_point(part: &Value, out: &mut Vec<Value>) {
    if part.get("cache_control").is_some_and(|c| !c.is_null()) {
        out.push(json!({"cachePoint": {"type": "default"}}));
    }
}

fn part_text<'a>(p: &'a Value, at: &str) -> Result<&'a str, ProviderError> {
    p.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.text must be a string")))
}

/// System (and text-only) content: a string or text parts.
fn text_blocks(content: &Value, i: usize, who: &str) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text(s).into_iter().collect()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let at = format!("messages[{i}].content[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.extend(text(part_text(p, &at)?)),
                    _ => return Err(bad(format!("{at}: {who} messages may only contain text"))),
                }
                cache_point(p, &mut out);
            }
            Ok(out)
        }
        _ => Err(bad(format!(
            "messages[{i}].content must be a string or an array of parts"
        ))),
    }
}

fn user_blocks(content: &Value, i: usize) -> Result<Vec<Value>, ProviderError> {
    let parts = match content {
        Value::Array(parts) => parts,
        _ => return text_blocks(content, i, "user"),
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match p.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => out.extend(text(part_text(p, &at)?)),
            "image_url" => {
                let url = match p.get("image_url") {
                    Some(Value::String(u)) => Some(u.as_str()),
                    Some(o) => o.get("url").and_then(Value::as_str),
                    None => None,
                }
                .ok_or_else(|| bad(format!("{at}.image_url.url is required")))?;
                out.push(image(url, &at)?);
            }
            "file" => out.push(document(p.get("file").unwrap_or(&Value::Null), i, j)?),
            "input_audio" => {
                return Err(bad(format!(
                    "{at}: audio input is not supported by Bedrock's Converse API"
                )))
            }
            other => return Err(bad(format!("{at} has unsupported type {other:?}"))),
        }
        cache_point(p, &mut out);
    }
    Ok(out)
}

/// The Converse name of an image type.
fn image_format(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    })
}

/// An image from a data URL (inline bytes) or an `s3://` URI; Converse cannot fetch
/// web URLs.
fn image(url: &str, at: &str) -> Result<Value, ProviderError> {
    if openai::is_data_url(url) {
        let d = openai::data_url(url).map_err(|e| bad(format!("{at}: {e}")))?;
        let mime = if d.mime.is_empty() {
            "image/jpeg"
        } else {
            &d.mime
        };
        let format = image_format(mime).ok_or_else(|| {
            bad(format!(
                "{at}: Bedrock takes png, jpeg, gif and webp images, not {mime}"
            ))
        })?;
        return Ok(json!({"image": {"format": format, "source": {"bytes": d.data}}}));
    }
    if url.starts_with("s3://") {
        let ext = url.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let format = match ext.as_deref() {
            Some("png") => "png",
            Some("gif") => "gif",
            Some("webp") => "webp",
            _ => "jpeg",
        };
        return Ok(json!({"image": {"format": format, "source": {"s3Location": {"uri": url}}}}));
    }
    Err(bad(format!(
        "{at}: Bedrock cannot fetch image URLs; send the image inline as a data: URL \
         (data:image/png;base64,...) or as an s3:// URI"
    )))
}

/// The Converse name of a document type.
fn document_format(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}

/// A `file` part (`file_data` as a data URL) as a document block. Converse requires a
/// name of letters, digits, spaces, hyphens, parentheses and brackets: the filename is
/// cut down to those, or the part's position names it.
fn document(file: &Value, i: usize, j: usize) -> Result<Value, ProviderError> {
    let at = format!("messages[{i}].content[{j}]");
    let data = file
        .get("file_data")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}: a file part needs file_data (a data: URL); Bedrock cannot read uploaded file ids")))?;
    let d = openai::data_url(data).map_err(|e| bad(format!("{at}: {e}")))?;
    let format = document_format(&d.mime).ok_or_else(|| {
        bad(format!(
            "{at}: Bedrock takes pdf, csv, doc, docx, xls, xlsx, html, txt and md documents, not {:?}",
            d.mime
        ))
    })?;
    let stem = file
        .get("filename")
        .and_then(Value::as_str)
        .map(|f| f.rsplit_once('.').map_or(f, |(s, _)| s))
        .unwrap_or("");
    let mut name: String = stem
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || " -()[]".contains(*c))
        .collect();
    name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        name = format!("document-{i}-{j}");
    }
    Ok(json!({"document": {"format": format, "name": name, "source": {"bytes": d.data}}}))
}

fn assistant_blocks(m: &Value, i: usize) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::new();
    match m.get("content").unwrap_or(&Value::Null) {
        Value::Array(parts) => {
            for (j, p) in parts.iter().enumerate() {
                let at = format!("messages[{i}].content[{j}]");
                let t = match p.get("type").and_then(Value::as_str) {
                    Some("text") => part_text(p, &at)?,
                    Some("refusal") => p.get("refusal").and_then(Value::as_str).unwrap_or(""),
                    _ => {
                        return Err(bad(format!(
                            "{at}: assistant messages may only contain text"
                        )))
                    }
                };
                out.extend(text(t));
                cache_point(p, &mut out);
            }
        }
        other => out.extend(text_blocks(other, i, "assistant")?),
    }
    if m.get("function_call").is_some_and(|f| !f.is_null()) {
        return Err(bad(format!(
            "messages[{i}].function_call: legacy function calls are not supported by Bedrock; use tool_calls"
        )));
    }
    let calls = openai::tool_calls(m.get("tool_calls"), &format!("messages[{i}]")).map_err(bad)?;
    for (k, call) in calls.into_iter().enumerate() {
        let id = call.id.ok_or_else(|| {
            bad(format!(
                "messages[{i}].tool_calls[{k}].id is required: Bedrock matches tool results to calls by id"
            ))
        })?;
        out.push(json!({"toolUse": {
            "toolUseId": id,
            "name": call.function.name,
            "input": call.function.arguments,
        }}));
    }
    Ok(out)
}

/// A `tool` message as a `toolResult` block. OpenAI tool messages carry no error flag,
/// so `status` (which Converse documents for Claude models only) is left out.
fn tool_result(m: &Value, i: usize) -> Result<Value, ProviderError> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("messages[{i}].tool_call_id is required")))?;
    let content: Vec<Value> = match m.get("content").unwrap_or(&Value::Null) {
        Value::String(s) => vec![json!({ "text": s })],
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                let at = format!("messages[{i}].content[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(json!({ "text": part_text(p, &at)? })),
                    _ => return Err(bad(format!("{at}: tool results may only contain text"))),
                }
            }
            out
        }
        Value::Null => Vec::new(),
        _ => {
            return Err(bad(format!(
                "messages[{i}].content must be a string or an array of text parts"
            )))
        }
    };
    // Converse needs some content; an empty result still says "done".
    let content = if content.is_empty() {
        vec![json!({"text": ""})]
    } else {
        content
    };
    Ok(json!({"toolResult": {"toolUseId": id, "content": content}}))
}

/// The names of the tools used or answered in the conversation.
fn tool_names_in(turns: &[Value]) -> (Vec<String>, bool) {
    let mut names = Vec::new();
    let mut any = false;
    for b in turns
        .iter()
        .filter_map(|t| t["content"].as_array())
        .flatten()
    {
        if let Some(n) = b.pointer("/toolUse/name").and_then(Value::as_str) {
            if !names.iter().any(|have| have == n) {
                names.push(n.to_string());
            }
            any = true;
        }
        any |= b.get("toolResult").is_some();
    }
    (names, any)
}

/// `tools` and `tool_choice` as `toolConfig`. Converse refuses a conversation holding
/// tool blocks without a `toolConfig`, so when the client declares no tools (or picks
/// `"none"`) but replays tool calls, the tools those calls name are declared with an
/// open schema and no choice.
fn tool_config(body: &Value, turns: &[Value]) -> Result<Option<Value>, ProviderError> {
    let declared = openai::function_tools(body.get("tools")).map_err(bad)?;
    let choice = openai::tool_choice(body.get("tool_choice"), &declared).map_err(bad)?;
    let spec = |name: &str, description: Option<&str>, schema: Option<&Value>| {
        let mut s = json!({
            "name": name,
            "inputSchema": {"json": schema.cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}))},
        });
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            s["description"] = json!(d);
        }
        json!({ "toolSpec": s })
    };
    let (used, has_tool_blocks) = tool_names_in(turns);
    let history_only = || -> Option<Value> {
        if !has_tool_blocks {
            return None;
        }
        let mut tools: Vec<Value> = declared
            .iter()
            .map(|t| spec(t.name, t.description, t.parameters))
            .collect();
        for n in &used {
            if !declared.iter().any(|t| t.name == n) {
                tools.push(spec(n, None, None));
            }
        }
        if tools.is_empty() {
            // Results without their calls: one placeholder keeps Converse satisfied.
            tools.push(spec("tool", None, None));
        }
        Some(json!({ "tools": tools }))
    };
    if declared.is_empty() || choice == Some(ToolChoice::None) {
        return Ok(history_only());
    }
    let (tool_choice, only): (Option<Value>, Option<Vec<&str>>) = match &choice {
        None => (None, None),
        Some(ToolChoice::Auto) => (Some(json!({"auto": {}})), None),
        Some(ToolChoice::Required) => (Some(json!({"any": {}})), None),
        Some(ToolChoice::Function(name)) => (Some(json!({"tool": {"name": name}})), None),
        Some(ToolChoice::AllowedTools { required, names }) => {
            let c = if *required {
                json!({"any": {}})
            } else {
                json!({"auto": {}})
            };
            (Some(c), Some(names.clone()))
        }
        Some(ToolChoice::None) => (None, None),
    };
    let mut tools: Vec<Value> = declared
        .iter()
        .filter(|t| match &only {
            None => true,
            Some(names) => names.contains(&t.name),
        })
        .map(|t| spec(t.name, t.description, t.parameters))
        .collect();
    if tools.is_empty() {
        // An empty allow-list: nothing may be called.
        return Ok(history_only());
    }
    for n in &used {
        let listed = tools
            .iter()
            .any(|t| t.pointer("/toolSpec/name").and_then(Value::as_str) == Some(n));
        if !listed {
            tools.push(spec(n, None, None));
        }
    }
    let mut tc = json!({ "tools": tools });
    if let Some(c) = tool_choice {
        tc["toolChoice"] = c;
    }
    Ok(Some(tc))
}

fn inference_config(body: &Value) -> Result<Map<String, Value>, ProviderError> {
    let mut ic = Map::new();
    if let Some(n) = params::max_tokens(body).map_err(bad)? {
        ic.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = params::number(body, "temperature").map_err(bad)? {
        ic.insert("temperature".into(), json!(t));
    }
    if let Some(p) = params::number(body, "top_p").map_err(bad)? {
        ic.insert("topP".into(), json!(p));
    }
    let stops = params::stop(body).map_err(bad)?;
    if !stops.is_empty() {
        ic.insert("stopSequences".into(), json!(stops));
    }
    if let Some(n) = params::count(body, "n").map_err(bad)? {
        if n != 1 {
            return Err(bad(
                "'n' must be 1: Bedrock's Converse API returns one choice",
            ));
        }
    }
    match body.get("response_format") {
        None | Some(Value::Null) => {}
        Some(rf) => match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object" | "json_schema") => {
                return Err(bad(
                    "response_format json_object / json_schema is not supported by Bedrock's \
                     Converse API; describe the format in the prompt, or use a tool with the schema",
                ))
            }
            _ => {
                return Err(bad(
                    "response_format.type must be \"text\", \"json_object\" or \"json_schema\"",
                ))
            }
        },
    }
    Ok(ic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_text_is_dropped_and_turns_merge() {
        let v = converse(&json!({"messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "  "}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": ""},
        ]}))
        .unwrap();
        assert_eq!(
            v["messages"],
            json!([{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}])
        );
    }

    #[test]
    fn documents_get_a_name_bedrock_accepts() {
        let v = converse(&json!({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "Q3 report_final (v2).pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
            {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk="}},
        ]}]}))
        .unwrap();
        let c = &v["messages"][0]["content"];
        assert_eq!(c[0]["document"]["name"], "Q3 reportfinal (v2)");
        assert_eq!(c[0]["document"]["format"], "pdf");
        assert_eq!(c[1]["document"]["name"], "document-0-1");
        assert_eq!(c[1]["document"]["format"], "txt");
    }
}
