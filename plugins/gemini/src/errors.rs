//! Google's error bodies (`{"error":{"code","message","status","details"}}`) classified
//! into what the host acts on, keeping Google's own message and status name.

use plugin_api::serde_json::{self, Value};
use plugin_api::{retry_after_ms, ErrorClass, ProviderError, Response};

/// Longest slice of an unreadable error body repeated to the client.
const MAX_RAW_MESSAGE: usize = 500;

/// The `error` object of a reply body. Google sends it bare, or, from the
/// non-SSE streaming endpoint, as the only element of an array.
pub fn error_object(v: &Value) -> Option<&Value> {
    match v {
        Value::Object(o) => o.get("error").filter(|e| e.is_object()),
        Value::Array(a) if a.len() == 1 => error_object(&a[0]),
        _ => None,
    }
}

/// A non-2xx upstream reply as a classified error.
pub fn from_response(resp: &Response<'_>) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(resp.body).ok();
    let err = parsed.as_ref().and_then(error_object);
    let class = classify(resp.status, err);
    let message = err
        .and_then(message_of)
        .unwrap_or_else(|| raw_message(resp.status, resp.body));
    let mut e = ProviderError::new(class, message).with_status(resp.status);
    if let Some(code) = err.and_then(status_name) {
        e = e.with_code(code);
    }
    if class == ErrorClass::RateLimited {
        e.retry_after_ms =
            retry_after_ms(resp.header("retry-after")).or_else(|| err.and_then(retry_delay_ms));
    }
    e
}

/// An `error` object met inside a 2xx body or a stream event; its `code` is the HTTP
/// status Google would have answered with.
pub fn from_error_value(err: &Value) -> ProviderError {
    let code = err
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let class = match code {
        Some(c) => classify(c, Some(err)),
        None => ErrorClass::Upstream,
    };
    let message = message_of(err).unwrap_or_else(|| "Gemini reported an error".to_string());
    let mut e = ProviderError::new(class, message);
    if let Some(name) = status_name(err) {
        e = e.with_code(name);
    }
    if class == ErrorClass::RateLimited {
        e.retry_after_ms = retry_delay_ms(err);
    }
    e
}

fn classify(status: u16, err: Option<&Value>) -> ErrorClass {
    // Google answers a wrong or unknown key with 400 INVALID_ARGUMENT; it is still the
    // credential that failed, and the host must stop using it.
    if err.is_some_and(key_invalid) {
        return ErrorClass::Auth;
    }
    match status {
        401 | 403 => ErrorClass::Auth,
        429 => ErrorClass::RateLimited,
        400 | 404 => ErrorClass::BadRequest,
        500 | 503 => ErrorClass::Upstream,
        504 => ErrorClass::Timeout,
        s => ProviderError::class_for_status(s),
    }
}

fn message_of(err: &Value) -> Option<String> {
    err.get("message")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// Google's canonical status name (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...).
fn status_name(err: &Value) -> Option<&str> {
    err.get("status")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn details(err: &Value) -> impl Iterator<Item = &Value> {
    err.get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn detail_type(d: &Value) -> &str {
    d.get("@type").and_then(Value::as_str).unwrap_or("")
}

fn key_invalid(err: &Value) -> bool {
    details(err).any(|d| {
        detail_type(d).ends_with("google.rpc.ErrorInfo")
            && d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID")
    })
}

/// The wait a `google.rpc.RetryInfo` detail asks for, e.g. `"retryDelay": "13s"`.
fn retry_delay_ms(err: &Value) -> Option<u64> {
    details(err)
        .filter(|d| detail_type(d).ends_with("google.rpc.RetryInfo"))
        .find_map(|d| d.get("retryDelay").and_then(duration_ms))
}

/// A protobuf `Duration` in its JSON form (`"1.5s"`), or as `{seconds, nanos}`.
fn duration_ms(v: &Value) -> Option<u64> {
    let secs = match v {
        Value::String(s) => s.trim().strip_suffix('s')?.trim().parse::<f64>().ok()?,
        Value::Object(o) => {
            let whole = match o.get("seconds") {
                Some(Value::String(s)) => s.parse::<f64>().ok()?,
                Some(n) => n.as_f64()?,
                None => 0.0,
            };
            whole + o.get("nanos").and_then(Value::as_f64).unwrap_or(0.0) / 1e9
        }
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).ceil() as u64)
}

/// The body itself when it is not Google's JSON (a proxy's HTML page, plain text).
fn raw_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("Gemini answered HTTP {status}");
    }
    let mut cut = text.len().min(MAX_RAW_MESSAGE);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = if cut < text.len() { "..." } else { "" };
    format!("Gemini answered HTTP {status}: {}{more}", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(&json!("13s")), Some(13_000));
        assert_eq!(duration_ms(&json!("57.238747106s")), Some(57_239));
        assert_eq!(
            duration_ms(&json!({"seconds": "2", "nanos": 500000000})),
            Some(2_500)
        );
        assert_eq!(duration_ms(&json!("soon")), None);
        assert_eq!(duration_ms(&json!("-1s")), None);
    }

    #[test]
    fn raw_bodies_are_cut_on_char_boundaries() {
        let body = "é".repeat(400);
        let m = raw_message(502, body.as_bytes());
        assert!(m.ends_with("..."), "{m}");
        assert_eq!(raw_message(502, b"  "), "Gemini answered HTTP 502");
    }
}
