//! Reading and checking a consumer request before it is routed.

use super::validate::{
    ArrayOf, Count, EmbeddingInput, Int, Message, Number, Object, Stop, Str, Tool,
};
use super::{CanonicalCall, Format};
use crate::bounds::MAX_MODEL_NAME;
use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use plugin_api::Endpoint;
use serde::Deserialize;
use std::time::Duration;

/// The fields the host needs, and the common fields type-checked (without being kept) so
/// a plugin only ever sees a well-typed request; the rest is the plugin's business.
#[derive(Deserialize)]
pub struct Head {
    pub model: Option<serde_json::Value>,
    pub messages: Option<ArrayOf<Message>>,
    pub input: Option<EmbeddingInput>,
    pub prompt: Option<Str>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    #[serde(default, rename = "max_tokens")]
    _max_tokens: Option<Count>,
    #[serde(default, rename = "max_completion_tokens")]
    _max_completion_tokens: Option<Count>,
    #[serde(default, rename = "n")]
    _n: Option<Count>,
    #[serde(default, rename = "seed")]
    _seed: Option<Int>,
    #[serde(default, rename = "dimensions")]
    _dimensions: Option<Count>,
    #[serde(default, rename = "temperature")]
    _temperature: Option<Number>,
    #[serde(default, rename = "top_p")]
    _top_p: Option<Number>,
    #[serde(default, rename = "presence_penalty")]
    _presence_penalty: Option<Number>,
    #[serde(default, rename = "frequency_penalty")]
    _frequency_penalty: Option<Number>,
    #[serde(default, rename = "stop")]
    _stop: Option<Stop>,
    #[serde(default, rename = "tools")]
    _tools: Option<ArrayOf<Tool>>,
    #[serde(default, rename = "user")]
    _user: Option<Str>,
    #[serde(default, rename = "response_format")]
    _response_format: Option<Object>,
    #[serde(default, rename = "size")]
    _size: Option<Str>,
    #[serde(default, rename = "encoding_format")]
    _encoding_format: Option<Str>,
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
    let (parts, body) = req.into_parts();
    read_body_of(&parts.headers, parts.version, body, limit).await
}

/// [`read_body`] for a request already split into its head and body.
pub async fn read_body_of(
    headers: &hyper::HeaderMap,
    version: hyper::Version,
    mut body: Incoming,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let h2 = version == hyper::Version::HTTP_2;
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(body, declared, h2, limit).await);
    }
    // A body that trickles in, or is shorter than its content-length, must not hold the
    // request (and its connection) forever.
    let within = crate::server::conn_watch::body_read_timeout();
    let read = async {
        // A body that arrives as one frame (most do) is kept as hyper handed it over, a
        // view of its read buffer: no copy. Only a second frame starts a buffer.
        let mut first: Option<Bytes> = None;
        let mut buf: Option<bytes::BytesMut> = None;
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::BodyRead(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > limit {
                    return Err(ApiError::BodyTooLarge { limit });
                }
                if let Some(b) = buf.as_mut() {
                    b.extend_from_slice(&data);
                } else if let Some(f) = first.take() {
                    let size = (declared.unwrap_or(0) as usize).clamp(total, limit);
                    let mut b = bytes::BytesMut::with_capacity(size);
                    b.extend_from_slice(&f);
                    b.extend_from_slice(&data);
                    buf = Some(b);
                } else {
                    first = Some(data);
                }
            }
        }
        Ok(match buf {
            Some(b) => b.freeze(),
            None => first.unwrap_or_default(),
        })
    };
    match crate::timeout::within(within, read).await {
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

/// Reads and checks an OpenAI-shaped call: the body within the size and time limits, the
/// head's types, the model, and the field each endpoint requires.
pub async fn read_call(
    req: Request<Incoming>,
    endpoint: Endpoint,
    max_body_bytes: usize,
) -> Result<CanonicalCall, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body_of(&parts.headers, parts.version, body, max_body_bytes).await?;
    if matches!(
        endpoint,
        Endpoint::AudioTranscriptions | Endpoint::AudioTranslations
    ) {
        let model = upload_model(&parts.headers, &body)?;
        return Ok(CanonicalCall {
            format: Format::OpenAiChat,
            endpoint,
            body: Ok(body),
            native: None,
            model,
            stream: false,
            include_usage: false,
            headers: parts.headers,
            shape: super::reshape::Shape::chat(),
        });
    }
    let mut head = parse_head(&body)?;
    let model = model_of(&mut head)?;
    match endpoint {
        Endpoint::Chat if head.messages.is_none() => {
            return Err(ApiError::MissingField("messages"))
        }
        Endpoint::Embeddings if head.input.is_none() => {
            return Err(ApiError::MissingField("input"))
        }
        Endpoint::Images if head.prompt.is_none() => return Err(ApiError::MissingField("prompt")),
        Endpoint::AudioSpeech if head.input.is_none() => {
            return Err(ApiError::MissingField("input"))
        }
        _ => {}
    }
    // Speech is always streamed: the audio reaches the client as it is made.
    let stream = (endpoint == Endpoint::Chat && head.stream.unwrap_or(false))
        || endpoint == Endpoint::AudioSpeech;
    let include_usage = stream
        && head
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    Ok(CanonicalCall {
        format: Format::OpenAiChat,
        endpoint,
        body: Ok(body),
        native: None,
        model,
        stream,
        include_usage,
        headers: parts.headers,
        shape: super::reshape::Shape::chat(),
    })
}

