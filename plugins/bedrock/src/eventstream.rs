//! The AWS event-stream framing (`application/vnd.amazon.eventstream`) that
//! `converse-stream` answers in: binary messages, each
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC-32 u32 | headers | payload | message CRC-32 u32
//! ```
//!
//! all big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything
//! before it. A header is a 1-byte name length, the name, a 1-byte type and a value.
//!
//! [`Decoder`] takes bytes split anywhere and yields whole, checked messages. It checks
//! the prelude CRC as soon as the 12 prelude bytes are in, so a corrupt length never has
//! it wait for megabytes that will not come. [`encode`] writes messages (tests, mocks).

use plugin_api::ProviderError;

/// The prelude: two lengths and their CRC.
const PRELUDE: usize = 12;
/// Prelude plus the trailing message CRC: the size of a message with no headers or payload.
const MIN_MESSAGE: usize = PRELUDE + 4;
/// The largest message accepted (AWS's own limit is 16 MiB); a bigger length is corrupt.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The largest headers section AWS allows.
const MAX_HEADERS: usize = 128 * 1024;

/// A header value, by its wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The string value of a header (`:event-type`, `:message-type`, ...).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

fn corrupt(what: impl std::fmt::Display) -> ProviderError {
    ProviderError::upstream(format!("Bedrock sent a corrupt event stream: {what}"))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Keeps the bytes of an unfinished message between feeds. After an error it stays
/// failed: the stream cannot be resynchronised.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed (dropped at the end of each feed).
    start: usize,
    /// The prelude of the message at `start` was checked.
    prelude_ok: bool,
    failed: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole messages `bytes` completes, in order. An error (bad CRC, impossible
    /// length, malformed headers) ends the stream and drops the messages decoded before
    /// it in the same bytes; [`Decoder::feed_into`] keeps them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Message>, ProviderError> {
        let mut out = Vec::new();
        self.feed_into(bytes, &mut out)?;
        Ok(out)
    }

    /// Like [`Decoder::feed`], appending to `out` every message decoded before an error.
    pub fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<Message>) -> Result<(), ProviderError> {
        if self.failed {
            return Err(corrupt("the stream already failed"));
        }
        self.buf.extend_from_slice(bytes);
        let r = self.drain(out);
        if r.is_err() {
            self.failed = true;
            self.buf = Vec::new();
            self.start = 0;
        } else if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        r
    }

    fn drain(&mut self, out: &mut Vec<Message>) -> Result<(), ProviderError> {
        loop {
            let rest = &self.buf[self.start..];
            if rest.len() < PRELUDE {
                return Ok(());
            }
            let total = be32(rest) as usize;
            if !self.prelude_ok {
                check_prelude(rest)?;
                self.prelude_ok = true;
            }
            if rest.len() < total {
                return Ok(());
            }
            let msg = parse(&rest[..total])?;
            self.start += total;
            self.prelude_ok = false;
            out.push(msg);
        }
    }

    /// Some bytes of an unfinished message are held: the stream stopped inside it.
    pub fn has_partial(&self) -> bool {
        self.buf.len() > self.start
    }
}

/// The 12 prelude bytes: their CRC, and lengths that can make a message.
fn check_prelude(b: &[u8]) -> Result<(), ProviderError> {
    let want = be32(&b[8..12]);
    let got = crc32fast::hash(&b[..8]);
    if got != want {
        return Err(corrupt(format!(
            "prelude checksum mismatch (sent {want:08x}, computed {got:08x})"
        )));
    }
    let total = be32(b) as usize;
    let headers = be32(&b[4..8]) as usize;
    if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&total) {
        return Err(corrupt(format!("impossible message length {total}")));
    }
    if headers > MAX_HEADERS || headers > total - MIN_MESSAGE {
        return Err(corrupt(format!(
            "headers length {headers} does not fit a {total}-byte message"
        )));
    }
    Ok(())
}

