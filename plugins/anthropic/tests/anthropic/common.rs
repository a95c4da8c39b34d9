//! Helpers shared by the integration tests: providers, calls, and a stream driver that
//! behaves like the host (output before an error is kept, nothing is fed after it).

#![allow(dead_code)]

use aihub_anthropic::Anthropic;
use plugin_api::serde_json::{self, Value};
use plugin_api::*;
use std::path::Path;

pub const MODEL: &str = "claude-sonnet-4-5";

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
    Call {
        credential: Credential::ApiKey("sk-ant-test"),
        stream,
        include_usage,
        ..Call::new(Endpoint::Chat, MODEL, body)
    }
}

pub fn upstream(p: Result<Prepared, ProviderError>) -> HttpRequest {
    match p {
        Ok(Prepared::Upstream(r)) => r,
        other => panic!("expected an upstream request, got {other:?}"),
    }
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
    serde_json::from_slice(bytes)
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
    pub fn absorb(&mut self, out: StreamOutput) {
        self.chunks.extend(out.chunks);
        if out.usage.is_some() {
            self.usage = out.usage;
        }
        self.done |= out.done;
    }

    /// The chunks as JSON, without `created` (a clock reading, not stream content).
    pub fn values(&self) -> Vec<Value> {
        self.chunks
            .iter()
            .map(|c| {
                let mut v = json_of(c);
                v.as_object_mut().unwrap().remove("created");
                v
            })
            .collect()
    }

    /// Comparable across decoders: chunks without `created`, usage, done, error.
    pub fn normalized(&self) -> (Vec<Value>, Option<Usage>, bool, Option<ProviderError>) {
        (self.values(), self.usage, self.done, self.error.clone())
    }

    pub fn text(&self) -> String {
        self.values()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }

    pub fn finish_reasons(&self) -> Vec<String> {
        self.values()
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(String::from))
            .collect()
    }

    pub fn usage_chunks(&self) -> Vec<Value> {
        self.values()
            .into_iter()
            .filter(|c| c.get("usage").is_some())
            .collect()
    }
}

/// Feeds `pieces` in order, then finishes, like the host.
pub fn decode_pieces(include_usage: bool, pieces: &[&[u8]]) -> Outcome {
    let p = anthropic();
    let body = br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let c = chat(body, true, include_usage);
    let mut d = p.stream(&c).expect("decoder");
    let mut o = Outcome::default();
    for piece in pieces {
        let mut out = StreamOutput::default();
        let r = d.feed(piece, &mut out);
        o.absorb(out);
        if let Err(e) = r {
            o.error = Some(e);
            return o;
        }
    }
    let mut out = StreamOutput::default();
    let r = d.finish(&mut out);
    o.absorb(out);
    if let Err(e) = r {
        o.error = Some(e);
    }
    o
}

pub fn decode(include_usage: bool, bytes: &[u8]) -> Outcome {
    decode_pieces(include_usage, &[bytes])
}
