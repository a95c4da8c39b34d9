//! Who may use the admin API: the bearer admin token (scripts), or a console session
//! cookie (the SPA). A cookie is sent by the browser on its own, so with one, every
//! mutating request must also carry the session's CSRF token in `x-aihub-csrf` and, when
//! the browser names an `Origin`, come from this server's own origin.

use super::session;
use crate::error::ApiError;
use crate::state::AppState;
use hyper::{Method, Request};

/// The CSRF header the SPA sends on mutations.
pub const CSRF_HEADER: &str = "x-aihub-csrf";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Bearer,
    /// The session's cookie value.
    Session(String),
}

fn mutating(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authorizes an admin request by bearer token or session cookie.
pub fn admin<B>(state: &AppState, req: &Request<B>) -> Result<Access, ApiError> {
    if let Some(t) = crate::auth::bearer(req.headers()) {
        return if state.is_admin_token(t) {
            Ok(Access::Bearer)
        } else {
            Err(ApiError::Unauthorized("invalid admin token".into()))
        };
    }
    let cookie =
        session::cookie(req.headers(), session::COOKIE).filter(|_| state.config.console.enabled);
    let Some(id) = cookie else {
        return Err(ApiError::Unauthorized(
            "the admin API needs the admin token: send 'Authorization: Bearer <admin token>'"
                .into(),
        ));
    };
    let Some(s) = state.console.sessions.get(id) else {
        return Err(ApiError::Unauthorized(
            "the console session has ended: log in again".into(),
        ));
    };
    if mutating(req.method()) {
        same_origin(req)?;
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !session::same(sent, &s.csrf) {
            return Err(ApiError::Forbidden(format!(
                "a console request that changes something needs the session's CSRF token in '{CSRF_HEADER}'"
            )));
        }
    }
    Ok(Access::Session(id.to_string()))
}

/// Refuses a browser request from another site: an `Origin` whose host is not the one the
/// request was sent to, or `Sec-Fetch-Site: cross-site`.
pub fn same_origin<B>(req: &Request<B>) -> Result<(), ApiError> {
    let h = req.headers();
    let forbidden = || ApiError::Forbidden("cross-origin console requests are refused".into());
    if h.get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return Err(forbidden());
    }
    let Some(origin) = h.get(hyper::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = h
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
        return Err(forbidden());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>, host: &str) -> Request<()> {
        let mut b = Request::builder().method("POST").uri("/api/admin/apps");
        b = b.header("host", host);
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn origin_must_match_the_host() {
        assert!(same_origin(&req(None, "127.0.0.1:8090")).is_ok());
        assert!(same_origin(&req(Some("http://127.0.0.1:8090"), "127.0.0.1:8090")).is_ok());
        assert!(same_origin(&req(Some("https://evil.example"), "127.0.0.1:8090")).is_err());
        assert!(same_origin(&req(Some("null"), "127.0.0.1:8090")).is_err());
    }
}
