//! Turning upstream failures into classified [`ProviderError`]s.
//!
//! OpenAI answers `{"error":{"message","type","param","code"}}`; compatible servers send
//! variants (`{"error":"text"}` from Ollama, `{"object":"error","message":..}` from
//! Mistral, FastAPI's `{"detail":..}`, plain text or HTML from proxies). The client gets
//! the provider's own words whichever shape arrived.

use plugin_api::serde_json::Value;
use plugin_api::{ErrorClass, ProviderError, Response};

/// Longest message kept from an unstructured body (HTML error pages can be large).
const MAX_MESSAGE_CHARS: usize = 2000;

/// What a provider said about an error.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ErrorDetail {
    pub message: Option<String>,
    pub code: Option<String>,
    pub kind: Option<String>,
    /// `error.code` when it was a number: OpenRouter puts the HTTP status there.
    pub numeric_code: Option<u16>,
}

/// The class an upstream HTTP status implies. 402 (out of credits, OpenRouter and
/// others) is the key's problem, not the request's: another key may work.
pub(crate) fn class_for_status(status: u16) -> ErrorClass {
    match status {
        402 => ErrorClass::Auth,
        s => ProviderError::class_for_status(s),
    }
}

/// Classifies an error the upstream described without an HTTP status (in-stream errors,
/// error bodies on a 2xx), by its `code` and `type`.
pub(crate) fn class_for_detail(detail: &ErrorDetail) -> ErrorClass {
    if let Some(status) = detail.numeric_code.filter(|s| (400..=599).contains(s)) {
        return class_for_status(status);
    }
    let words = [detail.code.as_deref(), detail.kind.as_deref()];
    let has = |needles: &[&str]| {
        words.iter().flatten().any(|w| {
            let w = w.to_ascii_lowercase();
            needles.iter().any(|n| w.contains(n))
        })
    };
    let is = |exact: &[&str]| words.iter().flatten().any(|w| exact.contains(w));
    if has(&["rate_limit", "quota"]) || is(&["tokens", "requests"]) {
        ErrorClass::RateLimited
    } else if has(&["api_key", "auth", "permission", "unauthorized", "forbidden"]) {
        ErrorClass::Auth
    } else if has(&["timeout", "timed_out"]) {
        ErrorClass::Timeout
    } else if has(&[
        "invalid_request",
        "context_length",
        "not_found",
        "bad_request",
        "content_filter",
        "content_policy",
        "unsupported",
        "invalid_prompt",
    ]) {
        ErrorClass::BadRequest
    } else {
        ErrorClass::Upstream
    }
}

/// Reads the provider's message and code from an error body of any shape.
pub(crate) fn detail_from_body(body: &[u8]) -> ErrorDetail {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => detail_from_value(&v),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            ErrorDetail {
                message: (!text.is_empty()).then(|| truncate(text)),
                ..ErrorDetail::default()
            }
        }
    }
}

/// Reads message and code from a parsed error body or an `error` member.
pub(crate) fn detail_from_value(v: &Value) -> ErrorDetail {
    match v {
        Value::Object(map) => {
            if let Some(err) = map.get("error").filter(|e| !e.is_null()) {
                return match err {
                    Value::Object(_) => fields_of(err),
                    Value::String(s) => ErrorDetail {
                        message: Some(truncate(s)),
                        ..fields_of(v)
                    },
                    other => ErrorDetail {
                        message: Some(truncate(&other.to_string())),
                        ..ErrorDetail::default()
                    },
                };
            }
            let mut d = fields_of(v);
            if d.message.is_none() {
                d.message = map.get("detail").and_then(text_of);
            }
            d
        }
        Value::Null => ErrorDetail::default(),
        Value::String(s) => ErrorDetail {
            message: (!s.trim().is_empty()).then(|| truncate(s.trim())),
            ..ErrorDetail::default()
        },
        other => ErrorDetail {
            message: Some(truncate(&other.to_string())),
            ..ErrorDetail::default()
        },
    }
}

/// `message`, `code` and `type` of an OpenAI-style error object.
fn fields_of(v: &Value) -> ErrorDetail {
    let code = v.get("code");
    ErrorDetail {
        message: v.get("message").and_then(text_of),
        code: code.and_then(|c| match c {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        kind: v.get("type").and_then(Value::as_str).map(str::to_string),
        numeric_code: code
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok()),
    }
}

/// A message field as text: strings as they are, structured ones (Mistral and FastAPI
/// send validation details as objects) as compact JSON.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(truncate(s)),
        other => Some(truncate(&other.to_string())),
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The error for a non-2xx upstream reply.
pub(crate) fn from_response(resp: &Response<'_>) -> ProviderError {
    let detail = detail_from_body(resp.body);
    let class = class_for_status(resp.status);
    let message = detail
        .message
        .clone()
        .unwrap_or_else(|| format!("upstream answered HTTP {}", resp.status));
    let mut err = ProviderError::new(class, message).with_status(resp.status);
    err.code = detail.code;
    err.retry_after_ms = retry_after(resp);
    if err.retry_after_ms.is_none() && class == ErrorClass::RateLimited {
        err.retry_after_ms = retry_hint_in_message(&err.message);
    }
    err
}

/// The error an upstream reported inside a stream or a 2xx body (`error` member).
pub(crate) fn from_payload(error: &Value) -> ProviderError {
    let detail = detail_from_value(error);
    let class = class_for_detail(&detail);
    let message = detail
        .message
        .clone()
        .unwrap_or_else(|| "upstream reported an error without a message".to_string());
    let mut err = ProviderError::new(class, message);
    if let Some(status) = detail.numeric_code.filter(|s| (400..=599).contains(s)) {
        err = err.with_status(status);
    }
    err.code = detail.code;
    if class == ErrorClass::RateLimited {
        err.retry_after_ms = retry_hint_in_message(&err.message);
    }
    err
}

/// How long the upstream asked us to wait: `retry-after-ms` (Azure, OpenAI; more
/// precise) or `retry-after` in seconds.
pub(crate) fn retry_after(resp: &Response<'_>) -> Option<u64> {
    let ms = resp
        .header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| ms as u64);
    ms.or_else(|| plugin_api::retry_after_ms(resp.header("retry-after")))
}

