//! Reading and editing one text field of a `multipart/form-data` body (RFC 7578), for
//! plugins that route or rewrite an upload (audio transcription: the `model` field)
//! while every other byte — the file included — passes through unchanged.

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty() && v.len() <= 70).then_some(v)
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// One part: where its value starts and ends in the body, and its field name.
struct Part<'a> {
    name: &'a [u8],
    value: std::ops::Range<usize>,
}

/// The parts of `body`, in order; `None` when it is not well-formed multipart.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delim = [b"--", boundary.as_bytes()].concat();
    let mut at = find(body, &delim, 0)? + delim.len();
    let mut out = Vec::new();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(out);
        }
        // CRLF after the delimiter, then the part's headers up to a blank line.
        at = at
            .checked_add(2)
            .filter(|a| body.get(at..*a) == Some(b"\r\n"))?;
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = &body[at..head_end];
        let value_start = head_end + 4;
        let next = find(body, &[b"\r\n", delim.as_slice()].concat(), value_start)?;
        out.push(Part {
            name: field_name(head).unwrap_or_default(),
            value: value_start..next,
        });
        at = next + 2 + delim.len();
    }
}

/// `name="..."` of a part's `Content-Disposition: form-data` header.
fn field_name(head: &[u8]) -> Option<&[u8]> {
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"content-disposition") {
            continue;
        }
        let rest = &line[colon + 1..];
        let key = b"name=\"";
        let mut i = 0;
        while let Some(p) = find(rest, key, i) {
            // Not `filename="`.
            let starts_word = p == 0 || matches!(rest[p - 1], b' ' | b';' | b'\t');
            let start = p + key.len();
            let end = find(rest, b"\"", start)?;
            if starts_word {
                return Some(&rest[start..end]);
            }
            i = end;
        }
    }
    None
}

/// The value of the first field `name`.
pub fn field<'a>(body: &'a [u8], boundary: &str, name: &str) -> Option<&'a [u8]> {
    let parts = parts(body, boundary)?;
    let p = parts.into_iter().find(|p| p.name == name.as_bytes())?;
    Some(&body[p.value])
}

/// `body` with the value of the first field `name` replaced by `value`, every other byte
/// kept; `None` when there is no such field or the body is not well-formed.
pub fn replace_field(body: &[u8], boundary: &str, name: &str, value: &[u8]) -> Option<Vec<u8>> {
    let parts = parts(body, boundary)?;
    let p = parts.into_iter().find(|p| p.name == name.as_bytes())?;
    let mut out = Vec::with_capacity(body.len() + value.len());
    out.extend_from_slice(&body[..p.value.start]);
    out.extend_from_slice(value);
    out.extend_from_slice(&body[p.value.end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01\r\n--X\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nopenai/whisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\nsrt\r\n--XyZ--\r\n";

    #[test]
    fn reads_and_replaces_one_field_keeping_every_other_byte() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ"), Some("XyZ"));
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(field(BODY, "XyZ", "model"), Some(&b"openai/whisper-1"[..]));
        assert_eq!(field(BODY, "XyZ", "response_format"), Some(&b"srt"[..]));
        assert_eq!(
            field(BODY, "XyZ", "file"),
            Some(&b"RIFF\x00\x01\r\n--X"[..])
        );
        assert_eq!(
            field(BODY, "XyZ", "a.wav"),
            None,
            "a filename is not a name"
        );
        let out = replace_field(BODY, "XyZ", "model", b"whisper-1").unwrap();
        assert_eq!(out.len(), BODY.len() - "openai/".len());
        assert_eq!(field(&out, "XyZ", "model"), Some(&b"whisper-1"[..]));
        assert_eq!(field(&out, "XyZ", "file"), field(BODY, "XyZ", "file"));
        assert_eq!(replace_field(BODY, "XyZ", "nope", b"x"), None);
    }

    #[test]
    fn malformed_bodies_are_none_not_panics() {
        for body in [
            &b""[..],
            b"--XyZ",
            b"--XyZ\r\n",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nx",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\r\n\r\nx\r\n--XyZ--",
            b"garbage --XyZ-- more",
        ] {
            let _ = field(body, "XyZ", "model");
            let _ = replace_field(body, "XyZ", "model", b"m");
        }
        assert_eq!(
            field(
                b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nx",
                "XyZ",
                "model"
            ),
            None
        );
    }
}
