//! Reading and checking a consumer request before it is routed.

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::time::Duration;

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

/// How much of an oversized body is read and thrown away before answering 413. Closing a
/// socket with unread data makes the kernel send a reset, which can destroy the 413 before
/// the client reads it; past this, the connection is closed anyway.
const DRAIN_MAX: u64 = 8 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// Over HTTP/2 the rest of an oversized body is read in the background after the 413 is
/// sent, up to this much and this long: an HTTP/2 stream whose body is dropped unread is
/// reset (RST_STREAM), and clients such as curl then fail the request instead of reading
/// the 413. Past these bounds the stream is reset with NO_ERROR, as RFC 9113 §8.1 allows.
const H2_DRAIN_MAX: u64 = 64 * 1024 * 1024;
const H2_DRAIN_TIME: Duration = Duration::from_secs(30);

pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let h2 = req.version() == hyper::Version::HTTP_2;
    let mut body = req.into_body();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(body, declared, h2, limit).await);
    }
    // A body that trickles in, or is shorter than its content-length, must not hold the
    // request (and its connection) forever.
    let within = crate::conn_watch::body_read_timeout();
    let read = async {
        let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::BodyRead(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(ApiError::BodyTooLarge { limit });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(within, read).await {
        Ok(Err(ApiError::BodyTooLarge { limit })) => Err(too_large(body, None, h2, limit).await),
        Ok(r) => r,
        Err(_) => Err(ApiError::BodyTimeout(within.as_millis() as u64)),
    }
}

/// The 413, after draining what is left of the body so the client can read it.
async fn too_large(mut body: Incoming, declared: Option<u64>, h2: bool, limit: usize) -> ApiError {
    if h2 {
        tokio::spawn(async move { drain(&mut body, H2_DRAIN_MAX, H2_DRAIN_TIME).await });
    } else if declared.is_none_or(|n| n <= DRAIN_MAX) {
        drain(&mut body, DRAIN_MAX, DRAIN_TIME).await;
    }
    ApiError::BodyTooLarge { limit }
}

/// Reads and discards what is left of a body, within bounds of size and time.
async fn drain(body: &mut Incoming, max: u64, within: Duration) {
    let mut seen = 0u64;
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                seen += d.len() as u64;
                if seen > max {
                    break;
                }
            }
        }
    })
    .await;
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
