//! Client formats: how a consumer request is read and checked, and how answers and errors
//! are shaped for the client. OpenAI Chat Completions (with embeddings and images) is the
//! canonical format: every inbound format becomes a [`CanonicalCall`], which also keeps
//! the client's own body for providers that speak that format natively.

pub mod anthropic;
pub mod completions;
pub mod models;
pub mod openai;
pub mod reshape;
pub mod responses;
pub mod validate;

use crate::error::ApiError;
use crate::routing::Route;
use crate::server::http::{self, Body};
use bytes::Bytes;
use hyper::Response;
use plugin_api::Endpoint;
use std::sync::Arc;

/// The format a client spoke: the one plugins are told about too (plugin ABI 2).
pub use plugin_api::Format;

/// How errors look in a client format. Errors are one `ApiError` with one status mapping
/// (`error.rs`); each format renders the body its clients expect.
pub trait Render {
    /// The whole error response in this format.
    fn error_response(self, e: &ApiError) -> Response<Body>;
    /// The event that ends a stream that failed after it began (no clean end follows),
    /// for a stream whose events come from the upstream as they are.
    fn stream_error(self, e: &ApiError) -> Bytes;
}

impl Render for Format {
    fn error_response(self, e: &ApiError) -> Response<Body> {
        match self {
            Format::AnthropicMessages => anthropic::error_response(e),
            Format::OpenAiChat | Format::OpenAiResponses | Format::OpenAiCompletions => {
                http::error(e)
            }
        }
    }

    fn stream_error(self, e: &ApiError) -> Bytes {
        match self {
            Format::AnthropicMessages => anthropic::stream_error(e),
            Format::OpenAiResponses => responses::stream_error(e),
            Format::OpenAiChat | Format::OpenAiCompletions => http::sse_error(e),
        }
    }
}

/// One consumer call as the pipeline runs it, whatever format the client spoke.
#[derive(Debug, Clone)]
pub struct CanonicalCall {
    /// What the client spoke; replies and errors go back in it.
    pub format: Format,
    pub endpoint: Endpoint,
    /// The call in the canonical (OpenAI Chat) shape, or why the client's request cannot
    /// be put in it (then only a provider that takes the client's format natively can
    /// serve it).
    pub body: Result<Bytes, formats::Invalid>,
    /// The client's own body, for providers that take its format natively.
    pub native: Option<Native>,
    /// The model the client named (an alias, `prefix/model`, or a catalog name).
    pub model: String,
    pub stream: bool,
    /// The plugin is asked for the usage chunk (`stream_options.include_usage`): the
    /// client asked, or a translated stream needs it.
    pub include_usage: bool,
    /// The client's request headers (moved, not copied); plugins see them without the
    /// credentials (`plugin_host::call_context::client_headers`).
    pub headers: hyper::HeaderMap,
    /// What turning the canonical reply back into the client's format needs.
    pub shape: Arc<reshape::Shape>,
}

/// A client body that can go to a provider untranslated.
#[derive(Debug, Clone)]
pub struct Native {
    pub body: Bytes,
    /// Only this provider may take it (a Responses follow-up whose earlier response that
    /// provider holds itself).
    pub only_prefix: Option<String>,
}

impl CanonicalCall {
    /// The client's own body when `route` takes it as it is.
    pub fn native_for(&self, route: &Route) -> Option<&Bytes> {
        if self.format == Format::OpenAiChat || !route.accepts_natively(self.format) {
            return None;
        }
        let native = self.native.as_ref()?;
        match &native.only_prefix {
            Some(p) if *p != route.prefix => None,
            _ => Some(&native.body),
        }
    }
}

/// A translator's refusal as the client's 400.
pub fn invalid(e: formats::Invalid) -> ApiError {
    ApiError::InvalidParam {
        param: e.param,
        message: e.message,
    }
}
