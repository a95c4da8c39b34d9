//! Reading and checking a consumer request before it is routed.

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// The few fields the host itself needs; the rest is the plugin's business.
#[derive(Deserialize)]
pub struct Head {
    pub model: Option<serde_json::Value>,
    pub messages: Option<IgnoredAny>,
    pub input: Option<IgnoredAny>,
    pub prompt: Option<IgnoredAny>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::BodyTooLarge { limit })
        }
        Err(e) => Err(ApiError::BodyRead(e.to_string())),
    }
}

pub fn parse_head(body: &[u8]) -> Result<Head, ApiError> {
    serde_json::from_slice::<Head>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidField {
            field: "body",
            message: e.to_string(),
        },
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

/// The `model` field, which must be a non-empty string.
pub fn model_of(head: &Head) -> Result<String, ApiError> {
    match &head.model {
        None | Some(serde_json::Value::Null) => Err(ApiError::MissingField("model")),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(ApiError::InvalidField {
            field: "model",
            message: "must be a non-empty string such as \"echo/echo-1\"".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_errors_are_classified() {
        assert!(matches!(
            parse_head(b"{not json"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_head(br#"{"stream":"yes"}"#),
            Err(ApiError::InvalidField { .. })
        ));
        assert!(matches!(
            parse_head(b"[1]"),
            Err(ApiError::InvalidField { .. })
        ));
        let h = parse_head(
            br#"{"model":"a/b","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(h.stream, Some(true));
        assert_eq!(model_of(&h).unwrap(), "a/b");
        let h = parse_head(br#"{"model":""}"#).unwrap();
        assert!(model_of(&h).is_err());
    }
}