/// The `model` field of an audio upload, which must also carry a `file`.
fn upload_model(headers: &hyper::HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    use plugin_api::multipart;
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multipart::boundary(content_type).ok_or_else(|| ApiError::InvalidField {
        field: "body",
        message: "an audio upload must be sent as multipart/form-data (with a boundary), with 'file' and 'model' fields".into(),
    })?;
    if multipart::field(body, boundary, "file").is_none() {
        return Err(ApiError::MissingField("file"));
    }
    let model = multipart::field(body, boundary, "model").ok_or(ApiError::MissingField("model"))?;
    let model = std::str::from_utf8(model).map_err(|_| ApiError::InvalidField {
        field: "model",
        message: "must be text such as \"openai/whisper-1\"".into(),
    })?;
    model_value(Some(serde_json::Value::String(model.trim().to_string())))
}

pub fn parse_head(body: &[u8]) -> Result<Head, ApiError> {
    parse_json_head(body)
}

/// Reads the fields `T` declares from a JSON object body; a wrong type is a 400 naming
/// its path, anything that is not one JSON object a 400 saying so.
pub fn parse_json_head<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // The common case first: a plain parse records no path (serde_path_to_error keeps
    // every key it passes as a `String`). Only a failed parse runs again for its path.
    if let Ok(head) = serde_json::from_slice::<T>(body) {
        return Ok(head);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let head = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if path == "." => ApiError::InvalidField {
                field: "body",
                message: inner.to_string(),
            },
            serde_json::error::Category::Data if path == "model" => ApiError::InvalidField {
                field: "model",
                message: "must be a non-empty string such as \"echo/echo-1\"".into(),
            },
            serde_json::error::Category::Data => ApiError::InvalidParam {
                param: path,
                message: without_position(&inner),
            },
            _ => ApiError::InvalidJson(inner.to_string()),
        }
    })?;
    de.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(head)
}

/// A serde error's text without its " at line 1 column 57" suffix: the path says where.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The `model` field, which must be a non-empty string (taken out of `head`).
pub fn model_of(head: &mut Head) -> Result<String, ApiError> {
    model_value(head.model.take())
}

/// A `model` value, which must be a non-empty string of bounded length.
pub fn model_value(model: Option<serde_json::Value>) -> Result<String, ApiError> {
    match model {
        None | Some(serde_json::Value::Null) => Err(ApiError::MissingField("model")),
        Some(serde_json::Value::String(s)) if s.len() > MAX_MODEL_NAME => {
            Err(ApiError::InvalidField {
                field: "model",
                message: format!(
                    "is {} bytes long; model names are at most {MAX_MODEL_NAME} bytes",
                    s.len()
                ),
            })
        }
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
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
            Err(ApiError::InvalidParam { .. })
        ));
        assert!(matches!(
            parse_head(b"[1]"),
            Err(ApiError::InvalidField { .. })
        ));
        let mut h = parse_head(
            br#"{"model":"a/b","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(h.stream, Some(true));
        assert_eq!(model_of(&mut h).unwrap(), "a/b");
        let mut h = parse_head(br#"{"model":""}"#).unwrap();
        assert!(model_of(&mut h).is_err());
        let long = format!(r#"{{"model":"echo/{}"}}"#, "x".repeat(MAX_MODEL_NAME));
        let mut h = parse_head(long.as_bytes()).unwrap();
        assert!(matches!(
            model_of(&mut h),
            Err(ApiError::InvalidField { field: "model", .. })
        ));
    }

    #[test]
    fn deeper_types_are_checked_with_their_path() {
        let param = |body: &str| match parse_head(body.as_bytes()) {
            Err(ApiError::InvalidParam { param, message }) => format!("{param}: {message}"),
            Err(other) => panic!("{body}: {other:?}"),
            Ok(_) => "ok".to_string(),
        };
        let m = param(r#"{"messages":[1,2]}"#);
        assert!(m.starts_with("messages[0]: "), "{m}");
        assert!(m.contains("a message object"), "{m}");
        let m = param(r#"{"messages":[{"role":"user","content":5}]}"#);
        assert!(m.starts_with("messages[0].content: "), "{m}");
        assert!(
            m.contains("a string, an array of content parts, or null"),
            "{m}"
        );
        assert!(param(r#"{"messages":[{"content":"hi"}]}"#).starts_with("messages[0]: "));
        assert!(param(r#"{"max_tokens":"ten"}"#).starts_with("max_tokens: "));
        assert!(param(r#"{"max_tokens":-1}"#).starts_with("max_tokens: "));
        assert!(param(r#"{"temperature":"hot"}"#).starts_with("temperature: "));
        assert!(param(r#"{"stop":[1]}"#).starts_with("stop[0]: "));
        assert!(param(r#"{"tools":[{"function":{}}]}"#).starts_with("tools[0]: "));
        assert!(param(r#"{"input":{"a":1}}"#).starts_with("input: "));
        assert!(
            param(r#"{"messages":[{"role":"user","content":[{"text":"x"}]}]}"#)
                .starts_with("messages[0].content[0]: ")
        );
        for ok in [
            r#"{"model":"a/b","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"temperature":0.5,"stop":["x"]}"#,
            r#"{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:,"}}]}]}"#,
            r#"{"input":"x"}"#,
            r#"{"input":["x","y"]}"#,
            r#"{"input":[1,2]}"#,
            r#"{"input":[[1],[2]]}"#,
            r#"{"prompt":"a cat","n":1,"size":"256x256"}"#,
            r#"{"unknown_field":{"any":[1,"x"]}}"#,
        ] {
            assert_eq!(param(ok), "ok", "{ok}");
        }
    }
}
