//! `GET /api/admin/overview?since=&until=&bucket=hour|day&app=`: the console's overview
//! page in one answer — the period's totals and the previous period's (same length, just
//! before), a time series, top models and apps (from the store's aggregates), and each
//! provider's key health (from memory).

use crate::admin::http::{int_param, time_param};
use crate::error::ApiError;
use crate::server::http::{self, Body};
use crate::state::AppState;
use crate::store::overview::{OverviewQuery, Totals};
use hyper::Response;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const HOUR_MS: i64 = 3_600_000;
/// The longest period one overview covers.
const MAX_SPAN_MS: i64 = 400 * 24 * HOUR_MS;

fn validation(field: &str, message: &str) -> ApiError {
    ApiError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

/// Totals with the derived figures the cards show.
fn totals(t: &Totals) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    let rate = if t.calls > 0 {
        t.errors as f64 / t.calls as f64
    } else {
        0.0
    };
    v["error_rate"] = rate.into();
    v["tokens"] = t.input_tokens.saturating_add(t.output_tokens).into();
    v["cost_usd"] = (t.cost_micros as f64 / 1e6).into();
    v
}

pub async fn get(
    state: &Arc<AppState>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let until = time_param(q, "until")?.unwrap_or_else(crate::store::now_ms);
    let since = time_param(q, "since")?.unwrap_or(until - 24 * HOUR_MS);
    if since >= until {
        return Err(validation("since", "must be before 'until'"));
    }
    if until - since > MAX_SPAN_MS {
        return Err(validation("since", "the period may be at most 400 days"));
    }
    let bucket_s = match q.get("bucket").map(String::as_str) {
        None | Some("") => {
            if until - since <= 3 * 24 * HOUR_MS {
                3600
            } else {
                86400
            }
        }
        Some("hour") => 3600,
        Some("day") => 86400,
        Some(other) => {
            return Err(validation(
                "bucket",
                &format!("'{other}' is not one of: hour, day"),
            ))
        }
    };
    let query = OverviewQuery {
        since,
        until,
        bucket_s,
        app_id: int_param(q, "app")?,
    };
    let o = state.stores.calls.overview(query).await?;
    let table = state.routing.load();
    let providers: Vec<Value> = table
        .routes_sorted()
        .into_iter()
        .map(|r| {
            let views: Vec<_> = r.credentials.iter().map(|c| c.health.view()).collect();
            let healthy = views.iter().filter(|v| v.state == "healthy").count();
            json!({
                "prefix": r.prefix,
                "plugin": r.plugin,
                "needs_key": r.auth.needs_key(),
                "keys": views.len(),
                "healthy_keys": healthy,
                "states": views.iter().map(|v| v.state).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(http::json(
        200,
        &json!({
            "since": since,
            "until": until,
            "bucket": if bucket_s == 3600 { "hour" } else { "day" },
            "billing": state.config.billing.enabled,
            "totals": totals(&o.totals),
            "previous": totals(&o.previous),
            "series": o.series,
            "top_models": o.top_models,
            "top_apps": o.top_apps,
            "providers": providers,
        }),
    ))
}
