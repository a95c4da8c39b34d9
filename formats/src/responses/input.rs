//! The request side: a Responses body checked and made into chat messages and params.

use crate::Invalid;
use serde_json::{json, Map, Value};

type Obj = Map<String, Value>;

/// The chat side of a Responses body.
#[derive(Debug, Clone, Default)]
pub(super) struct Translated {
    pub(super) instructions: Option<String>,
    /// `input` as chat messages (without instructions, which are not stored).
    pub(super) messages: Vec<Value>,
    /// Chat body fields other than `model`, `messages` and `stream`.
    pub(super) params: Obj,
}

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A field's value; JSON `null` counts as absent, as OpenAI treats it.
fn field<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(super) fn opt_str<'a>(obj: &'a Obj, path: &str, key: &str) -> Result<Option<&'a str>, Invalid> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Invalid::new(at(path, key), "must be a string")),
    }
}

pub(super) fn req_str<'a>(
    obj: &'a Obj,
    path: &str,
    key: &str,
    what: &str,
) -> Result<&'a str, Invalid> {
    opt_str(obj, path, key)?
        .ok_or_else(|| Invalid::new(at(path, key), format!("required: send {what}")))
}

pub(super) fn opt_bool(obj: &Obj, path: &str, key: &str) -> Result<Option<bool>, Invalid> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Invalid::new(at(path, key), "must be true or false")),
    }
}

fn opt_number<'a>(obj: &'a Obj, key: &str) -> Result<Option<&'a Value>, Invalid> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) if v.is_number() => Ok(Some(v)),
        Some(_) => Err(Invalid::new(key, "must be a number")),
    }
}

fn opt_object<'a>(obj: &'a Obj, path: &str, key: &str) -> Result<Option<&'a Obj>, Invalid> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(Invalid::new(at(path, key), "must be an object")),
    }
}

