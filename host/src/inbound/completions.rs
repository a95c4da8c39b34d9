//! Legacy text completions (`POST /v1/completions`), for old clients: always translated
//! to chat (the `formats` crate) and back.

use super::openai::{model_value, parse_json_head, read_body_of};
use super::reshape::Shape;
use super::{CanonicalCall, Format};
use crate::error::ApiError;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::Request;
use plugin_api::Endpoint;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
struct Head {
    model: Option<serde_json::Value>,
}

pub async fn read_call(
    req: Request<Incoming>,
    max_body_bytes: usize,
) -> Result<CanonicalCall, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body_of(&parts.headers, parts.version, body, max_body_bytes).await?;
    let mut head: Head = parse_json_head(&body)?;
    let model = model_value(head.model.take())?;
    let chat = formats::completions::to_chat(&body).map_err(super::invalid)?;
    Ok(CanonicalCall {
        format: Format::OpenAiCompletions,
        endpoint: Endpoint::Chat,
        shape: Arc::new(Shape::Completions {
            include_usage: chat.include_usage,
        }),
        stream: chat.stream,
        include_usage: chat.stream,
        body: Ok(Bytes::from(chat.body)),
        native: None,
        model,
        headers: parts.headers,
    })
}
