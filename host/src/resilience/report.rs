//! Reporting an attempt's outcome on the key it used: the key's health changes, the
//! metric counts it, and the new state is persisted so it survives a restart. Shared by
//! consumer calls, background re-checks and the admin test action.

use crate::resilience::credential_health::{Outcome, Persist};
use crate::routing::{Route, RouteCredential};
use crate::state::AppState;
use std::sync::Arc;

/// Notes an attempt's outcome on the credential, persisting state changes.
pub fn note(
    state: &Arc<AppState>,
    route: &Route,
    cred: &RouteCredential,
    outcome: &Outcome,
    model: &str,
) {
    if let Some(p) = cred.health.record(outcome, model, &state.policy) {
        tracing::info!(provider = %route.prefix, credential = %cred.name, state = p.state, "credential state changed");
        state
            .metrics
            .credential_states
            .get_or_create(&crate::observability::metrics::StateLabels {
                provider: route.prefix.clone(),
                state: p.state.to_string(),
            })
            .inc();
        if let Some(id) = cred.id {
            persist_credential_state(state, id, &p);
        }
        alert_transition(state, route, cred, &p);
    }
}

/// `credential.invalid` when a key is refused by its upstream, `credential.recovered`
/// when an invalid one is accepted again.
pub fn alert_transition(state: &AppState, route: &Route, cred: &RouteCredential, p: &Persist) {
    let event = match (p.from, p.state) {
        (from, "invalid") if from != "invalid" => "credential.invalid",
        ("invalid", "healthy") => "credential.recovered",
        _ => return,
    };
    state.alerts.emit(
        event,
        serde_json::json!({
            "provider": route.prefix,
            "credential": cred.name,
            "credential_id": cred.id,
            // The upstream's message, scrubbed of credentials when it was recorded.
            "reason": p.last_error,
        }),
    );
}

/// Stores a credential's new health state in the background, so it survives a restart.
pub fn persist_credential_state(state: &Arc<AppState>, id: i64, p: &Persist) {
    let providers = state.stores.providers.clone();
    let (name, until, error) = (p.state.to_string(), p.until_ms, p.last_error.clone());
    tokio::spawn(async move {
        if let Err(e) = providers.set_credential_state(id, name, until, error).await {
            tracing::warn!(credential = id, error = %e, "cannot persist credential state");
        }
    });
}
