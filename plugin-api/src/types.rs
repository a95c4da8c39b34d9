//! Plain serde types of the SDK, shared by plugins and the host.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a plugin offers: read once when the library loads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Plugin name; `[[providers]] plugin = "..."` in the host config refers to it.
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Filled in by [`crate::export_plugin!`]; what the plugin was built against.
    #[serde(default)]
    pub abi_version: u32,
    /// Provider instances the host creates by default, one routing prefix each.
    #[serde(default)]
    pub providers: Vec<ProviderSpec>,
}

/// A default provider instance of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProviderSpec {
    /// The routing prefix: `model = "<prefix>/<upstream model>"`.
    pub prefix: String,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub auth: AuthScheme,
    /// Environment variable the host reads the key from when none is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    /// Inbound formats this provider takes as they are (besides the canonical OpenAI
    /// one): the host then sends such calls untranslated, with [`Call::format`] saying
    /// which (e.g. the anthropic plugin takes Anthropic Messages). How a plugin handles
    /// them: the crate docs, *Native formats*.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub native_formats: Vec<Format>,
}

/// How the upstream authenticates; the plugin applies it, the host only needs to know
/// whether a key is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthScheme {
    /// No key (local or offline providers).
    #[default]
    None,
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key in the named header.
    Header(String),
    /// The key in the named query parameter.
    Query(String),
}

impl AuthScheme {
    pub fn needs_key(&self) -> bool {
        !matches!(self, AuthScheme::None)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSpec {
    pub id: String,
    #[serde(default)]
    pub kind: ModelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// List price in USD per million input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_price_per_mtok: Option<f64>,
    /// List price in USD per million output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_price_per_mtok: Option<f64>,
}

impl ModelSpec {
    pub fn chat(id: impl Into<String>) -> Self {
        ModelSpec {
            id: id.into(),
            kind: ModelKind::Chat,
            context_window: None,
            input_price_per_mtok: None,
            output_price_per_mtok: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    #[default]
    Chat,
    Embedding,
    Image,
    /// Speech to text or text to speech.
    Audio,
}

/// A configured provider instance, given to [`crate::Plugin::new`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProviderConfig {
    pub prefix: String,
    pub base_url: String,
    /// Free-form options from the operator's config.
    #[serde(default)]
    pub options: serde_json::Value,
}

/// Which consumer endpoint a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Embeddings,
    Images,
    /// `POST /v1/audio/transcriptions`: a `multipart/form-data` upload (the body as the
    /// client sent it; its content type, with the boundary, is in `Call::headers`).
    AudioTranscriptions,
    /// `POST /v1/audio/translations`: as transcriptions.
    AudioTranslations,
    /// `POST /v1/audio/speech`: JSON in, audio bytes out.
    AudioSpeech,
}

impl Endpoint {
    #[cfg_attr(not(feature = "host"), allow(dead_code))]
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Endpoint::Chat => 0,
            Endpoint::Embeddings => 1,
            Endpoint::Images => 2,
            Endpoint::AudioTranscriptions => 3,
            Endpoint::AudioTranslations => 4,
            Endpoint::AudioSpeech => 5,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Endpoint::Chat,
            1 => Endpoint::Embeddings,
            2 => Endpoint::Images,
            3 => Endpoint::AudioTranscriptions,
            4 => Endpoint::AudioTranslations,
            5 => Endpoint::AudioSpeech,
            _ => return None,
        })
    }
}

/// The wire format of the client's request body (and of the reply it expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// OpenAI Chat Completions / Embeddings / Images: the canonical shape every plugin
    /// takes.
    OpenAiChat,
    /// Anthropic Messages (`POST /v1/messages`).
    AnthropicMessages,
    /// OpenAI Responses (`POST /v1/responses`).
    OpenAiResponses,
    /// OpenAI legacy text completions (`POST /v1/completions`). The host translates it to
    /// chat unless a provider declares it native.
    OpenAiCompletions,
}

impl Format {
    /// The name the call log and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::OpenAiChat => "openai_chat",
            Format::AnthropicMessages => "anthropic_messages",
            Format::OpenAiResponses => "openai_responses",
            Format::OpenAiCompletions => "openai_completions",
        }
    }

    #[cfg_attr(not(feature = "host"), allow(dead_code))]
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Format::OpenAiChat => 0,
            Format::AnthropicMessages => 1,
            Format::OpenAiResponses => 2,
            Format::OpenAiCompletions => 3,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Format::OpenAiChat,
            1 => Format::AnthropicMessages,
            2 => Format::OpenAiResponses,
            3 => Format::OpenAiCompletions,
            _ => return None,
        })
    }
}

