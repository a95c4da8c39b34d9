//! Validators for provider options that several plugins accept, so every plugin refuses
//! a bad option with the same clear message instead of failing a request later.

use serde_json::Value;

/// Headers the gateway sets itself; an option may not override them.
const RESERVED: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// Reads `options.headers`: a table of header name to string value, every
/// name an HTTP token and every value free of line breaks. `None`/null is no headers.
pub fn header_table(value: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "options.headers must be a table of header names to strings, got {other}"
            ))
        }
    };
    let mut headers = Vec::with_capacity(map.len());
    for (name, value) in map {
        let value = match value {
            Value::String(s) => s.clone(),
            other => {
                return Err(format!(
                    "options.headers.{name} must be a string, got {other}"
                ))
            }
        };
        check_header(name, &value)?;
        headers.push((name.clone(), value));
    }
    Ok(headers)
}

/// One configured header: a valid name, a value a header can carry, not a reserved one.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "options.headers: \"{name}\" is not a valid header name"
        ));
    }
    if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err(format!(
            "options.headers.{name}: the value may not contain line breaks"
        ));
    }
    if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Err(format!("options.headers: \"{name}\" is set by the gateway"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_read_and_bad_headers_refused() {
        assert!(header_table(None).unwrap().is_empty());
        assert_eq!(
            header_table(Some(&json!({"x-team": "blue", "x-n": "3"}))).unwrap(),
            vec![
                ("x-n".to_string(), "3".to_string()),
                ("x-team".to_string(), "blue".to_string())
            ]
        );
        for (bad, says) in [
            (json!("x"), "must be a table"),
            (json!({"x": {"y": 1}}), "must be a string"),
            (json!({"x": 1}), "must be a string"),
            (json!({"bad name": "v"}), "not a valid header name"),
            (json!({"": "v"}), "not a valid header name"),
            (json!({"x-a": "a\r\nInjected: 1"}), "line breaks"),
            (json!({"Content-Length": "1"}), "set by the gateway"),
        ] {
            let err = header_table(Some(&bad)).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
