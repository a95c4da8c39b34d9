//! The response-cache slot: a call that can be answered from the cache is answered here,
//! before any attempt (recorded as a `cache_hit` call with no upstream cost); a miss
//! leaves a slot in the context that the attempt fills with the fresh answer, whole or
//! as the stream the client got.

use super::context::CallContext;
use super::Served;
use crate::cache::{Ask, Cached, Slot};
use crate::error::ApiError;
use crate::inbound::CanonicalCall;
use crate::routing::Target;
use crate::server::http;
use crate::state::AppState;
use bytes::Bytes;
use plugin_api::Usage;

/// A cached answer for `call`, if one may be served; else, when the call is cacheable,
/// a slot for its answer in `ctx`.
pub async fn lookup(
    state: &AppState,
    ctx: &mut CallContext,
    call: &CanonicalCall,
    first: Option<&Target<'_>>,
) -> Result<Option<Served>, ApiError> {
    let Some((route, upstream_model)) = first else {
        return Ok(None);
    };
    let body = match (&call.native, &call.body) {
        (Some(n), _) => &n.body,
        (None, Ok(b)) => b,
        (None, Err(_)) => return Ok(None),
    };
    let ask = Ask {
        app_id: ctx.app_id,
        format: call.format.as_str(),
        endpoint: super::context::endpoint_name(call.endpoint),
        stream: call.stream,
        requested_model: &call.model,
        prefix: &route.prefix,
        upstream_model,
        body,
        headers: &call.headers,
    };
    let Some(slot) = state.cache.slot(&ask)? else {
        return Ok(None);
    };
    let m = &state.metrics;
    let Some(hit) = state.cache.store.get(&slot.key).await else {
        m.cache_lookups.get_or_create(&result("miss")).inc();
        ctx.cache_status = Some("miss");
        ctx.cache = Some(slot);
        return Ok(None);
    };
    m.cache_lookups.get_or_create(&result("hit")).inc();
    ctx.cache_status = Some("hit");
    if let Some(rec) = ctx.rec() {
        rec.cache_hit = true;
        rec.provider = route.prefix.clone();
        let served = format!("{}/{upstream_model}", route.prefix);
        if rec.model != served {
            rec.requested_model
                .get_or_insert_with(|| super::clip(&call.model, 200).to_string());
            rec.model = served;
        }
        if let Some(u) = &hit.usage {
            // Shown for what the answer took once; the hit itself cost nothing upstream.
            rec.input_tokens = u.input_tokens;
            rec.output_tokens = u.output_tokens;
            rec.cached_tokens = u.cached_input_tokens;
        }
    }
    ctx.first_byte();
    if hit.stream {
        // A stream accounts for itself: this one is over before it starts.
        ctx.ok();
        return Ok(Some(Served::Streaming(http::event_stream(http::full(
            hit.body.clone(),
        )))));
    }
    let mut resp = http::json_bytes(200, hit.body.clone());
    if let Some(ct) = hit
        .content_type
        .as_deref()
        .and_then(|v| hyper::header::HeaderValue::from_str(v).ok())
    {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    Ok(Some(Served::Whole(resp, None)))
}

fn result(r: &str) -> crate::observability::metrics::ResultLabels {
    crate::observability::metrics::ResultLabels { result: r.into() }
}

/// Keeps a fresh answer in the slot the lookup left (if it fits).
pub fn fill(
    state: &AppState,
    slot: Slot,
    body: Bytes,
    content_type: Option<&str>,
    stream: bool,
    usage: Option<Usage>,
) {
    if body.len() > slot.max_bytes {
        return;
    }
    state.cache.store.put(
        slot.key,
        Cached {
            body,
            content_type: content_type.map(String::from),
            stream,
            usage,
            ttl: slot.ttl,
        },
    );
}
