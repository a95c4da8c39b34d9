//! The bedrock plugin's own shorthands over the shared kit (`plugin_api::testing`).

#![allow(dead_code)]

use aihub_bedrock::Bedrock;
use plugin_api::serde_json::{self, Value};
use plugin_api::testing;
use plugin_api::*;

pub use plugin_api::testing::{header, json_of, upstream, Outcome};

pub fn fixture(name: &str) -> Vec<u8> {
    plugin_api::fixture!(name)
}

/// A provider with no environment at all.
pub fn provider_with(base_url: &str, options: Value) -> Result<Bedrock, String> {
    provider_env(base_url, options, &[])
}

/// A provider that sees only `env`.
pub fn provider_env(
    base_url: &str,
    options: Value,
    env: &'static [(&'static str, &'static str)],
) -> Result<Bedrock, String> {
    Bedrock::with_env(
        ProviderConfig {
            prefix: "bedrock".into(),
            base_url: base_url.into(),
            options,
        },
        move |n| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        },
    )
}

pub fn bedrock() -> Bedrock {
    provider_with("", Value::Null).expect("provider")
}

/// A Bedrock API key (bearer).
pub const BEARER: &str = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlOmV4YW1wbGU=";
pub const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+example==";
pub const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
/// 2024-11-05T17:02:09Z.
pub const NOW_MS: u64 = 1_730_826_129_000;

pub fn call_with<'a>(
    endpoint: Endpoint,
    model: &'a str,
    body: &'a [u8],
    credential: Credential<'a>,
    stream: bool,
    include_usage: bool,
) -> Call<'a> {
    Call {
        credential,
        now_unix_ms: NOW_MS,
        ..testing::call(endpoint, model, body, None, stream, include_usage)
    }
}

pub fn chat(body: &[u8], stream: bool, include_usage: bool) -> Call<'_> {
    call_with(
        Endpoint::Chat,
        MODEL,
        body,
        Credential::ApiKey(BEARER),
        stream,
        include_usage,
    )
}

/// The upstream body `prepare` builds for an OpenAI chat body.
pub fn prepared_chat(body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let req = upstream(bedrock().prepare(&chat(&bytes, false, false)));
    json_of(&req.body)
}

pub fn prepare_err(body: &Value) -> ProviderError {
    let bytes = serde_json::to_vec(body).unwrap();
    testing::expect_err(bedrock().prepare(&chat(&bytes, false, false)))
}

/// A fresh decoder of a streamed chat call.
pub fn decoder(include_usage: bool) -> <Bedrock as Plugin>::Decoder {
    bedrock()
        .stream(&chat(b"{}", true, include_usage))
        .expect("decoder")
}

pub fn decode_pieces(include_usage: bool, pieces: &[&[u8]]) -> Outcome {
    testing::decode_pieces(decoder(include_usage), pieces)
}

pub fn decode(include_usage: bool, bytes: &[u8]) -> Outcome {
    decode_pieces(include_usage, &[bytes])
}

/// A stream fixture of `tests/fixtures/streams/`.
pub fn stream_fixture(name: &str) -> Vec<u8> {
    fixture(&format!("streams/{name}"))
}
