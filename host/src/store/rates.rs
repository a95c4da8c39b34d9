//! Operator-set prices per model, overriding the plugins' list prices.

use super::{now_ms, Store, StoreError};
use rusqlite::params;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Rate {
    /// `prefix/model`, as clients name it.
    pub model: String,
    pub input_per_mtok_micros: i64,
    pub output_per_mtok_micros: i64,
    /// Price of cached input tokens; `None`: same as input.
    pub cached_per_mtok_micros: Option<i64>,
    /// Audio transcription and translation: micro-USD per second of audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second_micros: Option<i64>,
    /// Speech: micro-USD per million characters of input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_mchar_micros: Option<i64>,
    pub updated_at: i64,
}

/// What an audio call used, priced by the second or by the character.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioUnits {
    /// Milliseconds of audio transcribed or translated.
    pub millis: u64,
    /// Characters of text spoken.
    pub characters: u64,
}

impl AudioUnits {
    pub fn is_empty(&self) -> bool {
        self.millis == 0 && self.characters == 0
    }
}

/// The highest price accepted, in USD per million tokens ($1 a token). Far above any
/// real model, low enough that no plausible call's cost can overflow.
pub const MAX_USD_PER_MTOK: f64 = 1_000_000.0;

/// USD per million tokens as integer micro-USD, or `None` when negative, not finite or
/// above [`MAX_USD_PER_MTOK`].
pub fn usd_per_mtok_to_micros(usd: f64) -> Option<i64> {
    (usd.is_finite() && (0.0..=MAX_USD_PER_MTOK).contains(&usd))
        .then(|| (usd * 1_000_000.0).round() as i64)
}

impl Rate {
    /// An audio call's cost in the units token costs are summed in (tokens × micro-USD per
    /// million tokens, i.e. 1e-12 USD), so both round the same way; `None` when it does
    /// not fit.
    pub fn audio_raw(&self, a: AudioUnits) -> Option<i128> {
        // µUSD/s × ms / 1000 = µUSD = raw / 1e6.
        let seconds = i128::from(a.millis)
            .checked_mul(i128::from(self.per_second_micros.unwrap_or(0)))?
            .checked_mul(1000)?;
        // µUSD per 1e6 characters × characters / 1e6 = µUSD = raw / 1e6.
        let chars =
            i128::from(a.characters).checked_mul(i128::from(self.per_mchar_micros.unwrap_or(0)))?;
        seconds.checked_add(chars)
    }

    /// Cost of one call in micro-USD. Cached tokens are part of `input`. `None` when the
    /// token counts are so large the cost does not fit (checked, never wrapped).
    pub fn cost_micros(&self, input: u64, output: u64, cached: u64) -> Option<i64> {
        let cached = i128::from(cached.min(input));
        let fresh = i128::from(input) - cached;
        let cached_rate = i128::from(
            self.cached_per_mtok_micros
                .unwrap_or(self.input_per_mtok_micros),
        );
        let total = fresh
            .checked_mul(i128::from(self.input_per_mtok_micros))?
            .checked_add(cached.checked_mul(cached_rate)?)?
            .checked_add(
                i128::from(output).checked_mul(i128::from(self.output_per_mtok_micros))?,
            )?;
        i64::try_from(total / 1_000_000).ok()
    }
}

