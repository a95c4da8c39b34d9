//! An OpenAI chat request translated to a Gemini `GenerateContentRequest`.
//!
//! Gemini has two roles (`user`, `model`), keeps the system prompt apart
//! (`systemInstruction`), and carries tool results as `functionResponse` parts of a user
//! turn that name the function rather than the call. Everything the upstream would refuse
//! for a reason the client can fix is refused here with a message saying which message
//! or field is wrong.

use crate::schema;
use plugin_api::openai::{self, params, FunctionCall, ToolChoice};
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
    let messages = plugin_api::openai::chat_messages(body).map_err(bad)?;

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
                let at = format!("messages[{i}].content[{j}].input_audio.data");
                let data = audio
                    .and_then(|a| a.get("data"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{at} is required (base64-encoded audio)")))?;
                openai::check_base64(data)
                    .map_err(|e| bad(format!("{at} is not valid base64: {e}")))?;
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
    if openai::is_data_url(url) {
        let d =
            openai::data_url(url).map_err(|e| bad(format!("messages[{i}].content[{j}]: {e}")))?;
        let mime = if d.mime.is_empty() {
            "image/jpeg"
        } else {
            &d.mime
        };
        return Ok(json!({"inlineData": {"mimeType": mime, "data": d.data}}));
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

    let calls = openai::tool_calls(m.get("tool_calls"), &format!("messages[{i}]")).map_err(bad)?;
    let legacy = match m.get("function_call") {
        None | Some(Value::Null) => None,
        Some(f) => {
            Some(openai::function_call(f, &format!("messages[{i}].function_call")).map_err(bad)?)
        }
    };
    let first_legacy = calls.is_empty();
    for (k, call) in calls.into_iter().enumerate() {
        let signature = call
            .raw
            .pointer("/extra_content/google/thought_signature")
            .and_then(Value::as_str);
        out.push(function_call(call.function, signature, k == 0));
    }
    if let Some(f) = legacy {
        out.push(function_call(f, None, first_legacy));
    }
    Ok(out)
}

fn function_call(f: FunctionCall<'_>, signature: Option<&str>, first: bool) -> Value {
    let mut part = json!({"functionCall": {"name": f.name, "args": f.arguments}});
    // Gemini wants the signature on the first call of a turn (parallel calls share it).
    match signature {
        Some(sig) => part["thoughtSignature"] = json!(sig),
        None if first => part["thoughtSignature"] = json!(SKIP_SIGNATURE),
        None => {}
    }
    part
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
    let mut declared = openai::function_tools(body.get("tools")).map_err(bad)?;
    let choice = openai::tool_choice(body.get("tool_choice"), &declared).map_err(bad)?;
    if declared.is_empty() {
        return Ok(());
    }
    let (mode, names): (&str, Vec<&str>) = match choice {
        None => ("", Vec::new()),
        Some(ToolChoice::Auto) => ("AUTO", Vec::new()),
        Some(ToolChoice::None) => ("NONE", Vec::new()),
        Some(ToolChoice::Required) => ("ANY", Vec::new()),
        Some(ToolChoice::Function(name)) => ("ANY", vec![name]),
        Some(ToolChoice::AllowedTools {
            required: true,
            names,
        }) => ("ANY", names),
        // Gemini restricts names only in ANY mode; in AUTO mode the other declarations
        // are withheld instead.
        Some(ToolChoice::AllowedTools {
            required: false,
            names,
        }) => {
            declared.retain(|t| names.contains(&t.name));
            ("AUTO", Vec::new())
        }
    };
    if declared.is_empty() {
        // An empty allow-list: no function may be called, so none is declared.
        return Ok(());
    }
    let decls: Vec<Value> = declared
        .iter()
        .map(|t| {
            let mut d = json!({ "name": t.name });
            if let Some(desc) = t.description {
                d["description"] = json!(desc);
            }
            if let Some(p) = t.parameters.and_then(schema::parameters) {
                d["parameters"] = p;
            }
            d
        })
        .collect();
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

fn generation_config(body: &Value) -> Result<Map<String, Value>, ProviderError> {
    let mut gc = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = params::number(body, from).map_err(bad)? {
            gc.insert(to.into(), json!(v));
        }
    }
    for (to, v) in [
        ("maxOutputTokens", params::max_tokens(body)),
        ("candidateCount", params::count(body, "n")),
        ("seed", params::count(body, "seed")),
        // Not OpenAI's, but common in clients that also speak to Gemini.
        ("topK", params::count(body, "top_k")),
    ] {
        if let Some(v) = v.map_err(bad)? {
            gc.insert(to.into(), json!(v));
        }
    }
    let stops = params::stop(body).map_err(bad)?;
    if !stops.is_empty() {
        gc.insert("stopSequences".into(), json!(stops));
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
    const EFFORTS: [&str; 5] = ["none", "minimal", "low", "medium", "high"];
    if let Some(effort) = params::one_of(body, "reasoning_effort", &EFFORTS).map_err(bad)? {
        let budget = match effort {
            "none" => 0,
            "minimal" | "low" => 1024,
            "medium" => 8192,
            _ => 24576,
        };
        gc.insert("thinkingConfig".into(), json!({ "thinkingBudget": budget }));
    }
    Ok(gc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(parts: Value) -> Value {
        json!({"messages": [{"role": "user", "content": parts}]})
    }

    #[test]
    fn inline_media_must_be_base64() {
        let e = chat(&user(json!([
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR w0K"}}
        ])))
        .unwrap_err();
        assert!(
            e.message
                .starts_with("messages[0].content[0]: the data URL payload is not valid base64"),
            "{}",
            e.message
        );
        let e = chat(&user(json!([
            {"type": "input_audio", "input_audio": {"data": "UklGRg==?", "format": "wav"}}
        ])))
        .unwrap_err();
        assert!(
            e.message
                .starts_with("messages[0].content[0].input_audio.data is not valid base64"),
            "{}",
            e.message
        );
        // Parameters before `;base64` are dropped from the MIME type Gemini sees.
        let v = chat(&user(json!([
            {"type": "file", "file": {"file_data": "data:application/pdf;name=a.pdf;base64,JVBERi0x"}}
        ])))
        .unwrap();
        assert_eq!(
            v["contents"][0]["parts"][0]["inlineData"]["mimeType"],
            "application/pdf"
        );
    }

    #[test]
    fn tools_are_checked_by_the_shared_reader() {
        let mut body = user(json!("x"));
        body["tools"] = json!([{"type": "function", "function": {"name": "f"}},
                               {"type": "function", "function": {"name": "f"}}]);
        let e = chat(&body).unwrap_err();
        assert!(
            e.message
                .contains("tools[1].function.name: \"f\" is declared twice"),
            "{}",
            e.message
        );

        body["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        body["tool_choice"] =
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}});
        let v = chat(&body).unwrap();
        assert!(
            v.get("tools").is_none() && v.get("toolConfig").is_none(),
            "{v}"
        );

        body["tool_choice"] = Value::Null;
        body["messages"] = json!([{"role": "user", "content": "x"},
            {"role": "assistant", "function_call": "lookup"}]);
        let e = chat(&body).unwrap_err();
        assert!(
            e.message
                .starts_with("messages[1].function_call must be an object"),
            "{}",
            e.message
        );
    }
}
