//! The floor: the thinnest proxy on aihub's HTTP stack (hyper 1 server via hyper-util's
//! auto builder, hyper-util's pooled legacy client, TCP_NODELAY both ways). It forwards
//! method, path, headers and body to one upstream and streams the response back: no
//! auth, no parsing, no logging. No gateway on this stack can beat it.

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type FloorBody = Either<Incoming, Full<Bytes>>;

struct Shared {
    client: Client<HttpConnector, Incoming>,
    /// `http://host:port`, no trailing slash.
    base: String,
}

/// Serves until the process ends. `upstream` is `http://127.0.0.1:PORT`.
pub async fn serve(listener: TcpListener, upstream: &str) -> std::io::Result<()> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    // The same pool settings as aihub's upstream client.
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(http);
    let shared = Arc::new(Shared {
        client,
        base: upstream.trim_end_matches('/').to_string(),
    });
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("floor: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| forward(req, shared.clone()));
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn forward(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<FloorBody>, Infallible> {
    if alloc_count::enabled() && req.uri().path() == "/__allocs" {
        // The bench's allocation pass reads the count here.
        let n = alloc_count::allocations().to_string();
        return Ok(Response::new(Either::Right(Full::new(Bytes::from(n)))));
    }
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("{}{}", shared.base, pq).parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return Ok(bad_gateway()),
    };
    match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(resp) => Ok(resp.map(Either::Left)),
        Err(_) => Ok(bad_gateway()),
    }
}

fn bad_gateway() -> Response<FloorBody> {
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(Either::Right(Full::new(Bytes::from_static(b"bad gateway"))))
        .expect("static response")
}
