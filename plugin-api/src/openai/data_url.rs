//! `data:` URLs, the way OpenAI requests carry images, audio and files inline.
//!
//! Checked here so that a broken payload is refused with a message naming the content
//! part, instead of travelling to the upstream and coming back as its opaque 400.

use super::shown_str;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, DecodeSliceError, Engine};
use std::fmt;

/// The standard alphabet, as upstreams decode it: padding optional and stray bits in the
/// last character ignored, so nothing they would take is refused here.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Characters checked per step: a multiple of 4, so each step decodes on its own and a
/// payload of any size is checked in a fixed buffer.
const STEP: usize = 4096;

/// A base64 `data:` URL, split. `data` is still encoded, and known to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUrl<'a> {
    /// The media type, lower-cased, without parameters; empty when the URL gives none.
    pub mime: String,
    /// The base64 payload as sent.
    pub data: &'a str,
}

/// Why a string is not a usable base64 `data:` URL. Displays as a sentence that follows
/// the JSON path of the offending field (`messages[0].content[1]: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataUrlError {
    /// It does not start with `data:` (callers may take it as a remote URL instead).
    NotDataUrl,
    /// No `,` separating the header from the data.
    Malformed,
    /// The header lacks `;base64`: the data is percent-encoded text, not bytes.
    NotBase64,
    /// The media type is not `type/subtype`.
    BadMime(String),
    /// The payload does not decode.
    BadPayload(Base64Error),
}

impl fmt::Display for DataUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataUrlError::NotDataUrl => f.write_str("expected a data URL (data:<media type>;base64,<data>)"),
            DataUrlError::Malformed => f.write_str(
                "the data URL has no ',' before its data; it must look like data:<media type>;base64,<data>",
            ),
            DataUrlError::NotBase64 => f.write_str(
                "the data URL must be base64-encoded: data:<media type>;base64,<data>",
            ),
            DataUrlError::BadMime(m) => write!(
                f,
                "the data URL media type {} is not of the form type/subtype (e.g. image/png)",
                shown_str(m)
            ),
            DataUrlError::BadPayload(e) => write!(f, "the data URL payload is not valid base64: {e}"),
        }
    }
}

impl std::error::Error for DataUrlError {}

/// Why a base64 payload does not decode; positions count bytes from the payload's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base64Error {
    /// Nothing to decode.
    Empty,
    /// A byte outside the standard alphabet (`A-Z a-z 0-9 + /`, `=` only at the end).
    InvalidByte { at: usize, byte: u8 },
    /// The payload ends mid-character: some of it is missing.
    Truncated,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64Error::Empty => f.write_str("it is empty"),
            Base64Error::InvalidByte { at, byte } if byte.is_ascii_whitespace() => write!(
                f,
                "whitespace at position {at}; remove spaces and line breaks"
            ),
            Base64Error::InvalidByte { at, byte: b'=' } => write!(
                f,
                "misplaced '=' at position {at}; padding may only end the payload, at most two of it"
            ),
            Base64Error::InvalidByte { at, byte } if byte.is_ascii_graphic() => write!(
                f,
                "'{}' at position {at} is not a standard base64 character (A-Z, a-z, 0-9, +, /, = at the end)",
                char::from(*byte)
            ),
            Base64Error::InvalidByte { at, byte } => write!(
                f,
                "byte 0x{byte:02X} at position {at} is not a standard base64 character (A-Z, a-z, 0-9, +, /, = at the end)"
            ),
            Base64Error::Truncated => f.write_str("it is truncated (its length is not possible for base64)"),
        }
    }
}

impl std::error::Error for Base64Error {}

/// Whether `url` uses the `data:` scheme (case-insensitive, as schemes are).
pub fn is_data_url(url: &str) -> bool {
    url.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("data:"))
}

/// Splits and checks `data:<media type>[;param...];base64,<data>`.
pub fn data_url(url: &str) -> Result<DataUrl<'_>, DataUrlError> {
    if !is_data_url(url) {
        return Err(DataUrlError::NotDataUrl);
    }
    let (header, data) = url[5..].split_once(',').ok_or(DataUrlError::Malformed)?;
    let mut params = header.split(';');
    let mime = params.next().unwrap_or("").trim().to_ascii_lowercase();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(DataUrlError::NotBase64);
    }
    if !mime.is_empty() && !is_media_type(&mime) {
        return Err(DataUrlError::BadMime(mime));
    }
    check_base64(data).map_err(DataUrlError::BadPayload)?;
    Ok(DataUrl { mime, data })
}

/// `type/subtype`, both RFC 2045 tokens.
fn is_media_type(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    matches!(s.split_once('/'), Some((t, sub)) if token(t) && token(sub))
}

