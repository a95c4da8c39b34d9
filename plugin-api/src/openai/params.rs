//! Scalar fields of an OpenAI request (`temperature`, `max_tokens`, `stop`, ...), read
//! with one wording for every plugin. Absent and `null` both mean "not set".

use super::{shown, shown_str};
use serde_json::Value;

fn field<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

/// A number field (`temperature`, `top_p`, penalties).
pub fn number(body: &Value, key: &str) -> Result<Option<f64>, String> {
    match field(body, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("'{key}' must be a number, got {}", shown(v))),
    }
}

/// A non-negative integer field (`n`, `seed`, `top_k`).
pub fn count(body: &Value, key: &str) -> Result<Option<u64>, String> {
    match field(body, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("'{key}' must be a non-negative integer, got {}", shown(v))),
    }
}

/// The output token limit: `max_completion_tokens`, else the older `max_tokens`. Zero is
/// refused: no upstream can answer in no tokens.
pub fn max_tokens(body: &Value) -> Result<Option<u64>, String> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(body, key) {
            return match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!(
                    "'{key}' must be a positive integer, got {}",
                    shown(v)
                )),
            };
        }
    }
    Ok(None)
}

/// `stop`: a string or an array of strings. Empty strings are left out (they stop
/// nothing, and upstreams refuse them), so the list may come back empty.
pub fn stop(body: &Value) -> Result<Vec<&str>, String> {
    let list: Vec<&str> = match field(body, "stop") {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(k, v)| {
                v.as_str()
                    .ok_or_else(|| format!("stop[{k}] must be a string, got {}", shown(v)))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(format!(
                "'stop' must be a string or an array of strings, got {}",
                shown(v)
            ))
        }
    };
    Ok(list.into_iter().filter(|s| !s.is_empty()).collect())
}

/// A string field that must be one of `allowed` (`reasoning_effort`, `encoding_format`).
pub fn one_of<'a>(body: &'a Value, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, String> {
    match field(body, key) {
        None => Ok(None),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(Some(s)),
        Some(v) => {
            let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            let got = match v {
                Value::String(s) => shown_str(s),
                other => shown(other),
            };
            Err(format!(
                "'{key}' must be one of {}, got {got}",
                list.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_counts() {
        let b = json!({"temperature": 0.2, "top_p": 1, "n": 2, "seed": null, "bad": "hot", "neg": -1, "frac": 2.5});
        assert_eq!(number(&b, "temperature"), Ok(Some(0.2)));
        assert_eq!(number(&b, "top_p"), Ok(Some(1.0)));
        assert_eq!(number(&b, "missing"), Ok(None));
        assert_eq!(number(&b, "seed"), Ok(None));
        assert_eq!(
            number(&b, "bad"),
            Err("'bad' must be a number, got \"hot\"".into())
        );
        assert_eq!(count(&b, "n"), Ok(Some(2)));
        assert_eq!(count(&b, "seed"), Ok(None));
        assert!(count(&b, "neg")
            .unwrap_err()
            .contains("'neg' must be a non-negative integer, got -1"));
        assert!(count(&b, "frac").unwrap_err().contains("got 2.5"));
        assert!(count(&b, "bad").is_err());
    }

    #[test]
    fn max_tokens_prefers_the_newer_field() {
        let m = |v: Value| max_tokens(&v);
        assert_eq!(
            m(json!({"max_tokens": 100, "max_completion_tokens": 256})),
            Ok(Some(256))
        );
        assert_eq!(
            m(json!({"max_tokens": 100, "max_completion_tokens": null})),
            Ok(Some(100))
        );
        assert_eq!(m(json!({})), Ok(None));
        for bad in [json!(0), json!(-1), json!("10"), json!(1.5)] {
            let e = m(json!({"max_tokens": bad})).unwrap_err();
            assert!(
                e.starts_with("'max_tokens' must be a positive integer"),
                "{e}"
            );
        }
    }

    #[test]
    fn stop_sequences() {
        assert_eq!(stop(&json!({"stop": "END"})), Ok(vec!["END"]));
        assert_eq!(
            stop(&json!({"stop": ["a", "", "\n\n"]})),
            Ok(vec!["a", "\n\n"])
        );
        assert_eq!(stop(&json!({"stop": ""})), Ok(vec![]));
        assert_eq!(stop(&json!({"stop": null})), Ok(vec![]));
        assert_eq!(
            stop(&json!({"stop": ["a", 5]})),
            Err("stop[1] must be a string, got 5".into())
        );
        assert!(stop(&json!({"stop": {"x": 1}}))
            .unwrap_err()
            .contains("got an object"));
    }

    #[test]
    fn enumerations() {
        let b = json!({"e": "low", "x": "extreme", "n": 3});
        assert_eq!(one_of(&b, "e", &["low", "high"]), Ok(Some("low")));
        assert_eq!(one_of(&b, "missing", &["low"]), Ok(None));
        assert_eq!(
            one_of(&b, "x", &["low", "high"]),
            Err("'x' must be one of \"low\", \"high\", got \"extreme\"".into())
        );
        assert!(one_of(&b, "n", &["low"]).unwrap_err().ends_with("got 3"));
    }
}
