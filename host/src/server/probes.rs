//! Liveness and readiness.

use crate::server::http::{self, Body};
use crate::state::AppState;
use hyper::Response;
use serde_json::json;

pub fn healthz() -> Response<Body> {
    http::json(200, &json!({"status": "ok"}))
}

/// How long the readiness probe waits for the database.
const DB_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready once listening with a routing table and the database answers (503 when it does
/// not: a load balancer should send traffic elsewhere); reports how many providers are
/// routable.
pub async fn readyz(state: &AppState) -> Response<Body> {
    let db = match tokio::time::timeout(DB_PING_TIMEOUT, state.stores.meta.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "unreachable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer in time");
            "unreachable"
        }
    };
    let routes = state.routing.load();
    // Redis down is reported, not fatal: this instance serves on its own counters, and
    // failing readiness would take every instance out of the balancer at once.
    let redis = state.shared.as_ref().map(|s| {
        json!({
            "status": if s.is_up() { "ok" } else { "unreachable" },
        })
    });
    http::json(
        if db == "ok" { 200 } else { 503 },
        &json!({
            "status": if db == "ok" { "ready" } else { "not_ready" },
            "database": db,
            "providers": routes.prefixes().len(),
            "redis": redis,
            "call_log": {
                "queued": state.calls.depth(),
                "written": state.calls.written(),
                "dropped": state.calls.dropped(),
            },
        }),
    )
}
