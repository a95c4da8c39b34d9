//! # aihub plugin API
//!
//! Provider adapters for the [aihub](https://example.invalid/aihub) gateway are `cdylib`
//! libraries built against this crate. The host loads them at start, and loads a library
//! dropped into its plugin directory while it runs.
//!
//! A plugin is a **pure translator**: the host owns all I/O (one pooled HTTP client,
//! timeouts, retries, cancellation). The plugin turns an OpenAI-shaped call into an upstream
//! HTTP request ([`Plugin::prepare`]), and the upstream's reply back into the OpenAI shape
//! ([`Plugin::parse`] for whole bodies, a [`StreamDecoder`] for streams), classifying
//! failures with an [`ErrorClass`] the host acts on (stop using a key, back off, retry).
//! Bodies it forwards rather than builds are edited with [`json`], which keeps the bytes
//! of every field it does not change.
//!
//! ## A complete minimal plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "my-provider"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! aihub-plugin-api = "0.1"   # the lib is named `plugin_api`
//! serde_json = "1"
//!
//! [profile.release]
//! panic = "unwind"   # required: panics are caught at the boundary, never abort the host
//! ```
//!
//! `src/lib.rs` — forwards chat calls to an OpenAI-compatible upstream:
//!
//! ```
//! use plugin_api::sse::SseParser;
//! use plugin_api::*;
//!
//! pub struct MyProvider {
//!     base_url: String,
//! }
//!
//! impl Plugin for MyProvider {
//!     type Decoder = MyDecoder;
//!
//!     fn manifest() -> Manifest {
//!         Manifest {
//!             name: "my-provider".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             description: "Example provider".into(),
//!             abi_version: 0, // filled in by export_plugin!
//!             providers: vec![ProviderSpec {
//!                 prefix: "mine".into(),
//!                 base_url: "https://api.example.com/v1".into(),
//!                 auth: AuthScheme::Bearer,
//!                 api_key_env: Some("MINE_API_KEY".into()),
//!                 native_formats: vec![],
//!                 models: vec![ModelSpec::chat("small-1")],
//!             }],
//!         }
//!     }
//!
//!     fn new(config: ProviderConfig) -> Result<Self, String> {
//!         Ok(MyProvider { base_url: config.base_url })
//!     }
//!
//!     fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
//!         let mut body: serde_json::Value = call.json()?;
//!         body["model"] = call.model.into();
//!         let mut req = HttpRequest::post(format!("{}/chat/completions", self.base_url)).json(&body)?;
//!         if let Some(key) = call.api_key() {
//!             req = req.header("authorization", format!("Bearer {key}"));
//!         }
//!         Ok(Prepared::Upstream(req))
//!     }
//!
//!     fn parse(&self, _call: &Call<'_>, resp: &Response<'_>) -> Result<Reply, ProviderError> {
//!         if !resp.is_success() {
//!             let class = ProviderError::class_for_status(resp.status);
//!             let text = String::from_utf8_lossy(resp.body).into_owned();
//!             return Err(ProviderError::new(class, text).with_status(resp.status));
//!         }
//!         let v: serde_json::Value = serde_json::from_slice(resp.body)
//!             .map_err(|e| ProviderError::upstream(format!("unreadable reply: {e}")))?;
//!         let usage = v.get("usage").map(|u| Usage {
//!             input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
//!             output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
//!             ..Usage::default()
//!         });
//!         // Already OpenAI-shaped: the host forwards the upstream bytes unchanged.
//!         Ok(Reply::pass_through(usage))
//!     }
//!
//!     fn stream(&self, _call: &Call<'_>) -> Result<MyDecoder, ProviderError> {
//!         Ok(MyDecoder { sse: SseParser::new() })
//!     }
//! }
//!
//! pub struct MyDecoder {
//!     sse: SseParser,
//! }
//!
//! impl StreamDecoder for MyDecoder {
//!     fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
//!         for event in self.sse.feed(bytes)? {
//!             if event.data == "[DONE]" {
//!                 out.done();
//!             } else {
//!                 out.raw_chunk(event.data.into_bytes());
//!             }
//!         }
//!         Ok(())
//!     }
//!
//!     fn finish(&mut self, _out: &mut StreamOutput) -> Result<(), ProviderError> {
//!         Ok(())
//!     }
//! }
//!
//! plugin_api::export_plugin!(MyProvider);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release` and copy `target/release/libmy_provider.so` into
//! the gateway's plugin directory; requests for `mine/small-1` then go to it. To replace a
//! loaded plugin, write the new file under a temporary name and `mv` it over the old one:
//! overwriting a loaded library in place can crash processes that map it.
//!
//! ## Testing a plugin
//!
//! The feature `testing` adds the module `plugin_api::testing` (enable it in
//! `[dev-dependencies]` only): call builders, canned upstream replies, fixture loading, a
//! stream driver that behaves like the host, a check that a decoder gives the same output
//! however its input was split, and `conformance_suite!`, the tests every plugin passes.
//! `examples/hello-plugin/tests/conformance.rs` shows the declaration a plugin writes.
//!
//! ## Compatibility
//!
//! The host checks the library's `aihub-plugin-api` version (same major, or same minor
//! while 0.x), the layout of every type crossing the boundary, and [`ABI_VERSION`]. A
//! library that fails any check is refused with a message; the host keeps serving.
//! [`ABI_VERSION`] is read first, so a library built against an older ABI is told to
//! rebuild against the current `aihub-plugin-api` rather than shown a layout diff.
//!
//! ## What a call carries (ABI 2)
//!
//! Besides the body: the inbound [`Format`] (a provider lists the ones it takes as they
//! are in [`ProviderSpec::native_formats`]; see [Native formats](#native-formats)), the
//! client's headers with its credentials
//! removed ([`Call::header`]), a [`Credential`] (an API key, an access-key pair with a
//! region for request signing, or a JSON service account; [`Call::api_key`] for the
//! common case) and the host's clock ([`Call::now_unix_ms`]), so signing stays pure.
//! The call crosses as a view object whose getters can be added to without a break.
//!
//! ## Pass-through replies
//!
//! A reply that already is what the client asked for need not be copied or re-encoded:
//! [`Reply::pass_through`] makes the host send the upstream's body and content type
//! unchanged, as the example above does; a [`StreamDecoder`] whose
//! [`pass_through`](StreamDecoder::pass_through) is true has the upstream's event stream
//! forwarded byte for byte and only reports usage, the end and errors.
//!
//! ## Native formats
//!
//! A provider whose upstream speaks another client format itself (Anthropic Messages,
//! OpenAI Responses) lists it in [`ProviderSpec::native_formats`]. The host then sends
//! such calls untranslated: [`Call::body`] is the client's original body, with
//! [`Call::format`] saying which format, [`Call::model`] the upstream model (routing
//! prefix removed, while the body still names the client's), [`Call::stream`] whether
//! to stream, and [`Call::headers`] the client's headers (minus credentials) for the
//! few a format defines (`anthropic-version`, `anthropic-beta`). A plugin handles
//! them in every method, branching on `call.format`:
//!
//! - `prepare`: forward the body, changing only what it must, usually `model`, with
//!   [`json::replace_field`], which keeps every other byte; a body that is not a JSON
//!   object is [`ProviderError::bad_request`]. Forward only the client headers the
//!   format defines, never all of them.
//! - `parse`: classify non-2xx replies as for canonical calls (keeping the upstream
//!   status in [`ProviderError::status`]); answer a 2xx with [`Reply::pass_through`]
//!   and the usage read from the format's own `usage` object, in the [`Usage`]
//!   convention (cached and cache-written tokens are part of `input_tokens`).
//! - `stream`: return a decoder whose `pass_through()` is true, that reads only the
//!   events carrying usage, the end and errors, and produces no chunks.
//!
//! A format the provider did not declare never reaches it; answer it with
//! [`ProviderError::bad_request`] rather than guessing. Embeddings and image calls are
//! always [`Format::OpenAiChat`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod abi;
// Half of the conversions serve only the host side.
#[cfg_attr(not(feature = "host"), allow(dead_code))]
mod convert;
mod export;
#[cfg(feature = "host")]
pub mod host;
pub mod json;
pub mod multipart;
pub mod openai;
pub mod options;
mod sdk;
pub mod sse;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
pub mod url;

pub use sdk::{Plugin, StreamDecoder, StreamOutput};
pub use types::*;

/// Version of the contract between host and plugins beyond type layouts: the meaning of
/// fields, the JSON shapes exchanged. Bumped on any incompatible change. 2: calls as an
/// extensible view with format, headers, time and credential kinds; pass-through replies.
pub const ABI_VERSION: u32 = 2;

/// Re-exported so a plugin needs no other dependency to read and write JSON.
pub use serde;
pub use serde_json;

#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
}
