//! `GET /api/public/pricing`: what each priced model costs an app, in credits per million
//! tokens (cost rate plus margin, as billing charges). Public and read-only; a 404 when
//! billing is off, since then nothing is sold.

use crate::billing::amount::format_nanos;
use crate::billing::Pricing;
use crate::error::ApiError;
use crate::server::http::{self, Body};
use crate::state::AppState;
use crate::store::rates::Tokens;
use hyper::Response;
use serde_json::json;
use std::sync::Arc;

const MTOK: u64 = 1_000_000;

pub async fn list(state: &Arc<AppState>) -> Result<Response<Body>, ApiError> {
    let c = &state.config.billing;
    if !c.enabled {
        return Err(ApiError::NotFound {
            method: "GET".into(),
            path: "/api/public/pricing".into(),
        });
    }
    let pricing = Pricing::from_config(c);
    let rates = state.stores.rates.list_rates().await?;
    let price = |n: Option<i64>| n.map(format_nanos);
    let data: Vec<_> = rates
        .iter()
        .filter(|r| r.per_second_micros.is_none() && r.per_mchar_micros.is_none())
        .map(|r| {
            json!({
                "model": r.model,
                "input_per_mtok": price(pricing.price_nanos(r, &Tokens::new(MTOK, 0, 0))),
                "output_per_mtok": price(pricing.price_nanos(r, &Tokens::new(0, MTOK, 0))),
                "cached_per_mtok": price(
                    r.cached_per_mtok_micros
                        .and_then(|_| pricing.price_nanos(r, &Tokens::new(MTOK, 0, MTOK)))
                ),
            })
        })
        .collect();
    Ok(http::json(
        200,
        &json!({"object": "list", "currency": "credits", "data": data}),
    ))
}