/// Checks the whole body and translates it; every client error is found here.
pub(super) fn translate(body: &Obj) -> Result<Translated, Invalid> {
    refuse_unsupported(body)?;
    let instructions = opt_str(body, "", "instructions")?.map(String::from);
    let messages = match body.get("input") {
        None | Some(Value::Null) => {
            return Err(Invalid::new(
                "input",
                "required: send a string or an array of input items",
            ))
        }
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(items)) => items_to_messages(items)?,
        Some(_) => {
            return Err(Invalid::new(
                "input",
                "must be a string or an array of input items",
            ))
        }
    };
    let mut params = Obj::new();
    let tools = tools(body)?;
    let has_tools = !tools.is_empty();
    if has_tools {
        params.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice(body)? {
        params.insert("tool_choice".into(), choice);
    }
    if let Some(format) = response_format(body)? {
        params.insert("response_format".into(), format);
    }
    if let Some(reasoning) = opt_object(body, "", "reasoning")? {
        if let Some(effort) = opt_str(reasoning, "reasoning", "effort")? {
            params.insert("reasoning_effort".into(), Value::String(effort.into()));
        }
        opt_str(reasoning, "reasoning", "summary")?;
    }
    match field(body, "max_output_tokens") {
        None => {}
        Some(v) if v.as_u64().is_some() => {
            params.insert("max_tokens".into(), v.clone());
        }
        Some(_) => {
            return Err(Invalid::new(
                "max_output_tokens",
                "must be a non-negative integer",
            ))
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = opt_number(body, key)? {
            params.insert(key.into(), v.clone());
        }
    }
    if let Some(parallel) = opt_bool(body, "", "parallel_tool_calls")? {
        // Chat refuses parallel_tool_calls without tools.
        if has_tools {
            params.insert("parallel_tool_calls".into(), Value::Bool(parallel));
        }
    }
    if let Some(user) = opt_str(body, "", "user")? {
        params.insert("user".into(), Value::String(user.into()));
    }
    opt_object(body, "", "metadata")?;
    Ok(Translated {
        instructions,
        messages,
        params,
    })
}

/// Fields whose meaning a chat provider cannot give: refused rather than ignored.
fn refuse_unsupported(body: &Obj) -> Result<(), Invalid> {
    if opt_bool(body, "", "background")? == Some(true) {
        return Err(Invalid::new(
            "background",
            "background responses cannot be used through this provider; leave background out",
        ));
    }
    for key in ["conversation", "prompt"] {
        if field(body, key).is_some() {
            return Err(Invalid::new(
                key,
                format!(
                    "{key} cannot be used through this provider; send the input itself \
                     (and previous_response_id for earlier turns)"
                ),
            ));
        }
    }
    Ok(())
}

fn items_to_messages(items: &[Value]) -> Result<Vec<Value>, Invalid> {
    let mut out: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        let Value::Object(item) = item else {
            return Err(Invalid::new(path, "each input item must be an object"));
        };
        let kind = match item.get("type") {
            None | Some(Value::Null) => "message",
            Some(Value::String(t)) => t.as_str(),
            Some(_) => return Err(Invalid::new(at(&path, "type"), "must be a string")),
        };
        match kind {
            "message" => out.push(message(item, &path)?),
            "function_call" => {
                let call_id = req_str(item, &path, "call_id", "the call id as a string")?;
                let name = req_str(item, &path, "name", "the function name as a string")?;
                let arguments =
                    req_str(item, &path, "arguments", "the arguments as a JSON string")?;
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                });
                push_tool_call(&mut out, call);
            }
            "function_call_output" => {
                let call_id = req_str(item, &path, "call_id", "the call id as a string")?;
                let content = call_output(item, &path)?;
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            }
            // Reasoning a provider produced cannot be replayed to another.
            "reasoning" => {}
            other => {
                return Err(Invalid::new(
                    at(&path, "type"),
                    format!(
                        "input items of type '{other}' cannot be used through this provider; \
                         send message, function_call and function_call_output items"
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// A function call joins the assistant message right before it (text or other calls),
/// as chat puts an assistant turn's calls in one message.
fn push_tool_call(out: &mut Vec<Value>, call: Value) {
    if let Some(Value::Object(last)) = out.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some("assistant") {
            match last.get_mut("tool_calls") {
                Some(Value::Array(calls)) => calls.push(call),
                _ => {
                    last.insert("tool_calls".into(), Value::Array(vec![call]));
                }
            }
            return;
        }
    }
    out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
}

fn call_output(item: &Obj, path: &str) -> Result<String, Invalid> {
    match item.get("output") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (k, part) in parts.iter().enumerate() {
                let part_path = format!("{path}.output[{k}]");
                let Value::Object(part) = part else {
                    return Err(Invalid::new(
                        part_path,
                        "each output part must be an object",
                    ));
                };
                if part.get("type").and_then(Value::as_str) != Some("input_text") {
                    return Err(Invalid::new(
                        at(&part_path, "type"),
                        "only input_text parts can be sent as function call output through \
                         this provider",
                    ));
                }
                text.push_str(req_str(part, &part_path, "text", "the text as a string")?);
            }
            Ok(text)
        }
        _ => Err(Invalid::new(
            at(path, "output"),
            "required: send the output as a string or an array of input_text parts",
        )),
    }
}

/// One part of a message's content, read.
enum Part {
    Text(String),
    Image(Value),
}

fn message(item: &Obj, path: &str) -> Result<Value, Invalid> {
    let role = req_str(
        item,
        path,
        "role",
        "one of user, assistant, system, developer",
    )?;
    let role = match role {
        "user" | "assistant" | "system" => role,
        "developer" => "system",
        _ => {
            return Err(Invalid::new(
                at(path, "role"),
                "must be one of user, assistant, system, developer",
            ))
        }
    };
    let parts = match item.get("content") {
        Some(Value::String(s)) => return Ok(json!({"role": role, "content": s})),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(Invalid::new(
                at(path, "content"),
                "required: send a string or an array of content parts",
            ))
        }
    };
    let mut read = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let part_path = format!("{path}.content[{j}]");
        let part = content_part(part, &part_path)?;
        if matches!(part, Part::Image(_)) && role != "user" {
            return Err(Invalid::new(
                at(&part_path, "type"),
                "images can only be sent in user messages",
            ));
        }
        read.push(part);
    }
    let content = match read.as_slice() {
        [Part::Text(t)] => Value::String(t.clone()),
        _ if role == "user" => Value::Array(
            read.into_iter()
                .map(|p| match p {
                    Part::Text(t) => json!({"type": "text", "text": t}),
                    Part::Image(image_url) => json!({"type": "image_url", "image_url": image_url}),
                })
                .collect(),
        ),
        // Assistant and system content as plain text: what every chat provider takes.
        _ => Value::String(
            read.into_iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t),
                    Part::Image(_) => None,
                })
                .collect(),
        ),
    };
    Ok(json!({"role": role, "content": content}))
}