impl Store {
    pub fn list_rates(&self) -> Result<Vec<Rate>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT model, input_per_mtok_micros, output_per_mtok_micros, cached_per_mtok_micros, updated_at,
                    per_second_micros, per_mchar_micros
             FROM model_rates ORDER BY model",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Rate {
                    model: r.get(0)?,
                    input_per_mtok_micros: r.get(1)?,
                    output_per_mtok_micros: r.get(2)?,
                    cached_per_mtok_micros: r.get(3)?,
                    updated_at: r.get(4)?,
                    per_second_micros: r.get(5)?,
                    per_mchar_micros: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn put_rate(&self, rate: &Rate) -> Result<Rate, StoreError> {
        let model = rate.model.as_str();
        if !model.contains('/') {
            return Err(StoreError::invalid("model", "must be 'prefix/model'"));
        }
        let optional = [
            rate.cached_per_mtok_micros,
            rate.per_second_micros,
            rate.per_mchar_micros,
        ];
        if rate.input_per_mtok_micros < 0
            || rate.output_per_mtok_micros < 0
            || optional.iter().flatten().any(|c| *c < 0)
        {
            return Err(StoreError::invalid("price", "prices must not be negative"));
        }
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO model_rates (model, input_per_mtok_micros, output_per_mtok_micros, cached_per_mtok_micros,
                updated_at, per_second_micros, per_mchar_micros)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (model) DO UPDATE SET input_per_mtok_micros = excluded.input_per_mtok_micros,
                output_per_mtok_micros = excluded.output_per_mtok_micros,
                cached_per_mtok_micros = excluded.cached_per_mtok_micros, updated_at = excluded.updated_at,
                per_second_micros = excluded.per_second_micros, per_mchar_micros = excluded.per_mchar_micros",
            params![
                model,
                rate.input_per_mtok_micros,
                rate.output_per_mtok_micros,
                rate.cached_per_mtok_micros,
                now_ms(),
                rate.per_second_micros,
                rate.per_mchar_micros
            ],
        )?;
        self.list_rates()?
            .into_iter()
            .find(|r| r.model == model)
            .ok_or_else(|| StoreError::NotFound(format!("rate for {model}")))
    }

    pub fn delete_rate(&self, model: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        if conn.execute("DELETE FROM model_rates WHERE model = ?1", [model])? == 0 {
            return Err(StoreError::NotFound(format!("rate for {model}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_priced_by_the_second_and_by_the_character() {
        let r = Rate {
            per_second_micros: Some(100),
            per_mchar_micros: Some(15_000_000),
            ..Rate::default()
        };
        let raw = |millis, characters| r.audio_raw(AudioUnits { millis, characters }).unwrap();
        // 13 s at $0.0001/s = 1300 µUSD; 12 characters at $15 per million = 180 µUSD.
        assert_eq!(raw(13_000, 0) / 1_000_000, 1300);
        assert_eq!(raw(0, 12) / 1_000_000, 180);
        assert_eq!(
            Rate::default().audio_raw(AudioUnits {
                millis: 5,
                characters: 5
            }),
            Some(0)
        );
        let huge = Rate {
            per_second_micros: Some(i64::MAX),
            ..Rate::default()
        };
        assert_eq!(
            huge.audio_raw(AudioUnits {
                millis: u64::MAX,
                characters: 0
            }),
            None,
            "never wraps"
        );
    }

    #[test]
    fn cost_counts_cached_tokens_at_their_rate() {
        let r = Rate {
            model: "openai/gpt-4o".into(),
            input_per_mtok_micros: 2_500_000,
            output_per_mtok_micros: 10_000_000,
            cached_per_mtok_micros: Some(1_250_000),
            ..Rate::default()
        };
        // 1000 input of which 400 cached, 100 output:
        // 600*2.5 + 400*1.25 + 100*10 = 1500 + 500 + 1000 = 3000 micro-USD... per million tokens -> /1e6 * 1e6
        assert_eq!(r.cost_micros(1000, 100, 400), Some(3000));
    }

    #[test]
    fn huge_prices_are_refused_and_costs_never_wrap() {
        assert_eq!(usd_per_mtok_to_micros(2.5), Some(2_500_000));
        assert_eq!(usd_per_mtok_to_micros(0.0), Some(0));
        assert_eq!(usd_per_mtok_to_micros(1e308), None);
        assert_eq!(usd_per_mtok_to_micros(-1.0), None);
        assert_eq!(usd_per_mtok_to_micros(f64::NAN), None);
        assert_eq!(usd_per_mtok_to_micros(f64::INFINITY), None);
        let top = usd_per_mtok_to_micros(MAX_USD_PER_MTOK).unwrap();
        let r = Rate {
            model: "x/y".into(),
            input_per_mtok_micros: top,
            output_per_mtok_micros: top,
            cached_per_mtok_micros: None,
            ..Rate::default()
        };
        // Two million tokens at the top rate: $2,000,000, exactly.
        assert_eq!(
            r.cost_micros(1_000_000, 1_000_000, 0),
            Some(2_000_000_000_000)
        );
        // Absurd usage from a hostile upstream: no wrap into a small number.
        assert_eq!(r.cost_micros(u64::MAX, u64::MAX, 0), None);
    }
}
