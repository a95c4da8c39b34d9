//! The admit phase: whether this app may make this call now. Rate limits (`traffic`)
//! refuse with 429 before any upstream is tried; what admission took is settled in the
//! account phase (token estimates corrected by the real usage, in-flight slots freed).
//! Credit holds plug in here too.

use super::context::CallContext;
use crate::error::ApiError;
use crate::inbound::CanonicalCall;
use crate::routing::Route;
use crate::state::AppState;
use serde::Deserialize;
use std::sync::Arc;

/// Admits `call` for the context's app, or refuses it. `first` is the target the call
/// will be served by first (for per-model limits).
pub fn admit(
    state: &AppState,
    ctx: &mut CallContext,
    call: &CanonicalCall,
    first: Option<&(Arc<Route>, String)>,
) -> Result<(), ApiError> {
    let table = state.limits.load();
    if table.is_empty() {
        return Ok(());
    }
    let served = first.map(|(r, m)| format!("{}/{m}", r.prefix));
    let ask = crate::traffic::Ask {
        app_id: ctx.app_id,
        app_name: &ctx.app,
        key_id: ctx.key_id,
        requested: &call.model,
        served: served.as_deref().unwrap_or(&call.model),
        estimate: estimate(call),
    };
    match crate::traffic::admit(&table, &state.counters, &ask) {
        Ok(admission) => {
            if let Some(a) = &admission {
                ctx.rate_headers = Some(a.headers.clone());
            }
            ctx.admission = admission;
            Ok(())
        }
        Err(refused) => {
            if let crate::error::ApiError::RateLimited { kind, .. } = &refused.error {
                state
                    .metrics
                    .rate_limited
                    .get_or_create(&crate::observability::metrics::LimitLabels {
                        kind: (*kind).to_string(),
                    })
                    .inc();
            }
            ctx.rate_headers = Some(refused.headers);
            Err(refused.error)
        }
    }
}

/// Tokens a call is admitted on before its usage is known: about four bytes of request
/// per input token, plus the output it asked for at most.
fn estimate(call: &CanonicalCall) -> u64 {
    #[derive(Deserialize)]
    struct Caps {
        max_tokens: Option<u64>,
        max_completion_tokens: Option<u64>,
        max_output_tokens: Option<u64>,
    }
    let body = match (&call.body, &call.native) {
        (Ok(b), _) => &b[..],
        (Err(_), Some(n)) => &n.body[..],
        (Err(_), None) => &[][..],
    };
    let output = serde_json::from_slice::<Caps>(body)
        .ok()
        .and_then(|c| {
            c.max_completion_tokens
                .or(c.max_tokens)
                .or(c.max_output_tokens)
        })
        .unwrap_or(0);
    (body.len() as u64).div_ceil(4).saturating_add(output)
}
