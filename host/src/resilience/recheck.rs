//! Background re-checks of refused credentials: every second, each credential whose check
//! is due (5 s after the refusal, then doubling up to a cap) gets one cheap call; never
//! more than one check per credential at a time. A key the upstream accepts again is
//! restored to rotation.

use crate::error::ApiError;
use crate::resilience::report::note;
use crate::routing::{Route, RouteCredential};
use crate::state::AppState;
use crate::upstream::headers_of;
use plugin_api::host::Outbound;
use plugin_api::{Call, Credential, Endpoint, ErrorClass, ModelKind};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let table = state.routing.load_full();
            let now = Instant::now();
            for route in table.routes_sorted() {
                for cred in &route.credentials {
                    if let Some(model) = cred.health.claim_check(now, &state.policy) {
                        tokio::spawn(check(state.clone(), route.clone(), cred.clone(), model));
                    }
                }
            }
        }
    });
}

async fn check(state: Arc<AppState>, route: Arc<Route>, cred: RouteCredential, model: String) {
    let model = if model.is_empty() {
        route
            .models
            .iter()
            .find(|m| m.kind == ModelKind::Chat)
            .map(|m| m.id.clone())
            .unwrap_or_default()
    } else {
        model
    };
    let result = probe(
        &state,
        &route,
        &cred.secret,
        &model,
        Duration::from_secs(30),
    )
    .await;
    // Any answer other than a refusal means the upstream accepts the key again; a
    // network failure says nothing, so the check counts as failed and backs off.
    let accepted = match &result {
        Ok(()) => true,
        // Rate limited, or the probe itself was refused: the key got past authentication.
        Err(ApiError::Provider(e)) => {
            matches!(e.class, ErrorClass::RateLimited | ErrorClass::BadRequest)
        }
        Err(_) => false,
    };
    let error = result.as_ref().err().map(|e| e.to_string());
    tracing::info!(provider = %route.prefix, credential = %cred.name, accepted, "credential re-checked");
    if let Some(p) = cred.health.check_done(accepted, error, &state.policy) {
        if accepted {
            // A restored key counts a success, which also clears stale failure counts.
            note(
                &state,
                &route,
                &cred,
                &crate::resilience::credential_health::Outcome::Success,
                &model,
            );
        }
        if let Some(id) = cred.id {
            crate::resilience::report::persist_credential_state(&state, id, &p);
        }
        crate::resilience::report::alert_transition(&state, &route, &cred, &p);
    }
}

/// A one-token chat with a key: the cheapest real call through the plugin. Used by the
/// background checks and by the admin API's "test" action. Its error is scrubbed of the
/// key (and of what the request carried), like a proxied attempt's: it becomes the
/// credential's `last_error` and the test action's answer.
pub async fn probe(
    state: &AppState,
    route: &Route,
    secret: &str,
    model: &str,
    within: Duration,
) -> Result<(), ApiError> {
    try_probe(state, route, secret, model, within)
        .await
        .map_err(|e| e.scrubbed(&[secret]))
}

async fn try_probe(
    state: &AppState,
    route: &Route,
    secret: &str,
    model: &str,
    within: Duration,
) -> Result<(), ApiError> {
    let body = json!({
        "model": format!("{}/{}", route.prefix, model),
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    })
    .to_string();
    let call = Call {
        credential: Credential::ApiKey(secret),
        stream: false,
        include_usage: false,
        ..Call::new(Endpoint::Chat, model, body.as_bytes())
    };
    let prepared = route.adapter.prepare_shared(&call);
    let (status, headers, bytes) = match prepared.map_err(ApiError::Provider)? {
        Outbound::Local(l) => (
            l.status,
            vec![("content-type".to_string(), l.content_type)],
            bytes::Bytes::from(l.body),
        ),
        Outbound::Upstream(request) => {
            let known = call.credential.secrets();
            let extra = crate::redact::sent_secrets(request.headers(), &known);
            let sent: Vec<&str> = known
                .iter()
                .copied()
                .chain(extra.iter().map(String::as_str))
                .collect();
            let scrub = |e: ApiError| e.scrubbed(&sent);
            let resp = state
                .upstream
                .send(request, &[], route.timeouts.first_byte.min(within))
                .await
                .map_err(scrub)?;
            let status = resp.status().as_u16();
            let headers = headers_of(&resp);
            let bytes = state
                .upstream
                .read_body(resp.into_body(), route.timeouts.idle.min(within))
                .await
                .map_err(scrub)?;
            (status, headers, bytes)
        }
    };
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = plugin_api::Response {
        status,
        headers: &headers,
        body: &bytes,
    };
    route
        .adapter
        .parse(&call, &resp)
        .map_err(ApiError::Provider)?;
    Ok(())
}
