//! The traits a plugin author implements.

use crate::types::{
    Call, Manifest, Prepared, ProviderConfig, ProviderError, Reply, Response, Usage,
};
use serde::Serialize;

/// A provider adapter: a pure translator between the OpenAI shape and one upstream's
/// wire format. The host owns all I/O; an adapter never opens sockets, spawns threads or
/// blocks. Panics are caught at the boundary and fail only the request that caused them.
///
/// One value is made per configured provider instance (see [`Plugin::new`]) and shared by
/// all requests to it, from many threads at once.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The state kept while decoding one streamed reply.
    type Decoder: StreamDecoder;

    /// What this plugin offers. Called once at load.
    fn manifest() -> Manifest;

    /// Builds a provider instance. An `Err` refuses that provider with the message.
    fn new(config: ProviderConfig) -> Result<Self, String>;

    /// Turns a consumer call into the upstream request (or a local answer).
    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError>;

    /// Turns a whole upstream reply (any status) into the OpenAI shape, or a classified
    /// error. Also called for non-2xx replies to streamed calls.
    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError>;

    /// Starts decoding a streamed 2xx reply.
    fn stream(&self, call: &Call<'_>) -> Result<Self::Decoder, ProviderError>;
}

/// Decodes one upstream stream. Bytes arrive split at arbitrary points; the decoder keeps
/// what it has not yet understood and must produce the same output however the bytes
/// were split.
pub trait StreamDecoder: Send + 'static {
    /// Consumes the next bytes of the upstream body. On `Err`, the chunks already put in
    /// `out` are still sent to the client, then the error ends the stream.
    fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError>;

    /// The upstream body ended. Flush what is left. The host sends `data: [DONE]` only if
    /// [`StreamOutput::done`] was called by now; otherwise the client sees a cut stream.
    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError>;

    /// Pass-through stream: the host forwards the upstream bytes to the client unchanged
    /// (no re-framing, no `[DONE]` of its own) and reads only `usage`, `done` and errors
    /// from this decoder; chunks it produces are ignored. Only right when the upstream
    /// already speaks exactly what the client asked for, with nothing to hide or add.
    /// Asked once, before the first `feed`.
    fn pass_through(&self) -> bool {
        false
    }
}

/// What one `feed`/`finish` produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StreamOutput {
    /// OpenAI `chat.completion.chunk` objects as JSON, in order.
    pub chunks: Vec<Vec<u8>>,
    /// Usage seen so far (cumulative, not a delta); the host keeps the latest.
    pub usage: Option<Usage>,
    pub done: bool,
}

impl StreamOutput {
    /// Appends a chunk serialized from any serde value.
    pub fn chunk<T: Serialize + ?Sized>(&mut self, chunk: &T) -> Result<(), ProviderError> {
        let bytes = serde_json::to_vec(chunk)
            .map_err(|e| ProviderError::internal(format!("cannot encode chunk: {e}")))?;
        self.chunks.push(bytes);
        Ok(())
    }

    /// Appends a chunk that is already JSON (pass-through without re-encoding).
    pub fn raw_chunk(&mut self, json: Vec<u8>) {
        self.chunks.push(json);
    }

    pub fn usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// The upstream finished the stream properly.
    pub fn done(&mut self) {
        self.done = true;
    }
}
