//! Client formats: how a consumer request is read and checked, and how answers and errors
//! are shaped for the client. OpenAI Chat Completions (with embeddings and images) is the
//! canonical format: every inbound format becomes a [`CanonicalCall`].

pub mod models;
pub mod openai;
pub mod validate;

use crate::error::ApiError;
use crate::server::http::{self, Body};
use bytes::Bytes;
use hyper::Response;
use plugin_api::Endpoint;

/// The format a client spoke: the one plugins are told about too (plugin ABI 2).
pub use plugin_api::Format;

/// How answers end and errors look in a client format. Errors are one `ApiError` with one
/// status mapping (`error.rs`); each format renders the body its clients expect.
pub trait Render {
    /// The whole error response in this format.
    fn error_response(self, e: &ApiError) -> Response<Body>;
    /// The event that ends a stream that finished properly.
    fn stream_done(self) -> &'static [u8];
    /// The event that ends a stream that failed after it began (no clean end follows).
    fn stream_error(self, e: &ApiError) -> Bytes;
}

// Only OpenAI-shaped paths are served so far; the Anthropic Messages and Responses paths
// (and their own shapes) come with their endpoints.
impl Render for Format {
    fn error_response(self, e: &ApiError) -> Response<Body> {
        http::error(e)
    }

    fn stream_done(self) -> &'static [u8] {
        http::SSE_DONE
    }

    fn stream_error(self, e: &ApiError) -> Bytes {
        http::sse_error(e)
    }
}

/// One consumer call as the pipeline runs it, whatever format the client spoke.
#[derive(Debug, Clone)]
pub struct CanonicalCall {
    /// What the client spoke; replies and errors go back in it.
    pub format: Format,
    pub endpoint: Endpoint,
    /// The client's body in the canonical (OpenAI) shape, checked.
    pub body: Bytes,
    /// The model the client named (an alias, `prefix/model`, or a catalog name).
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: the client wants the usage chunk.
    pub include_usage: bool,
    /// The client's request headers (moved, not copied); plugins see them without the
    /// credentials (`plugin_host::call_context::client_headers`).
    pub headers: hyper::HeaderMap,
}
