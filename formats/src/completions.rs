//! Legacy text completions (`POST /v1/completions`) and Chat Completions.

use crate::{ChatRequest, Invalid, StreamFailure, StreamWriter};

/// A completions request as a chat request: `prompt` (a string, or an array of one
/// string) becomes one user message; `max_tokens`, `temperature`, `top_p`, `n`, `stop`,
/// `presence_penalty`, `frequency_penalty`, `seed`, `user`, `logit_bias`, `stream`
/// carry over; what chat cannot do (`echo`, `suffix`, `best_of` > 1, `logprobs`, several
/// prompts) is refused with the field named.
pub fn to_chat(body: &[u8]) -> Result<ChatRequest, Invalid> {
    let _ = body;
    Err(Invalid::new("body", "not built yet"))
}

/// A `chat.completion` as a `text_completion`.
pub fn reply_from_chat(chat: &[u8]) -> Result<Vec<u8>, String> {
    let _ = chat;
    Err("not built yet".into())
}

/// Chat chunks → `text_completion` chunks (`data:` events, then `data: [DONE]`); the
/// usage chunk only when the client asked for it.
pub struct Stream {
    _include_usage: bool,
}

impl Stream {
    pub fn new(include_usage: bool) -> Self {
        Stream {
            _include_usage: include_usage,
        }
    }
}

impl StreamWriter for Stream {
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let _ = (chunk, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }
    fn fail(&mut self, failure: &StreamFailure<'_>, out: &mut Vec<u8>) {
        let _ = (failure, out);
    }
}
