//! The signer against AWS's published SigV4 test suite (`tests/fixtures/sigv4/`, see
//! its SOURCE.md) and against botocore on a real Bedrock request.

use crate::common::*;
use aihub_bedrock::sigv4::{self, Keys, Request, Scope};
use plugin_api::serde_json::Value;
use plugin_api::*;
use std::path::Path;

fn suite_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigv4")
}

fn read(case: &str, file: &str) -> String {
    let p = suite_dir().join(case).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `2015-08-30T12:36:00Z` as Unix milliseconds.
fn iso_ms(s: &str) -> u64 {
    let n = |a: usize, b: usize| s[a..b].parse::<u64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (the inverse of the signer's own conversion, written separately).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)) * 1000
}

struct Parsed {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// `request.txt`: request line, `Name:value` headers (indented lines continue the
/// previous value), a blank line, the body.
fn parse_request(text: &str) -> Parsed {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b.as_bytes().to_vec()),
        None => (text.trim_end_matches('\n'), Vec::new()),
    };
    let mut lines = head.lines();
    let line = lines.next().unwrap();
    let (method, rest) = line.split_once(' ').unwrap();
    let (target, _) = rest.rsplit_once(" HTTP/").unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push('\n');
            last.1.push_str(l);
        } else {
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Parsed {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body,
    }
}

fn cases() -> Vec<String> {
    let mut c: Vec<String> = std::fs::read_dir(suite_dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_dir()
                .then(|| e.file_name().into_string().unwrap())
        })
        .collect();
    c.sort();
    c
}

