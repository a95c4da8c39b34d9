//! `bedrock`: Amazon Bedrock, translated to and from the OpenAI shape.
//!
//! - **Chat** goes through the Converse API: `POST /model/{id}/converse`, or
//!   `/converse-stream` when streamed (a binary AWS event stream, decoded by
//!   [`eventstream`]). System prompts, images (data URLs, `s3://` URIs), documents
//!   (`file` parts), tools and tool results, stop reasons and usage, with cache read and
//!   write tokens, are translated; Anthropic-style `cache_control` on a content part
//!   becomes a Converse `cachePoint` after it.
//! - **Embeddings** go through `InvokeModel` (`POST /model/{id}/invoke`) for Amazon
//!   Titan (`amazon.titan-embed-*`, one input per call) and Cohere
//!   (`cohere.embed-*`, batches) models.
//!
//! Model ids travel percent-encoded as one path segment
//! (`anthropic.claude-3-5-sonnet-20240620-v1%3A0`), so inference-profile ids and ARNs
//! work as they are.
//!
//! ## Credentials
//!
//! Each call uses, in this order:
//!
//! 1. The credential the host gives the call. A stored secret (the host hands it over
//!    as an API key) is read as:
//!    - `ACCESS_KEY_ID:SECRET_ACCESS_KEY` or `ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN`
//!      (the id is 16 to 128 upper-case letters and digits, `AKIA...` / `ASIA...`);
//!    - or JSON: `{"access_key_id": "...", "secret_access_key": "...",
//!      "session_token": "..."?, "region": "..."?}`;
//!    - anything else: a Bedrock API key, sent as `Authorization: Bearer`.
//!
//!    Access keys sign the request with SigV4 (service `bedrock`, the call's region);
//!    a host that passes `Credential::AccessKey` directly is served the same way.
//! 2. Without one, what the environment held **when the provider was built**
//!    (read once in `Plugin::new`; calls stay pure): `AWS_BEARER_TOKEN_BEDROCK` first,
//!    as the AWS SDKs prefer it for Bedrock, else `AWS_ACCESS_KEY_ID` +
//!    `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`). Temporary keys read this way
//!    are not refreshed: restart (or reload the provider) when they expire, or store
//!    them as a credential.
//!
//! With neither, the call fails as an auth error naming these variables. The manifest
//! declares `auth = none` so that the host lets calls reach the plugin without a stored
//! key, and `api_key_env = AWS_BEARER_TOKEN_BEDROCK` so that the host itself also offers
//! that variable as the call's credential (and tracks its health).
//!
//! ## Region and endpoint
//!
//! The region of a call is `options.region`; else the region in a configured
//! `base_url` that is an AWS Bedrock host (`bedrock-runtime.{region}.amazonaws.com`,
//! VPC endpoints too); else the stored credential's `region`; else `AWS_REGION` /
//! `AWS_DEFAULT_REGION` (read at start); else `us-east-1`.
//!
//! The endpoint is `base_url` when configured (a proxy, a VPC endpoint, a mock; it may
//! hold `{region}`), else `https://bedrock-runtime.{region}.amazonaws.com`. The default
//! provider's `base_url` is empty for that reason.
//!
//! ## Options (`[[providers]] options`)
//!
//! - `region`: a region name, overriding the rest (above).
//! - `headers`: extra headers for every request, sent unsigned; the ones the plugin
//!   signs or sets (`authorization`, `content-type`, `accept`, `x-amz-*`) are refused.
//!
//! ## What is refused
//!
//! Requests Bedrock cannot serve are refused before they leave: `n` other than 1,
//! `response_format` JSON modes, audio input, image URLs other than data URLs and
//! `s3://`, legacy `function` messages and `function_call`, assistant tool calls
//! without an id, image generation, other client formats than OpenAI chat.
//!
//! Modules: `config` (credentials, region, endpoint), [`sigv4`] (request signing),
//! [`eventstream`] (stream framing), `request` / `response` / `stream` (Converse),
//! `embed` (InvokeModel embeddings), `errors` (classification).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod embed;
mod errors;
pub mod eventstream;
mod manifest;
mod request;
mod response;
pub mod sigv4;
mod stream;

use config::{Auth, Environment, Settings};
use plugin_api::serde_json::{self, Value};
use plugin_api::*;

pub use config::{
    parse_secret, OwnedKeys, Secret, DEFAULT_REGION, ENDPOINT_TEMPLATE, ENV_ACCESS_KEY_ID,
    ENV_BEARER, ENV_DEFAULT_REGION, ENV_REGION, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};
