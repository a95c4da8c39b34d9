//! Credit billing (issue 14): apps hold prepaid credits, each call's price is held at
//! admission and charged when its record is written (in the call-log transaction).
//!
//! Amounts are exact integers of nano-credits (1e-9 credit); the API shows them as
//! decimal strings next to the integer. Prices come from the token counts and the
//! routing table's rate directly, not from the rounded micro-USD cost, so a tiny call
//! never prices at zero.

pub mod alerts;
pub mod amount;
pub mod budgets;
pub mod holds;
pub mod import;
pub mod stripe;
pub mod view;

pub use amount::{format_nanos, parse_credits, CreditAmount, NANOS_PER_CREDIT};
pub use holds::{Credits, HoldRefused, Holds, LocalHolds};

use crate::config::BillingConfig;
use crate::store::rates::{Rate, Tokens};

/// Most one call is charged (a billion credits): usage too large to price saturates here
/// rather than wrapping.
pub const MAX_CALL_NANOS: i64 = 1_000_000_000 * NANOS_PER_CREDIT;

/// The config's price terms as exact integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pricing {
    /// Margin in hundredths of a percent.
    pub margin_bp: i128,
    /// Micro-USD one credit is worth (>= 1).
    pub usd_per_credit_micros: i128,
}

/// What a call is charged by: the app's explicit price (micro-credits, charged as it is)
/// or the model's cost rate (micro-USD, with the margin and the credit's value applied).
#[derive(Debug, Clone, Copy)]
pub enum ChargeRate<'a> {
    App(&'a Rate),
    Cost(&'a Rate),
}

impl<'a> ChargeRate<'a> {
    pub fn rate(&self) -> &'a Rate {
        match self {
            ChargeRate::App(r) | ChargeRate::Cost(r) => r,
        }
    }
}

impl Pricing {
    pub fn from_config(c: &BillingConfig) -> Pricing {
        Pricing {
            margin_bp: (c.margin_percent.max(0.0) * 100.0).round() as i128,
            usd_per_credit_micros: ((c.usd_per_credit * 1e6).round() as i128).max(1),
        }
    }

    /// The price in nano-credits of a call that used these tokens at `rate` (a cost
    /// rate), rounded up to the next nano-credit; `None` when it does not fit (checked,
    /// never wrapped).
    pub fn price_nanos(&self, rate: &Rate, t: &Tokens) -> Option<i64> {
        self.raw_nanos(rate.tokens_raw(t)?)
    }

    /// A cost in the raw units of [`Rate::tokens_raw`] (1e-12 USD) as nano-credits,
    /// rounded up; `None` when it does not fit.
    ///
    /// cost_usd = raw / 1e12; credits = cost × (1 + bp/1e4) / (upc_µUSD / 1e6);
    /// nanos = credits × 1e9 = raw × (1e4 + bp) / (10 × upc_µUSD).
    pub fn raw_nanos(&self, raw: i128) -> Option<i64> {
        let num = raw.checked_mul(10_000i128.checked_add(self.margin_bp)?)?;
        let den = self.usd_per_credit_micros.checked_mul(10)?;
        let nanos = num.checked_add(den - 1)? / den;
        i64::try_from(nanos).ok().filter(|n| *n <= MAX_CALL_NANOS)
    }

    /// Raw units of `by` (1e-12 USD for a cost rate, 1e-12 credit for an app's price) as
    /// nano-credits, rounded up; `None` when it does not fit.
    pub fn nanos_by(&self, by: ChargeRate<'_>, raw: i128) -> Option<i64> {
        match by {
            ChargeRate::Cost(_) => self.raw_nanos(raw),
            ChargeRate::App(_) => {
                let nanos = raw.checked_add(999)? / 1000;
                i64::try_from(nanos).ok().filter(|n| *n <= MAX_CALL_NANOS)
            }
        }
    }

    /// The charge in nano-credits for these tokens, saturated at [`MAX_CALL_NANOS`].
    pub fn charge_or_max(&self, by: ChargeRate<'_>, t: &Tokens) -> i64 {
        by.rate()
            .tokens_raw(t)
            .and_then(|raw| self.nanos_by(by, raw))
            .unwrap_or(MAX_CALL_NANOS)
    }
}

/// The app's balance for admission: cached, else read from the store (which expires
/// what is due first), with the generation it was read at (see
/// [`Credits::hold_if_current`]).
pub async fn balance_at(
    state: &crate::state::AppState,
    app_id: i64,
) -> Result<(i64, u64), crate::error::ApiError> {
    let credits = &state.credits;
    if !credits.enabled || credits.store_holds.is_some() {
        // No writer keeps the cache fresh when billing is off; with several instances
        // on one database, their charges would not invalidate it.
        let generation = credits.generation(app_id);
        return Ok((
            state.stores.credits.credit_balance(app_id).await?.0,
            generation,
        ));
    }
    match credits.cached(app_id, crate::store::now_ms()) {
        Ok(at) => Ok(at),
        Err(generation) => {
            let (balance, next_expiry) = state.stores.credits.credit_balance(app_id).await?;
            credits.fill(app_id, generation, balance, next_expiry);
            Ok((balance, generation))
        }
    }
}

/// The app's balance (see [`balance_at`]).
pub async fn balance(
    state: &crate::state::AppState,
    app_id: i64,
) -> Result<i64, crate::error::ApiError> {
    Ok(balance_at(state, app_id).await?.0)
}

/// `{"<name>": "12.500000000", "<name>_nanos": 12500000000}` entries for a JSON object.
pub fn amount_fields(obj: &mut serde_json::Map<String, serde_json::Value>, name: &str, nanos: i64) {
    obj.insert(name.to_string(), format_nanos(nanos).into());
    obj.insert(format!("{name}_nanos"), nanos.into());
}

