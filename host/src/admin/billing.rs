//! The admin API's budget, ledger-export, adjustment and refund endpoints.

use super::http::{created, csv_cell, json_body, validation};
use crate::billing::budgets::{day_start, month_bounds, rfc3339, stored_spend, usd, Who};
use crate::billing::{parse_credits, CreditAmount};
use crate::error::ApiError;
use crate::server::http::{self, Body};
use crate::state::{AppState, Change};
use crate::store::budgets::Budget;
use crate::store::credits::LedgerFilter;
use crate::store::limits::Scope;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The largest cap accepted: a billion dollars a day or month.
const MAX_BUDGET_MICROS: i64 = 1_000_000_000 * 1_000_000;

/// A USD amount as a number or decimal string, at most 6 decimals, as micro-USD.
fn usd_micros(v: &Value, field: &str) -> Result<Option<i64>, ApiError> {
    if v.is_null() {
        return Ok(None);
    }
    let nanos = serde_json::from_value::<CreditAmount>(v.clone())
        .map_err(|e| validation(field, &format!("must be a non-negative number of USD: {e}")))?
        .0;
    if nanos % 1000 != 0 {
        return Err(validation(
            field,
            "must have at most 6 decimals (micro-USD)",
        ));
    }
    let micros = nanos / 1000;
    if micros > MAX_BUDGET_MICROS {
        return Err(validation(field, "must be at most 1000000000 USD"));
    }
    Ok(Some(micros))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetBody {
    #[serde(default)]
    daily_usd: Value,
    #[serde(default)]
    monthly_usd: Value,
}

/// `GET|PUT /api/admin/apps/{id}/budget` and `.../keys/{kid}/budget`. PUT replaces the
/// caps: a field left out or `null` is no cap; `{}` removes the budget.
pub async fn budget(
    state: &Arc<AppState>,
    scope: Scope,
    method: &Method,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let budget = if method == Method::PUT {
        let body: BudgetBody = json_body(req).await?;
        let b = Budget {
            daily_micros: usd_micros(&body.daily_usd, "daily_usd")?,
            monthly_micros: usd_micros(&body.monthly_usd, "monthly_usd")?,
        };
        let saved = state.stores.budgets.put_budget(scope, b).await?;
        state.changed(Change::Budgets).await;
        saved
    } else {
        state.stores.budgets.get_budget(scope).await?
    };
    let who = Who::from(scope);
    let now = crate::store::now_ms();
    let (day, month, held) = match state.budgets.view(who, now) {
        Some(tracked) => tracked,
        // Not tracked yet (no capped call since start): what the store recorded.
        None => {
            let (day, month) = stored_spend(&state.stores, who, now).await?;
            (day, month, 0)
        }
    };
    let dollars = |m: Option<i64>| m.map(|m| usd(m).trim_start_matches('$').to_string());
    Ok(http::json(
        200,
        &json!({
            "daily_usd": dollars(budget.daily_micros),
            "monthly_usd": dollars(budget.monthly_micros),
            "spent": {
                "daily_usd": dollars(Some(day)),
                "monthly_usd": dollars(Some(month)),
                "in_flight_usd": dollars(Some(held)),
            },
            "resets": {
                "daily": rfc3339(day_start(now) + 86_400_000),
                "monthly": rfc3339(month_bounds(now).1),
            },
        }),
    ))
}

/// A signed amount of credits: a number or decimal string, optionally negative.
fn signed_credits(v: &Value) -> Result<i64, ApiError> {
    let (negative, text) = match v {
        Value::String(s) => match s.trim().strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, s.clone()),
        },
        Value::Number(n) => {
            let t = n.to_string();
            match t.strip_prefix('-') {
                Some(rest) => (true, rest.to_string()),
                None => (false, t),
            }
        }
        _ => return Err(validation("amount", "must be a number of credits")),
    };
    let n = parse_credits(&text).map_err(|m| validation("amount", &m))?;
    Ok(if negative { -n } else { n })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustBody {
    amount: Value,
    note: String,
}

