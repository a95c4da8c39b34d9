//! The resolve phase: the model a client named becomes an ordered list of targets
//! (provider route + upstream model): an alias, `prefix/model`, or the catalogs.

use super::context::CallContext;
use crate::error::ApiError;
use crate::routing::Targets;
use crate::state::AppState;
use std::time::Instant;

/// The targets for `model`, or 404 naming the known prefixes.
pub fn resolve<'m>(
    state: &AppState,
    ctx: &mut CallContext,
    model: &'m str,
) -> Result<Targets<'m>, ApiError> {
    let route_start = Instant::now();
    let targets = {
        let _s = tracing::info_span!("route").entered();
        state.routing.load().resolve(model)
    };
    ctx.timings.route = route_start.elapsed();
    if targets.is_empty() {
        return Err(not_found(model, state));
    }
    Ok(targets)
}

pub fn not_found(model: &str, state: &AppState) -> ApiError {
    let table = state.routing.load();
    let known = table.prefixes().join(", ");
    let message = if model.contains('/') {
        format!("model '{model}' not found: no provider serves its prefix; known prefixes: {known}")
    } else {
        format!(
            "model '{model}' not found: no alias and no provider catalog has it; use '<provider prefix>/<model>', with a prefix among: {known}"
        )
    };
    ApiError::ModelNotFound { message }
}
