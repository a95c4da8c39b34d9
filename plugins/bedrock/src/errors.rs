//! Bedrock's failures classified into what the host acts on.
//!
//! A non-2xx reply names its error type in the `x-amzn-errortype` header
//! (`ValidationException:http://internal.amazon.com/coral/...`) and carries
//! `{"message": ...}`; an exception inside a stream is an event-stream message whose
//! `:exception-type` is the same name in camel case (`throttlingException`). Both go
//! through [`class_of`], so a throttle means the same thing wherever it arrives.

use plugin_api::serde_json::{self, Value};
use plugin_api::{retry_after_ms, ErrorClass, ProviderError, Response};

/// Longest slice of an unreadable error body repeated to the client.
const MAX_RAW_MESSAGE: usize = 500;

/// The class of a Bedrock error type, `None` for a type not known here (the HTTP status
/// decides then).
///
/// `AccessDeniedException` is a bad request, not an auth failure: Bedrock answers it
/// for a valid credential without access to *this* model (model access not granted in
/// the region, an IAM policy scoped to other models); the host would otherwise stop
/// using a key that serves every other model, and recheck it with the refused one
/// forever. Only when its message is about authentication is it the credential's fault.
pub fn class_of(error_type: &str, message: &str) -> Option<ErrorClass> {
    let t = error_type.to_ascii_lowercase();
    Some(match t.as_str() {
        "throttlingexception"
        | "toomanyrequestsexception"
        | "servicequotaexceededexception"
        | "modelnotreadyexception" => ErrorClass::RateLimited,
        "accessdeniedexception" if message.to_ascii_lowercase().contains("authenticat") => {
            ErrorClass::Auth
        }
        "validationexception"
        | "resourcenotfoundexception"
        | "conflictexception"
        | "accessdeniedexception"
        | "serializationexception"
        | "unknownoperationexception" => ErrorClass::BadRequest,
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "signaturedoesnotmatch"
        | "expiredtokenexception"
        | "expiredtoken"
        | "invalidclienttokenid"
        | "missingauthenticationtokenexception"
        | "unauthorizedexception" => ErrorClass::Auth,
        "modeltimeoutexception" => ErrorClass::Timeout,
        "internalserverexception"
        | "internalfailure"
        | "serviceunavailableexception"
        | "serviceunavailable"
        | "modelerrorexception"
        | "modelstreamerrorexception" => ErrorClass::Upstream,
        _ => return None,
    })
}

/// The error type of a reply: the `x-amzn-errortype` header without its `:namespace`
/// suffix, else the body's `__type` (`com.amazon.coral...#ThrottlingException`) or
/// `code`.
fn error_type(resp: &Response<'_>, body: Option<&Value>) -> Option<String> {
    let from_header = resp
        .header("x-amzn-errortype")
        .map(|h| h.split(':').next().unwrap_or(h).trim().to_string());
    let from_body = || {
        let b = body?;
        let t = b
            .get("__type")
            .or_else(|| b.get("code"))
            .and_then(Value::as_str)?;
        Some(t.rsplit('#').next().unwrap_or(t).to_string())
    };
    from_header.filter(|t| !t.is_empty()).or_else(from_body)
}

/// `message` (or `Message`) of an AWS error body.
fn message_of(body: &Value) -> Option<String> {
    body.get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// A non-2xx reply as a classified error, with its status and Bedrock's error type as
/// the code.
pub fn from_response(resp: &Response<'_>) -> ProviderError {
    let body: Option<Value> = serde_json::from_slice(resp.body).ok();
    let kind = error_type(resp, body.as_ref());
    let message = body
        .as_ref()
        .and_then(message_of)
        .unwrap_or_else(|| raw_message(resp.status, resp.body));
    let class = kind
        .as_deref()
        .and_then(|k| class_of(k, &message))
        .unwrap_or_else(|| ProviderError::class_for_status(resp.status));
    let mut e = ProviderError::new(class, message).with_status(resp.status);
    if let Some(k) = kind {
        e = e.with_code(k);
    }
    if class == ErrorClass::RateLimited {
        e.retry_after_ms = retry_after_ms(resp.header("retry-after"));
    }
    e
}

/// An exception message inside a stream (`:message-type exception`).
pub fn from_exception(exception_type: &str, payload: &[u8]) -> ProviderError {
    let body: Option<Value> = serde_json::from_slice(payload).ok();
    let message = body
        .as_ref()
        .and_then(message_of)
        .unwrap_or_else(|| format!("Bedrock ended the stream with {exception_type}"));
    let class = class_of(exception_type, &message).unwrap_or(ErrorClass::Upstream);
    ProviderError::new(class, message).with_code(exception_type)
}

/// The body itself when it is not AWS's JSON (a proxy's page, plain text).
fn raw_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("Bedrock answered HTTP {status}");
    }
    let mut cut = text.len().min(MAX_RAW_MESSAGE);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = if cut < text.len() { "..." } else { "" };
    format!("Bedrock answered HTTP {status}: {}{more}", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::response;

    #[test]
    fn types_win_over_statuses() {
        let h = [(
            "x-amzn-errortype",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        )];
        let e = from_response(&response(400, &h, br#"{"message":"Too many tokens"}"#));
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.code.as_deref(), Some("ThrottlingException"));
        assert_eq!(e.message, "Too many tokens");

        let body =
            br#"{"__type":"com.amazon.coral.service#ExpiredTokenException","Message":"expired"}"#;
        let e = from_response(&response(400, &[], body));
        assert_eq!((e.class, e.message.as_str()), (ErrorClass::Auth, "expired"));
    }

    #[test]
    fn access_denied_is_per_model_unless_about_authentication() {
        let h = [("x-amzn-errortype", "AccessDeniedException")];
        let model =
            br#"{"message":"You don't have access to the model with the specified model ID."}"#;
        assert_eq!(
            from_response(&response(403, &h, model)).class,
            ErrorClass::BadRequest
        );
        let key =
            br#"{"message":"Authentication failed: Please make sure your API Key is valid."}"#;
        assert_eq!(
            from_response(&response(403, &h, key)).class,
            ErrorClass::Auth
        );
    }

    #[test]
    fn unknown_types_and_bodies_fall_back_to_the_status() {
        let e = from_response(&response(502, &[], b"<html>Bad gateway</html>"));
        assert_eq!(e.class, ErrorClass::Upstream);
        assert_eq!(
            e.message,
            "Bedrock answered HTTP 502: <html>Bad gateway</html>"
        );
        assert_eq!(e.code, None);
        let e = from_response(&response(403, &[], b""));
        assert_eq!(
            (e.class, e.message.as_str()),
            (ErrorClass::Auth, "Bedrock answered HTTP 403")
        );
        let long = "é".repeat(400);
        assert!(raw_message(500, long.as_bytes()).ends_with("..."));
    }

    #[test]
    fn stream_exceptions() {
        let e = from_exception("throttlingException", br#"{"message":"slow down"}"#);
        assert_eq!(
            (e.class, e.message.as_str()),
            (ErrorClass::RateLimited, "slow down")
        );
        assert_eq!(e.status, None);
        let e = from_exception("validationException", b"{}");
        assert_eq!(e.class, ErrorClass::BadRequest);
        assert!(e.message.contains("validationException"));
        assert_eq!(
            from_exception("modelStreamErrorException", b"").class,
            ErrorClass::Upstream
        );
        assert_eq!(
            from_exception("somethingNew", b"").class,
            ErrorClass::Upstream
        );
        assert_eq!(
            from_exception("modelTimeoutException", b"").class,
            ErrorClass::Timeout
        );
    }
}
