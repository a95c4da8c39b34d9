//! The admit phase: whether this app may make this call now. Rate limits (`traffic`)
//! refuse with 429 before any upstream is tried; what admission took is settled in the
//! account phase (token estimates corrected by the real usage, in-flight slots freed).
//! Then, with credit billing on, the call's estimated price is held against the app's
//! available credit (balance − held) or refused with 402; the hold is released when the
//! call's record (and its real charge) is written.

use super::context::CallContext;
use crate::error::ApiError;
use crate::inbound::CanonicalCall;
use crate::routing::Target;
use crate::state::AppState;
use serde::Deserialize;

/// Admits `call` for the context's app, or refuses it. `first` is the target the call
/// will be served by first (for per-model limits and the price of the hold).
pub async fn admit(
    state: &AppState,
    ctx: &mut CallContext,
    call: &CanonicalCall,
    first: Option<&Target<'_>>,
) -> Result<(), ApiError> {
    // Read from the body at most once, and only if a limit or a hold needs it.
    let mut tokens = None;
    limits(state, ctx, call, first, &mut tokens).await?;
    budget(state, ctx, call, first, &mut tokens).await?;
    if state.credits.enabled {
        hold(state, ctx, call, first, &mut tokens).await?;
    }
    Ok(())
}

/// The call's token estimate, read once into `cache`.
fn tokens_of(call: &CanonicalCall, cache: &mut Option<(u64, Option<u64>)>) -> (u64, Option<u64>) {
    *cache.get_or_insert_with(|| estimate(call))
}

