//! The admin API (admin token required).

use crate::error::ApiError;
use crate::http::{self, Body};
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::json;
use std::sync::Arc;

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn authorize(state: &AppState, req: &Request<Incoming>) -> Result<(), ApiError> {
    match bearer(req) {
        None => Err(ApiError::Unauthorized(
            "the admin API needs the admin token: send 'Authorization: Bearer <admin token>'".into(),
        )),
        Some(t) if state.is_admin_token(t) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("invalid admin token".into())),
    }
}

pub async fn dispatch(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    authorize(state, &req)?;
    match path {
        "/api/admin/plugins" if method == Method::GET => Ok(plugins(state)),
        "/api/admin/plugins/reload" if method == Method::POST => {
            state.rescan().await;
            Ok(plugins(state))
        }
        "/api/admin/providers" if method == Method::GET => Ok(providers(state)),
        "/api/admin/plugins" | "/api/admin/plugins/reload" | "/api/admin/providers" => Err(super::not_allowed(method, path)),
        _ => Err(ApiError::NotFound {
            method: method.to_string(),
            path: path.to_string(),
        }),
    }
}

fn plugins(state: &AppState) -> Response<Body> {
    let table = state.routes.load();
    http::json(
        200,
        &json!({
            "object": "list",
            "data": state.plugin_views(),
            "providers": table.prefixes(),
            "problems": table.problems,
        }),
    )
}

/// Routable providers. Keys are never shown, only whether one is configured.
fn providers(state: &AppState) -> Response<Body> {
    let table = state.routes.load();
    let data: Vec<_> = table
        .routes_sorted()
        .into_iter()
        .map(|r| {
            json!({
                "prefix": r.prefix,
                "plugin": r.plugin,
                "plugin_version": r.plugin_version,
                "base_url": r.base_url,
                "needs_key": r.auth.needs_key(),
                "has_key": r.api_key.is_some(),
                "api_key_env": r.api_key_env,
                "models": r.models.len(),
            })
        })
        .collect();
    http::json(200, &json!({"object": "list", "data": data, "problems": table.problems}))
}
