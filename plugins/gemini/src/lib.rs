//! `gemini`: Google's Gemini models through the Generative Language API (Google AI
//! Studio keys), translated to and from the OpenAI shape.
//!
//! Chat goes to `models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`
//! when streamed; embeddings to `:embedContent` / `:batchEmbedContents`. The key travels
//! in the `x-goog-api-key` header, never in the URL, so it stays out of logs and traces.
//! Modules: `request` builds the Gemini body, `response` and `stream` read replies
//! back, `errors` classifies Google's failures, `schema` adapts JSON Schemas.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod embed;
mod errors;
mod manifest;
mod request;
mod response;
mod schema;
mod stream;

use plugin_api::serde_json::Value;
use plugin_api::*;

pub use crate::manifest::BASE_URL;
pub use crate::request::SKIP_SIGNATURE;
pub use crate::stream::GeminiStream;

/// One configured Gemini upstream.
#[derive(Debug)]
pub struct Gemini {
    base_url: String,
    /// Operator's extra headers (`options.headers`), sent with every request.
    headers: Vec<(String, String)>,
}

/// Headers the plugin sets itself; an operator copy would be sent twice.
const OWN_HEADERS: &[&str] = &["content-type", "x-goog-api-key"];

fn extra_headers(options: &Value) -> Result<Vec<(String, String)>, String> {
    let headers = match options.get("headers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(h)) => h,
        Some(_) => return Err("options.headers must be an object of strings".into()),
    };
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let value = value
            .as_str()
            .ok_or_else(|| format!("options.headers.{name} must be a string"))?;
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !name_ok || value.contains(['\r', '\n']) {
            return Err(format!("options.headers.{name} is not a valid header"));
        }
        if OWN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            return Err(format!(
                "options.headers.{name} is set by the gemini plugin itself"
            ));
        }
        out.push((name.clone(), value.to_string()));
    }
    Ok(out)
}

/// The resource a model name addresses: `models/<name>` for a bare name; names that
/// already carry a collection (`models/...`, `tunedModels/...`) are kept. Anything that
/// could change the URL's meaning is refused.
fn resource(model: &str) -> Result<String, ProviderError> {
    let m = model.trim();
    if m.is_empty() {
        return Err(ProviderError::bad_request(
            "a model is required, e.g. \"gemini/gemini-2.5-flash\"",
        ));
    }
    let chars_ok = m
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/'));
    let segments_ok = m.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    if !chars_ok || !segments_ok {
        return Err(ProviderError::bad_request(format!(
            "{m:?} is not a valid Gemini model name"
        )));
    }
    Ok(if m.contains('/') {
        m.to_string()
    } else {
        format!("models/{m}")
    })
}

impl Plugin for Gemini {
    type Decoder = GeminiStream;

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn new(config: ProviderConfig) -> Result<Self, String> {
        let base = config.base_url.trim();
        let base = if base.is_empty() { BASE_URL } else { base };
        Ok(Gemini {
            base_url: base.trim_end_matches('/').to_string(),
            headers: extra_headers(&config.options)?,
        })
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        let body: Value = call.json()?;
        if !body.is_object() {
            return Err(ProviderError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let model = resource(call.model)?;
        let (method, payload) = match call.endpoint {
            Endpoint::Chat => {
                let method = if call.stream {
                    "streamGenerateContent?alt=sse"
                } else {
                    "generateContent"
                };
                (method, request::chat(&body)?)
            }
            Endpoint::Embeddings => embed::request(&body, &model)?,
            Endpoint::Images => {
                return Err(ProviderError::bad_request(
                    "image generation is not supported by the gemini provider",
                ))
            }
            _ => {
                return Err(ProviderError::bad_request(
                    "audio is not supported by the gemini provider",
                ))
            }
        };
        let mut req = HttpRequest::post(format!("{}/{model}:{method}", self.base_url));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut req = req.json(&payload)?;
        if let Some(key) = call.api_key() {
            req = req.header("x-goog-api-key", key);
        }
        Ok(Prepared::Upstream(req))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        if !response.is_success() {
            return Err(errors::from_response(response));
        }
        match call.endpoint {
            Endpoint::Chat => response::chat(call, response.body),
            Endpoint::Embeddings => embed::reply(call, response.body),
            Endpoint::Images => Err(ProviderError::bad_request(
                "image generation is not supported by the gemini provider",
            )),
            _ => Err(ProviderError::bad_request(
                "audio is not supported by the gemini provider",
            )),
        }
    }

    fn stream(&self, call: &Call<'_>) -> Result<GeminiStream, ProviderError> {
        Ok(GeminiStream::new(call.model, call.include_usage))
    }
}

plugin_api::export_plugin!(Gemini);
