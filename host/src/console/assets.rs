//! The embedded console (`ui-dist/`): `/` and every non-API path fall back to
//! `index.html` (the SPA routes itself); hashed files under `/assets/` are cached for a
//! year, `index.html` never. A precompressed sibling is sent when the client accepts it.

use crate::server::http::{self, Body};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

/// One embedded file; `gzip`/`brotli` are its precompressed forms, when built.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub raw: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The console's Content-Security-Policy: nothing but our own origin, no inline code.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Paths that belong to the API or the probes, never to the SPA.
pub fn is_api_path(path: &str) -> bool {
    ["/v1", "/api", "/healthz", "/readyz", "/metrics"]
        .iter()
        .any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// Which encodings `accept-encoding` allows (a `q=0` entry refuses one).
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case(coding) && !refused
        })
}

/// Security headers every console page carries.
pub fn harden(h: &mut HeaderMap) {
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
}

/// Serves `path` (GET or HEAD): the file itself under `/assets/`, else `index.html`.
/// `None` when the console was not built into this binary or the method is wrong.
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response<Body>> {
    if *method != Method::GET && *method != Method::HEAD {
        return None;
    }
    let rel = path.trim_start_matches('/');
    let (asset, immutable) = match find(rel) {
        Some(a) if rel.starts_with("assets/") => (a, true),
        Some(a) if rel != "index.html" && !rel.is_empty() => (a, false),
        // A missing hashed asset is a 404, not the SPA (a stale page would load HTML as JS).
        None if rel.starts_with("assets/") => return None,
        _ => (find("index.html")?, false),
    };
    let (bytes, encoding) = match (asset.brotli, asset.gzip) {
        (Some(br), _) if accepts(headers, "br") => (br, Some("br")),
        (_, Some(gz)) if accepts(headers, "gzip") => (gz, Some("gzip")),
        _ => (asset.raw, None),
    };
    let body = if *method == Method::HEAD {
        http::full(bytes::Bytes::new())
    } else {
        http::full(bytes::Bytes::from_static(bytes))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    if asset.gzip.is_some() || asset.brotli.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    harden(h);
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_not_the_spa() {
        for p in ["/v1", "/v1/models", "/api/admin/x", "/healthz", "/metrics"] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/calls", "/v1x", "/apis", "/pricing"] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn accept_encoding_honours_q_zero() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br;q=0"),
        );
        assert!(accepts(&h, "gzip"));
        assert!(!accepts(&h, "br"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }
}
