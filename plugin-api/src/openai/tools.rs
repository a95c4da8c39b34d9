//! Function tools as an OpenAI chat request declares (`tools`, `tool_choice`) and replays
//! them (`messages[].tool_calls`), read into types with every mistake reported by its
//! JSON path. Each plugin then shapes these for its upstream.

use super::{shown, shown_str};
use serde_json::{Map, Value};

/// Longest function name accepted; OpenAI's limit, which clients already keep to.
pub const MAX_NAME_LEN: usize = 64;

/// One `tools[]` entry of type `function`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTool<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    /// The JSON Schema of the arguments, an object; `None` when the tool takes none.
    pub parameters: Option<&'a Value>,
    /// The entry as sent, for provider extensions such as Anthropic's `cache_control`.
    pub raw: &'a Value,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    /// `"auto"`: the model decides.
    Auto,
    /// `"none"`: no tool calls.
    None,
    /// `"required"`: at least one tool call.
    Required,
    /// `{"type":"function","function":{"name":...}}`: this function must be called.
    Function(&'a str),
    /// `{"type":"allowed_tools","allowed_tools":{"mode":...,"tools":[...]}}`: only these
    /// functions may be called; `required` when the mode is `"required"`.
    AllowedTools { required: bool, names: Vec<&'a str> },
}

/// The function half of a tool call (or of a legacy `function_call`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall<'a> {
    pub name: &'a str,
    /// The arguments, decoded from the JSON string OpenAI carries them in.
    pub arguments: Map<String, Value>,
}

/// One `messages[].tool_calls[]` entry of an assistant message.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall<'a> {
    /// `None` when absent or empty; providers that match results by id require it.
    pub id: Option<&'a str>,
    pub function: FunctionCall<'a>,
    /// The entry as sent, for provider extensions such as Gemini's `extra_content`.
    pub raw: &'a Value,
}

/// A function name: 1 to [`MAX_NAME_LEN`] letters, digits, `_`, `-`, `.` or `:` (the
/// characters the upstreams accept between them).
fn check_name(name: Option<&Value>, at: &str) -> Result<(), String> {
    let name = match name {
        Some(Value::String(s)) if !s.is_empty() => s,
        None | Some(Value::Null) => return Err(format!("{at} is required")),
        Some(v) => return Err(format!("{at} must be a non-empty string, got {}", shown(v))),
    };
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if !chars_ok || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{at}: {} is not a valid function name; use at most {MAX_NAME_LEN} letters, digits, '_', '-', '.' or ':'",
            shown_str(name)
        ));
    }
    Ok(())
}

fn name_at<'a>(obj: &'a Value, at: &str) -> Result<&'a str, String> {
    let name = obj.get("name");
    check_name(name, at)?;
    Ok(name.and_then(Value::as_str).unwrap_or_default())
}

/// An object field that is absent, null or a string.
fn opt_str<'a>(obj: &'a Value, key: &str, at: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("{at}.{key} must be a string, got {}", shown(v))),
    }
}

