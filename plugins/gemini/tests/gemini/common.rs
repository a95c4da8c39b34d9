//! Helpers shared by the integration tests: a provider, calls, and a stream driver that
//! behaves like the host (nothing is fed after an error).

#![allow(dead_code)]

use aihub_gemini::Gemini;
use plugin_api::serde_json::{self, Value};
use plugin_api::*;
use std::path::Path;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
    Call {
        credential: Credential::ApiKey(KEY),
        stream,
        include_usage,
        ..Call::new(endpoint, model, body)
    }
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
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// The upstream body `prepare` builds for an OpenAI chat body.
pub fn prepared_chat(body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let req = upstream(gemini().prepare(&chat(&bytes, false, false)));
    json_of(&req.body)
}

pub fn prepare_err(body: &Value) -> ProviderError {
    let bytes = serde_json::to_vec(body).unwrap();
    match gemini().prepare(&chat(&bytes, false, false)) {
        Err(e) => e,
        Ok(p) => panic!("expected an error, got {p:?}"),
    }
}

pub fn ok(status: u16, body: &[u8]) -> Response<'_> {
    Response {
        status,
        headers: &[],
        body,
    }
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

    pub fn values(&self) -> Vec<Value> {
        self.chunks.iter().map(|c| json_of(c)).collect()
    }

    /// The text the client would assemble from the content deltas.
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
}

/// Feeds `pieces` in order, then finishes, stopping at the first error like the host.
pub fn decode_pieces(include_usage: bool, pieces: &[&[u8]]) -> Outcome {
    let c = chat(b"{}", true, include_usage);
    let mut d = gemini().stream(&c).expect("decoder");
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
    o.error = r.err();
    o
}

pub fn decode(include_usage: bool, bytes: &[u8]) -> Outcome {
    decode_pieces(include_usage, &[bytes])
}
