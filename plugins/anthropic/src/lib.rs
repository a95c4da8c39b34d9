//! `anthropic`: Anthropic's Messages API behind the OpenAI Chat Completions shape.
//!
//! Translates chat requests (system prompt, alternating turns, images, tools, tool
//! results), replies (text, tool calls, stop reasons, cache token counts) and the
//! streaming event sequence, and classifies Anthropic's errors. Calls that arrive in the
//! Messages format itself ([`Format::AnthropicMessages`]) are not translated: the body
//! goes upstream as sent and the reply comes back as pass-through (see `native`). Pure
//! translation: the host sends and receives.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod manifest;
mod native;
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

/// Whether the call is in the Messages format (true) or OpenAI chat (false); the
/// Responses format is not one this provider declared.
fn is_native(call: &Call<'_>) -> Result<bool, ProviderError> {
    match call.format {
        Format::OpenAiChat => Ok(false),
        Format::AnthropicMessages => Ok(true),
        other => Err(ProviderError::bad_request(format!(
            "the {} format is not supported by anthropic",
            other.as_str()
        ))),
    }
}

/// The headers of every Messages API request: version, betas, key, stream, the
/// operator's own.
fn with_headers(
    mut req: HttpRequest,
    call: &Call<'_>,
    s: &Settings,
    version: &str,
    beta: Option<&str>,
) -> HttpRequest {
    req = req.header("anthropic-version", version);
    if let Some(key) = call.api_key() {
        req = req.header("x-api-key", key);
    }
    if let Some(beta) = beta {
        req = req.header("anthropic-beta", beta);
    }
    if call.stream {
        req = req.header("accept", "text/event-stream");
    }
    for (name, value) in &s.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    req
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
                Endpoint::Images => "image generation is",
                _ => "audio is",
            };
            return Err(ProviderError::bad_request(format!(
                "{what} not supported by anthropic"
            )));
        }
        let s = &self.settings;
        if is_native(call)? {
            return native::prepare(call, s);
        }
        let request: Value = call.json()?;
        let body = request::translate(&request, call.model, call.stream, s)?;
        let req = HttpRequest::post(format!("{}/v1/messages", s.base_url)).json(&body)?;
        Ok(Prepared::Upstream(with_headers(
            req,
            call,
            s,
            &s.version,
            s.beta.as_deref(),
        )))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        let native = is_native(call)?;
        if !response.is_success() {
            return Err(response::error_from_response(response));
        }
        let reply = if native {
            native::reply(response.body)
        } else {
            response::completion(call.model, response.body)
        };
        reply.map_err(|e| match e.status {
            None => e.with_status(response.status),
            Some(_) => e,
        })
    }

    fn stream(&self, call: &Call<'_>) -> Result<AnthropicStream, ProviderError> {
        if is_native(call)? {
            return Ok(AnthropicStream::native());
        }
        Ok(AnthropicStream::new(
            call.model,
            call.include_usage,
            unix_now(),
        ))
    }
}

plugin_api::export_plugin!(Anthropic);
