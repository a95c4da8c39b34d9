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
    http::json(
        200,
        &json!({
            "status": "ready",
            "providers": routes.prefixes().len(),
            "call_log": {
                "queued": state.calls.depth(),
                "written": state.calls.written(),
                "dropped": state.calls.dropped(),
            },
        }),
    )
}
