//! An OpenAI chat request translated to a Gemini `GenerateContentRequest`.
//!
//! Gemini has two roles (`user`, `model`), keeps the system prompt apart
//! (`systemInstruction`), and carries tool results as `functionResponse` parts of a user
//! turn that name the function rather than the call. Everything the upstream would refuse
//! for a reason the client can fix is refused here with a message saying which message
//! or field is wrong.

use crate::schema;
use plugin_api::serde_json::{self, json, Map, Value};
use plugin_api::ProviderError;

/// Accepted by Gemini in place of a thought signature the client did not keep (OpenAI
/// clients drop unknown fields); Gemini 3 refuses function calls in history without one.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::bad_request(message)
}

/// The `generateContent` body for an OpenAI chat body.
pub fn chat(body: &Value) -> Result<Value, ProviderError> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(bad("'messages' must not be empty")),
        Some(_) => return Err(bad("'messages' must be an array of chat messages")),
        None => return Err(bad("'messages' is required")),
    };

    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages[{i}].role is required")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.extend(text_only(content, i)?),
            "user" => push(&mut contents, "user", user_parts(content, i)?),
            "assistant" => push(&mut contents, "model", assistant_parts(m, i)?),
            "tool" | "function" => {
                push(&mut contents, "user", vec![tool_result(messages, i)?]);
            }
            other => return Err(bad(format!("messages[{i}] has unknown role {other:?}"))),
        }
    }
    if contents.is_empty() {
        return Err(bad(
            "at least one user or assistant message with content is required",
        ));
    }

    let mut req = Map::new();
    req.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        req.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    tools(body, &mut req)?;
    let config = generation_config(body)?;
    if !config.is_empty() {
        req.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(req))
}

/// Appends a turn, merging it into the previous one of the same role: Gemini expects
/// turns to alternate, and parallel tool results must share one user turn.
fn push(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut() {
        if last["role"] == role {
            if let Some(have) = last["parts"].as_array_mut() {
                have.extend(parts);
                return;
            }
        }
    }
    contents.push(json!({"role": role, "parts": parts}));
}

fn text(t: &str) -> Option<Value> {
    // Gemini refuses empty text parts.
    (!t.is_empty()).then(|| json!({ "text": t }))
}

/// System and developer messages: text only.
fn text_only(content: &Value, i: usize) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text(s).into_iter().collect()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.extend(text(part_text(p, i, j)?)),
                    _ => {
                        return Err(bad(format!(
                            "messages[{i}].content[{j}]: system messages may only contain text"
                        )))
                    }
                }
            }
            Ok(out)
        }
        _ => Err(bad(format!(
            "messages[{i}].content must be a string or an array of parts"
        ))),
    }
}

fn part_text(p: &Value, i: usize, j: usize) -> Result<&str, ProviderError> {
    p.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("messages[{i}].content[{j}].text must be a string")))
}

fn user_parts(content: &Value, i: usize) -> Result<Vec<Value>, ProviderError> {
    let parts = match content {
        Value::Array(parts) => parts,
        _ => return text_only(content, i),
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" => out.extend(text(part_text(p, i, j)?)),
            "image_url" => {
                let url = match p.get("image_url") {
                    Some(Value::String(u)) => Some(u.as_str()),
                    Some(o) => o.get("url").and_then(Value::as_str),
                    None => None,
                }
                .ok_or_else(|| {
                    bad(format!(
                        "messages[{i}].content[{j}].image_url.url is required"
                    ))
                })?;
                out.push(media(url, i, j)?);
            }
            "input_audio" => {
                let audio = p.get("input_audio");
                let data = audio
                    .and_then(|a| a.get("data"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad(format!(
                            "messages[{i}].content[{j}].input_audio.data is required"
                        ))
                    })?;
                let format = audio
                    .and_then(|a| a.get("format"))
                    .and_then(Value::as_str)
                    .unwrap_or("wav");
                out.push(
                    json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
                );
            }
            "file" => {
                let file = p.get("file");
                let data = file
                    .and_then(|f| f.get("file_data"))
                    .and_then(Value::as_str);
                let id = file.and_then(|f| f.get("file_id")).and_then(Value::as_str);
                match (data, id) {
                    (Some(d), _) => out.push(media(d, i, j)?),
                    (None, Some(id)) if id.starts_with("https://") => {
                        out.push(
                            json!({"fileData": {"mimeType": "application/pdf", "fileUri": id}}),
                        );
                    }
                    _ => {
                        return Err(bad(format!(
                            "messages[{i}].content[{j}]: a file part needs file_data (a data: URL) \
                             or a Gemini file URI as file_id"
                        )))
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}].content[{j}] has unsupported type {other:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// A `data:` URL inline, an `http(s)` URL by reference.
fn media(url: &str, i: usize, j: usize) -> Result<Value, ProviderError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad(format!("messages[{i}].content[{j}]: malformed data: URL")))?;
        let mime = meta.strip_suffix(";base64").ok_or_else(|| {
            bad(format!(
                "messages[{i}].content[{j}]: data: URLs must be base64-encoded"
            ))
        })?;
        let mime = if mime.is_empty() { "image/jpeg" } else { mime };
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({"fileData": {"mimeType": mime_from_url(&lower), "fileUri": url}}));
    }
    Err(bad(format!(
        "messages[{i}].content[{j}]: media must be a data: URL or an http(s) URL"
    )))
}

