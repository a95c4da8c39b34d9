//! The event-stream decoder against AWS's published encoding vectors
//! (`tests/fixtures/eventstream/`, see its SOURCE.md), whole and at every split.

use crate::common::*;
use aihub_bedrock::eventstream::{encode, Decoder, HeaderValue, Message};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use plugin_api::serde_json::Value;

const POSITIVE: [&str; 5] = [
    "all_headers",
    "empty_message",
    "int32_header",
    "payload_no_headers",
    "payload_one_str_header",
];
const NEGATIVE: [&str; 4] = [
    "corrupted_header_len",
    "corrupted_headers",
    "corrupted_length",
    "corrupted_payload",
];

fn b64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

/// The message a `decoded/positive` file describes.
fn expected(v: &Value) -> Message {
    let headers = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let value = &h["value"];
            let int = || value.as_i64().unwrap();
            let hv = match h["type"].as_u64().unwrap() {
                0 => HeaderValue::Bool(true),
                1 => HeaderValue::Bool(false),
                2 => HeaderValue::Byte(int() as i8),
                3 => HeaderValue::Short(int() as i16),
                4 => HeaderValue::Int(int() as i32),
                5 => HeaderValue::Long(int()),
                6 => HeaderValue::Bytes(b64(value)),
                7 => HeaderValue::String(String::from_utf8(b64(value)).unwrap()),
                8 => HeaderValue::Timestamp(int()),
                9 => HeaderValue::Uuid(b64(value).try_into().unwrap()),
                t => panic!("type {t}"),
            };
            (h["name"].as_str().unwrap().to_string(), hv)
        })
        .collect();
    Message {
        headers,
        payload: b64(&v["payload"]),
    }
}

/// Decodes `bytes` fed in the given pieces.
fn decode_split(pieces: &[&[u8]]) -> Result<Vec<Message>, String> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for p in pieces {
        d.feed_into(p, &mut out).map_err(|e| e.message)?;
    }
    if d.has_partial() {
        return Err("partial".into());
    }
    Ok(out)
}

#[test]
fn positive_vectors_decode_and_encode_back() {
    for name in POSITIVE {
        let bytes = fixture(&format!("eventstream/encoded/positive/{name}"));
        let v = json_of(&fixture(&format!("eventstream/decoded/positive/{name}")));
        assert_eq!(
            bytes.len() as u64,
            v["total_length"].as_u64().unwrap(),
            "{name}"
        );
        let want = expected(&v);
        for i in 0..=bytes.len() {
            let got = decode_split(&[&bytes[..i], &bytes[i..]])
                .unwrap_or_else(|e| panic!("{name} split at {i}: {e}"));
            assert_eq!(got, vec![want.clone()], "{name} split at {i}");
        }
        // Our encoder writes the same bytes, CRCs included.
        let headers: Vec<(&str, HeaderValue)> = want
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        assert_eq!(encode(&headers, &want.payload), bytes, "{name}");
        // All five back to back, byte by byte.
    }
    let all: Vec<u8> = POSITIVE
        .iter()
        .flat_map(|n| fixture(&format!("eventstream/encoded/positive/{n}")))
        .collect();
    let pieces: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(decode_split(&pieces).unwrap().len(), POSITIVE.len());
}

#[test]
fn negative_vectors_fail_with_the_published_reason() {
    for name in NEGATIVE {
        let bytes = fixture(&format!("eventstream/encoded/negative/{name}"));
        let reason =
            String::from_utf8(fixture(&format!("eventstream/decoded/negative/{name}"))).unwrap();
        let reason = reason.trim().to_ascii_lowercase();
        for i in 0..=bytes.len() {
            let e = decode_split(&[&bytes[..i], &bytes[i..]]).unwrap_err();
            assert!(
                e.to_ascii_lowercase().contains(&reason),
                "{name} split at {i}: {e} (want {reason})"
            );
        }
    }
}