/// The credential a call is made with. Secrets are borrowed from the host for the call;
/// `Debug` never shows them.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The provider needs none.
    #[default]
    None,
    /// A single API key (bearer token, `x-api-key`, ...).
    ApiKey(&'a str),
    /// An access-key pair for request signing (AWS SigV4 style).
    AccessKey {
        id: &'a str,
        secret: &'a str,
        session_token: Option<&'a str>,
        region: Option<&'a str>,
    },
    /// A service-account credential as JSON (e.g. a Google service-account key file).
    ServiceAccount(&'a str),
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::ApiKey(_) => f.write_str("ApiKey(***)"),
            Credential::AccessKey { id, region, .. } => f
                .debug_struct("AccessKey")
                .field("id", id)
                .field("region", region)
                .finish_non_exhaustive(),
            Credential::ServiceAccount(_) => f.write_str("ServiceAccount(***)"),
        }
    }
}

impl<'a> Credential<'a> {
    /// Every secret in the credential, for scrubbing upstream text.
    pub fn secrets(&self) -> Vec<&'a str> {
        self.each_secret().collect()
    }

    /// The same secrets, without collecting them.
    pub fn each_secret(&self) -> impl Iterator<Item = &'a str> {
        let (first, second) = match *self {
            Credential::None => (None, None),
            Credential::ApiKey(k) | Credential::ServiceAccount(k) => (Some(k), None),
            Credential::AccessKey {
                secret,
                session_token,
                ..
            } => (Some(secret), session_token),
        };
        first.into_iter().chain(second)
    }
}

/// One consumer call as a plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub endpoint: Endpoint,
    /// The shape of `body`: [`Format::OpenAiChat`] unless the provider declared another
    /// one in [`ProviderSpec::native_formats`] and the client used it.
    pub format: Format,
    /// The model with the routing prefix removed (`openrouter/openai/gpt-4o` -> `openai/gpt-4o`).
    pub model: &'a str,
    /// The client's request body, as sent.
    pub body: &'a [u8],
    /// The client's request headers, read-only, names lower-case; the gateway's own
    /// credentials (`authorization`, `x-api-key`, `cookie`, `proxy-authorization`) are
    /// removed.
    pub headers: &'a [(&'a str, &'a str)],
    /// The credential to use.
    pub credential: Credential<'a>,
    /// The current time (Unix milliseconds), from the host: signing needs it and a
    /// plugin stays pure.
    pub now_unix_ms: u64,
    pub stream: bool,
    /// The client asked for `stream_options.include_usage`: the decoder must then emit
    /// a final chunk with `usage` and empty `choices`, as OpenAI does.
    pub include_usage: bool,
}

impl<'a> Call<'a> {
    /// A canonical-format call with no credential, no headers and time 0; fill in the
    /// rest with struct update syntax (`Call { stream: true, ..Call::new(...) }`).
    pub fn new(endpoint: Endpoint, model: &'a str, body: &'a [u8]) -> Self {
        Call {
            endpoint,
            format: Format::OpenAiChat,
            model,
            body,
            headers: &[],
            credential: Credential::None,
            now_unix_ms: 0,
            stream: false,
            include_usage: false,
        }
    }

    /// The API key, when the credential is one (the common case).
    pub fn api_key(&self) -> Option<&'a str> {
        match self.credential {
            Credential::ApiKey(k) => Some(k),
            _ => None,
        }
    }

    /// First client header of that name, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// Parses the body; a body that does not fit is the client's error.
    pub fn json<T: Deserialize<'a>>(&self) -> Result<T, ProviderError> {
        serde_json::from_slice(self.body)
            .map_err(|e| ProviderError::bad_request(format!("invalid request body: {e}")))
    }
}

/// What `prepare` returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Send this to the upstream.
    Upstream(HttpRequest),
    /// Answer without I/O, as if the upstream had sent this (offline providers).
    Local(LocalReply),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An upstream request; the host sends it with its pooled client.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn post(url: impl Into<String>) -> Self {
        HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest {
            method: "GET".into(),
            ..Self::post(url)
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, ProviderError> {
        self.body = serde_json::to_vec(body)
            .map_err(|e| ProviderError::internal(format!("cannot encode request: {e}")))?;
        Ok(self.header("content-type", "application/json"))
    }
}

/// An upstream reply, as the plugin's `parse` sees it.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    pub status: u16,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl Response<'_> {
    /// First header of that name, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A whole (non-streamed) reply in the OpenAI shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    /// OpenAI-shaped JSON (`chat.completion`, embeddings list, images response). Empty
    /// when `pass_through`.
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
    /// The host sends the upstream's body and content type to the client unchanged:
    /// for a reply already in the shape the client asked for, nothing is copied or
    /// re-encoded.
    pub pass_through: bool,
}

impl Reply {
    /// "Forward the upstream bytes unchanged; here is the usage."
    pub fn pass_through(usage: Option<Usage>) -> Self {
        Reply {
            body: Vec::new(),
            usage,
            pass_through: true,
        }
    }

