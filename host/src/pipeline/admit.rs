//! The admit phase: whether this app may make this call now. Rate limits and credit holds
//! plug in here (they may refuse with 429 or 402 before any upstream is tried, and what
//! they reserve is settled in the account phase). Today every authenticated call is
//! admitted.

use super::context::CallContext;
use crate::error::ApiError;
use crate::inbound::CanonicalCall;
use crate::state::AppState;

/// What admission reserved for the call, released or settled when it is accounted.
#[derive(Debug, Default)]
pub struct Admission {}

/// Admits `call` for the context's app, or refuses it.
pub async fn admit(
    _state: &AppState,
    _ctx: &mut CallContext,
    _call: &CanonicalCall,
) -> Result<Admission, ApiError> {
    Ok(Admission::default())
}