/// Gemini needs a MIME type for referenced files; the extension is all there is.
fn mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => "image/jpeg",
    }
}

fn assistant_parts(m: &Value, i: usize) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::new();
    match m.get("content").unwrap_or(&Value::Null) {
        Value::Array(parts) => {
            for (j, p) in parts.iter().enumerate() {
                let t = match p.get("type").and_then(Value::as_str) {
                    Some("text") => part_text(p, i, j)?,
                    Some("refusal") => p.get("refusal").and_then(Value::as_str).unwrap_or(""),
                    _ => {
                        return Err(bad(format!(
                            "messages[{i}].content[{j}]: assistant messages may only contain text"
                        )))
                    }
                };
                out.extend(text(t));
            }
        }
        other => out.extend(text_only(other, i)?),
    }

    let mut calls: Vec<&Value> = Vec::new();
    match m.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tc)) => calls.extend(tc),
        Some(_) => return Err(bad(format!("messages[{i}].tool_calls must be an array"))),
    }
    let legacy = m.get("function_call").filter(|f| f.is_object());
    for (k, call) in calls.iter().enumerate() {
        let f = call.get("function").unwrap_or(&Value::Null);
        let signature = call
            .pointer("/extra_content/google/thought_signature")
            .and_then(Value::as_str);
        out.push(function_call(
            f,
            signature,
            k == 0,
            &format!("messages[{i}].tool_calls[{k}]"),
        )?);
    }
    if let Some(f) = legacy {
        out.push(function_call(
            f,
            None,
            calls.is_empty(),
            &format!("messages[{i}].function_call"),
        )?);
    }
    Ok(out)
}

fn function_call(
    f: &Value,
    signature: Option<&str>,
    first: bool,
    at: &str,
) -> Result<Value, ProviderError> {
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad(format!("{at}.function.name is required")))?;
    let args = match f.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| bad(format!("{at}.function.arguments is not valid JSON: {e}")))?,
        Some(other) => other.clone(),
    };
    if !args.is_object() {
        return Err(bad(format!(
            "{at}.function.arguments must be a JSON object"
        )));
    }
    let mut part = json!({"functionCall": {"name": name, "args": args}});
    // Gemini wants the signature on the first call of a turn (parallel calls share it).
    match signature {
        Some(sig) => part["thoughtSignature"] = json!(sig),
        None if first => part["thoughtSignature"] = json!(SKIP_SIGNATURE),
        None => {}
    }
    Ok(part)
}

