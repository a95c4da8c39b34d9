//! Liveness and readiness.

use crate::server::http::{self, Body};
use crate::state::AppState;
use hyper::Response;
use serde_json::json;

pub fn healthz() -> Response<Body> {
    http::json(200, &json!({"status": "ok"}))
}

/// Ready once listening with a routing table; reports how many providers are routable.
pub fn readyz(state: &AppState) -> Response<Body> {
    let routes = state.routing.load();
    // Redis down is reported, not fatal: this instance serves on its own counters, and
    // failing readiness would take every instance out of the balancer at once.
    let redis = state.shared.as_ref().map(|s| {
        json!({
            "status": if s.is_up() { "ok" } else { "unreachable" },
        })
    });
    http::json(
        200,
        &json!({
            "status": "ready",
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
