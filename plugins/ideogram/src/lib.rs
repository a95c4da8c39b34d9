//! `ideogram`: Ideogram's image models behind OpenAI's `POST /v1/images/generations`.
//!
//! The `ideogram-v3*` models go to Ideogram 3.0's `POST /v1/ideogram-v3/generate`, the
//! primary API: it is Ideogram's current model, the one its docs lead with, and it takes
//! a multipart form, which the plugin builds itself (the host sends the body and
//! content type `prepare` returns). The older models (`V_2`, `V_2_TURBO`, `V_2A`,
//! `V_1`, ...) are only served by the legacy JSON `POST /generate`, which the plugin
//! speaks too, so they stay reachable. The key travels in the `Api-Key` header.
//!
//! Replies are links: Ideogram never returns image bytes and a plugin does no I/O, so
//! `response_format: "b64_json"` is refused with a message saying so. Chat and
//! embeddings are refused as bad requests. Modules: `request` maps the OpenAI body,
//! `multipart` writes the form, `response` maps the reply back, `errors` classifies
//! failures.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod errors;
mod manifest;
mod multipart;
mod request;
mod response;

use plugin_api::serde_json::Value;
use plugin_api::*;

pub use crate::errors::CONTENT_POLICY;
pub use crate::manifest::{BASE_URL, KEY_HEADER};
pub use crate::request::{Api, ImageRequest, LEGACY_MODELS, MAX_IMAGES, RESOLUTIONS, V3_MODELS};

/// One configured Ideogram upstream.
///
/// Options (all optional), under `[[providers]] options`:
/// - `headers`: `{ "<name>": "<value>" }` sent with every request.
#[derive(Debug)]
pub struct Ideogram {
    /// Without a trailing `/`.
    base_url: String,
    headers: Vec<(String, String)>,
}

/// Headers the plugin sets itself; an operator copy would be sent twice.
const OWN_HEADERS: &[&str] = &["content-type", KEY_HEADER];

const IMAGES_ONLY: &str =
    "the ideogram provider only generates images (POST /v1/images/generations)";

impl Ideogram {
    fn url(&self, api: Api) -> String {
        match api {
            Api::V3 { .. } => format!("{}/v1/ideogram-v3/generate", self.base_url),
            Api::Legacy { .. } => format!("{}/generate", self.base_url),
        }
    }
}

fn base_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let url = if url.is_empty() { BASE_URL } else { url };
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(['?', '#'])
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(format!(
            "ideogram: base_url \"{raw}\" must be an http(s) URL without query or fragment, \
             e.g. {BASE_URL}"
        ));
    }
    Ok(url.to_string())
}

impl Plugin for Ideogram {
    /// Ideogram has no streamed generation; [`Plugin::stream`] always refuses.
    type Decoder = NoStream;

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn new(config: ProviderConfig) -> Result<Self, String> {
        if !matches!(config.options, Value::Null | Value::Object(_)) {
            return Err("ideogram: options must be a table".into());
        }
        let headers = plugin_api::options::header_table(config.options.get("headers"))
            .map_err(|e| format!("ideogram: {e}"))?;
        if let Some((name, _)) = headers
            .iter()
            .find(|(n, _)| OWN_HEADERS.iter().any(|o| n.eq_ignore_ascii_case(o)))
        {
            return Err(format!(
                "ideogram: options.headers.{name} is set by the plugin itself"
            ));
        }
        Ok(Ideogram {
            base_url: base_url(&config.base_url)?,
            headers,
        })
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        if call.endpoint != Endpoint::Images || call.format != Format::OpenAiChat {
            return Err(ProviderError::bad_request(IMAGES_ONLY));
        }
        if call.stream {
            return Err(ProviderError::bad_request(
                "Ideogram does not stream image generation; send the request without \"stream\"",
            ));
        }
        let api = Api::of(call.model)?;
        let body: Value = call.json()?;
        let image = ImageRequest::from_openai(&body, api)?;
        let mut req = HttpRequest::post(self.url(api));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req = match api {
            Api::V3 { .. } => {
                let (bytes, content_type) = multipart::form(&image.v3_fields());
                req.body = bytes;
                req.header("content-type", content_type)
            }
            Api::Legacy { model } => req.json(&image.legacy_body(model))?,
        };
        if let Some(key) = call.api_key().map(str::trim).filter(|k| !k.is_empty()) {
            req = req.header(KEY_HEADER, key);
        }
        Ok(Prepared::Upstream(req.header("accept", "application/json")))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        if !response.is_success() {
            return Err(errors::from_response(response));
        }
        if call.endpoint != Endpoint::Images {
            return Err(ProviderError::bad_request(IMAGES_ONLY));
        }
        response::images(response.body, call.now_unix_ms)
    }

    fn stream(&self, _call: &Call<'_>) -> Result<NoStream, ProviderError> {
        Err(ProviderError::bad_request(
            "Ideogram does not stream; the ideogram provider only generates images",
        ))
    }
}

/// The decoder type of a plugin that never streams; [`Plugin::stream`] never makes one.
#[derive(Debug)]
pub struct NoStream;

impl StreamDecoder for NoStream {
    fn feed(&mut self, _bytes: &[u8], _out: &mut StreamOutput) -> Result<(), ProviderError> {
        Err(ProviderError::internal(
            "the ideogram provider does not stream",
        ))
    }

    fn finish(&mut self, _out: &mut StreamOutput) -> Result<(), ProviderError> {
        Err(ProviderError::internal(
            "the ideogram provider does not stream",
        ))
    }
}

plugin_api::export_plugin!(Ideogram);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(base_url("").unwrap(), BASE_URL);
        assert_eq!(
            base_url(" http://127.0.0.1:9/ ").unwrap(),
            "http://127.0.0.1:9"
        );
        for bad in [
            "api.ideogram.ai",
            "https://x/?a=1",
            "ftp://x",
            "https://a b",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }
}
