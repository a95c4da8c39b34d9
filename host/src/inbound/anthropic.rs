//! Anthropic Messages (`POST /v1/messages`): reading the call, Anthropic's error shape,
//! and `count_tokens`. The translation itself is in the `formats` crate.

use super::openai::{model_value, parse_json_head, read_body_of};
use super::reshape::Shape;
use super::{CanonicalCall, Format, Native};
use crate::error::ApiError;
use crate::server::http::{self, Body};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use plugin_api::{Endpoint, ErrorClass};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
struct Head {
    model: Option<serde_json::Value>,
    stream: Option<bool>,
}

/// Reads a Messages call. Its translation to chat is kept even when it fails: a provider
/// that speaks Messages natively can still take what chat cannot express.
pub async fn read_call(
    req: Request<Incoming>,
    max_body_bytes: usize,
    message_id: String,
) -> Result<CanonicalCall, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body_of(&parts.headers, parts.version, body, max_body_bytes).await?;
    let mut head: Head = parse_json_head(&body)?;
    let model = model_value(head.model.take())?;
    let stream = head.stream.unwrap_or(false);
    let chat = formats::anthropic::to_chat(&body).map(|c| Bytes::from(c.body));
    Ok(CanonicalCall {
        format: Format::AnthropicMessages,
        endpoint: Endpoint::Chat,
        body: chat,
        native: Some(Native {
            body,
            only_prefix: None,
        }),
        shape: Arc::new(Shape::Messages {
            id: message_id,
            model: model.clone(),
        }),
        model,
        stream,
        // A translated stream's `message_delta` needs the usage.
        include_usage: stream,
        headers: parts.headers,
    })
}

/// The HTTP status in Anthropic's terms: an upstream's 529 ("overloaded") stays 529.
fn status(e: &ApiError) -> u16 {
    match e {
        ApiError::Provider(p) if p.status == Some(529) && p.class != ErrorClass::BadRequest => 529,
        other => other.status(),
    }
}

fn body(e: &ApiError) -> Vec<u8> {
    let kind = formats::anthropic::error_type(status(e), e.upstream_status());
    formats::anthropic::error_body(kind, &e.client_message())
}

/// `{"type":"error","error":{"type","message"}}` with Anthropic's status and types.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = http::json_bytes(status(e), Bytes::from(body(e)));
    if let Some(secs) = e.retry_after_secs() {
        resp.headers_mut()
            .insert(hyper::header::RETRY_AFTER, secs.into());
    }
    resp
}

/// The `error` event that ends a Messages stream that failed after it began.
pub fn stream_error(e: &ApiError) -> Bytes {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(&body(e));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `POST /v1/messages/count_tokens`: an estimate (about four bytes of text per token),
/// since the host cannot run each provider's tokenizer.
pub async fn count_tokens(
    req: Request<Incoming>,
    max_body_bytes: usize,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body_of(&parts.headers, parts.version, body, max_body_bytes).await?;
    let mut head: Head = parse_json_head(&body)?;
    model_value(head.model.take())?;
    let n = formats::anthropic::count_tokens(&body).map_err(super::invalid)?;
    Ok(http::json(200, &serde_json::json!({"input_tokens": n})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::ProviderError;

    fn rendered(e: &ApiError) -> (u16, serde_json::Value) {
        (status(e), serde_json::from_slice(&body(e)).unwrap())
    }

    #[test]
    fn errors_take_anthropic_types_and_an_upstream_529_stays_529() {
        let (s, v) = rendered(&ApiError::Unauthorized("bad key".into()));
        assert_eq!(s, 401);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["message"], "bad key");
        let (s, v) = rendered(&ApiError::ModelNotFound {
            message: "no model".into(),
        });
        assert_eq!(
            (s, v["error"]["type"].as_str()),
            (404, Some("not_found_error"))
        );
        let (s, v) = rendered(&ApiError::MissingField("model"));
        assert_eq!(
            (s, v["error"]["type"].as_str()),
            (400, Some("invalid_request_error"))
        );
        let (s, v) = rendered(&ApiError::Forbidden("disabled".into()));
        assert_eq!(
            (s, v["error"]["type"].as_str()),
            (403, Some("permission_error"))
        );
        let limited = ApiError::Provider(ProviderError::rate_limited("slow", Some(2000)));
        let (s, v) = rendered(&limited);
        assert_eq!(
            (s, v["error"]["type"].as_str()),
            (429, Some("rate_limit_error"))
        );
        let overloaded = ApiError::Provider(ProviderError::upstream("Overloaded").with_status(529));
        let (s, v) = rendered(&overloaded);
        assert_eq!(
            (s, v["error"]["type"].as_str()),
            (529, Some("overloaded_error"))
        );
        let (s, v) = rendered(&ApiError::Internal("x".into()));
        assert_eq!((s, v["error"]["type"].as_str()), (500, Some("api_error")));
        assert!(stream_error(&overloaded).starts_with(b"event: error\ndata: {"));
    }
}
