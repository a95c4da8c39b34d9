//! Scrubbing secrets out of text that came from an upstream (error bodies, connection
//! errors) before the host stores, logs or returns it. Upstreams echo keys back: OpenAI
//! says `Incorrect API key provided: sk-...`, proxies repeat the `Authorization` header,
//! URLs carry `?key=...`.
//!
//! Two passes, both linear in the text:
//! 1. The secrets the host sent for the attempt (it knows them): every occurrence of a
//!    whole secret, and every fragment of [`MIN_FRAGMENT`] or more bytes of one (a
//!    truncated or partly masked echo), becomes `[redacted]`.
//! 2. Anything that looks like a credential, whoever's it is: `sk-…` (OpenAI,
//!    Anthropic `sk-ant-…`), `ak-…` (aihub app keys), `AKIA…` (AWS), `AIza…` (Google),
//!    `eyJ…` (JWTs), `Bearer …`/`Basic …`, and the value after a name ending in `key`,
//!    `token`, `secret`, `password` or `signature` followed by `=` or `:`.
//!
//! The result is capped at [`MAX_MESSAGE_BYTES`]: an error message must be bounded.

use std::collections::HashSet;

/// What a secret becomes.
pub const REDACTED: &str = "[redacted]";
/// Longest scrubbed message kept (bytes, cut at a character boundary).
pub const MAX_MESSAGE_BYTES: usize = crate::bounds::MAX_ERROR_MESSAGE;
/// Shortest fragment of a known secret that is redacted wherever it appears.
pub const MIN_FRAGMENT: usize = 12;
/// Shortest known secret redacted by exact match: shorter "keys" are placeholders for
/// local servers (`ollama`, `none`), and redacting them would garble ordinary words.
const MIN_SECRET: usize = 8;
/// Text beyond this is dropped before scanning (the result is capped far below it).
const MAX_INPUT_BYTES: usize = 8 * MAX_MESSAGE_BYTES;
/// Shortest run after a token prefix (`sk-`, `Bearer `, `key=`) taken for a credential.
const MIN_TOKEN: usize = 8;

/// Scrubs `text` of `secrets` and of anything that looks like a credential, and caps it.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let text = cut(text, MAX_INPUT_BYTES);
    let known = redact_known(text, secrets);
    let mut out = redact_patterns(&known);
    if out.len() > MAX_MESSAGE_BYTES {
        let keep = cut(&out, MAX_MESSAGE_BYTES - "… (truncated)".len()).len();
        out.truncate(keep);
        out.push_str("… (truncated)");
    }
    out
}

/// [`scrub`] without known secrets: for text whose attempt's key is not at hand.
pub fn scrub_patterns(text: &str) -> String {
    scrub(text, &[])
}

/// The credentials in an upstream request's headers (`Authorization` without its scheme,
/// `x-api-key`, operator-set token headers), to scrub from what comes back; those already
/// in `known` (the call's own credential, as a rule) are left out, so the usual request
/// copies nothing.
pub fn sent_secrets<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    known: &[&str],
) -> Vec<String> {
    headers
        .into_iter()
        .filter(|(name, _)| {
            secret_name(name.as_bytes())
                || name.eq_ignore_ascii_case("proxy-authorization")
                || name
                    .as_bytes()
                    .windows(4)
                    .any(|w| w.eq_ignore_ascii_case(b"auth"))
        })
        .map(|(_, value)| {
            let v = value.trim();
            match v.split_once(' ') {
                Some((scheme, rest))
                    if scheme.eq_ignore_ascii_case("bearer")
                        || scheme.eq_ignore_ascii_case("basic") =>
                {
                    rest.trim()
                }
                _ => v,
            }
        })
        .filter(|v| v.len() >= MIN_SECRET && !known.contains(v))
        .map(str::to_string)
        .collect()
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Pass 1: byte ranges of `text` covered by a whole secret or by a window of
/// [`MIN_FRAGMENT`] bytes of one, merged, each replaced once.
fn redact_known(text: &str, secrets: &[&str]) -> String {
    let bytes = text.as_bytes();
    let mut marks: Vec<(usize, usize)> = Vec::new();
    let mut windows: HashSet<&[u8]> = HashSet::new();
    for s in secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| s.len() >= MIN_SECRET)
    {
        let sb = s.as_bytes();
        if sb.len() < MIN_FRAGMENT {
            let mut from = 0;
            while let Some(at) = text[from..].find(s) {
                marks.push((from + at, from + at + sb.len()));
                from += at + sb.len();
            }
        } else {
            windows.extend(sb.windows(MIN_FRAGMENT));
        }
    }
    if !windows.is_empty() && bytes.len() >= MIN_FRAGMENT {
        for (i, w) in bytes.windows(MIN_FRAGMENT).enumerate() {
            if windows.contains(w) {
                marks.push((i, i + MIN_FRAGMENT));
            }
        }
    }
    if marks.is_empty() {
        return text.to_string();
    }
    marks.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut k = 0;
    while k < marks.len() {
        let (mut start, mut end) = marks[k];
        k += 1;
        while k < marks.len() && marks[k].0 <= end {
            end = end.max(marks[k].1);
            k += 1;
        }
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let start = start.max(pos);
        out.push_str(&text[pos..start]);
        out.push_str(REDACTED);
        pos = end.max(pos);
    }
    out.push_str(&text[pos..]);
    out
}