/// One whole message whose prelude was checked.
fn parse(m: &[u8]) -> Result<Message, ProviderError> {
    let (body, crc) = m.split_at(m.len() - 4);
    let want = be32(crc);
    let got = crc32fast::hash(body);
    if got != want {
        return Err(corrupt(format!(
            "message checksum mismatch (sent {want:08x}, computed {got:08x})"
        )));
    }
    let headers_len = be32(&m[4..8]) as usize;
    let headers = parse_headers(&body[PRELUDE..PRELUDE + headers_len])?;
    Ok(Message {
        headers,
        payload: body[PRELUDE + headers_len..].to_vec(),
    })
}

/// Reads from a byte slice, failing cleanly when it runs out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProviderError> {
        if self.0.len() < n {
            return Err(corrupt("a header runs past the headers section"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProviderError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProviderError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, ProviderError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }
}

fn parse_headers(b: &[u8]) -> Result<Vec<(String, HeaderValue)>, ProviderError> {
    let mut r = Reader(b);
    let mut headers = Vec::new();
    while !r.0.is_empty() {
        let len = usize::from(r.u8()?);
        if len == 0 {
            return Err(corrupt("a header has an empty name"));
        }
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| corrupt("a header name is not UTF-8"))?
            .to_string();
        let value = match r.u8()? {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(r.array()?)),
            3 => HeaderValue::Short(i16::from_be_bytes(r.array()?)),
            4 => HeaderValue::Int(i32::from_be_bytes(r.array()?)),
            5 => HeaderValue::Long(i64::from_be_bytes(r.array()?)),
            6 => {
                let n = r.u16()?;
                HeaderValue::Bytes(r.take(n)?.to_vec())
            }
            7 => {
                let n = r.u16()?;
                let s = std::str::from_utf8(r.take(n)?)
                    .map_err(|_| corrupt(format!("header {name} is not UTF-8")))?;
                HeaderValue::String(s.to_string())
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(r.array()?)),
            9 => HeaderValue::Uuid(r.array()?),
            t => return Err(corrupt(format!("header {name} has unknown type {t}"))),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// One message on the wire. Names longer than 255 bytes and byte or string values longer
/// than 65,535 are cut to fit (only tests and mocks write messages).
pub fn encode(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(255)];
        h.push(name.len() as u8);
        h.extend_from_slice(name);
        let var = |t: u8, bytes: &[u8], h: &mut Vec<u8>| {
            let bytes = &bytes[..bytes.len().min(usize::from(u16::MAX))];
            h.push(t);
            h.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            h.extend_from_slice(bytes);
        };
        match value {
            HeaderValue::Bool(true) => h.push(0),
            HeaderValue::Bool(false) => h.push(1),
            HeaderValue::Byte(v) => {
                h.push(2);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Short(v) => {
                h.push(3);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                h.push(4);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                h.push(5);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(b) => var(6, b, &mut h),
            HeaderValue::String(s) => var(7, s.as_bytes(), &mut h),
            HeaderValue::Timestamp(v) => {
                h.push(8);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(u) => {
                h.push(9);
                h.extend_from_slice(u);
            }
        }
    }
    let total = (MIN_MESSAGE + h.len() + payload.len()) as u32;
    let mut m = Vec::with_capacity(total as usize);
    m.extend_from_slice(&total.to_be_bytes());
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&m);
    m.extend_from_slice(&prelude_crc.to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    let crc = crc32fast::hash(&m);
    m.extend_from_slice(&crc.to_be_bytes());
    m
}

/// A Bedrock event: `:message-type event`, its `:event-type`, JSON content.
pub fn event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":event-type", HeaderValue::String(event_type.into())),
            (
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            (":message-type", HeaderValue::String("event".into())),
        ],
        payload,
    )
}

