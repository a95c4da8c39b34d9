//! The canonical (OpenAI Chat) reply made back into the client's format: whole replies
//! and streams. A provider that took the client's format natively needs none of this.

use crate::error::ApiError;
use crate::server::http;
use bytes::Bytes;
use formats::responses::{Meta, Request as ResponsesRequest};
use formats::{StreamFailure, StreamWriter};
use std::sync::{Arc, LazyLock};

/// What a format needs to shape a reply.
#[derive(Debug)]
pub enum Shape {
    Chat,
    Messages {
        /// The message id to show when the reply has none.
        id: String,
        /// The model name the client sent, shown in the reply.
        model: String,
    },
    Responses(Box<ResponsesCall>),
    Completions {
        include_usage: bool,
    },
}

/// A Responses call: the request, its id, and the conversation it follows.
#[derive(Debug)]
pub struct ResponsesCall {
    pub req: ResponsesRequest,
    pub meta: Meta,
    /// The stored conversation of `previous_response_id`.
    pub history: Option<Vec<u8>>,
    pub app_id: i64,
}

static CHAT: LazyLock<Arc<Shape>> = LazyLock::new(|| Arc::new(Shape::Chat));

impl Shape {
    /// The chat shape, shared (no allocation per call).
    pub fn chat() -> Arc<Shape> {
        CHAT.clone()
    }

    /// A whole `chat.completion` in the client's format.
    pub fn whole(&self, chat: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Shape::Chat => Ok(chat.to_vec()),
            Shape::Messages { id, model } => formats::anthropic::reply_from_chat(chat, model, id),
            Shape::Responses(r) => formats::responses::reply_from_chat(&r.req, &r.meta, chat),
            Shape::Completions { .. } => formats::completions::reply_from_chat(chat),
        }
    }

    /// The writer for a translated stream.
    pub fn writer(&self) -> Writer {
        match self {
            Shape::Chat => Writer::Chat,
            Shape::Messages { id, model } => {
                Writer::Translated(Box::new(formats::anthropic::Stream::new(model, id)))
            }
            Shape::Responses(r) => {
                Writer::Responses(Box::new(formats::responses::Stream::new(&r.req, &r.meta)))
            }
            Shape::Completions { include_usage } => {
                Writer::Translated(Box::new(formats::completions::Stream::new(*include_usage)))
            }
        }
    }
}

/// Turns the plugin's chat chunks into the client's stream.
pub enum Writer {
    /// Chat to a chat client: the chunks framed as they are.
    Chat,
    Translated(Box<dyn StreamWriter>),
    /// Kept apart: its final Response object is stored when the stream ends.
    Responses(Box<formats::responses::Stream>),
}

impl Writer {
    fn translator(&mut self) -> Option<&mut dyn StreamWriter> {
        match self {
            Writer::Chat => None,
            Writer::Translated(w) => Some(w.as_mut()),
            Writer::Responses(w) => Some(w.as_mut()),
        }
    }

    /// The client's bytes for these chunks (possibly none yet).
    pub fn chunks(&mut self, chunks: &[Vec<u8>]) -> Bytes {
        let Some(w) = self.translator() else {
            return http::sse_frames(chunks);
        };
        let mut out = Vec::new();
        for c in chunks {
            w.chunk(c, &mut out);
        }
        Bytes::from(out)
    }

    /// The clean end of the stream.
    pub fn done(&mut self) -> Bytes {
        let Some(w) = self.translator() else {
            return Bytes::from_static(http::SSE_DONE);
        };
        let mut out = Vec::new();
        w.finish(&mut out);
        Bytes::from(out)
    }

    /// The end of a stream that failed after it began.
    pub fn fail(&mut self, e: &ApiError) -> Bytes {
        let Some(w) = self.translator() else {
            return http::sse_error(e);
        };
        let message = e.client_message();
        let code = e.client_code().unwrap_or_default();
        let failure = StreamFailure {
            status: e.status(),
            upstream_status: e.upstream_status(),
            code: &code,
            message: &message,
        };
        let mut out = Vec::new();
        w.fail(&failure, &mut out);
        Bytes::from(out)
    }

    /// The final Response object of a Responses stream that ended.
    pub fn final_response(&self) -> Option<Vec<u8>> {
        match self {
            Writer::Responses(w) => w.response(),
            _ => None,
        }
    }
}
