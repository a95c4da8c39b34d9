//! `openai`: OpenAI's API and the many servers that speak it (DeepSeek, xAI, OpenRouter,
//! Groq, Mistral, Together, Doubao on Volcengine Ark, Poe, Ollama, Azure OpenAI).
//!
//! The consumer API already is OpenAI's, so this plugin translates as little as
//! possible: bodies go upstream and replies come back byte for byte (whole replies as
//! pass-through replies, so the host forwards the upstream's bytes uncopied), except the
//! fields the gateway must control (`model`, `stream`, `stream_options.include_usage`, Azure's URL
//! and key header). What it adds is classification: every upstream failure, whatever
//! shape the server sent it in, becomes a [`ProviderError`] the host can act on.
//!
//! The `openai` provider also takes calls in OpenAI's Responses format as they are
//! ([`Format::OpenAiResponses`]): they go to `/responses` and come back as pass-through.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod audio;
mod config;
mod errors;
mod manifest;
mod responses;
mod stream;
mod usage;

use crate::config::{Flavor, Settings};
use plugin_api::json::{looks_like_object, replace_field, RawObject};
use plugin_api::serde_json::Value;
use plugin_api::*;
use serde::de::IgnoredAny;
use serde::Deserialize;

pub use crate::config::AZURE_API_VERSION;
pub use crate::manifest::AZURE_BASE_URL;
pub use crate::stream::OpenAiStream;

/// One configured OpenAI-compatible upstream.
#[derive(Debug)]
pub struct OpenAi {
    settings: Settings,
}

/// The fields of a whole reply `parse` looks at; the body itself is passed on unparsed.
#[derive(Deserialize)]
struct ReplyProbe {
    #[serde(default)]
    usage: Option<usage::UsageProbe>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    choices: Option<IgnoredAny>,
    #[serde(default)]
    data: Option<IgnoredAny>,
}

