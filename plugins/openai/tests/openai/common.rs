//! Helpers shared by the integration tests: providers, calls, and a stream driver that
//! behaves like the host (output of a failing call is lost, nothing is fed after an error).

#![allow(dead_code)]

use aihub_openai::OpenAi;
use plugin_api::serde_json::Value;
use plugin_api::*;
use std::path::Path;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

pub fn call<'a>(
    endpoint: Endpoint,
    model: &'a str,
    body: &'a [u8],
    key: Option<&'a str>,
    stream: bool,
    include_usage: bool,
) -> Call<'a> {
    Call {
        credential: key.map_or(Credential::None, Credential::ApiKey),
        stream,
        include_usage,
        ..Call::new(endpoint, model, body)
    }
}

pub fn chat<'a>(body: &'a [u8], stream: bool, include_usage: bool) -> Call<'a> {
    call(
        Endpoint::Chat,
        "gpt-4o",
        body,
        Some("sk-test"),
        stream,
        include_usage,
    )
}

pub fn upstream(p: Result<Prepared, ProviderError>) -> HttpRequest {
    match p {
        Ok(Prepared::Upstream(r)) => r,
        other => panic!("expected an upstream request, got {other:?}"),
    }
}

pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    let mut found = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name));
    let first = found.next().map(|(_, v)| v.as_str());
    assert!(found.next().is_none(), "header {name} sent twice");
    first
}

pub fn json_of(bytes: &[u8]) -> Value {
    plugin_api::serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// Everything a stream produced, as the host would see it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub chunks: Vec<Vec<u8>>,
    pub usage: Option<Usage>,
    pub done: bool,
    pub error: Option<ProviderError>,
}

impl Outcome {
    fn absorb(&mut self, out: StreamOutput) {
        self.chunks.extend(out.chunks);
        if out.usage.is_some() {
            self.usage = out.usage;
        }
        self.done |= out.done;
    }

    /// As one `StreamOutput`, for comparing with what crossed the ABI.
    pub fn into_output(self) -> StreamOutput {
        assert!(self.error.is_none(), "{:?}", self.error);
        StreamOutput {
            chunks: self.chunks,
            usage: self.usage,
            done: self.done,
        }
    }

    pub fn values(&self) -> Vec<Value> {
        self.chunks.iter().map(|c| json_of(c)).collect()
    }
}

/// Feeds `pieces` in order, then finishes, like the host.
pub fn decode_pieces(p: &OpenAi, include_usage: bool, pieces: &[&[u8]]) -> Outcome {
    let body = br#"{"messages":[]}"#;
    let c = chat(body, true, include_usage);
    let mut d = p.stream(&c).expect("decoder");
    let mut o = Outcome::default();
    for piece in pieces {
        let mut out = StreamOutput::default();
        match d.feed(piece, &mut out) {
            Ok(()) => o.absorb(out),
            Err(e) => {
                o.error = Some(e);
                return o;
            }
        }
    }
    let mut out = StreamOutput::default();
    match d.finish(&mut out) {
        Ok(()) => o.absorb(out),
        Err(e) => o.error = Some(e),
    }
    o
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