async fn limits(
    state: &AppState,
    ctx: &mut CallContext,
    call: &CanonicalCall,
    first: Option<&Target<'_>>,
    tokens: &mut Option<(u64, Option<u64>)>,
) -> Result<(), ApiError> {
    if state.limits.load().is_empty() {
        return Ok(());
    }
    let table = state.limits.load_full();
    let served = first.map(|(r, m)| format!("{}/{m}", r.prefix));
    let ask = crate::traffic::Ask {
        app_id: ctx.app_id,
        app_name: &ctx.app,
        key_id: ctx.key_id,
        requested: &call.model,
        served: served.as_deref().unwrap_or(&call.model),
        estimate: {
            let (input, output) = tokens_of(call, tokens);
            input.saturating_add(output.unwrap_or(0))
        },
    };
    match crate::traffic::admit(&table, &state.counters, &ask).await {
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

/// What a call is admitted on before its usage is known: its estimated tokens (output
/// capped by what it asked for, else `billing.default_max_output_tokens`) and the images
/// it asked for. Shared by the spend-cap reservation and the credit hold.
fn estimated_use(
    state: &AppState,
    call: &CanonicalCall,
    tokens: &mut Option<(u64, Option<u64>)>,
) -> (crate::store::rates::Tokens, crate::store::rates::MediaUnits) {
    let (input, output) = tokens_of(call, tokens);
    let output = output.unwrap_or(state.config.billing.default_max_output_tokens);
    let media = crate::store::rates::MediaUnits {
        images: images_asked(call),
        ..Default::default()
    };
    (crate::store::rates::Tokens::new(input, output, 0), media)
}

/// Reserves the call's estimated cost (USD, at the served model's rate) under the app's
/// and the key's spend caps, in both billing modes; refuses with 402 `budget_exceeded`
/// when one would be passed.
async fn budget(
    state: &AppState,
    ctx: &mut CallContext,
    call: &CanonicalCall,
    first: Option<&Target<'_>>,
    tokens: &mut Option<(u64, Option<u64>)>,
) -> Result<(), ApiError> {
    let budgets = &state.budgets;
    let caps = budgets.caps(ctx.app_id, ctx.key_id);
    if caps.is_empty() {
        return Ok(());
    }
    let now = crate::store::now_ms();
    for (who, _) in &caps {
        if budgets.needs_load(*who, now) {
            let (day, month) =
                crate::billing::budgets::stored_spend(&state.stores, *who, now).await?;
            budgets.load(*who, day, month, now);
        }
    }
    let estimate = first.map_or(0, |(route, model)| {
        let routes = state.routing.load();
        routes
            .price(&format!("{}/{model}", route.prefix))
            .map_or(0, |rate| {
                let (tokens, images) = estimated_use(state, call, tokens);
                let media = rate.media_raw(images).map_or(i64::MAX, |raw| {
                    i64::try_from(raw / 1_000_000).unwrap_or(i64::MAX)
                });
                rate.cost_micros(&tokens)
                    .unwrap_or(i64::MAX)
                    .saturating_add(media)
            })
    });
    match budgets.try_reserve(&caps, estimate, now) {
        Ok(r) => {
            ctx.budget = Some(r);
            Ok(())
        }
        Err(reached) => {
            if budgets.first_alert(&reached) {
                state.alerts.emit("budget.reached", reached.alert());
            }
            state
                .metrics
                .payment_required
                .get_or_create(&crate::observability::metrics::ReasonLabels {
                    reason: "budget_exceeded",
                })
                .inc();
            Err(ApiError::BudgetExceeded {
                message: reached.message(estimate),
                retry_after_ms: u64::try_from(reached.resets_at - now).unwrap_or(0),
            })
        }
    }
}

/// Holds the call's estimated price at the served model's rate. A model with no price
/// holds nothing (and is charged nothing).
async fn hold(
    state: &AppState,
    ctx: &mut CallContext,
    call: &CanonicalCall,
    first: Option<&Target<'_>>,
    tokens: &mut Option<(u64, Option<u64>)>,
) -> Result<(), ApiError> {
    let Some((route, model)) = first else {
        return Ok(());
    };
    let credits = &state.credits;
    let price = {
        let routes = state.routing.load();
        // The app's explicit price when it has one, else the model's rate.
        let Some(by) = routes.charge_rate(ctx.app_id, &format!("{}/{model}", route.prefix)) else {
            return Ok(());
        };
        let (tokens, media) = estimated_use(state, call, tokens);
        let media = by
            .rate()
            .media_raw(media)
            .and_then(|raw| credits.pricing.nanos_by(by, raw))
            .unwrap_or(crate::billing::MAX_CALL_NANOS);
        credits
            .pricing
            .charge_or_max(by, &tokens)
            .saturating_add(media)
            .min(crate::billing::MAX_CALL_NANOS)
    };
    if price == 0 {
        return Ok(());
    }
    let app = ctx.app_id;
    if let Some(shared) = &credits.store_holds {
        // Every instance on the database takes its holds there, under the balance lock.
        // The lease outlives the call's deadline and the writer's batch; a hold its
        // instance never settles (the instance died) stops counting when it ends.
        let lease_until = crate::store::now_ms().saturating_add(
            i64::try_from(state.config.resilience.total_timeout_ms)
                .unwrap_or(i64::MAX)
                .saturating_add(HOLD_LEASE_MARGIN_MS),
        );
        return match shared.store.hold_credit(app, price, lease_until).await? {
            crate::store::credits::HoldResult::Held(id) => {
                if let Some(rec) = ctx.rec() {
                    rec.hold_nanos = price;
                    rec.hold_id = Some(id);
                } else {
                    shared.release_later(vec![id]);
                }
                Ok(())
            }
            crate::store::credits::HoldResult::Short { balance, held } => {
                Err(insufficient(state, balance, held, price))
            }
        };
    }
    // A balance read while a charge commits is stale by the time the hold is taken;
    // read again (a few times at most: each retry follows a charge that did commit).
    let mut attempt = 0;
    let (balance, result) = loop {
        let (balance, generation) = crate::billing::balance_at(state, app).await?;
        match credits.hold_if_current(app, generation, balance, price) {
            Err(crate::billing::HoldRefused::Stale) if attempt < 8 => attempt += 1,
            Err(crate::billing::HoldRefused::Stale) => {
                break (balance, Err(credits.holds.held(app)));
            }
            Err(crate::billing::HoldRefused::Short(held)) => break (balance, Err(held)),
            Ok(()) => break (balance, Ok(())),
        }
    };
    match result {
        Ok(()) => {
            if let Some(rec) = ctx.rec() {
                rec.hold_nanos = price;
            } else {
                credits.holds.release(app, price);
            }
            Ok(())
        }
        Err(held) => Err(insufficient(state, balance, held, price)),
    }
}

/// How long a shared credit hold outlives its call's deadline: the record's time in the
/// call-log queue and batch.
const HOLD_LEASE_MARGIN_MS: i64 = 120_000;

/// The 402 for a call that may cost `price` when `balance` less `held` does not cover it.
fn insufficient(state: &AppState, balance: i64, held: i64, price: i64) -> ApiError {
    use crate::billing::format_nanos;
    let mut message = format!(
        "insufficient credits: the balance is {} credits ({} held by calls in flight) and this call may cost up to {} credits",
        format_nanos(balance),
        format_nanos(held),
        format_nanos(price)
    );
    if let Some(url) = &state.config.billing.top_up_url {
        message.push_str(&format!("; top up at {url}"));
    }
    state
        .metrics
        .payment_required
        .get_or_create(&crate::observability::metrics::ReasonLabels {
            reason: "insufficient_credits",
        })
        .inc();
    ApiError::InsufficientCredits(message)
}

/// The images an image call asks for (`n`, default 1), for the hold at a per-image price;
/// 0 for other calls.
fn images_asked(call: &CanonicalCall) -> u64 {
    #[derive(Deserialize)]
    struct Asked {
        n: Option<u64>,
    }
    if call.endpoint != plugin_api::Endpoint::Images {
        return 0;
    }
    let n = call
        .body
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice::<Asked>(b).ok())
        .and_then(|a| a.n);
    // Bounded: no image API returns more than a few per call.
    n.unwrap_or(1).clamp(1, 100)
}

/// Tokens a call is admitted on before its usage is known: about four bytes of request
/// per input token, and the output it asked for at most (`None`: it set no cap).
fn estimate(call: &CanonicalCall) -> (u64, Option<u64>) {
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
    let output = serde_json::from_slice::<Caps>(body).ok().and_then(|c| {
        c.max_completion_tokens
            .or(c.max_tokens)
            .or(c.max_output_tokens)
    });
    ((body.len() as u64).div_ceil(4), output)
}
