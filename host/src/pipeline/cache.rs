//! The response-cache slot: a call that can be answered from a cache is answered here,
//! before any attempt, and a fresh answer is offered to the cache after it. No cache is
//! configured yet, so every lookup misses.

use super::context::CallContext;
use super::Served;
use crate::inbound::CanonicalCall;
use crate::state::AppState;

/// A cached answer for `call`, if one may be served.
pub async fn lookup(
    _state: &AppState,
    _ctx: &mut CallContext,
    _call: &CanonicalCall,
) -> Option<Served> {
    None
}