/// A character of a key, a token or a base64/URL-safe (or percent-encoded) value.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=' | b'%')
}

/// Length of the token run from `at`, without trailing dots (the end of a sentence).
fn value_run(bytes: &[u8], at: usize) -> usize {
    let n = run(bytes, at, token_byte);
    n - bytes[at..at + n]
        .iter()
        .rev()
        .take_while(|b| **b == b'.')
        .count()
}

/// A character that may continue an identifier-like word (nothing may precede a prefix
/// such as `sk-` but a separator).
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

/// Length of the run of bytes satisfying `f` from `at`.
fn run(bytes: &[u8], at: usize, f: impl Fn(u8) -> bool) -> usize {
    bytes[at..].iter().take_while(|b| f(**b)).count()
}

fn starts_with_ignore_case(bytes: &[u8], at: usize, prefix: &[u8]) -> bool {
    bytes.len() >= at + prefix.len() && bytes[at..at + prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Names whose value after `=`/`:` is a credential.
fn secret_name(name: &[u8]) -> bool {
    let ends = |suffix: &[u8]| {
        name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    [
        &b"key"[..],
        b"token",
        b"secret",
        b"password",
        b"signature",
        b"credential",
    ]
    .iter()
    .any(|s| ends(s))
        || name.eq_ignore_ascii_case(b"sig")
        || name.eq_ignore_ascii_case(b"auth")
        || name.eq_ignore_ascii_case(b"authorization")
}

/// Pass 2: one left-to-right scan; at each position at most a few bounded checks, and a
/// redacted token is skipped whole.
fn redact_patterns(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // Bytes before `copied` are in `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !word_byte(bytes[i - 1]);
        if let Some((keep, end)) = token_at(bytes, i, boundary) {
            out.push_str(&text[copied..i + keep]);
            out.push_str(REDACTED);
            copied = end;
            i = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// A credential starting at `i`: how many bytes of it to keep (a `Bearer ` or `key=`
/// label) and where it ends.
fn token_at(bytes: &[u8], i: usize, boundary: bool) -> Option<(usize, usize)> {
    let b = bytes[i];
    if boundary {
        // Prefixed key formats: the prefix and the rest of the word go.
        for (prefix, min, charset) in [
            (&b"sk-"[..], MIN_TOKEN, word_byte as fn(u8) -> bool),
            (b"ak-", MIN_TOKEN, word_byte),
            (b"AIza", 30, word_byte),
            (b"eyJ", 20, |c: u8| word_byte(c) || c == b'.'),
        ] {
            if bytes[i..].starts_with(prefix) {
                let n = run(bytes, i + prefix.len(), charset);
                if n >= min {
                    return Some((0, i + prefix.len() + n));
                }
            }
        }
        if bytes[i..].starts_with(b"AKIA") {
            let n = run(bytes, i + 4, |c| {
                c.is_ascii_uppercase() || c.is_ascii_digit()
            });
            if n >= 16 {
                return Some((0, i + 4 + n));
            }
        }
        for scheme in [&b"bearer"[..], b"basic"] {
            if starts_with_ignore_case(bytes, i, scheme) {
                let after = i + scheme.len();
                let spaces = run(bytes, after, |c| c == b' ');
                if spaces > 0 {
                    let n = value_run(bytes, after + spaces);
                    if n >= MIN_TOKEN {
                        return Some((scheme.len() + spaces, after + spaces + n));
                    }
                }
            }
        }
    }
    if b == b'=' || b == b':' {
        // `name=value`, `name: value`, `"name": "value"`.
        let mut name_end = i;
        if name_end > 0 && matches!(bytes[name_end - 1], b'"' | b'\'') {
            name_end -= 1;
        }
        let name_len = bytes[..name_end]
            .iter()
            .rev()
            .take(40)
            .take_while(|c| word_byte(**c))
            .count();
        if name_len == 0 || !secret_name(&bytes[name_end - name_len..name_end]) {
            return None;
        }
        let mut v = i + 1;
        v += run(bytes, v, |c| c == b' ');
        if v < bytes.len() && matches!(bytes[v], b'"' | b'\'') {
            v += 1;
        }
        // A scheme word in the value (`Authorization: Bearer x`) is the next token's job.
        let n = value_run(bytes, v);
        if n >= MIN_TOKEN {
            return Some((v - i, v + n));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-SECRETVALUE1234567890abcdef";

    #[test]
    fn the_known_secret_and_its_long_fragments_go() {
        let msg = format!("Incorrect API key provided: Bearer {KEY}.");
        assert_eq!(
            scrub(&msg, &[KEY]),
            "Incorrect API key provided: Bearer [redacted]."
        );
        // A fragment (the upstream cut or masked part of it) of 12+ bytes.
        let frag = &KEY[5..22];
        let out = scrub(&format!("key ending {frag}***"), &[KEY]);
        assert!(!out.contains(frag), "{out}");
        assert!(out.contains(REDACTED), "{out}");
        // A key that looks like nothing known is still caught by the exact pass.
        let odd = "zz9plural-Z-alpha";
        assert_eq!(
            scrub(&format!("got {odd} twice {odd}"), &[odd]),
            "got [redacted] twice [redacted]"
        );
        let short = "abcdefg1";
        assert_eq!(scrub("x abcdefg1 y", &[short]), "x [redacted] y");
        // A placeholder "key" for a local server is not a secret worth garbling text for.
        assert_eq!(
            scrub("try `ollama pull llama3`", &["ollama"]),
            "try `ollama pull llama3`"
        );
    }

    #[test]
    fn secrets_are_read_from_the_request_headers() {
        let h = |k, v| (k, v);
        let headers: [(&str, &str); 5] = [
            h("Authorization", "Bearer sk-abcdefgh123"),
            h("x-api-key", "anthropic-key-1"),
            h("X-Gateway-Auth", "static-gateway-token"),
            h("content-type", "application/json"),
            h(
                "traceparent",
                "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
            ),
        ];
        assert_eq!(
            sent_secrets(headers, &[]),
            ["sk-abcdefgh123", "anthropic-key-1", "static-gateway-token"]
        );
        // The call's own key is known already: only the others are copied.
        assert_eq!(
            sent_secrets(headers, &["sk-abcdefgh123"]),
            ["anthropic-key-1", "static-gateway-token"]
        );
        assert!(secret_name(b"X-API-KEY") && secret_name(b"Authorization"));
        assert!(!secret_name(b"content-type") && !secret_name(b"ke"));
    }

    #[test]
    fn fragments_shorter_than_the_minimum_stay() {
        // The usual masked echo (`sk-proj-****xyz1`) keeps 4 chars: harmless, and kept.
        let out = scrub("provided: sk-t****cdef", &[KEY]);
        assert_eq!(out, "provided: sk-t****cdef");
    }

    #[test]
    fn token_looking_strings_go() {
        let cases = [
            (
                "key sk-ant-api03-AbCdEf123456_xyz here",
                "key [redacted] here",
            ),
            ("app ak-0123456789abcdef done", "app [redacted] done"),
            ("aws AKIAIOSFODNN7EXAMPLE!", "aws [redacted]!"),
            (
                "google AIzaSyA-1234567890abcdefghijklmnopqrstu end",
                "google [redacted] end",
            ),
            (
                "Authorization: Bearer abc.def-ghi_jkl",
                "Authorization: Bearer [redacted]",
            ),
            (
                "authorization: bearer   zzzzzzzzzz",
                "authorization: bearer   [redacted]",
            ),
            (
                "GET /v1?key=0123456789abcdef&x=1",
                "GET /v1?key=[redacted]&x=1",
            ),
            ("url ?api_key=ABCDEFGH12345678", "url ?api_key=[redacted]"),
            ("token=dGhpcyBpcyBzZWNyZXQ=", "token=[redacted]"),
            (
                r#"{"api_key": "xyzXYZ0123456789"}"#,
                r#"{"api_key": "[redacted]"}"#,
            ),
            ("x-api-key: 1234567890abcdef", "x-api-key: [redacted]"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
                "jwt [redacted]",
            ),
            (
                "sent Bearer abcdefgh12345. Retry.",
                "sent Bearer [redacted]. Retry.",
            ),
            (
                "/v1?key=sk%2Dabcdef123456 failed",
                "/v1?key=[redacted] failed",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrub_patterns(input), want, "{input}");
        }
    }

    #[test]
    fn ordinary_text_is_kept() {
        for s in [
            "the model 'gpt-4o' does not exist",
            "task-1234567890 failed; risk-assessment pending",
            "max_tokens: 4096 is too large",
            "primary key: id",
            "sk- is a prefix",
            "Bearer short",
            "Rate limit reached for requests",
            "",
        ] {
            assert_eq!(scrub_patterns(s), s);
        }
    }

    #[test]
    fn multi_byte_text_is_handled() {
        let msg = format!("clé refusée «{KEY}» — réessayez 🙂 sk-ünïcode");
        let out = scrub(&msg, &[KEY]);
        assert_eq!(out, "clé refusée «[redacted]» — réessayez 🙂 sk-ünïcode");
        // A secret with multi-byte characters; fragments end on character boundaries.
        let secret = "pässwörd-ßecret-ñ-0123456789";
        let out = scrub(&format!("é{}é", &secret[3..]), &[secret]);
        assert!(!out.contains("ßecret"), "{out}");
        assert!(out.starts_with('é') && out.ends_with('é'), "{out}");
        let out = scrub_patterns("日本語 Bearer 日本語日本語日本語");
        assert_eq!(out, "日本語 Bearer 日本語日本語日本語");
    }

    #[test]
    fn output_is_capped_and_scrubbing_is_idempotent() {
        let long = format!("{} {KEY}", "é".repeat(10_000));
        let out = scrub(&long, &[KEY]);
        assert!(out.len() <= MAX_MESSAGE_BYTES, "{}", out.len());
        assert!(out.ends_with("… (truncated)"));
        let once = scrub(&format!("Bearer {KEY} key={KEY}"), &[KEY]);
        assert_eq!(scrub(&once, &[KEY]), once);
        assert_eq!(once, "Bearer [redacted] key=[redacted]");
    }

    #[test]
    fn large_input_is_linear() {
        // Many near-matches of the prefixes and of the secret's windows, uncapped: one
        // pass each (a quadratic scan would take minutes here).
        let text = "sk-a Bearer x key= aaaa aaaaaaaaaaa ".repeat(50_000);
        assert!(
            redact_patterns(&text) == text,
            "nothing here is a credential"
        );
        let known = redact_known(&text, &["aaaaaaaaaaaaaaaaaaaaaaaaa"]);
        assert!(known == text, "11 a's are shorter than a fragment");
        let dense = "aaaaaaaaaaaaa ".repeat(50_000);
        let known = redact_known(&dense, &["aaaaaaaaaaaaaaaaaaaaaaaaa"]);
        assert!(known == "[redacted] ".repeat(50_000));
        assert!(scrub(&text, &[]).len() <= MAX_MESSAGE_BYTES);
    }
}