/// `tools`: the function tools declared, in order. Absent or null is no tools. Refuses
/// other tool types (built-in tools are provider-specific), missing or invalid names,
/// names declared twice, and `parameters` that are not a JSON Schema object.
pub fn function_tools(tools: Option<&Value>) -> Result<Vec<FunctionTool<'_>>, String> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(v) => {
            return Err(format!(
                "'tools' must be an array of {{\"type\":\"function\",\"function\":{{...}}}} objects, got {}",
                shown(v)
            ))
        }
    };
    let mut out: Vec<FunctionTool<'_>> = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        if !tool.is_object() {
            return Err(format!("{at} must be an object, got {}", shown(tool)));
        }
        match opt_str(tool, "type", &at)? {
            None | Some("function") => {}
            Some(other) => {
                return Err(format!(
                    "{at}.type {} is not supported; only \"function\" tools can be sent to this provider",
                    shown_str(other)
                ))
            }
        }
        let f = match tool.get("function") {
            Some(f @ Value::Object(_)) => f,
            None | Some(Value::Null) => {
                return Err(format!(
                    "{at}.function is required: {{\"name\": ..., \"description\": ..., \"parameters\": {{...}}}}"
                ))
            }
            Some(v) => return Err(format!("{at}.function must be an object, got {}", shown(v))),
        };
        let name = name_at(f, &format!("{at}.function.name"))?;
        if let Some(k) = out.iter().position(|t| t.name == name) {
            return Err(format!(
                "{at}.function.name: {} is declared twice (also tools[{k}]); function names must be unique",
                shown_str(name)
            ));
        }
        let description = opt_str(f, "description", &format!("{at}.function"))?;
        let parameters = match f.get("parameters") {
            None | Some(Value::Null) => None,
            Some(p @ Value::Object(_)) => Some(p),
            Some(v) => {
                return Err(format!(
                    "{at}.function.parameters must be a JSON Schema object (e.g. {{\"type\":\"object\",\"properties\":{{...}}}}), got {}",
                    shown(v)
                ))
            }
        };
        out.push(FunctionTool {
            name,
            description,
            parameters,
            raw: tool,
        });
    }
    Ok(out)
}

const CHOICE_SHAPES: &str = "\"auto\", \"none\", \"required\", {\"type\":\"function\",\"function\":{\"name\":...}} or {\"type\":\"allowed_tools\",...}";

/// `tool_choice`; absent or null is `None`. Functions it names must be among `tools`
/// when any are declared; with no tools it is only checked (callers drop it, as
/// upstreams refuse a choice without tools).
pub fn tool_choice<'a>(
    choice: Option<&'a Value>,
    tools: &[FunctionTool<'_>],
) -> Result<Option<ToolChoice<'a>>, String> {
    let choice = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(c) => c,
    };
    let parsed = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => {
                return Err(format!(
                    "'tool_choice' must be {CHOICE_SHAPES}, got {}",
                    shown(choice)
                ))
            }
        },
        Value::Object(_) => match choice.get("type").and_then(Value::as_str) {
            Some("function") => {
                let f = choice.get("function").unwrap_or(&Value::Null);
                ToolChoice::Function(name_at(f, "tool_choice.function.name")?)
            }
            Some("allowed_tools") => allowed_tools(choice)?,
            _ => {
                return Err(format!(
                    "'tool_choice' must be {CHOICE_SHAPES}; tool_choice.type must be \"function\" or \"allowed_tools\""
                ))
            }
        },
        other => {
            return Err(format!(
                "'tool_choice' must be {CHOICE_SHAPES}, got {}",
                shown(other)
            ))
        }
    };
    if !tools.is_empty() {
        let named: Vec<(String, &str)> = match &parsed {
            ToolChoice::Function(n) => vec![("tool_choice.function.name".to_string(), *n)],
            ToolChoice::AllowedTools { names, .. } => names
                .iter()
                .enumerate()
                .map(|(k, n)| {
                    (
                        format!("tool_choice.allowed_tools.tools[{k}].function.name"),
                        *n,
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        for (at, n) in named {
            if !tools.iter().any(|t| t.name == n) {
                return Err(format!(
                    "{at}: {} is not one of the functions in 'tools'",
                    shown_str(n)
                ));
            }
        }
    }
    Ok(Some(parsed))
}

fn allowed_tools(choice: &Value) -> Result<ToolChoice<'_>, String> {
    const AT: &str = "tool_choice.allowed_tools";
    let spec = match choice.get("allowed_tools") {
        Some(s @ Value::Object(_)) => s,
        _ => {
            return Err(format!(
                "{AT} must be an object: {{\"mode\": \"auto\" or \"required\", \"tools\": [...]}}"
            ))
        }
    };
    let required = match opt_str(spec, "mode", AT)? {
        None | Some("auto") => false,
        Some("required") => true,
        Some(other) => {
            return Err(format!(
                "{AT}.mode must be \"auto\" or \"required\", got {}",
                shown_str(other)
            ))
        }
    };
    let list = match spec.get("tools") {
        Some(Value::Array(l)) => l,
        _ => {
            return Err(format!(
                "{AT}.tools must be an array of function references"
            ))
        }
    };
    let names = list
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let f = t.get("function").unwrap_or(&Value::Null);
            name_at(f, &format!("{AT}.tools[{k}].function.name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ToolChoice::AllowedTools { required, names })
}

/// The arguments of a function call, at JSON path `at`. OpenAI sends them as a string
/// holding a JSON object; an object itself (some clients) is taken too, and absent, null
/// or blank is no arguments.
pub fn tool_arguments(args: Option<&Value>, at: &str) -> Result<Map<String, Value>, String> {
    let parsed = match args {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(m)) => return Ok(m.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            format!("{at} is not valid JSON ({e}); it must be a string holding a JSON object")
        })?,
        Some(v) => {
            return Err(format!(
                "{at} must be a string holding a JSON object, got {}",
                shown(v)
            ))
        }
    };
    match parsed {
        Value::Object(m) => Ok(m),
        other => Err(format!(
            "{at} must hold a JSON object, got {}",
            shown(&other)
        )),
    }
}

/// A function call object (`{"name", "arguments"}`) at JSON path `at`.
pub fn function_call<'a>(f: &'a Value, at: &str) -> Result<FunctionCall<'a>, String> {
    if !f.is_object() {
        return Err(format!(
            "{at} must be an object with 'name' and 'arguments', got {}",
            shown(f)
        ));
    }
    Ok(FunctionCall {
        name: name_at(f, &format!("{at}.name"))?,
        arguments: tool_arguments(f.get("arguments"), &format!("{at}.arguments"))?,
    })
}

