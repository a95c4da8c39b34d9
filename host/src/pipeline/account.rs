//! The account phase: whatever happened, the call is recorded once (status, tokens, cost,
//! timings, every attempt's error) and the response gets its `Server-Timing`. A stream
//! accounts for itself when it ends (its context moved into the stream's body).

use super::context::CallContext;
use super::Served;
use crate::error::ApiError;
use crate::inbound::{Format, Render};
use crate::server::http::{self, Body};
use hyper::header::HeaderName;
use hyper::Response;

// Names made at compile time: a `&str` name is parsed and checked on every insert.
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const CACHE_STATUS: HeaderName = HeaderName::from_static("x-aihub-cache");

/// The response for the outcome, with the call accounted for.
pub fn finish(
    ctx: &mut CallContext,
    format: Format,
    result: Result<Served, ApiError>,
) -> Response<Body> {
    let mut resp = match result {
        Ok(Served::Whole(resp, usage)) => {
            ctx.usage(usage);
            ctx.ok();
            resp
        }
        Ok(Served::Streaming(resp)) => resp,
        Err(e) => {
            ctx.fail(&e);
            format.error_response(&e)
        }
    };
    if let Some(v) = ctx.server_timing() {
        resp.headers_mut().insert(SERVER_TIMING, v);
    }
    if let Some(status) = ctx.cache_status {
        resp.headers_mut().insert(
            CACHE_STATUS,
            hyper::header::HeaderValue::from_static(status),
        );
    }
    if let Some(h) = &ctx.rate_headers {
        for (name, value) in h.pairs() {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
    }
    http::mark_logged(&mut resp);
    resp
}