/// `POST /api/admin/apps/{id}/credits/adjustments` `{"amount": "-1.5", "note"}`.
pub async fn adjust(
    state: &Arc<AppState>,
    app: i64,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body: AdjustBody = json_body(req).await?;
    let amount = signed_credits(&body.amount)?;
    if amount == 0 {
        return Err(validation("amount", "must not be 0"));
    }
    let note = body.note.trim();
    if note.is_empty() || note.len() > 1000 {
        return Err(validation(
            "note",
            "must say why (1 to 1000 bytes): adjustments are audited",
        ));
    }
    let e = state
        .stores
        .credits
        .adjust_credits(app, amount, note.to_string())
        .await?;
    state.credits.invalidate(app);
    Ok(created(&crate::billing::view::entry(&e)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    call_id: i64,
    amount: Option<CreditAmount>,
    note: Option<String>,
}

/// `POST /api/admin/apps/{id}/credits/refunds` `{"call_id", "amount"?, "note"?}`.
pub async fn refund(
    state: &Arc<AppState>,
    app: i64,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body: RefundBody = json_body(req).await?;
    if body.note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(validation("note", "must be at most 1000 bytes"));
    }
    let e = state
        .stores
        .credits
        .refund_call(app, body.call_id, body.amount.map(|a| a.0), body.note)
        .await?;
    state.credits.invalidate(app);
    Ok(created(&crate::billing::view::entry(&e)))
}

const LEDGER_COLUMNS: &[&str] = &[
    "id",
    "app_id",
    "kind",
    "amount",
    "amount_nanos",
    "balance_after",
    "balance_after_nanos",
    "call_id",
    "grant_id",
    "note",
    "created_at",
];
/// Most entries one CSV export holds; `x-next-cursor` continues after them.
const MAX_CSV_ROWS: usize = 1_000_000;
const CSV_PAGE: usize = 1000;

/// `GET /api/admin/ledger?format=csv`: the filtered entries, newest first, streamed a
/// page at a time. A store error midway cuts the body (an incomplete transfer).
pub async fn ledger_csv(
    state: &Arc<AppState>,
    mut filter: LedgerFilter,
    limit: Option<usize>,
) -> Result<Response<Body>, ApiError> {
    let limit = limit.unwrap_or(MAX_CSV_ROWS);
    if !(1..=MAX_CSV_ROWS).contains(&limit) {
        return Err(validation(
            "limit",
            &format!("must be between 1 and {MAX_CSV_ROWS}"),
        ));
    }
    // The first page before the status goes out, so a bad filter or a broken store is
    // an error response, not a cut body.
    filter.limit = CSV_PAGE.min(limit);
    let first = state.stores.credits.list_ledger(filter.clone()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let credits = state.stores.credits.clone();
    tokio::spawn(async move {
        let mut page = Some(first);
        let mut sent = 0usize;
        let mut header = true;
        while let Some((rows, next)) = page.take() {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new());
            if header {
                let _ = w.write_record(LEDGER_COLUMNS);
                header = false;
            }
            for e in rows.iter().take(limit - sent) {
                let v = crate::billing::view::entry(e);
                let _ = w.write_record(LEDGER_COLUMNS.iter().map(|c| match *c {
                    // Our own decimals: a leading '-' is a sign, not a formula.
                    "amount" | "balance_after" => v[*c].as_str().unwrap_or("").to_string(),
                    _ => csv_cell(&v[*c]),
                }));
            }
            sent += rows.len().min(limit - sent);
            let chunk = w.into_inner().unwrap_or_default();
            if tx.send(Ok(chunk.into())).await.is_err() {
                return;
            }
            let Some(cursor) = next.filter(|_| sent < limit) else {
                return;
            };
            filter.cursor = Some(cursor);
            filter.limit = CSV_PAGE.min(limit - sent);
            match credits.list_ledger(filter.clone()).await {
                Ok(p) => page = Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "ledger export stopped early: store error");
                    let _ = tx.send(Err(http::StreamCut)).await;
                    return;
                }
            }
        }
    });
    let mut resp = Response::new(http::Body::new(http::ChannelBody::new(rx)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    resp.headers_mut().insert(
        hyper::header::CONTENT_DISPOSITION,
        hyper::header::HeaderValue::from_static("attachment; filename=\"ledger.csv\""),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(usd_micros(&json!(5), "d").unwrap(), Some(5_000_000));
        assert_eq!(usd_micros(&json!("0.000001"), "d").unwrap(), Some(1));
        assert_eq!(usd_micros(&Value::Null, "d").unwrap(), None);
        assert!(usd_micros(&json!("0.0000001"), "d").is_err());
        assert!(usd_micros(&json!(-1), "d").is_err());
        assert!(usd_micros(&json!("1e3"), "d").is_err());
        assert_eq!(signed_credits(&json!("-1.5")).unwrap(), -1_500_000_000);
        assert_eq!(signed_credits(&json!(2)).unwrap(), 2_000_000_000);
        assert_eq!(signed_credits(&json!(-0.25)).unwrap(), -250_000_000);
        assert!(signed_credits(&json!("--1")).is_err());
        assert!(signed_credits(&json!(true)).is_err());
    }
}
