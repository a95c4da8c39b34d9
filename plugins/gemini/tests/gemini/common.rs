//! The gemini plugin's own shorthands over the shared kit (`plugin_api::testing`): a
//! provider, its calls, and a stream driver that behaves like the host (nothing is fed
//! after an error).

#![allow(dead_code)]

use aihub_gemini::Gemini;
use plugin_api::serde_json::{self, Value};
use plugin_api::testing;
use plugin_api::*;

pub use plugin_api::testing::{header, json_of, upstream, Outcome};

pub fn fixture(name: &str) -> Vec<u8> {
    plugin_api::fixture!(name)
}

pub fn provider_with(base_url: &str, options: Value) -> Result<Gemini, String> {
    Gemini::new(ProviderConfig {
        prefix: "gemini".into(),
        base_url: base_url.into(),
        options,
    })
}

pub fn gemini() -> Gemini {
    provider_with(aihub_gemini::BASE_URL, Value::Null).expect("provider")
}

pub const KEY: &str = "AIzaSyTEST-key-0123456789";

pub fn call<'a>(
    endpoint: Endpoint,
    model: &'a str,
    body: &'a [u8],
    stream: bool,
    include_usage: bool,
) -> Call<'a> {
    testing::call(endpoint, model, body, Some(KEY), stream, include_usage)
}

pub fn chat(body: &[u8], stream: bool, include_usage: bool) -> Call<'_> {
    call(
        Endpoint::Chat,
        "gemini-2.5-flash",
        body,
        stream,
        include_usage,
    )
}

/// The upstream body `prepare` builds for an OpenAI chat body.
pub fn prepared_chat(body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let req = upstream(gemini().prepare(&chat(&bytes, false, false)));
    json_of(&req.body)
}

pub fn prepare_err(body: &Value) -> ProviderError {
    let bytes = serde_json::to_vec(body).unwrap();
    testing::expect_err(gemini().prepare(&chat(&bytes, false, false)))
}

/// A canned upstream reply without headers.
pub fn ok(status: u16, body: &[u8]) -> Response<'_> {
    testing::response(status, &[], body)
}

/// A fresh decoder of a streamed chat call.
pub fn decoder(include_usage: bool) -> <Gemini as Plugin>::Decoder {
    gemini()
        .stream(&chat(b"{}", true, include_usage))
        .expect("decoder")
}

/// Feeds `pieces` in order, then finishes, stopping at the first error like the host.
pub fn decode_pieces(include_usage: bool, pieces: &[&[u8]]) -> Outcome {
    testing::decode_pieces(decoder(include_usage), pieces)
}

pub fn decode(include_usage: bool, bytes: &[u8]) -> Outcome {
    decode_pieces(include_usage, &[bytes])
}