/// The `tool_calls` of the assistant message at JSON path `at` (`messages[3]`); absent
/// or null is none.
pub fn tool_calls<'a>(calls: Option<&'a Value>, at: &str) -> Result<Vec<ToolCall<'a>>, String> {
    let list = match calls {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(l)) => l,
        Some(v) => {
            return Err(format!(
                "{at}.tool_calls must be an array, got {}",
                shown(v)
            ))
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, call) in list.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        if !call.is_object() {
            return Err(format!("{at} must be an object, got {}", shown(call)));
        }
        match opt_str(call, "type", &at)? {
            None | Some("function") => {}
            Some(other) => {
                return Err(format!(
                    "{at}.type {} is not supported; only \"function\" tool calls are",
                    shown_str(other)
                ))
            }
        }
        let id = opt_str(call, "id", &at)?.filter(|s| !s.is_empty());
        let function = match call.get("function") {
            None | Some(Value::Null) => return Err(format!("{at}.function is required")),
            Some(f) => function_call(f, &format!("{at}.function"))?,
        };
        out.push(ToolCall {
            id,
            function,
            raw: call,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools_err(v: Value) -> String {
        function_tools(Some(&v)).unwrap_err()
    }

    #[test]
    fn reads_function_tools() {
        let v = json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather",
             "parameters": {"type": "object"}}, "cache_control": {"type": "ephemeral"}},
            {"function": {"name": "ns.tool:v2-x_y"}}
        ]);
        let t = function_tools(Some(&v)).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "get_weather");
        assert_eq!(t[0].description, Some("Weather"));
        assert_eq!(t[0].parameters, Some(&json!({"type": "object"})));
        assert_eq!(t[0].raw["cache_control"]["type"], "ephemeral");
        assert_eq!(
            (t[1].name, t[1].description, t[1].parameters),
            ("ns.tool:v2-x_y", None, None)
        );
        assert!(function_tools(None).unwrap().is_empty());
        assert!(function_tools(Some(&Value::Null)).unwrap().is_empty());
    }

    #[test]
    fn tool_mistakes_name_their_path() {
        for (v, words) in [
            (json!("f"), "'tools' must be an array"),
            (json!([7]), "tools[0] must be an object, got 7"),
            (
                json!([{"type": "code_interpreter"}]),
                "tools[0].type \"code_interpreter\" is not supported",
            ),
            (
                json!([{"type": 3, "function": {"name": "f"}}]),
                "tools[0].type must be a string",
            ),
            (
                json!([{"type": "function"}]),
                "tools[0].function is required",
            ),
            (
                json!([{"function": "f"}]),
                "tools[0].function must be an object",
            ),
            (
                json!([{"function": {}}]),
                "tools[0].function.name is required",
            ),
            (
                json!([{"function": {"name": ""}}]),
                "tools[0].function.name must be a non-empty string",
            ),
            (
                json!([{"function": {"name": ["f"]}}]),
                "tools[0].function.name must be a non-empty string, got an array",
            ),
            (
                json!([{"function": {"name": "get weather"}}]),
                "not a valid function name",
            ),
            (
                json!([{"function": {"name": "météo"}}]),
                "tools[0].function.name: \"météo\"",
            ),
            (
                json!([{"function": {"name": "f"}}, {"function": {"name": "g"}}, {"function": {"name": "f"}}]),
                "tools[2].function.name: \"f\" is declared twice (also tools[0])",
            ),
            (
                json!([{"function": {"name": "f", "description": 1}}]),
                "tools[0].function.description must be a string",
            ),
            (
                json!([{"function": {"name": "f", "parameters": "object"}}]),
                "tools[0].function.parameters must be a JSON Schema object",
            ),
            (
                json!([{"function": {"name": "f", "parameters": []}}]),
                "got an array",
            ),
        ] {
            let e = tools_err(v.clone());
            assert!(e.contains(words), "{v}: {e}");
        }
    }

    #[test]
    fn hostile_names_are_cut_short() {
        let long = "a".repeat(100_000);
        let e = tools_err(json!([{"function": {"name": long}}]));
        assert!(
            e.contains("not a valid function name") && e.len() < 300,
            "{}",
            e.len()
        );
        assert!(
            tools_err(json!([{"function": {"name": "a".repeat(MAX_NAME_LEN + 1)}}]))
                .contains("at most 64")
        );
        assert!(function_tools(Some(
            &json!([{"function": {"name": "a".repeat(MAX_NAME_LEN)}}])
        ))
        .is_ok());
        // Multibyte text is cut on a character boundary.
        let e = tools_err(json!([{"function": {"name": "é".repeat(1000)}}]));
        assert!(e.contains('…'), "{e}");
    }

    #[test]
    fn tool_choices() {
        let v = json!([{"function": {"name": "f"}}, {"function": {"name": "g"}}]);
        let tools = function_tools(Some(&v)).unwrap();
        let choice = |c: Value| tool_choice(Some(&c), &tools).map(|c| format!("{c:?}"));
        assert_eq!(choice(json!("auto")), Ok("Some(Auto)".into()));
        assert_eq!(choice(json!("none")), Ok("Some(None)".into()));
        assert_eq!(choice(json!("required")), Ok("Some(Required)".into()));
        assert_eq!(
            tool_choice(
                Some(&json!({"type": "function", "function": {"name": "g"}})),
                &tools
            ),
            Ok(Some(ToolChoice::Function("g")))
        );
        assert_eq!(
            tool_choice(
                Some(
                    &json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
                    "tools": [{"type": "function", "function": {"name": "f"}}]}})
                ),
                &tools
            ),
            Ok(Some(ToolChoice::AllowedTools {
                required: true,
                names: vec!["f"]
            }))
        );
        assert_eq!(tool_choice(None, &tools), Ok(None));
        assert_eq!(tool_choice(Some(&Value::Null), &tools), Ok(None));
        for (c, words) in [
            (json!("sometimes"), "got \"sometimes\""),
            (json!(3), "'tool_choice' must be"),
            (
                json!({"type": "function"}),
                "tool_choice.function.name is required",
            ),
            (json!({"type": "magic"}), "tool_choice.type must be"),
            (
                json!({"type": "function", "function": {"name": "launch"}}),
                "tool_choice.function.name: \"launch\" is not one of the functions in 'tools'",
            ),
            (
                json!({"type": "allowed_tools", "allowed_tools": {"mode": "often", "tools": []}}),
                "tool_choice.allowed_tools.mode must be",
            ),
            (
                json!({"type": "allowed_tools", "allowed_tools": {"tools": [{"function": {"name": "h"}}]}}),
                "tool_choice.allowed_tools.tools[0].function.name: \"h\" is not one of",
            ),
            (
                json!({"type": "allowed_tools"}),
                "tool_choice.allowed_tools must be an object",
            ),
        ] {
            let e = choice(c.clone()).unwrap_err();
            assert!(e.contains(words), "{c}: {e}");
        }
        // Without tools only the shape is checked.
        let c = json!({"type": "function", "function": {"name": "launch"}});
        assert_eq!(
            tool_choice(Some(&c), &[]),
            Ok(Some(ToolChoice::Function("launch")))
        );
    }

    #[test]
    fn arguments() {
        let at = "messages[1].tool_calls[0].function.arguments";
        let args = |v: Value| tool_arguments(Some(&v), at);
        assert_eq!(args(json!("{\"city\":\"Oslo\"}")).unwrap()["city"], "Oslo");
        assert_eq!(args(json!({"city": "Oslo"})).unwrap()["city"], "Oslo");
        assert!(args(json!("  ")).unwrap().is_empty());
        assert!(args(Value::Null).unwrap().is_empty());
        assert!(tool_arguments(None, at).unwrap().is_empty());
        for (v, words) in [
            (
                json!("{\"location\": \"Par"),
                "is not valid JSON (EOF while parsing",
            ),
            (json!("[1,2]"), "must hold a JSON object, got an array"),
            (json!("\"x\""), "must hold a JSON object, got \"x\""),
            (json!(7), "must be a string holding a JSON object, got 7"),
            (json!([1]), "got an array"),
        ] {
            let e = args(v.clone()).unwrap_err();
            assert!(e.starts_with(at) && e.contains(words), "{v}: {e}");
        }
        // A huge invalid payload is not echoed back.
        let huge = format!("{{\"a\": \"{}", "x".repeat(1 << 20));
        assert!(args(json!(huge)).unwrap_err().len() < 300);
        // Deep nesting hits serde_json's recursion limit instead of the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(args(json!(deep)).unwrap_err().contains("recursion limit"));
    }

    #[test]
    fn reads_tool_calls() {
        let v = json!([
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"},
             "extra_content": {"google": {"thought_signature": "sig"}}},
            {"id": "", "function": {"name": "g"}}
        ]);
        let calls = tool_calls(Some(&v), "messages[1]").unwrap();
        assert_eq!(calls[0].id, Some("call_1"));
        assert_eq!(calls[0].function.name, "f");
        assert_eq!(calls[0].function.arguments["a"], 1);
        assert_eq!(
            calls[0].raw["extra_content"]["google"]["thought_signature"],
            "sig"
        );
        assert_eq!((calls[1].id, calls[1].function.arguments.len()), (None, 0));
        assert!(tool_calls(None, "messages[1]").unwrap().is_empty());
        for (v, words) in [
            (json!({}), "messages[1].tool_calls must be an array"),
            (json!(["x"]), "messages[1].tool_calls[0] must be an object"),
            (
                json!([{"type": "custom", "function": {"name": "f"}}]),
                "messages[1].tool_calls[0].type \"custom\" is not supported",
            ),
            (
                json!([{"id": 5, "function": {"name": "f"}}]),
                "messages[1].tool_calls[0].id must be a string",
            ),
            (
                json!([{"id": "c"}]),
                "messages[1].tool_calls[0].function is required",
            ),
            (
                json!([{"function": {"arguments": "{}"}}]),
                "messages[1].tool_calls[0].function.name is required",
            ),
            (
                json!([{"function": {"name": "f", "arguments": "[]"}}]),
                "messages[1].tool_calls[0].function.arguments must hold",
            ),
        ] {
            let e = tool_calls(Some(&v), "messages[1]").unwrap_err();
            assert!(e.contains(words), "{v}: {e}");
        }
        let e = function_call(&json!("f"), "messages[2].function_call").unwrap_err();
        assert!(
            e.starts_with("messages[2].function_call must be an object"),
            "{e}"
        );
    }
}