fn content_part(part: &Value, path: &str) -> Result<Part, Invalid> {
    let Value::Object(part) = part else {
        return Err(Invalid::new(path, "each content part must be an object"));
    };
    let kind = req_str(part, path, "type", "the part type as a string")?;
    match kind {
        "input_text" | "output_text" => Ok(Part::Text(
            req_str(part, path, "text", "the text as a string")?.to_string(),
        )),
        "refusal" => Ok(Part::Text(
            req_str(part, path, "refusal", "the refusal text as a string")?.to_string(),
        )),
        "input_image" => {
            let Some(url) = opt_str(part, path, "image_url")? else {
                let (key, message) = if field(part, "file_id").is_some() {
                    (
                        "file_id",
                        "uploaded image files cannot be used through this provider; send \
                         image_url with a URL or a data URL",
                    )
                } else {
                    (
                        "image_url",
                        "required: send the image as a URL or a data URL",
                    )
                };
                return Err(Invalid::new(at(path, key), message));
            };
            let mut image = json!({"url": url});
            if let Some(detail) = opt_str(part, path, "detail")? {
                image["detail"] = Value::String(detail.into());
            }
            Ok(Part::Image(image))
        }
        "input_file" => Err(Invalid::new(
            at(path, "type"),
            "file inputs cannot be used through this provider",
        )),
        _ => Err(Invalid::new(
            at(path, "type"),
            "content parts must be input_text, input_image, output_text or refusal",
        )),
    }
}

fn tools(body: &Obj) -> Result<Vec<Value>, Invalid> {
    let tools = match field(body, "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(Invalid::new("tools", "must be an array of tools")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        let Value::Object(tool) = tool else {
            return Err(Invalid::new(path, "each tool must be an object"));
        };
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(Invalid::new(
                at(&path, "type"),
                "only function tools can be used through this provider",
            ));
        }
        let name = req_str(tool, &path, "name", "the function name as a string")?;
        if name.is_empty() {
            return Err(Invalid::new(at(&path, "name"), "must not be empty"));
        }
        let mut function = Obj::new();
        function.insert("name".into(), Value::String(name.into()));
        if let Some(d) = opt_str(tool, &path, "description")? {
            function.insert("description".into(), Value::String(d.into()));
        }
        if let Some(p) = opt_object(tool, &path, "parameters")? {
            function.insert("parameters".into(), Value::Object(p.clone()));
        }
        if let Some(s) = opt_bool(tool, &path, "strict")? {
            function.insert("strict".into(), Value::Bool(s));
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

fn tool_choice(body: &Obj) -> Result<Option<Value>, Invalid> {
    match field(body, "tool_choice") {
        None => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(Value::String(s.clone())))
        }
        Some(Value::Object(choice)) => {
            if choice.get("type").and_then(Value::as_str) != Some("function") {
                return Err(Invalid::new(
                    "tool_choice.type",
                    "only auto, none, required or a function can be chosen through this provider",
                ));
            }
            let name = req_str(
                choice,
                "tool_choice",
                "name",
                "the function name as a string",
            )?;
            Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            ))
        }
        Some(_) => Err(Invalid::new(
            "tool_choice",
            "must be auto, none, required or {\"type\": \"function\", \"name\": ...}",
        )),
    }
}

fn response_format(body: &Obj) -> Result<Option<Value>, Invalid> {
    let Some(text) = opt_object(body, "", "text")? else {
        return Ok(None);
    };
    let Some(format) = opt_object(text, "text", "format")? else {
        return Ok(None);
    };
    let path = "text.format";
    match req_str(format, path, "type", "text, json_object or json_schema")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "json_object"}))),
        "json_schema" => {
            let name = req_str(format, path, "name", "the schema name as a string")?;
            let schema = opt_object(format, path, "schema")?.ok_or_else(|| {
                Invalid::new(
                    "text.format.schema",
                    "required: send the JSON schema object",
                )
            })?;
            let mut spec = Obj::new();
            spec.insert("name".into(), Value::String(name.into()));
            spec.insert("schema".into(), Value::Object(schema.clone()));
            if let Some(strict) = opt_bool(format, path, "strict")? {
                spec.insert("strict".into(), Value::Bool(strict));
            }
            if let Some(d) = opt_str(format, path, "description")? {
                spec.insert("description".into(), Value::String(d.into()));
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": spec})))
        }
        _ => Err(Invalid::new(
            "text.format.type",
            "must be text, json_object or json_schema",
        )),
    }
}
