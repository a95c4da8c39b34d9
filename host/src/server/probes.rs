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

/// Ready once listening with a routing table and the database answers; reports how many
/// providers are routable. While the database cannot be reached the answer is 503 (a
/// balancer should prefer instances that reach it) and says how this one copes: keys it
/// verified recently are still let in and call records wait in memory, so a balancer
/// that falls back to live instances when none is ready keeps traffic flowing.
pub async fn readyz(state: &AppState) -> Response<Body> {
    let health = state.calls.health();
    let ping = match tokio::time::timeout(DB_PING_TIMEOUT, state.stores.meta.ping()).await {
        Ok(r) => r,
        Err(_) => Err(crate::store::StoreError::Unavailable(
            "no answer within 2 s".into(),
        )),
    };
    health.saw(&ping);
    let db = match &ping {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "unreachable"
        }
    };
    let outage = health.down_since().map(|since| {
        json!({
            "since_ms": since,
            "serving_keys_verified_within_seconds": state.config.storage.outage_grace_seconds + 30,
            "cached_auths": health.cached_auths(),
        })
    });
    let routes = state.routing.load();
    // Redis down is reported, not fatal: this instance serves on its own counters, and
    // failing readiness would take every instance out of the balancer at once.
    let redis = state.shared.as_ref().map(|s| {
        json!({
            "status": if s.is_up() { "ok" } else { "unreachable" },
        })
    });
    let feed = state
        .feed
        .listening()
        .map(|up| if up { "listening" } else { "reconnecting" });
    http::json(
        if db == "ok" { 200 } else { 503 },
        &json!({
            "status": if db == "ok" { "ready" } else { "not_ready" },
            "database": db,
            "database_outage": outage,
            "change_feed": feed,
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