impl OpenAi {
    /// Azure addresses deployments, which operators may name differently from models.
    fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        match &self.settings.flavor {
            Flavor::Azure(a) => a.deployments.get(model).map_or(model, String::as_str),
            Flavor::OpenAi => model,
        }
    }

    fn url(&self, endpoint: Endpoint, model: &str) -> String {
        let base = &self.settings.base_url;
        let path = match endpoint {
            Endpoint::Chat => "chat/completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Images => "images/generations",
            Endpoint::AudioTranscriptions => "audio/transcriptions",
            Endpoint::AudioTranslations => "audio/translations",
            Endpoint::AudioSpeech => "audio/speech",
        };
        match &self.settings.flavor {
            Flavor::OpenAi => format!("{base}/{path}"),
            Flavor::Azure(a) if a.v1 => {
                let query = if a.api_version == "preview" {
                    "?api-version=preview"
                } else {
                    ""
                };
                format!("{base}/openai/v1/{path}{query}")
            }
            Flavor::Azure(a) => format!(
                "{base}/openai/deployments/{}/{path}?api-version={}",
                plugin_api::url::path_segment(model),
                a.api_version
            ),
        }
    }

    /// Azure serves Responses only on its `/openai/v1` paths, with the deployment in
    /// the body's `model`, whatever `api_version` chat uses.
    fn responses_url(&self) -> String {
        let base = &self.settings.base_url;
        match &self.settings.flavor {
            Flavor::OpenAi => format!("{base}/responses"),
            Flavor::Azure(a) => {
                let query = if a.api_version == "preview" {
                    "?api-version=preview"
                } else {
                    ""
                };
                format!("{base}/openai/v1/responses{query}")
            }
        }
    }

    /// Streamed calls always stream upstream, with usage on (unless the upstream refuses
    /// `stream_options`), so every call's tokens are recorded; the decoder hides usage
    /// from clients that did not ask for it.
    fn set_stream_fields(
        &self,
        body: &mut RawObject<'_>,
        stream: bool,
    ) -> Result<(), ProviderError> {
        if !stream {
            if body.get("stream") == Some("true") {
                body.set("stream", "false".into());
            }
            return Ok(());
        }
        body.set("stream", "true".into());
        if !self.settings.stream_usage {
            body.remove("stream_options");
            return Ok(());
        }
        let options = match body.get("stream_options") {
            Some(raw) if looks_like_object(raw.as_bytes()) => {
                let mut options = RawObject::parse(raw.as_bytes()).map_err(|e| {
                    ProviderError::bad_request(format!("invalid stream_options: {e}"))
                })?;
                options.set("include_usage", "true".into());
                String::from_utf8(options.to_vec()?).map_err(|e| {
                    ProviderError::internal(format!("cannot encode stream_options: {e}"))
                })?
            }
            _ => r#"{"include_usage":true}"#.to_string(),
        };
        body.set("stream_options", options);
        Ok(())
    }

    fn auth_header(&self, key: &str) -> (&'static str, String) {
        match self.settings.flavor {
            Flavor::Azure(_) => ("api-key", key.to_string()),
            Flavor::OpenAi => ("authorization", format!("Bearer {key}")),
        }
    }

    /// The key and the operator's headers, the same for every endpoint and format.
    fn with_headers(&self, mut req: HttpRequest, call: &Call<'_>) -> HttpRequest {
        let key = call.api_key().map(str::trim).filter(|k| !k.is_empty());
        if let Some(key) = key {
            let (name, value) = self.auth_header(key);
            // An operator-set header of the same name (a static gateway token) wins.
            let overridden = self
                .settings
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name));
            if !overridden {
                req = req.header(name, value);
            }
        }
        for (name, value) in &self.settings.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        req
    }

    /// An audio upload: the client's multipart body with only the `model` field changed.
    fn prepare_upload(&self, call: &Call<'_>, model: &str) -> Result<Prepared, ProviderError> {
        let content_type = call.header("content-type").unwrap_or_default();
        let model = self.upstream_model(model);
        let body = audio::upload_body(call.body, content_type, model)?;
        let mut req = HttpRequest::post(self.url(call.endpoint, model));
        req.body = body;
        req = req.header("content-type", content_type);
        Ok(Prepared::Upstream(self.with_headers(req, call)))
    }

    /// A Responses-format call: the client's body with only `model` changed.
    fn prepare_responses(&self, call: &Call<'_>, model: &str) -> Result<Prepared, ProviderError> {
        if call.endpoint != Endpoint::Chat {
            return Err(ProviderError::bad_request(
                "the Responses format is only for chat calls",
            ));
        }
        let model_json = serde_json::to_string(self.upstream_model(model))
            .map_err(|e| ProviderError::internal(format!("cannot encode model: {e}")))?;
        let mut req = HttpRequest::post(self.responses_url());
        req.body = replace_field(call.body, "model", &model_json)?;
        req = req.header("content-type", "application/json");
        Ok(Prepared::Upstream(self.with_headers(req, call)))
    }
}

/// Refuses `n` > 1 for upstreams that answer once per request (Poe), which would
/// otherwise fail or quietly return one choice. `n` of 1 or null goes on as sent.
fn check_single_choice(body: &RawObject<'_>) -> Result<(), ProviderError> {
    let Some(raw) = body.get("n") else {
        return Ok(());
    };
    let n: Option<f64> = serde_json::from_str(raw)
        .map_err(|_| ProviderError::bad_request("'n' must be a number"))?;
    match n {
        Some(n) if n > 1.0 => Err(ProviderError::bad_request(format!(
            "this provider returns one choice per request: 'n' must be 1, got {raw}"
        ))
        .with_code("unsupported_parameter")),
        _ => Ok(()),
    }
}

