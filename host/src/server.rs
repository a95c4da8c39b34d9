//! Accepting connections, the per-request envelope (request id, access log) and graceful
//! shutdown.

use crate::http::{self, Body};
use crate::routes;
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A client-sent request id is kept when it is short and printable.
fn client_request_id(req: &Request<Incoming>) -> Option<String> {
    let v = req.headers().get("x-request-id")?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let _inflight = crate::metrics::GaugeGuard::new(&state.metrics.inflight);
    let request_id = client_request_id(&req).unwrap_or_else(|| state.new_request_id());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (mut resp, error) = match routes::dispatch(&state, req, &request_id).await {
        Ok(r) => (r, None),
        Err(e) => (http::error(&e), Some(e)),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if resp.extensions().get::<http::Logged>().is_some() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let latency_us = start.elapsed().as_micros() as u64;
    match &error {
        Some(e) if status >= 500 => {
            tracing::warn!(target: "access", %request_id, %method, %path, status, latency_us, error = %e, kind = e.kind())
        }
        Some(e) => {
            tracing::info!(target: "access", %request_id, %method, %path, status, latency_us, error = %e)
        }
        None => tracing::info!(target: "access", %request_id, %method, %path, status, latency_us),
    }
    Ok(resp)
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
/// (streams included) finish, for at most `grace`.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; closing remaining connections"),
    }
}
