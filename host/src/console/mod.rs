//! The web console: the embedded SPA (`assets`), its login sessions (`session`), the
//! admin-auth rule shared with the admin API (`auth`), the overview aggregate
//! (`overview`), the playground proxy (`playground`) and the public pricing list
//! (`pricing`).

pub mod assets;
pub mod auth;
pub mod overview;
pub mod playground;
pub mod pricing;
pub mod session;

use crate::error::ApiError;
use crate::inbound::openai::read_body;
use crate::server::http::{self, Body};
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What the console keeps per instance.
pub struct Console {
    pub sessions: session::Sessions,
    pub playground: playground::PlaygroundKey,
    secure_cookie: bool,
}

impl Console {
    pub fn new(c: &crate::config::ConsoleConfig) -> Self {
        Console {
            sessions: session::Sessions::new(Duration::from_secs(
                u64::from(c.session_hours) * 3600,
            )),
            playground: playground::PlaygroundKey::default(),
            secure_cookie: c.secure_cookie,
        }
    }

    fn cookie(&self, value: &str, max_age_s: u64) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!(
            "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}",
            session::COOKIE
        )
    }
}

/// `/api/console/*`, `/api/public/*` and the SPA; `None` for paths that are none of these.
pub async fn dispatch(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    path: &str,
    request_id: &str,
) -> Option<Result<Response<Body>, ApiError>> {
    let method = req.method().clone();
    let enabled = state.config.console.enabled;
    let r = match path {
        "/api/public/pricing" if method == Method::GET => pricing::list(state).await,
        "/api/public/pricing" => Err(crate::server::router::not_allowed(&method, path)),
        _ if !enabled => return None,
        "/api/console/login" if method == Method::POST => login(state, req).await,
        "/api/console/logout" if method == Method::POST => logout(state, &req),
        "/api/console/session" if method == Method::GET => Ok(session_view(state, &req)),
        "/api/console/models" if method == Method::GET => {
            auth::admin(state, &req).map(|_| crate::inbound::models::list(state))
        }
        "/api/console/playground" if method == Method::POST => {
            playground::chat(state, req, request_id).await
        }
        p if p.starts_with("/api/console/") => {
            let known = [
                "/api/console/login",
                "/api/console/logout",
                "/api/console/session",
                "/api/console/models",
                "/api/console/playground",
            ];
            if known.contains(&p) {
                Err(crate::server::router::not_allowed(&method, path))
            } else {
                Err(ApiError::NotFound {
                    method: method.to_string(),
                    path: path.to_string(),
                })
            }
        }
        p if !assets::is_api_path(p) => {
            return assets::serve(&method, p, req.headers()).map(Ok);
        }
        _ => return None,
    };
    Some(r.map(|mut resp| {
        resp.headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-store"));
        resp
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    token: String,
}

/// `POST /api/console/login {"token"}`: the admin token opens a session. A wrong token
/// costs the caller a delay, and after too many in a minute that client's logins (by peer
/// address; others' are not affected) are refused for a while.
async fn login(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    auth::same_origin(&req)?;
    let sessions = &state.console.sessions;
    // The server always sets it; a request without one (none today) counts as one client.
    let client: session::Client = req
        .extensions()
        .get::<http::Peer>()
        .map(|p| p.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
        .into();
    if let Some(wait) = sessions.locked_for(client) {
        return Err(too_many(wait));
    }
    let bytes = read_body(req, 64 * 1024).await?;
    let body: LoginBody = serde_json::from_slice(&bytes).map_err(|e| ApiError::Validation {
        field: "token".into(),
        message: format!("send {{\"token\": \"<admin token>\"}}: {e}"),
    })?;
    if !state.is_admin_token(body.token.trim()) {
        let allowed = sessions.note_failure(client);
        tokio::time::sleep(Duration::from_millis(400)).await;
        tracing::warn!("console login with a wrong admin token");
        if !allowed {
            return Err(too_many(Duration::from_secs(60)));
        }
        return Err(ApiError::Unauthorized("that is not the admin token".into()));
    }
    let (id, s) = sessions
        .create()
        .ok_or_else(|| ApiError::Internal("no randomness for a session id".into()))?;
    let mut resp = http::json(
        200,
        &json!({"logged_in": true, "csrf_token": s.csrf, "expires_at": s.expires_at_ms,
                "billing": state.config.billing.enabled}),
    );
    let cookie = state.console.cookie(&id, sessions.ttl().as_secs());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert("set-cookie", v);
    }
    Ok(resp)
}

fn too_many(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        kind: "console_login",
        message: "too many failed console logins from this address; wait a minute".into(),
        retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(60_000).max(1000),
    }
}

/// `POST /api/console/logout`: ends the session (needs its CSRF token) and clears the cookie.
fn logout(state: &Arc<AppState>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let who = auth::admin(state, req)?;
    if let auth::Access::Session(id) = who {
        state.console.sessions.remove(&id);
    }
    let mut resp = http::json(200, &json!({"logged_in": false}));
    if let Ok(v) = HeaderValue::from_str(&state.console.cookie("", 0)) {
        resp.headers_mut().insert("set-cookie", v);
    }
    Ok(resp)
}

/// `GET /api/console/session`: whether the cookie holds a live session, and its CSRF token.
fn session_view(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<Body> {
    let billing = state.config.billing.enabled;
    match session::cookie(req.headers(), session::COOKIE)
        .and_then(|id| state.console.sessions.get(id))
    {
        Some(s) => http::json(
            200,
            &json!({"logged_in": true, "csrf_token": s.csrf, "expires_at": s.expires_at_ms,
                    "billing": billing}),
        ),
        None => http::json(200, &json!({"logged_in": false, "billing": billing})),
    }
}