pub use stream::BedrockStream;

/// The SigV4 service name of the Bedrock runtime.
pub const SERVICE: &str = "bedrock";

/// One configured Bedrock upstream.
#[derive(Debug)]
pub struct Bedrock {
    settings: Settings,
}

impl Bedrock {
    /// A provider with the environment given as a lookup (tests, embedding hosts);
    /// [`Plugin::new`] passes the process environment.
    pub fn with_env(
        config: ProviderConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        Ok(Bedrock {
            settings: Settings::new(&config, Environment::read(env)?)?,
        })
    }
}

/// The model id as Bedrock's path wants it; refuses what cannot be one.
fn model_segment(model: &str) -> Result<String, ProviderError> {
    let m = model.trim();
    if m.is_empty() {
        return Err(ProviderError::bad_request(
            "a model is required, e.g. \"bedrock/anthropic.claude-3-5-haiku-20241022-v1:0\"",
        ));
    }
    if m.len() > 2048 || m.chars().any(char::is_control) {
        return Err(ProviderError::bad_request(format!(
            "{:?} is not a valid Bedrock model id",
            m.chars().take(60).collect::<String>()
        )));
    }
    Ok(url::path_segment(m))
}

fn not_audio() -> ProviderError {
    ProviderError::bad_request("audio is not supported by the bedrock provider")
}

fn not_images() -> ProviderError {
    ProviderError::bad_request("image generation is not supported by the bedrock provider")
}

impl Plugin for Bedrock {
    type Decoder = BedrockStream;

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn new(config: ProviderConfig) -> Result<Self, String> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        if call.format != Format::OpenAiChat {
            return Err(ProviderError::bad_request(format!(
                "the bedrock provider takes OpenAI chat requests, not {}",
                call.format.as_str()
            )));
        }
        let body: Value = call.json()?;
        if !body.is_object() {
            return Err(ProviderError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let (operation, payload) = match call.endpoint {
            Endpoint::Chat => {
                let op = if call.stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                (op, request::converse(&body)?)
            }
            Endpoint::Embeddings => ("invoke", embed::request(call.model, &body)?),
            Endpoint::Images => return Err(not_images()),
            _ => return Err(not_audio()),
        };
        let model = model_segment(call.model)?;
        let auth = self.settings.auth(&call.credential)?;
        let auth = auth.get();
        let credential_region = match &auth {
            Auth::Sign { region, .. } => *region,
            Auth::Bearer(_) => None,
        };
        let region = self.settings.region(credential_region)?;
        let target = self.settings.target(region)?;
        let path = format!("{}/model/{model}/{operation}", target.base_path);
        let body = serde_json::to_vec(&payload)
            .map_err(|e| ProviderError::internal(format!("cannot encode request: {e}")))?;

        let mut headers: Vec<(String, String)> =
            vec![("content-type".into(), "application/json".into())];
        if call.endpoint == Endpoint::Embeddings {
            headers.push(("accept".into(), "application/json".into()));
        }
        match auth {
            Auth::Bearer(token) => {
                headers.push(("authorization".into(), format!("Bearer {token}")))
            }
            Auth::Sign { keys, .. } => {
                let mut signed: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                signed.push(("host", &target.host));
                let s = sigv4::sign_request(
                    &keys,
                    &sigv4::Scope {
                        region,
                        service: SERVICE,
                        unix_ms: call.now_unix_ms,
                        normalize_path: true,
                    },
                    &sigv4::Request {
                        method: "POST",
                        path: &path,
                        query: "",
                        headers: &signed,
                        body: &body,
                    },
                );
                headers.extend(s.headers(&keys));
            }
        }
        headers.extend(self.settings.headers.iter().cloned());
        Ok(Prepared::Upstream(HttpRequest {
            method: "POST".into(),
            url: format!("{}{path}", target.origin),
            headers,
            body,
        }))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        if !response.is_success() {
            return Err(errors::from_response(response));
        }
        match call.endpoint {
            Endpoint::Chat => response::chat(call, response),
            Endpoint::Embeddings => embed::reply(call, response),
            Endpoint::Images => Err(not_images()),
            _ => Err(not_audio()),
        }
    }

    fn stream(&self, call: &Call<'_>) -> Result<BedrockStream, ProviderError> {
        if call.endpoint != Endpoint::Chat {
            return Err(ProviderError::bad_request(
                "only chat completions can be streamed",
            ));
        }
        Ok(BedrockStream::new(call.model, call.include_usage))
    }
}

plugin_api::export_plugin!(Bedrock);