#[test]
fn the_published_sigv4_suite_passes() {
    let cases = cases();
    assert!(cases.len() >= 35, "{cases:?}");
    for case in &cases {
        let ctx: Value = plugin_api::serde_json::from_str(&read(case, "context.json")).unwrap();
        let creds = &ctx["credentials"];
        let token = creds["token"].as_str();
        let omit_token = ctx["omit_session_token"].as_bool().unwrap_or(false);
        let keys = Keys {
            access_key_id: creds["access_key_id"].as_str().unwrap(),
            secret_access_key: creds["secret_access_key"].as_str().unwrap(),
            session_token: if omit_token { None } else { token },
        };
        let scope = Scope {
            region: ctx["region"].as_str().unwrap(),
            service: ctx["service"].as_str().unwrap(),
            unix_ms: iso_ms(ctx["timestamp"].as_str().unwrap()),
            normalize_path: ctx["normalize"].as_bool().unwrap(),
        };
        let req = parse_request(&read(case, "request.txt"));
        let mut headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body_hash = sigv4::hex(&sha256(&req.body));
        if ctx["sign_body"].as_bool().unwrap() {
            headers.push(("x-amz-content-sha256", &body_hash));
        }
        let signed = sigv4::sign_request(
            &keys,
            &scope,
            &Request {
                method: &req.method,
                path: &req.path,
                query: &req.query,
                headers: &headers,
                body: &req.body,
            },
        );
        let want = |f: &str| read(case, f).trim_end_matches('\n').to_string();
        assert_eq!(
            signed.canonical_request,
            want("header-canonical-request.txt"),
            "{case}"
        );
        assert_eq!(
            signed.string_to_sign,
            want("header-string-to-sign.txt"),
            "{case}"
        );
        assert_eq!(signed.signature, want("header-signature.txt"), "{case}");
        let signed_request = want("header-signed-request.txt");
        let authorization = signed_request
            .lines()
            .find_map(|l| l.strip_prefix("Authorization:"))
            .unwrap();
        assert_eq!(signed.authorization, authorization, "{case}");
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(b).into()
}

/// A Converse request as botocore 1.x signs it (`tests/fixtures/botocore_sign.py` wrote
/// `botocore_signed.json`): the model id's `:` travels as `%3A` and is signed as
/// `%253A`, with and without a session token.
#[test]
fn a_bedrock_request_is_signed_as_botocore_signs_it() {
    let want = json_of(&fixture("botocore_signed.json"));
    let body = fixture("converse_body.json");
    let body = body.strip_suffix(b"\n").unwrap_or(&body);
    let url = want["url"].as_str().unwrap();
    let path = url
        .strip_prefix("https://bedrock-runtime.eu-west-3.amazonaws.com")
        .unwrap();
    assert_eq!(
        path,
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    for (case, token) in [("keys", None), ("session", Some(TOKEN))] {
        let keys = Keys {
            access_key_id: "ASIAQWERTYUIOPASDFGH",
            secret_access_key: SECRET,
            session_token: token,
        };
        let s = sigv4::sign_request(
            &keys,
            &Scope {
                region: "eu-west-3",
                service: "bedrock",
                unix_ms: want["unix_ms"].as_u64().unwrap(),
                normalize_path: true,
            },
            &Request {
                method: "POST",
                path,
                query: "",
                headers: &[
                    ("content-type", "application/json"),
                    ("host", "bedrock-runtime.eu-west-3.amazonaws.com"),
                ],
                body,
            },
        );
        let w = &want[case];
        assert_eq!(s.canonical_request, w["canonical_request"], "{case}");
        assert_eq!(s.amz_date, w["x-amz-date"], "{case}");
        assert_eq!(s.authorization, w["authorization"], "{case}");
        let headers = s.headers(&keys);
        let token_header = headers
            .iter()
            .find(|(k, _)| k == "x-amz-security-token")
            .map(|(_, v)| v.as_str());
        assert_eq!(token_header, w["x-amz-security-token"].as_str(), "{case}");
    }
}

/// What `prepare` sends is signed over exactly what it sends: the URL's path, its own
/// body, its content type and the host of its URL, at the host's clock.
#[test]
fn prepare_signs_what_it_sends() {
    let secret = format!("ASIAQWERTYUIOPASDFGH:{SECRET}:{TOKEN}");
    let body = r#"{"messages":[{"role":"system","content":"Answer briefly."},{"role":"user","content":"Wie spät ist es in Paris? \u2600"}],"max_tokens":256,"temperature":0.2}"#.as_bytes();
    let p = provider_with("", plugin_api::serde_json::json!({"region": "eu-west-3"})).unwrap();
    let c = call_with(
        Endpoint::Chat,
        MODEL,
        body,
        Credential::ApiKey(&secret),
        false,
        false,
    );
    let req = upstream(p.prepare(&c));
    assert_eq!(
        req.url,
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    // Same converse body as the botocore fixture, whatever the key order.
    assert_eq!(json_of(&req.body), json_of(&fixture("converse_body.json")));
    let keys = Keys {
        access_key_id: "ASIAQWERTYUIOPASDFGH",
        secret_access_key: SECRET,
        session_token: Some(TOKEN),
    };
    let s = sigv4::sign_request(
        &keys,
        &Scope {
            region: "eu-west-3",
            service: "bedrock",
            unix_ms: NOW_MS,
            normalize_path: true,
        },
        &Request {
            method: "POST",
            path: "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            query: "",
            headers: &[
                ("content-type", "application/json"),
                ("host", "bedrock-runtime.eu-west-3.amazonaws.com"),
            ],
            body: &req.body,
        },
    );
    assert_eq!(
        header(&req, "authorization"),
        Some(s.authorization.as_str())
    );
    assert_eq!(header(&req, "x-amz-date"), Some("20241105T170209Z"));
    assert_eq!(header(&req, "x-amz-security-token"), Some(TOKEN));
    // Botocore's canonical request, but for the body hash.
    let want = json_of(&fixture("botocore_signed.json"));
    let botocore = want["session"]["canonical_request"].as_str().unwrap();
    let cut = |c: &str| c.rsplit_once('\n').unwrap().0.to_string();
    assert_eq!(cut(&s.canonical_request), cut(botocore));
}
