//! The one pooled HTTP client every upstream call goes through (HTTP/1.1 and HTTP/2,
//! rustls with the webpki roots).

use crate::config::UpstreamConfig;
use crate::error::ApiError;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use plugin_api::host::OutboundRequest;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_response_bytes: usize,
    targets: Arc<Targets>,
}

/// Upstream URLs already parsed, with their `Host` header: a provider's few URLs repeat
/// on every call, and a clone of a parsed `Uri` is a few reference counts where a parse
/// is two allocations (and the client's own `Host` formatting two more). The header is
/// kept for plain `http` only: over TLS the connection may be HTTP/2, where the client
/// sends `:authority` and no `Host`, and is left to decide.
#[derive(Default)]
struct Targets {
    known: ArcSwap<Vec<(String, Uri, Option<HeaderValue>)>>,
}

/// URLs kept at most (a model in the path makes one per model; past this they are parsed
/// per call, as before).
const MAX_TARGETS: usize = 64;

impl Targets {
    fn get(&self, url: &str) -> Result<(Uri, Option<HeaderValue>), String> {
        if let Some((_, uri, host)) = self.known.load().iter().find(|(u, ..)| u == url) {
            return Ok((uri.clone(), host.clone()));
        }
        let uri: Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let authority = uri.authority().ok_or("the URL has no host")?;
        let host = match uri.scheme() {
            Some(s) if *s == hyper::http::uri::Scheme::HTTP => {
                Some(HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        self.known.rcu(|known| {
            let mut more = Vec::clone(known);
            if more.len() < MAX_TARGETS && !more.iter().any(|(u, ..)| u == url) {
                more.push((url.to_string(), uri.clone(), host.clone()));
            }
            more
        });
        Ok((uri, host))
    }
}

/// Response headers as owned pairs, as plugins see them.
pub type Headers = Vec<(String, String)>;

impl Upstream {
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        Ok(Upstream {
            client,
            max_response_bytes: cfg.max_response_bytes,
            targets: Arc::default(),
        })
    }

    /// Sends the plugin's request (and the host's `extra` headers, trace context); returns
    /// when the response head has arrived, or fails after `first_byte`.
    pub async fn send(
        &self,
        mut req: OutboundRequest,
        extra: &[(String, String)],
        first_byte: Duration,
    ) -> Result<hyper::Response<Incoming>, ApiError> {
        let invalid = |e: String| {
            ApiError::Internal(format!("plugin built an invalid upstream request: {e}"))
        };
        let (uri, host) = self.targets.get(req.url()).map_err(invalid)?;
        let method =
            Method::from_bytes(req.method().as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let mut request = hyper::Request::new(Full::new(req.take_body()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(req.headers().len() + extra.len() + 1);
        let extra = extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in req.headers().chain(extra) {
            // A standard name is a constant; a value is copied once, out of the plugin's
            // buffer (the usual content type not even that).
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let value = if v == "application/json" {
                HeaderValue::from_static("application/json")
            } else {
                HeaderValue::from_str(v).map_err(|e| invalid(format!("header {k}: {e}")))?
            };
            headers.append(name, value);
        }
        if let Some(host) = host {
            headers.entry(hyper::header::HOST).or_insert(host);
        }
        match tokio::time::timeout(first_byte, self.client.request(request)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(ApiError::UpstreamConnect(describe(&e))),
            Err(_) => Err(ApiError::UpstreamTimeout(first_byte.as_millis() as u64)),
        }
    }

    /// Reads a whole (bounded) body within `within`.
    pub async fn read_body(&self, body: Incoming, within: Duration) -> Result<Bytes, ApiError> {
        let limited = Limited::new(body, self.max_response_bytes);
        match crate::timeout::within(within, limited.collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) => Err(ApiError::UpstreamConnect(format!(
                "reading the reply failed: {e}"
            ))),
            Err(_) => Err(ApiError::UpstreamTimeout(within.as_millis() as u64)),
        }
    }
}

pub fn headers_of(resp: &hyper::Response<Incoming>) -> Headers {
    resp.headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect()
}

/// The header pairs a call hands a plugin, on the stack for the usual few.
pub type HeaderPairs<'a> = smallvec::SmallVec<[(&'a str, &'a str); 16]>;

/// The plugin's view of response headers, borrowed (values that are not text are left
/// out, as in [`headers_of`]).
pub fn header_view(headers: &hyper::HeaderMap) -> HeaderPairs<'_> {
    headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect()
}

/// The client error with its causes, without the URL's query (it may carry a key).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_once_and_keep_the_host_header() {
        let t = Targets::default();
        let (uri, host) = t.get("http://127.0.0.1:9000/v1/chat/completions").unwrap();
        assert_eq!(uri.path(), "/v1/chat/completions");
        assert_eq!(host.unwrap(), "127.0.0.1:9000");
        let (again, _) = t.get("http://127.0.0.1:9000/v1/chat/completions").unwrap();
        assert_eq!(again, uri);
        assert_eq!(t.known.load().len(), 1);
        let (q, host) = t.get("https://api.example.com/v1/x?alt=sse").unwrap();
        assert_eq!(q.query(), Some("alt=sse"));
        assert_eq!(host, None, "over TLS the client picks Host or :authority");
        assert!(t.get("not a url").is_err());
        assert!(t.get("/relative/only").is_err());
        assert_eq!(t.known.load().len(), 2);
    }
}