/// The grant a new app gets: (nano-credits, expiry in Unix ms), when configured.
pub fn new_app_grant(c: &BillingConfig, now_ms: i64) -> Option<(i64, Option<i64>)> {
    let amount = c.new_app_grant.0;
    (amount > 0).then(|| {
        let expires = c
            .new_app_grant_days
            .map(|d| now_ms.saturating_add(i64::from(d) * 86_400_000));
        (amount, expires)
    })
}

/// Gives a just-created app its configured grant; a failure is logged, not fatal (the
/// app exists; the operator can grant by hand).
pub async fn grant_new_app(
    store: &dyn crate::store::traits::CreditStore,
    c: &BillingConfig,
    app_id: i64,
) {
    if let Some((amount, expires)) = new_app_grant(c, crate::store::now_ms()) {
        if let Err(e) = store
            .grant_credits(app_id, amount, expires, Some("new app grant".into()))
            .await
        {
            tracing::error!(app_id, error = %e, "the new-app credit grant failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(input_usd: f64, output_usd: f64) -> Rate {
        Rate {
            model: "m/x".into(),
            input_per_mtok_micros: (input_usd * 1e6) as i64,
            output_per_mtok_micros: (output_usd * 1e6) as i64,
            cached_per_mtok_micros: None,
            ..Rate::default()
        }
    }

    fn pricing(margin: f64, upc: f64) -> Pricing {
        Pricing::from_config(&BillingConfig {
            margin_percent: margin,
            usd_per_credit: upc,
            ..BillingConfig::default()
        })
    }

    #[test]
    fn a_tiny_call_never_prices_at_zero() {
        let p = pricing(0.0, 1.0);
        // 10 tokens at $0.15/Mtok: $1.5e-6 = 1500 nano-credits at $1/credit.
        assert_eq!(
            p.price_nanos(&rate(0.15, 0.0), &Tokens::new(10, 0, 0)),
            Some(1500)
        );
        // One token at $0.000001/Mtok is 1e-12 USD: still one nano-credit.
        let r = Rate {
            input_per_mtok_micros: 1,
            ..rate(0.0, 0.0)
        };
        assert_eq!(p.price_nanos(&r, &Tokens::new(1, 0, 0)), Some(1));
        assert_eq!(
            p.price_nanos(&rate(0.0, 0.0), &Tokens::new(1000, 1000, 0)),
            Some(0)
        );
    }

    #[test]
    fn margin_and_credit_value_apply_and_round_up() {
        // 1M input tokens at $2/Mtok = $2; +25% = $2.5; at $0.5/credit = 5 credits.
        let p = pricing(25.0, 0.5);
        assert_eq!(
            p.price_nanos(&rate(2.0, 0.0), &Tokens::new(1_000_000, 0, 0)),
            Some(5 * NANOS_PER_CREDIT)
        );
        // $1 at $3/credit: 0.333333333.. credits, rounded up.
        let p = pricing(0.0, 3.0);
        assert_eq!(
            p.price_nanos(&rate(1.0, 0.0), &Tokens::new(1_000_000, 0, 0)),
            Some(333_333_334)
        );
    }

    #[test]
    fn absurd_usage_saturates() {
        let p = pricing(0.0, 0.000001);
        let r = rate(1_000_000.0, 1_000_000.0);
        let t = Tokens::new(u64::MAX, u64::MAX, 0);
        assert_eq!(p.price_nanos(&r, &t), None);
        assert_eq!(p.charge_or_max(ChargeRate::Cost(&r), &t), MAX_CALL_NANOS);
        assert_eq!(p.charge_or_max(ChargeRate::App(&r), &t), MAX_CALL_NANOS);
        assert_eq!(p.nanos_by(ChargeRate::App(&r), i128::MAX), None);
    }

    #[test]
    fn an_app_price_is_charged_in_credits_without_margin() {
        // 40% margin and $2 a credit apply to the cost rate, not to an app's own price.
        let p = pricing(40.0, 2.0);
        // 3 credits per Mtok of input, 6 of output; 1000 in and 500 out:
        // 1000 × 3 + 500 × 6 = 6000 µcredit = 6,000,000 nano-credits.
        let own = Rate {
            input_per_mtok_micros: 3_000_000,
            output_per_mtok_micros: 6_000_000,
            ..rate(0.0, 0.0)
        };
        let t = Tokens::new(1000, 500, 0);
        assert_eq!(p.charge_or_max(ChargeRate::App(&own), &t), 6_000_000);
        // The same numbers as a USD cost rate: $0.006 × 1.4 ÷ 2 = 0.0042 credits.
        assert_eq!(p.charge_or_max(ChargeRate::Cost(&own), &t), 4_200_000);
        // One token at one micro-credit per Mtok is 1e-12 credit: rounds up to 1 nano.
        let tiny = Rate {
            input_per_mtok_micros: 1,
            ..rate(0.0, 0.0)
        };
        assert_eq!(
            p.charge_or_max(ChargeRate::App(&tiny), &Tokens::new(1, 0, 0)),
            1
        );
    }

    #[test]
    fn cache_writes_are_charged_at_their_rate() {
        let p = pricing(0.0, 1.0);
        let r = Rate {
            cache_write_per_mtok_micros: Some(3_750_000),
            ..rate(3.0, 15.0)
        };
        // 1000 input of which 800 written to the cache: 200 × 3 + 800 × 3.75 = 3600 µ$
        // = 3,600,000 nano-credits at $1 a credit.
        let t = Tokens {
            input: 1000,
            output: 0,
            cached: 0,
            cache_write: 800,
        };
        assert_eq!(p.price_nanos(&r, &t), Some(3_600_000));
    }
}