/// A `tool` message as a `functionResponse`. Gemini matches results to calls by function
/// name, which OpenAI tool messages do not carry: it is looked up from the nearest
/// earlier assistant message that made the call.
fn tool_result(messages: &[Value], i: usize) -> Result<Value, ProviderError> {
    let m = &messages[i];
    let name = match m.get("tool_call_id").and_then(Value::as_str) {
        Some(id) => messages[..i]
            .iter()
            .rev()
            .filter(|p| p.get("role").and_then(Value::as_str) == Some("assistant"))
            .filter_map(|p| p.get("tool_calls").and_then(Value::as_array))
            .flatten()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
            .and_then(|c| c.pointer("/function/name"))
            .and_then(Value::as_str)
            .or_else(|| m.get("name").and_then(Value::as_str))
            .ok_or_else(|| {
                bad(format!(
                    "messages[{i}]: no earlier assistant message has a tool call with id {id:?}"
                ))
            })?,
        None => m
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages[{i}].tool_call_id is required")))?,
    };
    let raw = match m.get("content").unwrap_or(&Value::Null) {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let content = serde_json::from_str::<Value>(&raw).unwrap_or(Value::String(raw));
    Ok(json!({"functionResponse": {"name": name, "response": {"content": content}}}))
}

/// `tools` and `tool_choice` as `tools[].functionDeclarations` and `toolConfig`.
fn tools(body: &Value, req: &mut Map<String, Value>) -> Result<(), ProviderError> {
    let list = match body.get("tools") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(t)) => t,
        Some(_) => return Err(bad("'tools' must be an array")),
    };
    let mut decls: Vec<Value> = Vec::new();
    for (k, tool) in list.iter().enumerate() {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            return Err(bad(format!(
                "tools[{k}]: tool type {kind:?} is not supported by Gemini"
            )));
        }
        let f = tool
            .get("function")
            .ok_or_else(|| bad(format!("tools[{k}].function is required")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad(format!("tools[{k}].function.name is required")))?;
        let mut d = json!({ "name": name });
        if let Some(desc) = f.get("description").and_then(Value::as_str) {
            d["description"] = json!(desc);
        }
        if let Some(p) = f.get("parameters").and_then(schema::parameters) {
            d["parameters"] = p;
        }
        decls.push(d);
    }
    if decls.is_empty() {
        return Ok(());
    }

    let declared = |n: &str| decls.iter().any(|d| d["name"] == n);
    let (mode, names, only): (&str, Vec<String>, Option<Vec<String>>) =
        match body.get("tool_choice") {
            None | Some(Value::Null) => ("", Vec::new(), None),
            Some(Value::String(s)) => match s.as_str() {
                "auto" => ("AUTO", Vec::new(), None),
                "none" => ("NONE", Vec::new(), None),
                "required" => ("ANY", Vec::new(), None),
                other => return Err(bad(format!("unknown tool_choice {other:?}"))),
            },
            Some(choice) => match choice.get("type").and_then(Value::as_str) {
                Some("function") => {
                    let name = choice
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("tool_choice.function.name is required"))?;
                    ("ANY", vec![name.to_string()], None)
                }
                Some("allowed_tools") => {
                    let allowed: Vec<String> = choice
                        .pointer("/allowed_tools/tools")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect();
                    match choice
                        .pointer("/allowed_tools/mode")
                        .and_then(Value::as_str)
                    {
                        Some("required") => ("ANY", allowed, None),
                        // Gemini restricts names only in ANY mode; in AUTO mode the other
                        // declarations are withheld instead.
                        _ => ("AUTO", Vec::new(), Some(allowed)),
                    }
                }
                _ => {
                    return Err(bad(
                        "tool_choice must be \"auto\", \"none\", \"required\" or a function",
                    ))
                }
            },
        };
    for n in names.iter().chain(only.iter().flatten()) {
        if !declared(n) {
            return Err(bad(format!(
                "tool_choice names function {n:?}, which is not in 'tools'"
            )));
        }
    }
    if let Some(only) = only {
        decls.retain(|d| only.iter().any(|n| d["name"] == n.as_str()));
    }
    req.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    if !mode.is_empty() {
        let mut fcc = json!({ "mode": mode });
        if !names.is_empty() {
            fcc["allowedFunctionNames"] = json!(names);
        }
        req.insert("toolConfig".into(), json!({ "functionCallingConfig": fcc }));
    }
    Ok(())
}

fn number(body: &Value, field: &str) -> Result<Option<Value>, ProviderError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
        Some(_) => Err(bad(format!("'{field}' must be a number"))),
    }
}

fn count(body: &Value, field: &str) -> Result<Option<u64>, ProviderError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("'{field}' must be a non-negative integer"))),
    }
}

fn generation_config(body: &Value) -> Result<Map<String, Value>, ProviderError> {
    let mut gc = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = number(body, from)? {
            gc.insert(to.into(), v);
        }
    }
    let max = match count(body, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => count(body, "max_tokens")?,
    };
    for (to, v) in [
        ("maxOutputTokens", max),
        ("candidateCount", count(body, "n")?),
        ("seed", count(body, "seed")?),
        // Not OpenAI's, but common in clients that also speak to Gemini.
        ("topK", count(body, "top_k")?),
    ] {
        if let Some(v) = v {
            gc.insert(to.into(), json!(v));
        }
    }
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            gc.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if !a.is_empty() {
                gc.insert("stopSequences".into(), json!(a));
            }
        }
        Some(_) => return Err(bad("'stop' must be a string or an array of strings")),
    }
    match body.get("response_format") {
        None | Some(Value::Null) => {}
        Some(rf) => match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                gc.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                gc.insert("responseMimeType".into(), json!("application/json"));
                if let Some(s) = rf.pointer("/json_schema/schema") {
                    gc.insert("responseSchema".into(), schema::to_gemini(s));
                }
            }
            _ => {
                return Err(bad(
                    "response_format.type must be \"text\", \"json_object\" or \"json_schema\"",
                ))
            }
        },
    }
    // The budgets Google's own OpenAI-compatible endpoint uses for each effort.
    match body.get("reasoning_effort") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let budget = match v.as_str() {
                Some("none") => 0,
                Some("minimal" | "low") => 1024,
                Some("medium") => 8192,
                Some("high") => 24576,
                _ => {
                    return Err(bad(
                        "reasoning_effort must be \"none\", \"minimal\", \"low\", \"medium\" or \"high\"",
                    ))
                }
            };
            gc.insert("thinkingConfig".into(), json!({ "thinkingBudget": budget }));
        }
    }
    Ok(gc)
}
