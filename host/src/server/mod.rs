//! Accepting connections (within the connection caps), the per-request envelope (request
//! id, request-size limits, access log), per-connection timeouts and graceful shutdown.

pub mod conn_limits;
pub mod conn_watch;
pub mod http;
pub mod io;
pub mod probes;
pub mod router;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::inbound::{Format, Render};
use crate::state::AppState;
use bytes::Bytes;
use conn_limits::{ConnLimits, Refusal};
use conn_watch::{Action, InFlight, Timeouts, TrackedBody};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use io::{Canned, ConnIo, ConnState};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// hyper's own head limits sit above ours, so that what it would refuse with an empty body
/// is refused by [`envelope_error`] in the OpenAI shape instead.
const HYPER_MAX_HEADERS: usize = 200;
/// hyper's own default read buffer; never set lower, so body reads are not slowed.
const HYPER_MIN_BUF: usize = 400 * 1024;
/// Connections being told "503, too many connections" at once; past this they are just
/// closed, so a flood cannot pin descriptors through the refusals themselves.
const MAX_REFUSING: usize = 256;

/// The request-size limits checked before routing.
struct Envelope {
    max_uri_bytes: usize,
    max_header_bytes: usize,
}

/// A client-sent request id is kept when it is short and printable.
fn client_request_id(req: &Request<Incoming>) -> Option<HeaderValue> {
    let h = req.headers().get("x-request-id")?;
    let v = h.as_bytes();
    // A clone shares the request's buffer: the id is not copied.
    (!v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic())).then(|| h.clone())
}

/// Request target and header sizes over our limits (hyper's are set higher).
fn envelope_error(req: &Request<Incoming>, env: &Envelope) -> Option<ApiError> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > env.max_uri_bytes {
        return Some(ApiError::UriTooLong {
            limit: env.max_uri_bytes,
        });
    }
    // As on the wire: "name: value\r\n".
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > env.max_header_bytes {
        return Some(ApiError::HeadersTooLarge {
            limit: env.max_header_bytes,
            count: HYPER_MAX_HEADERS,
        });
    }
    None
}

async fn handle(
    state: Arc<AppState>,
    env: Arc<Envelope>,
    conn: Arc<ConnState>,
    peer: std::net::IpAddr,
    mut req: Request<Incoming>,
) -> Result<Response<TrackedBody>, Infallible> {
    // Only the console's login reads it: an extension allocates, so the API's requests
    // are spared it.
    if req.uri().path().starts_with("/api/console/") {
        req.extensions_mut().insert(http::Peer(peer));
    }
    let inflight = InFlight::new(conn);
    let start = Instant::now();
    let _inflight = crate::observability::metrics::GaugeGuard::new(&state.metrics.inflight);
    // The id is kept as the header value it is answered in (visible ASCII either way).
    let id_header = client_request_id(&req).unwrap_or_else(|| state.new_request_id());
    let request_id = id_header.to_str().unwrap_or_default();
    let method = req.method().clone();
    // A clone of the parsed target shares its bytes.
    let uri = req.uri().clone();
    let path = uri.path();
    let http1 = req.version() <= hyper::Version::HTTP_11;
    let outcome = match envelope_error(&req, &env) {
        Some(e) => Err(e),
        None => router::dispatch(&state, req, request_id).await,
    };
    let anthropic = router::speaks_anthropic(path);
    let (mut resp, error) = match outcome {
        Ok(r) => (r, None),
        Err(e) if anthropic => (Format::AnthropicMessages.error_response(&e), Some(e)),
        Err(e) => (http::error(&e), Some(e)),
    };
    if anthropic {
        resp.headers_mut().insert("request-id", id_header.clone());
    }
    resp.headers_mut().insert("x-request-id", id_header.clone());
    if http1 && resp.status() == hyper::StatusCode::REQUEST_TIMEOUT {
        // The rest of the body is not coming; the connection cannot be reused.
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if !http::take_logged(&mut resp) {
        let status = resp.status().as_u16();
        let latency_us = start.elapsed().as_micros() as u64;
        match &error {
            Some(e) if status >= 500 => {
                tracing::warn!(target: "access", %request_id, %method, %path, status, latency_us, error = %e, kind = e.kind())
            }
            Some(e) => {
                tracing::info!(target: "access", %request_id, %method, %path, status, latency_us, error = %e)
            }
            None => {
                tracing::info!(target: "access", %request_id, %method, %path, status, latency_us)
            }
        }
    }
    Ok(resp.map(|b| TrackedBody::new(b, inflight)))
}

fn builder(cfg: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper rejects a head larger than its read buffer with an empty 431; keep that well
    // above `max_header_bytes` (and the longest target) so our own JSON 414/431 answer.
    let head_room = (cfg.max_header_bytes + cfg.max_uri_bytes).saturating_mul(2);
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(cfg.header_read_timeout_ms))
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(head_room.max(HYPER_MIN_BUF));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(head_room.min(u32::MAX as usize) as u32);
    b
}

