//! The openai plugin's own shorthands over the shared kit (`plugin_api::testing`):
//! its provider, its default call, and a stream driver that behaves like the host.

#![allow(dead_code)]

use aihub_openai::OpenAi;
use plugin_api::serde_json::Value;
use plugin_api::testing;
use plugin_api::*;

pub use plugin_api::testing::{header, json_of, upstream, Outcome};

pub fn fixture(name: &str) -> Vec<u8> {
    plugin_api::fixture!(name)
}

pub fn provider(prefix: &str, base_url: &str, options: Value) -> OpenAi {
    OpenAi::new(ProviderConfig {
        prefix: prefix.into(),
        base_url: base_url.into(),
        options,
    })
    .unwrap_or_else(|e| panic!("provider {prefix}: {e}"))
}

pub fn openai() -> OpenAi {
    provider("openai", "https://api.openai.com/v1", Value::Null)
}

pub use plugin_api::testing::call;

pub fn chat(body: &[u8], stream: bool, include_usage: bool) -> Call<'_> {
    call(
        Endpoint::Chat,
        "gpt-4o",
        body,
        Some("sk-test"),
        stream,
        include_usage,
    )
}

/// A fresh decoder of a streamed chat call.
pub fn decoder(p: &OpenAi, include_usage: bool) -> <OpenAi as Plugin>::Decoder {
    p.stream(&chat(br#"{"messages":[]}"#, true, include_usage))
        .expect("decoder")
}

/// Feeds `pieces` in order, then finishes, like the host.
pub fn decode_pieces(p: &OpenAi, include_usage: bool, pieces: &[&[u8]]) -> Outcome {
    testing::decode_pieces(decoder(p, include_usage), pieces)
}

pub fn decode(p: &OpenAi, include_usage: bool, bytes: &[u8]) -> Outcome {
    decode_pieces(p, include_usage, &[bytes])
}

/// The `data:` payloads of an SSE fixture, in order.
pub fn data_lines(sse: &[u8]) -> Vec<Vec<u8>> {
    String::from_utf8_lossy(sse)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| d.as_bytes().to_vec())
        .collect()
}