/// Checks that `data` is standard base64 without keeping the decoded bytes: it is decoded
/// in fixed-size steps into one small buffer.
pub fn check_base64(data: &str) -> Result<(), Base64Error> {
    let bytes = data.as_bytes();
    if bytes.is_empty() {
        return Err(Base64Error::Empty);
    }
    // Padding may only end the payload; a step that ends in `=` would otherwise pass.
    let body = bytes.len() - bytes.iter().rev().take_while(|b| **b == b'=').count();
    if let Some(at) = bytes[..body].iter().position(|b| *b == b'=') {
        return Err(Base64Error::InvalidByte { at, byte: b'=' });
    }
    let mut buf = [0u8; STEP / 4 * 3];
    for (k, step) in bytes.chunks(STEP).enumerate() {
        let offset = k * STEP;
        LENIENT.decode_slice(step, &mut buf).map_err(|e| match e {
            DecodeSliceError::DecodeError(
                DecodeError::InvalidByte(at, byte) | DecodeError::InvalidLastSymbol(at, byte),
            ) => Base64Error::InvalidByte {
                at: offset + at,
                byte,
            },
            DecodeSliceError::DecodeError(
                DecodeError::InvalidLength(_) | DecodeError::InvalidPadding,
            )
            | DecodeSliceError::OutputSliceTooSmall => Base64Error::Truncated,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn splits_and_lowercases() {
        assert_eq!(
            data_url("data:image/PNG;base64,AAAA"),
            Ok(DataUrl {
                mime: "image/png".into(),
                data: "AAAA"
            })
        );
        assert_eq!(
            data_url("DATA:application/pdf;name=a.pdf;base64,QQ=="),
            Ok(DataUrl {
                mime: "application/pdf".into(),
                data: "QQ=="
            })
        );
        assert_eq!(
            data_url("data:;base64,QQ"),
            Ok(DataUrl {
                mime: String::new(),
                data: "QQ"
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_base64_data_url() {
        assert_eq!(data_url("https://x/y.png"), Err(DataUrlError::NotDataUrl));
        assert_eq!(data_url(""), Err(DataUrlError::NotDataUrl));
        assert_eq!(data_url("dät"), Err(DataUrlError::NotDataUrl));
        assert_eq!(data_url("data:image/png"), Err(DataUrlError::Malformed));
        assert_eq!(
            data_url("data:image/png,rawbytes"),
            Err(DataUrlError::NotBase64)
        );
        assert!(matches!(
            data_url("data:image png;base64,AAAA"),
            Err(DataUrlError::BadMime(_))
        ));
        assert!(matches!(
            data_url("data:image/\"png\r\n;base64,AAAA"),
            Err(DataUrlError::BadMime(_))
        ));
        assert_eq!(
            data_url("data:image/png;base64,"),
            Err(DataUrlError::BadPayload(Base64Error::Empty))
        );
    }

    #[test]
    fn payloads_must_decode() {
        for ok in [
            "Zm9v",
            "Zm9vYg==",
            "Zm9vYg",
            "Zm9vYh==",
            "+/+/",
            "iVBORw0KGgoAAAANSUhEUg==",
        ] {
            assert_eq!(check_base64(ok), Ok(()), "{ok}");
        }
        let bad = |s: &str| check_base64(s).unwrap_err();
        assert_eq!(bad("Zm9v!"), Base64Error::InvalidByte { at: 4, byte: b'!' });
        assert_eq!(
            bad("Zm9v\nYg=="),
            Base64Error::InvalidByte { at: 4, byte: b'\n' }
        );
        assert_eq!(bad("Zm-_"), Base64Error::InvalidByte { at: 2, byte: b'-' });
        assert_eq!(
            bad("QQ==QQ=="),
            Base64Error::InvalidByte { at: 2, byte: b'=' }
        );
        assert_eq!(bad("Zm9vY"), Base64Error::Truncated);
        assert_eq!(
            bad("Zm9vY==="),
            Base64Error::InvalidByte { at: 5, byte: b'=' }
        );
        assert!(bad("Zm9vY===").to_string().contains("padding"));
        // Multibyte text: the first byte of 'é' is reported, nothing panics.
        assert_eq!(bad("Zm9vé"), Base64Error::InvalidByte { at: 4, byte: 0xC3 });
        assert!(bad("Zm9vé").to_string().contains("0xC3 at position 4"));
        assert!(bad("ab c").to_string().contains("whitespace"));
    }

    #[test]
    fn large_payloads_are_checked_across_steps() {
        let raw: Vec<u8> = (0..=255u8).cycle().take(3 * STEP + 1).collect();
        let mut text = STANDARD.encode(&raw);
        assert_eq!(check_base64(&text), Ok(()));
        // A bad byte far past the first step is found at its true position.
        let at = 2 * STEP + 17;
        text.replace_range(at..at + 1, "*");
        assert_eq!(
            check_base64(&text),
            Err(Base64Error::InvalidByte { at, byte: b'*' })
        );
        // A padded block in the middle of a long payload is refused.
        let mut glued = "QQ==".repeat(STEP);
        glued.push_str("QQ");
        assert_eq!(
            check_base64(&glued),
            Err(Base64Error::InvalidByte { at: 2, byte: b'=' })
        );
    }

    #[test]
    fn messages_say_what_to_fix() {
        let msg = |u: &str| data_url(u).unwrap_err().to_string();
        assert!(msg("data:image/png,x").contains("base64,<data>"));
        assert!(msg("data:image/png;base64,@@@@").contains("'@' at position 0"));
        // A hostile media type is cut short in the message.
        let long = format!("data:{};base64,AAAA", "x".repeat(10_000));
        assert!(msg(&long).len() < 200, "{}", msg(&long));
    }
}