    pub fn json<T: Serialize + ?Sized>(
        body: &T,
        usage: Option<Usage>,
    ) -> Result<Self, ProviderError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ProviderError::internal(format!("cannot encode reply: {e}")))?;
        Ok(Reply {
            body,
            usage,
            pass_through: false,
        })
    }
}

/// Token counts of one call. Cached and cache-write tokens are part of `input_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// The OpenAI `usage` object.
    pub fn to_openai(&self) -> serde_json::Value {
        let mut u = serde_json::json!({
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        });
        if self.cached_input_tokens > 0 {
            u["prompt_tokens_details"] =
                serde_json::json!({"cached_tokens": self.cached_input_tokens});
        }
        if self.reasoning_tokens > 0 {
            u["completion_tokens_details"] =
                serde_json::json!({"reasoning_tokens": self.reasoning_tokens});
        }
        u
    }
}

/// What the host does about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The credential was refused (401/403): the host stops using that key.
    Auth,
    /// Slow down; `retry_after_ms` says for how long when the upstream said.
    RateLimited,
    /// The client's request is wrong; never retried.
    BadRequest,
    /// The upstream failed or answered something unreadable.
    Upstream,
    Timeout,
    /// A bug in the plugin (including a caught panic).
    Internal,
}

impl ErrorClass {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ErrorClass::Auth => 0,
            ErrorClass::RateLimited => 1,
            ErrorClass::BadRequest => 2,
            ErrorClass::Upstream => 3,
            ErrorClass::Timeout => 4,
            ErrorClass::Internal => 5,
        }
    }
    #[cfg_attr(not(feature = "host"), allow(dead_code))]
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => ErrorClass::Auth,
            1 => ErrorClass::RateLimited,
            2 => ErrorClass::BadRequest,
            3 => ErrorClass::Upstream,
            4 => ErrorClass::Timeout,
            _ => ErrorClass::Internal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Auth => "auth",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Upstream => "upstream",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Internal => "internal",
        }
    }
}

/// A failed call, classified. `message` keeps the provider's own words.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The upstream's HTTP status, when there was one.
    pub status: Option<u16>,
    pub retry_after_ms: Option<u64>,
    pub message: String,
    /// The provider's error code (`context_length_exceeded`, ...), passed to the client.
    pub code: Option<String>,
}

impl ProviderError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ProviderError {
            class,
            status: None,
            retry_after_ms: None,
            message: message.into(),
            code: None,
        }
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Auth, message)
    }
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        ProviderError {
            retry_after_ms,
            ..Self::new(ErrorClass::RateLimited, message)
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::BadRequest, message)
    }
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Upstream, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Timeout, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Internal, message)
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The class an upstream HTTP status implies, for plugins that map statuses directly.
    pub fn class_for_status(status: u16) -> ErrorClass {
        match status {
            401 | 403 => ErrorClass::Auth,
            429 => ErrorClass::RateLimited,
            408 | 504 => ErrorClass::Timeout,
            400..=499 => ErrorClass::BadRequest,
            _ => ErrorClass::Upstream,
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.as_str(), self.message)
    }
}

impl std::error::Error for ProviderError {}

/// The longest wait a `Retry-After` may ask for; longer values are cut to it, so a broken
/// or hostile upstream cannot park a key for years.
pub const MAX_RETRY_AFTER_MS: u64 = 60 * 60 * 1000;

/// Parses a `Retry-After` header: seconds (the form LLM providers use), or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), turned into the wait from now; at most
/// [`MAX_RETRY_AFTER_MS`].
pub fn retry_after_ms(value: Option<&str>) -> Option<u64> {
    let v = value?.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0)
            .then(|| (s * 1000.0).min(MAX_RETRY_AFTER_MS as f64) as u64);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let wait = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(
        u64::try_from(wait.as_millis()).map_or(MAX_RETRY_AFTER_MS, |ms| ms.min(MAX_RETRY_AFTER_MS)),
    )
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;

    #[test]
    fn seconds_and_http_dates() {
        assert_eq!(retry_after_ms(Some("2")), Some(2000));
        assert_eq!(retry_after_ms(Some("1.5")), Some(1500));
        assert_eq!(retry_after_ms(Some("-1")), None);
        assert_eq!(retry_after_ms(Some("1e300")), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(
            retry_after_ms(Some("Fri, 31 Dec 9999 23:59:59 GMT")),
            Some(MAX_RETRY_AFTER_MS),
            "a far-future date is cut, not wrapped"
        );
        assert_eq!(
            retry_after_ms(Some("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(0),
            "a past date: now"
        );
        assert_eq!(retry_after_ms(Some("soon")), None);
    }
}
