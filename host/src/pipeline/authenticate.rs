//! The authenticate phase: the app key names the calling app, or the call ends here with
//! 401/403 (no call record: the caller is unknown; the envelope logs it).

use crate::auth::Principal;
use crate::inbound::{Format, Render};
use crate::server::http::Body;
use crate::state::AppState;
use hyper::{HeaderMap, Response};
use std::time::Instant;
use tracing::Instrument;

/// The caller, or the finished error response (with `Server-Timing`).
pub async fn authenticate(
    state: &AppState,
    format: Format,
    headers: &HeaderMap,
    span: &tracing::Span,
    start: Instant,
) -> Result<Principal, Response<Body>> {
    match state
        .auth
        .authenticate(headers)
        .instrument(tracing::info_span!(parent: span, "auth"))
        .await
    {
        Ok(p) => {
            span.record("aihub.app", &*p.app_name);
            Ok(p)
        }
        Err(e) => {
            span.record("error.type", e.kind());
            span.record("otel.status_code", "ERROR");
            let mut resp = format.error_response(&e);
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
                "auth;dur={ms:.3}, total;dur={ms:.3}"
            )) {
                resp.headers_mut().insert("server-timing", v);
            }
            Err(resp)
        }
    }
}
