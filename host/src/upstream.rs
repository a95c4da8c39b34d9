//! The one pooled HTTP client every upstream call goes through (HTTP/1.1 and HTTP/2,
//! rustls with the webpki roots).

use crate::config::UpstreamConfig;
use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use plugin_api::HttpRequest;
use std::time::Duration;

#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_response_bytes: usize,
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
        })
    }

    /// Sends `req`; returns when the response head has arrived.
    /// Sends `req`; returns when the response head has arrived, or fails after
    /// `first_byte`.
    pub async fn send(
        &self,
        req: HttpRequest,
        first_byte: Duration,
    ) -> Result<hyper::Response<Incoming>, ApiError> {
        let mut builder = hyper::Request::builder()
            .method(req.method.as_str())
            .uri(req.url.as_str());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::from(req.body)))
            .map_err(|e| {
                ApiError::Internal(format!("plugin built an invalid upstream request: {e}"))
            })?;
        match tokio::time::timeout(first_byte, self.client.request(request)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(ApiError::UpstreamConnect(describe(&e))),
            Err(_) => Err(ApiError::UpstreamTimeout(first_byte.as_millis() as u64)),
        }
    }

    /// Reads a whole (bounded) body within `within`.
    pub async fn read_body(&self, body: Incoming, within: Duration) -> Result<Bytes, ApiError> {
        let limited = Limited::new(body, self.max_response_bytes);
        match tokio::time::timeout(within, limited.collect()).await {
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

/// The plugin's view of response headers, borrowed (values that are not text are left
/// out, as in [`headers_of`]).
pub fn header_view(headers: &hyper::HeaderMap) -> Vec<(&str, &str)> {
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