/// Answers a connection over the caps with a 503 and closes it, off the accept loop.
fn refuse(mut stream: TcpStream, why: Refusal, refusing: &Arc<AtomicUsize>, bodies: &Refusals) {
    if refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let body = match why {
        Refusal::Total(_) => bodies.total.clone(),
        Refusal::PerPeer(_) => bodies.per_peer.clone(),
    };
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(&body).await?;
            stream.shutdown().await?;
            // Read what the client sent: closing with unread data resets the connection,
            // which can destroy the 503 before the client reads it.
            let mut sink = [0u8; 4096];
            let mut seen = 0;
            while seen < 64 * 1024 {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => seen += n,
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        refusing.fetch_sub(1, Ordering::AcqRel);
    });
}

/// The two 503 answers, rendered once.
struct Refusals {
    total: Bytes,
    per_peer: Bytes,
}

impl Refusals {
    fn new(max: usize, per_peer: usize) -> Self {
        let total = ApiError::TooManyConnections(format!(
            "the server has reached its limit of {max} open connections; retry shortly"
        ));
        let peer = ApiError::TooManyConnections(format!(
            "your address has reached the limit of {per_peer} open connections; close idle \
             connections or retry shortly"
        ));
        Refusals {
            total: io::render_with(&total, "retry-after: 1\r\n"),
            per_peer: io::render_with(&peer, "retry-after: 1\r\n"),
        }
    }
}

/// Logs refusals at most once a second, with the running count.
struct RefusalLog {
    count: AtomicU64,
    last_sec: AtomicU64,
    epoch: Instant,
}

impl RefusalLog {
    fn record(&self, why: Refusal, limits: &ConnLimits) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let sec = self.epoch.elapsed().as_secs() + 1;
        if self.last_sec.swap(sec, Ordering::Relaxed) != sec {
            tracing::warn!(
                refused_total = count,
                open = limits.open(),
                reason = ?why,
                "connection refused: over the connection limit"
            );
        }
    }
}

/// Runs one connection to its end, closing it when [`conn_watch::decide`] says so or
/// gracefully when the server stops. A macro because hyper-util's connection type names
/// traits it does not export.
macro_rules! drive {
    ($conn:expr, $state:expr, $timeouts:expr, $stop:expr) => {{
        let conn = $conn;
        let state: Arc<ConnState> = $state;
        let mut stop: tokio::sync::watch::Receiver<()> = $stop;
        tokio::pin!(conn);
        let mut graceful_at: Option<u64> = None;
        let mut stopping = false;
        loop {
            let now = state.now_ms();
            let wake = match conn_watch::decide(&state, now, $timeouts, graceful_at) {
                Action::Close => {
                    tracing::debug!(
                        requests = state.requests(),
                        "closing a stalled or idle connection"
                    );
                    break;
                }
                Action::Graceful => {
                    conn.as_mut().graceful_shutdown();
                    graceful_at = Some(now);
                    continue;
                }
                Action::Wait(at) => at,
            };
            // `now_ms` counts from 1; at most a day ahead keeps the arithmetic in range.
            let wake = Duration::from_millis(wake.min(now + 86_400_000).saturating_sub(1));
            let deadline = tokio::time::Instant::from_std(state.epoch() + wake);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {}
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                    graceful_at.get_or_insert(now);
                }
            }
        }
    }};
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
/// (streams included) finish, for at most `grace`.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let cfg = state.config.server.clone();
    let nofile = conn_limits::raise_nofile_limit();
    let max = match cfg.max_connections {
        0 => conn_limits::auto_max_connections(nofile),
        n => n,
    };
    let limits = ConnLimits::new(max, cfg.max_connections_per_peer);
    tracing::info!(
        max_connections = max,
        max_connections_per_peer = cfg.max_connections_per_peer,
        open_file_limit = nofile,
        "connection limits"
    );
    conn_watch::set_body_read_timeout(Duration::from_millis(cfg.body_read_timeout_ms));
    let timeouts = Timeouts {
        header_ms: cfg.header_read_timeout_ms,
        idle_ms: cfg.idle_timeout_ms,
    };
    let env = Arc::new(Envelope {
        max_uri_bytes: cfg.max_uri_bytes,
        max_header_bytes: cfg.max_header_bytes,
    });
    let canned = Arc::new(Canned::new(
        cfg.max_uri_bytes,
        cfg.max_header_bytes,
        HYPER_MAX_HEADERS,
    ));
    let refusals = Refusals::new(max, cfg.max_connections_per_peer);
    let refusal_log = RefusalLog {
        count: AtomicU64::new(0),
        last_sec: AtomicU64::new(0),
        epoch: Instant::now(),
    };
    let refusing = Arc::new(AtomicUsize::new(0));
    let builder = builder(&cfg);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let permit = match limits.try_admit(peer.ip()) {
                    Ok(p) => p,
                    Err(why) => {
                        refusal_log.record(why, &limits);
                        refuse(stream, why, &refusing, &refusals);
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn_state = ConnState::new();
                let io = ConnIo::new(stream, conn_state.clone(), canned.clone());
                let service = {
                    let (state, env, conn_state) = (state.clone(), env.clone(), conn_state.clone());
                    hyper::service::service_fn(move |req| {
                        handle(state.clone(), env.clone(), conn_state.clone(), peer.ip(), req)
                    })
                };
                let conn = builder.serve_connection(TokioIo::new(io), service).into_owned();
                let stop = stop_rx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    drive!(conn, conn_state, timeouts, stop);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(stop_rx);
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    let _ = stop_tx.send(());
    tokio::select! {
        _ = stop_tx.closed() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; closing remaining connections"),
    }
}
