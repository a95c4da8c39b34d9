//! What the fuzz targets share: how one fuzzer input becomes a flags byte and a body cut
//! into pieces, and the drivers that run a plugin the way the host does (through the
//! `Plugin` and `StreamDecoder` traits, as the plugins' own tests do).
//!
//! Input layout: byte 0 is flags, byte 1 the number of cuts (mod 16), then one
//! little-endian `u16` per cut (a position in the body, mod its length), then the body.
//! The seeds in `corpus/<target>/` follow it (written by `corpus/seed.py`).

use plugin_api::{
    Call, Credential, Endpoint, Plugin, ProviderConfig, Response, StreamDecoder, StreamOutput,
};

pub struct Input<'a> {
    pub flags: u8,
    pub body: &'a [u8],
    /// `body` cut at the fuzzer's positions; together they are `body`.
    pub pieces: Vec<&'a [u8]>,
}

pub fn split(data: &[u8]) -> Input<'_> {
    let flags = data.first().copied().unwrap_or(0);
    let n = usize::from(data.get(1).copied().unwrap_or(0) % 16);
    let header = (2 + 2 * n).min(data.len());
    let body = &data[header..];
    let mut cuts: Vec<usize> = data[2.min(data.len())..header]
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for c in cuts {
        pieces.push(&body[at..c]);
        at = c;
    }
    pieces.push(&body[at..]);
    Input {
        flags,
        body,
        pieces,
    }
}

/// A provider instance as the host makes one, with the plugin's default options.
pub fn provider<P: Plugin>(prefix: &str, base_url: &str) -> Option<P> {
    P::new(ProviderConfig {
        prefix: prefix.into(),
        base_url: base_url.into(),
        options: plugin_api::serde_json::Value::Null,
    })
    .ok()
}

const STREAM_REQUEST: &[u8] =
    br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// Feeds the pieces to a fresh stream decoder, stopping at the first error as the host
/// does, then finishes. Flag bit 0: the client asked for usage.
pub fn stream<P: Plugin>(p: &P, model: &str, data: &[u8]) {
    let input = split(data);
    let call = Call {
        credential: Credential::ApiKey("sk-fuzz"),
        stream: true,
        include_usage: input.flags & 1 != 0,
        ..Call::new(Endpoint::Chat, model, STREAM_REQUEST)
    };
    let Ok(mut decoder) = p.stream(&call) else {
        return;
    };
    for piece in &input.pieces {
        let mut out = StreamOutput::default();
        if decoder.feed(piece, &mut out).is_err() {
            return;
        }
    }
    let mut out = StreamOutput::default();
    let _ = decoder.finish(&mut out);
}

const STATUSES: [u16; 8] = [200, 400, 401, 403, 404, 429, 500, 529];

/// Translates the body as a client request (`prepare`), then reads the same bytes as the
/// upstream's reply (`parse`). Flags: bits 0-1 the endpoint, bit 2 `stream`, bit 3
/// `include_usage`, bits 4-6 the reply status.
pub fn request<P: Plugin>(p: &P, model: &str, data: &[u8]) {
    let flags = data.first().copied().unwrap_or(0);
    let body = data.get(1..).unwrap_or_default();
    let endpoint = match flags & 3 {
        1 => Endpoint::Embeddings,
        2 => Endpoint::Images,
        _ => Endpoint::Chat,
    };
    let call = Call {
        credential: Credential::ApiKey("sk-fuzz"),
        stream: flags & 4 != 0,
        include_usage: flags & 8 != 0,
        ..Call::new(endpoint, model, body)
    };
    let _ = p.prepare(&call);
    let headers = [("retry-after", "1"), ("content-type", "application/json")];
    let response = Response {
        status: STATUSES[usize::from(flags >> 4) % STATUSES.len()],
        headers: &headers,
        body,
    };
    let _ = p.parse(&call, &response);
}

/// Feeds each line of `data` to a client-format stream writer as one chat chunk, then
/// ends it cleanly or with a failure (by the first byte), checking the output is bounded
/// by what went in (a writer must not blow up a small input).
pub fn feed_chunks<W: formats::StreamWriter>(w: &mut W, data: &[u8]) {
    let mut out = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        w.chunk(line, &mut out);
    }
    if data.first().is_some_and(|b| b & 1 == 1) {
        w.fail(
            &formats::StreamFailure {
                status: 502,
                upstream_status: Some(529),
                code: "upstream_error",
                message: "cut",
            },
            &mut out,
        );
    } else {
        w.finish(&mut out);
    }
    w.chunk(data, &mut out);
    assert!(
        out.len() <= 64 * 1024 + 64 * data.len(),
        "{} bytes out of {} in",
        out.len(),
        data.len()
    );
}