/// Whether the call is in the Responses format (true) or OpenAI's canonical one.
fn is_responses(call: &Call<'_>) -> Result<bool, ProviderError> {
    match call.format {
        Format::OpenAiChat => Ok(false),
        Format::OpenAiResponses => Ok(true),
        other => Err(ProviderError::bad_request(format!(
            "the {} format is not supported by this provider",
            other.as_str()
        ))),
    }
}

impl Plugin for OpenAi {
    type Decoder = OpenAiStream;

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn new(config: ProviderConfig) -> Result<Self, String> {
        Ok(OpenAi {
            settings: Settings::from_config(&config)?,
        })
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        let model = call.model.trim();
        if model.is_empty() {
            return Err(ProviderError::bad_request(
                "no model named after the provider prefix",
            ));
        }
        if is_responses(call)? {
            return self.prepare_responses(call, model);
        }
        if matches!(
            call.endpoint,
            Endpoint::AudioTranscriptions | Endpoint::AudioTranslations
        ) {
            return self.prepare_upload(call, model);
        }
        let mut body = RawObject::parse(call.body)
            .map_err(|e| ProviderError::bad_request(format!("invalid request body: {e}")))?;
        if call.endpoint == Endpoint::Chat
            && !body.get("messages").is_some_and(|m| m.starts_with('['))
        {
            return Err(ProviderError::bad_request(
                "'messages' must be an array of chat messages",
            ));
        }
        if call.endpoint == Endpoint::Chat && self.settings.single_choice {
            check_single_choice(&body)?;
        }
        let model = self.upstream_model(model);
        let model_json = serde_json::to_string(model)
            .map_err(|e| ProviderError::internal(format!("cannot encode model: {e}")))?;
        body.set("model", model_json);
        if call.endpoint == Endpoint::Chat {
            self.set_stream_fields(&mut body, call.stream)?;
        }

        let mut req = HttpRequest::post(self.url(call.endpoint, model));
        req.body = body.to_vec()?;
        req = req.header("content-type", "application/json");
        Ok(Prepared::Upstream(self.with_headers(req, call)))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        let responses = is_responses(call)?;
        if !response.is_success() {
            return Err(errors::from_response(response));
        }
        if responses {
            return responses::reply(response.body);
        }
        if audio::is_audio(call.endpoint) {
            return Ok(audio::reply(response.body));
        }
        if !looks_like_object(response.body) {
            return Err(ProviderError::upstream(
                "unreadable reply from upstream: expected a JSON object",
            ));
        }
        let probe: ReplyProbe = serde_json::from_slice(response.body)
            .map_err(|e| ProviderError::upstream(format!("unreadable reply from upstream: {e}")))?;
        // Some compatible servers report failures with a 2xx status and an error body.
        if let Some(error) = probe.error.as_ref().filter(|e| !e.is_null()) {
            if probe.choices.is_none() && probe.data.is_none() {
                return Err(errors::from_payload(error));
            }
        }
        // The body already is what the client asked for: the host sends the upstream's
        // bytes on, uncopied.
        Ok(Reply::pass_through(
            probe.usage.as_ref().and_then(usage::UsageProbe::usage),
        ))
    }

    fn stream(&self, call: &Call<'_>) -> Result<OpenAiStream, ProviderError> {
        if is_responses(call)? {
            return Ok(OpenAiStream::responses());
        }
        if audio::is_audio(call.endpoint) {
            return Ok(OpenAiStream::bytes());
        }
        // Nothing to hide (the client wants usage) and nothing to add (the upstream
        // reports it as OpenAI does): the upstream's bytes go on unchanged.
        let pass_through =
            self.settings.stream_pass_through && self.settings.stream_usage && call.include_usage;
        Ok(OpenAiStream::new(call.include_usage).with_pass_through(pass_through))
    }
}

plugin_api::export_plugin!(OpenAi);

#[cfg(test)]
mod tests {

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            plugin_api::url::path_segment("gpt-4o_mini.v2~x"),
            "gpt-4o_mini.v2~x"
        );
        assert_eq!(plugin_api::url::path_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