/// A Bedrock exception: `:message-type exception` and its `:exception-type`.
pub fn exception(exception_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (
                ":exception-type",
                HeaderValue::String(exception_type.into()),
            ),
            (
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            (":message-type", HeaderValue::String("exception".into())),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_types() -> Vec<(&'static str, HeaderValue)> {
        vec![
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-2)),
            ("s", HeaderValue::Short(-300)),
            ("i", HeaderValue::Int(70_000)),
            ("l", HeaderValue::Long(-5_000_000_000)),
            ("y", HeaderValue::Bytes(vec![0, 255, 7])),
            ("str", HeaderValue::String("héllo".into())),
            ("ts", HeaderValue::Timestamp(1_440_938_160_000)),
            ("u", HeaderValue::Uuid([9; 16])),
        ]
    }

    #[test]
    fn every_header_type_round_trips() {
        let bytes = encode(&all_types(), b"{\"x\":1}");
        let msgs = Decoder::new().feed(&bytes).unwrap();
        assert_eq!(msgs.len(), 1);
        let want: Vec<(String, HeaderValue)> = all_types()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        assert_eq!(msgs[0].headers, want);
        assert_eq!(msgs[0].payload, b"{\"x\":1}");
        assert_eq!(msgs[0].header_str("str"), Some("héllo"));
        assert_eq!(msgs[0].header_str("i"), None);
    }

    /// The prelude of AWS's documented empty message (no headers, no payload): lengths
    /// 16 and 0, prelude CRC 0x05c248eb, message CRC 0x7d98c8ff.
    #[test]
    fn empty_message_matches_the_published_bytes() {
        let bytes = encode(&[], b"");
        assert_eq!(
            bytes,
            [0, 0, 0, 16, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff]
        );
        let m = Decoder::new().feed(&bytes).unwrap();
        assert_eq!(
            m,
            vec![Message {
                headers: vec![],
                payload: vec![]
            }]
        );
    }

    #[test]
    fn byte_at_a_time() {
        let mut bytes = event("a", b"{}");
        let first = bytes.len();
        bytes.extend(event("b", b"[1]"));
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            got.extend(d.feed(std::slice::from_ref(b)).unwrap());
            let fed = i + 1;
            assert_eq!(d.has_partial(), fed != first && fed != bytes.len(), "{fed}");
            assert_eq!(
                got.len(),
                usize::from(fed >= first) + usize::from(fed == bytes.len())
            );
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].header_str(":event-type"), Some("b"));
        assert!(!d.has_partial());
    }

    #[test]
    fn corrupt_input_fails_cleanly() {
        let good = event("a", b"{}");
        // Prelude CRC: detected from the first 12 bytes alone.
        let mut bad = good.clone();
        bad[1] ^= 0x40;
        let e = Decoder::new().feed(&bad[..PRELUDE]).unwrap_err();
        assert!(e.message.contains("prelude checksum"), "{e}");
        // Message CRC: a flipped payload byte.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        let e = Decoder::new().feed(&bad).unwrap_err();
        assert!(e.message.contains("message checksum"), "{e}");
        // Impossible lengths with a valid prelude CRC.
        for (total, headers) in [(8u32, 0u32), (20, 9), (u32::MAX, 0)] {
            let mut p = Vec::new();
            p.extend(total.to_be_bytes());
            p.extend(headers.to_be_bytes());
            p.extend(crc32fast::hash(&p).to_be_bytes());
            let e = Decoder::new().feed(&p).unwrap_err();
            assert_eq!(e.class, plugin_api::ErrorClass::Upstream);
        }
        // A header whose value runs past its section, with correct CRCs.
        let mut h = vec![1, b'x', 7, 0, 9, b'a'];
        let total = (MIN_MESSAGE + h.len()) as u32;
        let mut m = Vec::new();
        m.extend(total.to_be_bytes());
        m.extend((h.len() as u32).to_be_bytes());
        m.extend(crc32fast::hash(&m).to_be_bytes());
        m.append(&mut h);
        m.extend(crc32fast::hash(&m).to_be_bytes());
        let e = Decoder::new().feed(&m).unwrap_err();
        assert!(e.message.contains("runs past"), "{e}");
        // After an error, the decoder stays failed.
        let mut d = Decoder::new();
        assert!(d.feed(&bad).is_err());
        assert!(d.feed(&good).is_err());
    }

    #[test]
    fn messages_before_an_error_are_kept() {
        let mut bytes = event("a", b"{}");
        let mut bad = event("b", b"{}");
        bad[2] ^= 1;
        bytes.extend(bad);
        let mut out = Vec::new();
        assert!(Decoder::new().feed_into(&bytes, &mut out).is_err());
        assert_eq!(out.len(), 1);
    }
}