/// OpenAI's 429 messages end with "Please try again in 20s." / "in 512ms" / "in 6m0s";
/// used when no header said how long to wait.
pub(crate) fn retry_hint_in_message(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("try again in ")? + "try again in ".len();
    let rest = &lower[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'h' | 'm' | 's')))
        .unwrap_or(rest.len());
    go_duration_ms(rest[..end].trim_end_matches('.'))
}

/// Parses a Go-style duration (`1h2m3.5s`, `250ms`) into milliseconds.
fn go_duration_ms(s: &str) -> Option<u64> {
    let mut rest = s;
    let mut total = 0.0f64;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let (scale, unit_len) = if rest.starts_with("ms") {
            (1.0, 2)
        } else if rest.starts_with('h') {
            (3_600_000.0, 1)
        } else if rest.starts_with('m') {
            (60_000.0, 1)
        } else if rest.starts_with('s') {
            (1_000.0, 1)
        } else {
            return None;
        };
        rest = &rest[unit_len..];
        total += value * scale;
        any = true;
    }
    (any && total.is_finite()).then(|| total.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_in_messages() {
        let m = |s: &str| retry_hint_in_message(s);
        assert_eq!(
            m("Rate limit reached. Please try again in 20s. Visit ..."),
            Some(20_000)
        );
        assert_eq!(m("Please try again in 1.5s."), Some(1_500));
        assert_eq!(m("Please try again in 512ms."), Some(512));
        assert_eq!(m("Please try again in 6m0s."), Some(360_000));
        assert_eq!(m("Please try again in 1h2m3s"), Some(3_723_000));
        assert_eq!(m("Please try again later."), None);
        assert_eq!(m("no hint"), None);
    }

    #[test]
    fn detail_shapes() {
        let d = detail_from_value(&json!({"error":{"message":"m","type":"t","code":"c"}}));
        assert_eq!(d.message.as_deref(), Some("m"));
        assert_eq!(d.code.as_deref(), Some("c"));
        assert_eq!(d.kind.as_deref(), Some("t"));
        let d = detail_from_value(&json!({"error":"model 'x' not found"}));
        assert_eq!(d.message.as_deref(), Some("model 'x' not found"));
        let d = detail_from_value(&json!({"error":{"message":"busy","code":502}}));
        assert_eq!(
            (d.code.as_deref(), d.numeric_code),
            (Some("502"), Some(502))
        );
        let d = detail_from_value(
            &json!({"object":"error","message":{"detail":[1]},"type":"invalid_request_error","code":null}),
        );
        assert_eq!(d.message.as_deref(), Some(r#"{"detail":[1]}"#));
        assert_eq!(d.code, None);
        let d = detail_from_value(&json!({"detail":"Not Found"}));
        assert_eq!(d.message.as_deref(), Some("Not Found"));
        let d = detail_from_body(b"  upstream connect error  ");
        assert_eq!(d.message.as_deref(), Some("upstream connect error"));
        assert_eq!(detail_from_body(b"").message, None);
        let long = "x".repeat(5000);
        assert_eq!(
            detail_from_body(long.as_bytes())
                .message
                .unwrap()
                .chars()
                .count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn classes_from_type_and_code() {
        let c = |v: Value| class_for_detail(&detail_from_value(&v));
        assert_eq!(
            c(json!({"type":"tokens","code":"rate_limit_exceeded"})),
            ErrorClass::RateLimited
        );
        assert_eq!(
            c(json!({"type":"insufficient_quota"})),
            ErrorClass::RateLimited
        );
        assert_eq!(
            c(json!({"type":"invalid_request_error","code":"invalid_api_key"})),
            ErrorClass::Auth
        );
        assert_eq!(
            c(json!({"type":"invalid_request_error","code":"context_length_exceeded"})),
            ErrorClass::BadRequest
        );
        assert_eq!(c(json!({"type":"server_error"})), ErrorClass::Upstream);
        assert_eq!(
            c(json!({"code":429,"message":"slow down"})),
            ErrorClass::RateLimited
        );
        assert_eq!(c(json!({"code":502})), ErrorClass::Upstream);
        assert_eq!(c(json!({"code":"request_timeout"})), ErrorClass::Timeout);
        assert_eq!(c(json!("plain")), ErrorClass::Upstream);
    }
}
