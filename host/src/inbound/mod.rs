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

/// The format a client spoke. Errors are one `ApiError` with one status mapping
/// (`error.rs`); each format renders the body its clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI Chat Completions, embeddings, images: `{"error":{"message","type","code"}}`.
    OpenAi,
}

impl Format {
    /// The whole error response in this format.
    pub fn error_response(self, e: &ApiError) -> Response<Body> {
        match self {
            Format::OpenAi => http::error(e),
        }
    }

    /// The event that ends a stream that finished properly.
    pub fn stream_done(self) -> &'static [u8] {
        match self {
            Format::OpenAi => http::SSE_DONE,
        }
    }

    /// The event that ends a stream that failed after it began (no clean end follows).
    pub fn stream_error(self, e: &ApiError) -> Bytes {
        match self {
            Format::OpenAi => http::sse_error(e),
        }
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
