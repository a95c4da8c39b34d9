//! AWS Signature Version 4 (header signing), written against AWS's published SigV4 test
//! suite (`tests/fixtures/sigv4/`, checked in `tests/bedrock/sigv4.rs`).
//!
//! Pure: the time comes from the caller (the host's clock), nothing is read or sent.
//! The canonical URI is the path *as sent*, URI-encoded once more, which is what every
//! AWS service except S3 expects: a model id `a:0` travels as `a%3A0` and is signed
//! as `a%253A0`.

use sha2::{Digest, Sha256};

/// The algorithm name, in the string to sign and the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access-key pair, with the session token of temporary credentials.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

impl std::fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What is signed of one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as it goes on the wire (already percent-encoded where the URL needs it).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Every header to sign, `host` included; names in any case, repeats allowed.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Where and when a request is signed.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub unix_ms: u64,
    /// Remove `.`, `..` and empty segments from the path before signing (every service
    /// but S3).
    pub normalize_path: bool,
}

/// The headers a signed request carries, and what went into the signature (for tests and
/// debugging; none of it is secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub amz_date: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    pub authorization: String,
}

impl Signed {
    /// The headers to add to the request: `x-amz-date`, the session token when there is
    /// one, and `authorization`.
    pub fn headers(&self, keys: &Keys<'_>) -> Vec<(String, String)> {
        let mut h = vec![("x-amz-date".to_string(), self.amz_date.clone())];
        if let Some(t) = keys.session_token {
            h.push(("x-amz-security-token".to_string(), t.to_string()));
        }
        h.push(("authorization".to_string(), self.authorization.clone()));
        h
    }
}

/// Signs `req`. `req.headers` must already hold `x-amz-date` (see [`amz_date`]) and, to
/// sign it, `x-amz-security-token`; [`sign_request`] adds both.
pub fn sign(keys: &Keys<'_>, scope: &Scope<'_>, req: &Request<'_>) -> Signed {
    let amz_date = amz_date(scope.unix_ms);
    let date = &amz_date[..8];
    let (canonical_request, signed_headers) = canonical_request(req, scope.normalize_path);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let key = signing_key(keys.secret_access_key, date, scope.region, scope.service);
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        keys.access_key_id
    );
    Signed {
        amz_date,
        canonical_request,
        string_to_sign,
        signature,
        authorization,
    }
}

/// Signs `req` with `x-amz-date` and the session token (if any) added to its headers,
/// as the AWS SDKs do.
pub fn sign_request(keys: &Keys<'_>, scope: &Scope<'_>, req: &Request<'_>) -> Signed {
    let date = amz_date(scope.unix_ms);
    let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
    headers.push(("x-amz-date", &date));
    if let Some(t) = keys.session_token {
        headers.push(("x-amz-security-token", t));
    }
    sign(
        keys,
        scope,
        &Request {
            headers: &headers,
            ..*req
        },
    )
}

/// The canonical request and its `SignedHeaders` list.
pub fn canonical_request(req: &Request<'_>, normalize_path: bool) -> (String, String) {
    let path = if normalize_path {
        normalize(req.path)
    } else if req.path.is_empty() {
        "/".to_string()
    } else {
        req.path.to_string()
    };
    let uri = encode(&path, false);
    let query = canonical_query(req.query);

    let mut headers: Vec<(String, String)> = Vec::with_capacity(req.headers.len());
    for (name, value) in req.headers {
        let name = name.trim().to_ascii_lowercase();
        let value = collapse_spaces(value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, have)) => {
                have.push(',');
                have.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    for (n, v) in &headers {
        canonical_headers.push_str(n);
        canonical_headers.push(':');
        canonical_headers.push_str(v);
        canonical_headers.push('\n');
    }
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let payload = hex(&Sha256::digest(req.body));
    (
        format!(
            "{}\n{uri}\n{query}\n{canonical_headers}\n{signed}\n{payload}",
            req.method
        ),
        signed,
    )
}

/// `AWS4<secret>` through date, region, service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// HMAC-SHA256 (RFC 2104): a key longer than the 64-byte block is hashed first.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time in milliseconds (UTC).
pub fn amz_date(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let t = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian), by
/// counting 400-year eras of 146,097 days from 0000-03-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// RFC 3986 path normalisation as SigV4 does it: empty and `.` segments dropped, `..`
/// removing the one before; a trailing `/` kept.
fn normalize(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Percent-encodes every byte but RFC 3986's unreserved characters (and `/` when
/// `slash` is false), with upper-case hex, as SigV4 requires.
fn encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_component(s: &str) -> String {
    encode(s, true)
}

/// `%XX` escapes decoded (bad escapes kept as they are); the query is re-encoded after.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex_at = |j: usize| b.get(j).and_then(|c| char::from(*c).to_digit(16));
        match (b[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parameters decoded, re-encoded strictly, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                encode_component(&percent_decode(k)),
                encode_component(&percent_decode(v)),
            )
        })
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Leading and trailing whitespace removed, inner runs (line folds included) made one
/// space.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160_000), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400_000), "20000229T000000Z");
        assert_eq!(amz_date(4_107_542_399_999), "21000228T235959Z");
    }

    #[test]
    fn paths_and_queries() {
        assert_eq!(normalize("//example//"), "/example/");
        assert_eq!(normalize("/example/.."), "/");
        assert_eq!(normalize(""), "/");
        assert_eq!(
            encode("/model/a%3A0/converse", false),
            "/model/a%253A0/converse"
        );
        assert_eq!(canonical_query("b=2&a=%20x&a=1"), "a=%20x&a=1&b=2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_sha256_vectors() {
        assert_eq!(
            hex(&hmac(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn keys_debug_hides_the_secret() {
        let k = Keys {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "very-secret",
            session_token: Some("token-secret"),
        };
        let s = format!("{k:?}");
        assert!(s.contains("AKIDEXAMPLE") && !s.contains("secret\""), "{s}");
        assert!(!s.contains("very-secret") && !s.contains("token-secret"));
    }
}
