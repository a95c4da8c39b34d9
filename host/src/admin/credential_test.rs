//! The admin "test" action: one cheap real call (a one-token chat) through the plugin with
//! one credential, so an operator learns at once whether a key works.

use crate::error::ApiError;
use crate::resilience::credential_health::Outcome;
use crate::server::http::{self, Body};
use crate::state::AppState;
use hyper::Response;
use plugin_api::{ErrorClass, ModelKind};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(
    state: &Arc<AppState>,
    provider_id: i64,
    credential_id: i64,
    model: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let providers = &state.stores.providers;
    let provider = providers.get_provider(provider_id).await?;
    let secret = providers
        .credential_secret(provider_id, credential_id)
        .await?;
    let route = state
        .routing
        .load()
        .get(&provider.prefix)
        .filter(|r| r.store_id == Some(provider_id))
        .cloned()
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "provider '{}' is not routable (disabled, or plugin '{}' is not loaded)",
                provider.prefix, provider.plugin
            ))
        })?;
    let model = model
        .or_else(|| {
            route
                .models
                .iter()
                .find(|m| m.kind == ModelKind::Chat)
                .map(|m| m.id.clone())
        })
        .ok_or_else(|| ApiError::Validation {
            field: "model".into(),
            message: "the provider lists no chat model; give one in the body: {\"model\": \"...\"}"
                .into(),
        })?;
    let start = Instant::now();
    let outcome = crate::resilience::recheck::probe(
        state,
        &route,
        &secret,
        &model,
        route.timeouts.first_byte,
    )
    .await;
    let latency_ms = start.elapsed().as_millis() as u64;
    let health_outcome = match &outcome {
        Ok(()) => Outcome::Success,
        Err(e) => crate::resilience::retry::outcome_of(e),
    };
    let state_name = match route
        .credentials
        .iter()
        .find(|c| c.id == Some(credential_id))
    {
        // In rotation: the result moves its health like any call (a refused key that now
        // passes is restored at once).
        Some(c) => {
            crate::resilience::report::note(state, &route, c, &health_outcome, &model);
            c.health.view().state
        }
        None => {
            let (name, error) = match &outcome {
                Ok(()) => ("healthy", None),
                Err(ApiError::Provider(e)) if e.class == ErrorClass::Auth => {
                    ("invalid", Some(e.message.clone()))
                }
                Err(e) => ("healthy", Some(e.to_string())),
            };
            if let Err(e) = state
                .stores
                .providers
                .set_credential_state(credential_id, name.to_string(), None, error)
                .await
            {
                tracing::warn!(credential = credential_id, error = %e, "cannot persist credential state");
            }
            name
        }
    };
    let error_body = outcome.as_ref().err().map(|e| e.body()["error"].clone());
    Ok(http::json(
        200,
        &json!({
            "ok": outcome.is_ok(),
            "model": format!("{}/{}", route.prefix, model),
            "latency_ms": latency_ms,
            "state": state_name,
            "error": error_body,
        }),
    ))
}
