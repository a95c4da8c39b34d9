//! Ideogram's failures classified into what the host acts on, keeping Ideogram's words.
//!
//! Ideogram documents 400 (invalid input), 401 (not authorized), 422 (the prompt or an
//! image failed the safety check) and 429 (too many requests); bodies come as
//! `{"error": "..."}`, `{"error": {"message"}}`, FastAPI's `{"detail": ...}` or plain
//! text from a proxy, and every shape is read.

use plugin_api::serde_json::{self, Value};
use plugin_api::{retry_after_ms, ErrorClass, ProviderError, Response};

/// Longest slice of an unstructured body repeated to the client.
const MAX_RAW_MESSAGE: usize = 500;

/// OpenAI's code for an image request its safety system refused; clients check it.
pub const CONTENT_POLICY: &str = "content_policy_violation";

pub fn from_response(resp: &Response<'_>) -> ProviderError {
    let status = resp.status;
    let parsed: Option<Value> = serde_json::from_slice(resp.body).ok();
    let message = parsed
        .as_ref()
        .and_then(message_of)
        .unwrap_or_else(|| raw_message(status, resp.body));
    let class = match status {
        // A refused key, or one out of credits (402): another key may work.
        401..=403 => ErrorClass::Auth,
        429 => ErrorClass::RateLimited,
        408 | 504 => ErrorClass::Timeout,
        400..=499 => ErrorClass::BadRequest,
        _ => ErrorClass::Upstream,
    };
    let mut e = ProviderError::new(class, message).with_status(status);
    if status == 422 {
        e = e.with_code(CONTENT_POLICY);
    }
    if class == ErrorClass::RateLimited {
        e.retry_after_ms = retry_after_ms(resp.header("retry-after"));
    }
    e
}

/// The message of a JSON error body, whichever shape it has.
fn message_of(v: &Value) -> Option<String> {
    let text = |v: &Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let obj = v.as_object()?;
    if let Some(e) = obj.get("error") {
        if let Some(m) = text(e).or_else(|| e.get("message").and_then(text)) {
            return Some(m);
        }
    }
    if let Some(d) = obj.get("detail") {
        if let Some(m) = text(d) {
            return Some(m);
        }
        // FastAPI validation errors: `[{"loc": [...], "msg": "..."}]`.
        let msgs: Vec<String> = d
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let msg = item.get("msg").and_then(text)?;
                let loc: Vec<String> = item
                    .get("loc")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|l| match l {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect();
                Some(if loc.is_empty() {
                    msg
                } else {
                    format!("{}: {msg}", loc.join("."))
                })
            })
            .collect();
        if !msgs.is_empty() {
            return Some(msgs.join("; "));
        }
    }
    obj.get("message").and_then(text)
}

fn raw_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("Ideogram answered HTTP {status}");
    }
    let mut cut = text.len().min(MAX_RAW_MESSAGE);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = if cut < text.len() { "..." } else { "" };
    format!("Ideogram answered HTTP {status}: {}{more}", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::serde_json::json;

    #[test]
    fn every_body_shape_gives_its_message() {
        for (body, want) in [
            (json!({"error": "Invalid input"}), "Invalid input"),
            (json!({"error": {"message": "bad key"}}), "bad key"),
            (json!({"detail": "Not authorized"}), "Not authorized"),
            (
                json!({"detail": [{"loc": ["body", "num_images"], "msg": "too many"}]}),
                "body.num_images: too many",
            ),
            (json!({"message": "slow down"}), "slow down"),
        ] {
            assert_eq!(message_of(&body).as_deref(), Some(want), "{body}");
        }
        assert_eq!(message_of(&json!({"error": ""})), None);
    }

    #[test]
    fn raw_bodies_are_cut_on_char_boundaries() {
        let m = raw_message(502, "é".repeat(400).as_bytes());
        assert!(m.ends_with("..."), "{m}");
        assert_eq!(raw_message(502, b" "), "Ideogram answered HTTP 502");
    }
}
