//! The attempts phase: try each target the model resolved to, each with up to
//! `resilience.max_attempts` keys, until one answers. Retries happen only before anything
//! reached the client (a rate limit, a 5xx, a connect error, a timeout, a refused key),
//! with backoff, within one deadline; a client error is never retried.

use super::attempt::attempt;
use super::context::CallContext;
use super::{clip, resolve, Served, TraceHeaders};
use crate::error::ApiError;
use crate::inbound::CanonicalCall;
use crate::resilience::credential_health::Outcome;
use crate::resilience::report::note;
use crate::resilience::retry::{backoff, outcome_of, retryable};
use crate::routing::{Route, Targets};
use crate::state::AppState;
use plugin_api::{Call, Credential, Format};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the attempts for `call` over `targets` (in order). The first answer wins; else
/// the last attempt's error (each attempt's error is kept on the call record).
pub async fn run(
    state: &Arc<AppState>,
    ctx: &mut CallContext,
    call: &CanonicalCall,
    targets: Targets<'_>,
    trace: &TraceHeaders,
) -> Result<Served, ApiError> {
    let (endpoint, model, stream, include_usage) =
        (call.endpoint, &call.model, call.stream, call.include_usage);
    let client_headers = crate::plugin_host::call_context::client_headers(&call.headers);
    let call_shape = call.shape.clone();
    let r = &state.config.resilience;
    let deadline = ctx.started() + Duration::from_millis(r.total_timeout_ms);
    let mut last_error: Option<ApiError> = None;
    let mut failures = 0u32;
    let n_targets = targets.len();
    for (t, (route, upstream_model)) in targets.into_iter().enumerate() {
        if t > 0 {
            let left_provider = ctx.rec().map(|r| r.provider.clone()).unwrap_or_default();
            state
                .metrics
                .failovers
                .get_or_create(&crate::observability::metrics::ProviderLabels {
                    provider: left_provider,
                })
                .inc();
        }
        ctx.known_model = route.models.iter().any(|m| m.id == upstream_model);
        ctx.span.record("gen_ai.system", route.plugin.as_str());
        if let Some(rec) = ctx.rec() {
            // The record names the model served as `prefix/model`; made only when the
            // client named it otherwise.
            let same = rec
                .model
                .strip_prefix(route.prefix.as_str())
                .and_then(|r| r.strip_prefix('/'))
                == Some(&*upstream_model);
            if !same {
                rec.requested_model
                    .get_or_insert_with(|| clip(model, 200).to_string());
                rec.model = format!("{}/{}", route.prefix, upstream_model);
            }
            rec.provider = route.prefix.clone();
        }
        // The client's own body to a provider that speaks its format, else the canonical one.
        let (format, body) = match (call.native_for(&route), &call.body) {
            (Some(native), _) => (call.format, native),
            (None, Ok(canonical)) => (Format::OpenAiChat, canonical),
            (None, Err(invalid)) => {
                // Only a provider taking the client's format natively could serve this.
                last_error = Some(crate::inbound::invalid(invalid.clone()));
                continue;
            }
        };
        let deadline = deadline.min(ctx.started() + route.timeouts.total);
        let mut tried: smallvec::SmallVec<[usize; 8]> = Default::default();
        for _ in 0..r.max_attempts {
            let picked = {
                let _s = tracing::info_span!("credential.select").entered();
                // Borrowed from the route, which outlives the attempt: no copy of the
                // key's name and secret per attempt.
                route.pick_credential(&tried)
            };
            if route.auth.needs_key() && picked.is_none() {
                // After a failed attempt its own error says more than "no key left".
                if tried.is_empty() || last_error.is_none() {
                    last_error = Some(no_credential(&route));
                }
                break; // next target
            }
            if failures > 0 {
                let wait = backoff(
                    failures,
                    Duration::from_millis(r.backoff_base_ms),
                    Duration::from_millis(r.backoff_max_ms),
                );
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            if let Some(rec) = ctx.rec() {
                rec.attempts += 1;
                rec.credential_id = picked.as_ref().and_then(|(_, c)| c.id);
                if let Some(id) = picked.as_ref().and_then(|(_, c)| c.id) {
                    rec.credentials_tried.push(id);
                }
            }
            if let Some((i, _)) = &picked {
                tried.push(*i);
            }
            let cred = picked.map(|(_, c)| c);
            let call = Call {
                credential: cred
                    .map_or(Credential::None, |c| Credential::ApiKey(c.secret.as_str())),
                format,
                headers: &client_headers,
                now_unix_ms: crate::plugin_host::call_context::now_unix_ms(),
                stream,
                include_usage,
                ..Call::new(endpoint, &upstream_model, body)
            };
            let number = ctx.rec().map(|r| r.attempts).unwrap_or(1);
            let shape = &call_shape;
            match attempt(state, &route, &call, shape, ctx, deadline, trace, number).await {
                Ok(served) => {
                    if let Some(c) = cred {
                        note(state, &route, c, &Outcome::Success, &upstream_model);
                    }
                    return Ok(served);
                }
                Err(e) => {
                    ctx.attempt_failed(&e);
                    let outcome = outcome_of(&e);
                    if let Some(c) = cred {
                        note(state, &route, c, &outcome, &upstream_model);
                    }
                    if !retryable(&e) {
                        return Err(e);
                    }
                    tracing::info!(provider = %route.prefix, error = %e, "attempt failed; retrying");
                    failures += 1;
                    // A provider that cannot be reached is down for every key: fail over.
                    let unreachable = matches!(e, ApiError::UpstreamConnect(_));
                    last_error = Some(e);
                    if Instant::now() >= deadline || (unreachable && t + 1 < n_targets) {
                        break;
                    }
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| resolve::not_found(model, state)))
}

/// Why no credential of `route` can take a call now. When every key is only cooling
/// down after rate limits, that is a rate limit for the client too, with a `Retry-After`.
fn no_credential(route: &Route) -> ApiError {
    if route.credentials.is_empty() {
        return ApiError::NoCredential {
            prefix: route.prefix.clone(),
            hint: match &route.api_key_env {
                Some(env) => format!("; set the {env} environment variable or add a credential through the admin API"),
                None => "; add a credential through the admin API".into(),
            },
        };
    }
    let views: Vec<_> = route.credentials.iter().map(|c| c.health.view()).collect();
    let now = crate::store::now_ms();
    if views.iter().all(|v| v.state == "cooling_down") {
        let wait_ms = views
            .iter()
            .filter_map(|v| v.until)
            .min()
            .map(|u| (u - now).max(0) as u64);
        return ApiError::Provider(
            plugin_api::ProviderError::rate_limited(
                format!(
                    "every key of provider '{}' is cooling down after rate limits",
                    route.prefix
                ),
                wait_ms.or(Some(1000)),
            )
            .with_code("rate_limit_exceeded"),
        );
    }
    ApiError::NoHealthyCredential {
        prefix: route.prefix.clone(),
    }
}
