//! `anthropic`: Anthropic's Messages API behind the OpenAI Chat Completions shape.
//!
//! Translates chat requests (system prompt, alternating turns, images, tools, tool
//! results), replies (text, tool calls, stop reasons, cache token counts) and the
//! streaming event sequence, and classifies Anthropic's errors. Pure translation: the
//! host sends and receives.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod manifest;
mod request;
mod response;
mod stream;

pub use config::{Settings, DEFAULT_BASE_URL, DEFAULT_MAX_TOKENS, DEFAULT_VERSION};
pub use stream::AnthropicStream;

use plugin_api::openai::unix_now;
use plugin_api::*;
use serde_json::Value;

/// One configured Anthropic provider instance.
pub struct Anthropic {
    settings: Settings,
}

impl Plugin for Anthropic {
    type Decoder = AnthropicStream;

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn new(config: ProviderConfig) -> Result<Self, String> {
        Ok(Anthropic {
            settings: Settings::from_config(&config)?,
        })
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        if call.endpoint != Endpoint::Chat {
            let what = match call.endpoint {
                Endpoint::Embeddings => "embeddings are",
                _ => "image generation is",
            };
            return Err(ProviderError::bad_request(format!(
                "{what} not supported by anthropic"
            )));
        }
        let request: Value = call.json()?;
        let body = request::translate(&request, call.model, call.stream, &self.settings)?;
        let s = &self.settings;
        let mut req = HttpRequest::post(format!("{}/v1/messages", s.base_url))
            .json(&body)?
            .header("anthropic-version", s.version.as_str());
        if let Some(key) = call.api_key() {
            req = req.header("x-api-key", key);
        }
        if let Some(beta) = &s.beta {
            req = req.header("anthropic-beta", beta.as_str());
        }
        if call.stream {
            req = req.header("accept", "text/event-stream");
        }
        for (name, value) in &s.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        Ok(Prepared::Upstream(req))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        if !response.is_success() {
            return Err(response::error_from_response(response));
        }
        response::completion(call.model, response.body).map_err(|e| match e.status {
            None => e.with_status(response.status),
            Some(_) => e,
        })
    }

    fn stream(&self, call: &Call<'_>) -> Result<AnthropicStream, ProviderError> {
        Ok(AnthropicStream::new(
            call.model,
            call.include_usage,
            unix_now(),
        ))
    }
}

plugin_api::export_plugin!(Anthropic);
