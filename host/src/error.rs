//! The one place errors become HTTP statuses and OpenAI-shaped bodies.

use bytes::Bytes;
use plugin_api::{ErrorClass, ProviderError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("missing required parameter: '{0}'")]
    MissingField(&'static str),
    #[error("invalid parameter '{field}': {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// A wrongly typed parameter somewhere in the body; `param` is its path.
    #[error("invalid parameter '{param}': {message}")]
    InvalidParam { param: String, message: String },
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("the request body was not received within {0} ms; send the whole body promptly and check that content-length matches it")]
    BodyTimeout(u64),
    #[error("malformed HTTP request: {0}")]
    MalformedRequest(&'static str),
    #[error(
        "the request target is longer than {limit} bytes; shorten the URL (send data in the body)"
    )]
    UriTooLong { limit: usize },
    #[error("the request headers are larger than {limit} bytes in total or more than {count} headers; send fewer or shorter headers")]
    HeadersTooLarge { limit: usize, count: usize },
    #[error("{0}")]
    TooManyConnections(String),
    /// The database cannot be reached and the call needs it.
    #[error("{0}")]
    Unavailable(String),
    #[error("{message}")]
    ModelNotFound { message: String },
    /// Over a limit of aihub's own (`traffic`): which one, and when to retry.
    #[error("{message}")]
    RateLimited {
        kind: &'static str,
        message: String,
        retry_after_ms: u64,
    },
    /// Credit billing: the app's available credit does not cover the call's estimate.
    #[error("{0}")]
    InsufficientCredits(String),
    /// A spend cap (budget) of the app or key is reached until `retry_after_ms` from now.
    #[error("{message}")]
    BudgetExceeded {
        message: String,
        retry_after_ms: u64,
    },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    ResourceNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid '{field}': {message}")]
    Validation { field: String, message: String },
    #[error("provider '{prefix}' has no API key configured{hint}")]
    NoCredential { prefix: String, hint: String },
    #[error(
        "every key of provider '{prefix}' is cooling down, ejected or refused; try again later"
    )]
    NoHealthyCredential { prefix: String },
    /// Upstream text: scrubbed of secrets when it enters the host (with the attempt's key,
    /// [`ApiError::scrubbed`]) and again, by pattern, whenever it is rendered.
    #[error("{}", crate::redact::scrub_patterns(&.0.to_string()))]
    Provider(ProviderError),
    #[error("could not reach the upstream: {}", crate::redact::scrub_patterns(.0))]
    UpstreamConnect(String),
    /// A success status with a body the plugin could not read: the upstream may have done
    /// (and billed) the work, so it is not retried.
    #[error("the upstream answered {status} but its reply could not be read ({}); not retried, since the upstream may have done and billed the work", crate::redact::scrub_patterns(.message))]
    UnreadableReply { status: u16, message: String },
    #[error("the upstream did not answer within {0} ms")]
    UpstreamTimeout(u64),
    #[error("the upstream stream went silent for {0} ms")]
    StreamStalled(u64),
    #[error("internal error: {}", crate::redact::scrub_patterns(.0))]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::MissingField(_)
            | ApiError::InvalidField { .. }
            | ApiError::InvalidParam { .. }
            | ApiError::BodyRead(_)
            | ApiError::MalformedRequest(_)
            | ApiError::Validation { .. } => 400,
            ApiError::BodyTimeout(_) => 408,
            ApiError::UriTooLong { .. } => 414,
            ApiError::HeadersTooLarge { .. } => 431,
            ApiError::TooManyConnections(_) | ApiError::Unavailable(_) => 503,
            ApiError::Forbidden(_) => 403,
            ApiError::ResourceNotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::BodyTooLarge { .. } => 413,
            ApiError::ModelNotFound { .. } | ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Unauthorized(_) => 401,
            ApiError::RateLimited { .. } => 429,
            ApiError::InsufficientCredits(_) | ApiError::BudgetExceeded { .. } => 402,
            ApiError::NoCredential { .. } | ApiError::NoHealthyCredential { .. } => 503,
            ApiError::Provider(e) => match e.class {
                ErrorClass::BadRequest => match e.status {
                    Some(s @ 400..=499) if s != 401 && s != 403 && s != 429 => s,
                    _ => 400,
                },
                ErrorClass::RateLimited => 429,
                ErrorClass::Auth | ErrorClass::Upstream => 502,
                ErrorClass::Timeout => 504,
                ErrorClass::Internal => 500,
            },
            ApiError::UpstreamConnect(_) | ApiError::UnreadableReply { .. } => 502,
            ApiError::UpstreamTimeout(_) | ApiError::StreamStalled(_) => 504,
            ApiError::Internal(_) => 500,
        }
    }

    fn error_type(&self) -> &'static str {
        match self.status() {
            401 => "authentication_error",
            402 => "insufficient_credits",
            403 => "permission_error",
            429 => "rate_limit_error",
            502 => "upstream_error",
            504 => "timeout_error",
            409 => "conflict_error",
            500 | 503 => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn code(&self) -> Option<String> {
        let code = match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::MissingField(_) => "missing_required_parameter",
            ApiError::InvalidField { .. } | ApiError::InvalidParam { .. } => "invalid_type",
            ApiError::BodyTooLarge { .. } => "request_too_large",
            ApiError::BodyRead(_) => "invalid_body",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::MalformedRequest(_) => "malformed_request",
            ApiError::UriTooLong { .. } => "uri_too_long",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::Unavailable(_) => "database_unavailable",
            ApiError::ModelNotFound { .. } => "model_not_found",
            ApiError::RateLimited { .. } => "rate_limit_exceeded",
            ApiError::InsufficientCredits(_) => "insufficient_credits",
            ApiError::BudgetExceeded { .. } => "budget_exceeded",
            ApiError::NotFound { .. } => "unknown_url",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unauthorized(_) => "invalid_api_key",
            ApiError::Forbidden(_) => "app_disabled",
            ApiError::ResourceNotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Validation { .. } => "invalid_value",
            ApiError::NoCredential { .. } => "no_credentials",
            ApiError::NoHealthyCredential { .. } => "no_healthy_credentials",
            ApiError::Provider(e) => {
                if let Some(code) = &e.code {
                    return Some(code.clone());
                }
                match e.class {
                    ErrorClass::Auth => "upstream_auth_error",
                    ErrorClass::Upstream => "upstream_error",
                    ErrorClass::Timeout => "upstream_timeout",
                    ErrorClass::Internal => "plugin_error",
                    ErrorClass::RateLimited => "rate_limit_exceeded",
                    ErrorClass::BadRequest => return None,
                }
            }
            ApiError::UpstreamConnect(_) => "upstream_unreachable",
            ApiError::UnreadableReply { .. } => "upstream_bad_response",
            ApiError::UpstreamTimeout(_) | ApiError::StreamStalled(_) => "upstream_timeout",
            ApiError::Internal(_) => "internal_error",
        };
        Some(code.to_string())
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::MissingField(f) | ApiError::InvalidField { field: f, .. } => Some(f),
            ApiError::Validation { field, .. } => Some(field),
            ApiError::InvalidParam { param, .. } => Some(param),
            ApiError::ModelNotFound { .. } => Some("model"),
            _ => None,
        }
    }

    /// The message as a client sees it (scrubbed).
    pub fn client_message(&self) -> String {
        self.message()
    }

    /// The machine-readable code as a client sees it.
    pub fn client_code(&self) -> Option<String> {
        self.code()
    }

    /// The upstream's own HTTP status, when the error came from one.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            ApiError::Provider(e) => e.status,
            ApiError::UnreadableReply { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Seconds to tell the client to wait, when the upstream said.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Provider(e) => e.retry_after_ms.map(|ms| ms.div_ceil(1000)),
            ApiError::RateLimited { retry_after_ms, .. }
            | ApiError::BudgetExceeded { retry_after_ms, .. } => {
                Some(retry_after_ms.div_ceil(1000))
            }
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Provider(e) => {
                let m = crate::redact::scrub_patterns(&e.message);
                match e.class {
                    ErrorClass::Auth => {
                        format!("the upstream refused the gateway's credential: {m}")
                    }
                    ErrorClass::Internal => format!("provider plugin failed: {m}"),
                    _ => m,
                }
            }
            other => other.to_string(),
        }
    }

    /// The same error with every upstream-originated text scrubbed of `secrets` (the keys
    /// the host sent) and of anything that looks like a credential, and bounded. Applied
    /// where an attempt's error enters the host, so every consumer (client body, call
    /// log, credential health, logs, spans) sees the scrubbed text.
    pub fn scrubbed(self, secrets: &[&str]) -> ApiError {
        use crate::redact::scrub;
        match self {
            ApiError::Provider(mut e) => {
                e.message = scrub(&e.message, secrets);
                e.code = e
                    .code
                    .map(|c| scrub(&c, secrets).chars().take(100).collect());
                ApiError::Provider(e)
            }
            ApiError::UpstreamConnect(m) => ApiError::UpstreamConnect(scrub(&m, secrets)),
            ApiError::UnreadableReply { status, message } => ApiError::UnreadableReply {
                status,
                message: scrub(&message, secrets),
            },
            ApiError::Internal(m) => ApiError::Internal(scrub(&m, secrets)),
            other => other,
        }
    }

    /// `{"error":{"message","type","code","param"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message(),
                "type": self.error_type(),
                "code": self.code(),
                "param": self.param(),
            }
        })
    }

    pub fn body_bytes(&self) -> Bytes {
        Bytes::from(self.body().to_string())
    }

    /// Low-cardinality label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Provider(e) => e.class.as_str(),
            ApiError::UpstreamConnect(_) => "upstream_unreachable",
            ApiError::UnreadableReply { .. } => "upstream",
            ApiError::UpstreamTimeout(_) | ApiError::StreamStalled(_) => "timeout",
            ApiError::Internal(_) => "internal",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::InsufficientCredits(_) => "insufficient_credits",
            ApiError::BudgetExceeded { .. } => "budget_exceeded",
            _ => "client",
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        match e {
            S::NotFound(what) => ApiError::ResourceNotFound(what),
            S::Conflict(m) => ApiError::Conflict(m),
            S::Invalid { field, message } => ApiError::Validation { field, message },
            other if other.is_unreachable() => {
                tracing::warn!(error = %other, "the database cannot be reached");
                ApiError::Unavailable("the database cannot be reached; try again shortly".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_classes_map_to_statuses() {
        let cases = [
            (ProviderError::bad_request("x").with_status(422), 422),
            (ProviderError::bad_request("x"), 400),
            (ProviderError::auth("x").with_status(401), 502),
            (ProviderError::rate_limited("x", Some(1500)), 429),
            (ProviderError::upstream("x").with_status(503), 502),
            (ProviderError::timeout("x"), 504),
            (ProviderError::internal("x"), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::Provider(e.clone()).status(), status, "{e:?}");
        }
        assert_eq!(
            ApiError::Provider(ProviderError::rate_limited("x", Some(1500))).retry_after_secs(),
            Some(2)
        );
    }

    #[test]
    fn upstream_text_is_scrubbed_when_scrubbed_and_when_rendered() {
        let key = "sk-live-0123456789abcdefXYZ";
        let e = ApiError::Provider(
            ProviderError::auth(format!("Incorrect API key provided: Bearer {key}"))
                .with_status(401),
        );
        // Rendering alone catches the token-looking string.
        assert!(!e.body().to_string().contains(key));
        assert!(!e.to_string().contains(key));
        let odd = "opaque-key-without-prefix-42";
        let e = ApiError::UpstreamConnect(format!("proxy said {odd}")).scrubbed(&[odd]);
        assert_eq!(
            e.to_string(),
            "could not reach the upstream: proxy said [redacted]"
        );
        let e = ApiError::Provider(ProviderError::upstream(format!("x {odd}"))).scrubbed(&[odd]);
        assert_eq!(e.body()["error"]["message"], "x [redacted]");
    }

    #[test]
    fn body_has_openai_shape() {
        let b = ApiError::MissingField("model").body();
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert_eq!(b["error"]["code"], "missing_required_parameter");
        assert_eq!(b["error"]["param"], "model");
        assert!(b["error"]["message"].as_str().unwrap().contains("model"));
    }
}
