//! The anthropic plugin's own shorthands over the shared kit (`plugin_api::testing`):
//! its provider, its default call, and a stream driver that behaves like the host
//! (output before an error is kept, nothing is fed after it).

#![allow(dead_code)]

use aihub_anthropic::Anthropic;
use plugin_api::serde_json::{self, Value};
use plugin_api::testing;
use plugin_api::*;

pub use plugin_api::testing::{header, json_of, upstream, Outcome};

pub const MODEL: &str = "claude-sonnet-4-5";

pub fn fixture(name: &str) -> Vec<u8> {
    plugin_api::fixture!(name)
}

pub fn fixture_json(name: &str) -> Value {
    json_of(&fixture(name))
}

pub fn provider_with(base_url: &str, options: Value) -> Anthropic {
    Anthropic::new(ProviderConfig {
        prefix: "anthropic".into(),
        base_url: base_url.into(),
        options,
    })
    .unwrap_or_else(|e| panic!("provider: {e}"))
}

pub fn anthropic() -> Anthropic {
    provider_with("https://api.anthropic.com", Value::Null)
}

pub fn chat(body: &[u8], stream: bool, include_usage: bool) -> Call<'_> {
    testing::call(
        Endpoint::Chat,
        MODEL,
        body,
        Some("sk-ant-test"),
        stream,
        include_usage,
    )
}

/// The upstream body built for an OpenAI request body.
pub fn translate(p: &Anthropic, body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    json_of(&upstream(p.prepare(&chat(&bytes, false, false))).body)
}

pub fn translate_err(p: &Anthropic, body: &Value) -> ProviderError {
    let bytes = serde_json::to_vec(body).unwrap();
    p.prepare(&chat(&bytes, false, false)).unwrap_err()
}

/// A fresh decoder of a streamed chat call.
pub fn decoder(include_usage: bool) -> <Anthropic as Plugin>::Decoder {
    let body = br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    anthropic()
        .stream(&chat(body, true, include_usage))
        .expect("decoder")
}

/// Feeds `pieces` in order, then finishes, like the host.
pub fn decode_pieces(include_usage: bool, pieces: &[&[u8]]) -> Outcome {
    testing::decode_pieces(decoder(include_usage), pieces)
}

pub fn decode(include_usage: bool, bytes: &[u8]) -> Outcome {
    decode_pieces(include_usage, &[bytes])
}
