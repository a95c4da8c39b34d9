//! The account phase: whatever happened, the call is recorded once (status, tokens, cost,
//! timings, every attempt's error) and the response gets its `Server-Timing`. A stream
//! accounts for itself when it ends (its context moved into the stream's task).

use super::context::CallContext;
use super::Served;
use crate::error::ApiError;
use crate::inbound::{Format, Render};
use crate::server::http::{self, Body};
use hyper::Response;

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
        resp.headers_mut().insert("server-timing", v);
    }
    if let Some(status) = ctx.cache_status {
        resp.headers_mut().insert(
            "x-aihub-cache",
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
