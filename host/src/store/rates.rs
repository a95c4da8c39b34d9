//! Operator-set prices per model, overriding the plugins' list prices, and what a call
//! costs at a rate.
//!
//! Every change is written with a [`super::rate_history`] row in the same transaction.

use super::rate_history::{self, Action};
use super::{now_ms, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// A price list for one model. For a model's rate (`model_rates`) the amounts are
/// micro-USD; for an app's explicit price ([`super::app_prices`]) micro-credits.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Rate {
    /// `prefix/model`, as clients name it.
    pub model: String,
    pub input_per_mtok_micros: i64,
    pub output_per_mtok_micros: i64,
    /// Price of cached input tokens; `None`: same as input.
    pub cached_per_mtok_micros: Option<i64>,
    /// Price of tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`); `None`: same as input.
    pub cache_write_per_mtok_micros: Option<i64>,
    /// Image generation: per image returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_image_micros: Option<i64>,
    /// Audio transcription and translation: per second of audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second_micros: Option<i64>,
    /// Speech: per million characters of input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_mchar_micros: Option<i64>,
    pub updated_at: i64,
}

/// The token counts a call is priced by.
///
/// The convention (the plugins' `Usage`): `input` counts **every** input token, the cached
/// and the cache-written ones included; `cached` and `cache_write` say how many of them
/// were read from or written to the provider's prompt cache. So each token is priced once:
/// `input − cached − cache_write` at the input rate, the others at theirs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub cache_write: u64,
}

impl Tokens {
    pub fn new(input: u64, output: u64, cached: u64) -> Tokens {
        Tokens {
            input,
            output,
            cached,
            cache_write: 0,
        }
    }
}

impl From<&plugin_api::Usage> for Tokens {
    fn from(u: &plugin_api::Usage) -> Tokens {
        Tokens {
            input: u.input_tokens,
            output: u.output_tokens,
            cached: u.cached_input_tokens,
            cache_write: u.cache_write_tokens,
        }
    }
}

/// What a call used besides tokens: audio (priced by the second or the character) and
/// generated images (priced by the image).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaUnits {
    /// Milliseconds of audio transcribed or translated.
    pub millis: u64,
    /// Characters of text spoken.
    pub characters: u64,
    /// Images a successful image call returned.
    pub images: u64,
}

impl MediaUnits {
    pub fn is_empty(&self) -> bool {
        self.millis == 0 && self.characters == 0 && self.images == 0
    }
}

/// The highest price accepted, in USD (or credits) per million tokens ($1 a token), per
/// image, per second or per million characters. Far above any real model, low enough that
/// no plausible call's cost can overflow.
pub const MAX_USD_PER_MTOK: f64 = 1_000_000.0;

/// [`MAX_USD_PER_MTOK`] in micros.
pub const MAX_PRICE_MICROS: i64 = 1_000_000_000_000;

/// USD per million tokens as integer micro-USD, or `None` when negative, not finite or
/// above [`MAX_USD_PER_MTOK`].
pub fn usd_per_mtok_to_micros(usd: f64) -> Option<i64> {
    (usd.is_finite() && (0.0..=MAX_USD_PER_MTOK).contains(&usd))
        .then(|| (usd * 1_000_000.0).round() as i64)
}

impl Rate {
    /// The price of `t` in raw units: tokens × micros per million tokens, i.e. 1e-12 USD
    /// (or credit). `None` when it does not fit (checked, never wrapped).
    pub fn tokens_raw(&self, t: &Tokens) -> Option<i128> {
        let input = i128::from(t.input);
        let cached = i128::from(t.cached.min(t.input));
        let written = i128::from(t.cache_write).min(input - cached);
        let fresh = input - cached - written;
        let cached_rate = self
            .cached_per_mtok_micros
            .unwrap_or(self.input_per_mtok_micros);
        let write_rate = self
            .cache_write_per_mtok_micros
            .unwrap_or(self.input_per_mtok_micros);
        let mut total = 0i128;
        for (n, rate) in [
            (fresh, self.input_per_mtok_micros),
            (cached, cached_rate),
            (written, write_rate),
            (i128::from(t.output), self.output_per_mtok_micros),
        ] {
            total = total.checked_add(n.checked_mul(i128::from(rate))?)?;
        }
        Some(total)
    }

    /// Audio and images in the raw units of [`Self::tokens_raw`], so both round the same
    /// way; `None` when it does not fit.
    pub fn media_raw(&self, m: MediaUnits) -> Option<i128> {
        // µ/s × ms / 1000 = µ = raw / 1e6.
        let seconds = i128::from(m.millis)
            .checked_mul(i128::from(self.per_second_micros.unwrap_or(0)))?
            .checked_mul(1000)?;
        // µ per 1e6 characters × characters / 1e6 = µ = raw / 1e6.
        let chars =
            i128::from(m.characters).checked_mul(i128::from(self.per_mchar_micros.unwrap_or(0)))?;
        // µ per image × images = µ = raw / 1e6.
        let images = i128::from(m.images)
            .checked_mul(i128::from(self.per_image_micros.unwrap_or(0)))?
            .checked_mul(1_000_000)?;
        seconds.checked_add(chars)?.checked_add(images)
    }

    /// Cost of the tokens of one call in micro-USD (rounded down). `None` when the token
    /// counts are so large the cost does not fit (checked, never wrapped).
    pub fn cost_micros(&self, t: &Tokens) -> Option<i64> {
        i64::try_from(self.tokens_raw(t)? / 1_000_000).ok()
    }

    /// Every price, in the order of [`PRICE_FIELDS`].
    pub fn prices(&self) -> [Option<i64>; 7] {
        [
            Some(self.input_per_mtok_micros),
            Some(self.output_per_mtok_micros),
            self.cached_per_mtok_micros,
            self.cache_write_per_mtok_micros,
            self.per_image_micros,
            self.per_second_micros,
            self.per_mchar_micros,
        ]
    }

    /// Refuses a model name without a prefix and prices out of range.
    pub fn check(&self) -> Result<(), StoreError> {
        if !self.model.contains('/') {
            return Err(StoreError::invalid("model", "must be 'prefix/model'"));
        }
        for (value, field) in self.prices().iter().zip(PRICE_FIELDS) {
            if value.is_some_and(|v| !(0..=MAX_PRICE_MICROS).contains(&v)) {
                return Err(StoreError::invalid(
                    field,
                    format!("must be between 0 and {MAX_PRICE_MICROS} micros"),
                ));
            }
        }
        Ok(())
    }
}

/// The price columns, in the order of [`Rate::prices`] (the same in every table).
pub const PRICE_FIELDS: [&str; 7] = [
    "input_per_mtok_micros",
    "output_per_mtok_micros",
    "cached_per_mtok_micros",
    "cache_write_per_mtok_micros",
    "per_image_micros",
    "per_second_micros",
    "per_mchar_micros",
];

const RATE_COLUMNS: &str =
    "model, input_per_mtok_micros, output_per_mtok_micros, cached_per_mtok_micros,
    cache_write_per_mtok_micros, per_image_micros, per_second_micros, per_mchar_micros, updated_at";

/// A row of [`RATE_COLUMNS`] (from `offset`), in any table that has them.
pub(super) fn rate_row(r: &Row<'_>, offset: usize) -> rusqlite::Result<Rate> {
    Ok(Rate {
        model: r.get(offset)?,
        input_per_mtok_micros: r.get(offset + 1)?,
        output_per_mtok_micros: r.get(offset + 2)?,
        cached_per_mtok_micros: r.get(offset + 3)?,
        cache_write_per_mtok_micros: r.get(offset + 4)?,
        per_image_micros: r.get(offset + 5)?,
        per_second_micros: r.get(offset + 6)?,
        per_mchar_micros: r.get(offset + 7)?,
        updated_at: r.get(offset + 8)?,
    })
}

fn get_rate(conn: &Connection, model: &str) -> Result<Option<Rate>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {RATE_COLUMNS} FROM model_rates WHERE model = ?1"),
            [model],
            |r| rate_row(r, 0),
        )
        .optional()?)
}

fn upsert_rate(conn: &Connection, rate: &Rate, now: i64) -> Result<(), StoreError> {
    rate.check()?;
    conn.execute(
        &format!(
            "INSERT INTO model_rates ({RATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (model) DO UPDATE SET input_per_mtok_micros = excluded.input_per_mtok_micros,
                output_per_mtok_micros = excluded.output_per_mtok_micros,
                cached_per_mtok_micros = excluded.cached_per_mtok_micros,
                cache_write_per_mtok_micros = excluded.cache_write_per_mtok_micros,
                per_image_micros = excluded.per_image_micros,
                per_second_micros = excluded.per_second_micros,
                per_mchar_micros = excluded.per_mchar_micros,
                updated_at = excluded.updated_at"
        ),
        params![
            rate.model,
            rate.input_per_mtok_micros,
            rate.output_per_mtok_micros,
            rate.cached_per_mtok_micros,
            rate.cache_write_per_mtok_micros,
            rate.per_image_micros,
            rate.per_second_micros,
            rate.per_mchar_micros,
            now
        ],
    )?;
    Ok(())
}

impl Store {
    pub fn list_rates(&self) -> Result<Vec<Rate>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {RATE_COLUMNS} FROM model_rates ORDER BY model"
        ))?;
        let rows = stmt
            .query_map([], |r| rate_row(r, 0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Sets (or replaces) a model's rate, with its history row.
    pub fn put_rate(&self, rate: &Rate) -> Result<Rate, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = now_ms();
        upsert_rate(&tx, rate, now)?;
        rate_history::record(&tx, None, &rate.model, Action::Put, Some(rate), None, now)?;
        let row = get_rate(&tx, &rate.model)?
            .ok_or_else(|| StoreError::NotFound(format!("rate for {}", rate.model)))?;
        tx.commit()?;
        Ok(row)
    }

    pub fn delete_rate(&self, model: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        if tx.execute("DELETE FROM model_rates WHERE model = ?1", [model])? == 0 {
            return Err(StoreError::NotFound(format!("rate for {model}")));
        }
        rate_history::record(&tx, None, model, Action::Delete, None, None, now_ms())?;
        tx.commit()?;
        Ok(())
    }

    /// Sets every rate of an import, each with an `import` history row noting `source`,
    /// all or nothing (one transaction).
    pub fn import_rates(&self, rates: &[Rate], source: &str) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = now_ms();
        for rate in rates {
            upsert_rate(&tx, rate, now)?;
            rate_history::record(
                &tx,
                None,
                &rate.model,
                Action::Import,
                Some(rate),
                Some(source),
                now,
            )?;
        }
        tx.commit()?;
        Ok(rates.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    #[test]
    fn audio_and_images_are_priced_by_their_units() {
        let r = Rate {
            per_second_micros: Some(100),
            per_mchar_micros: Some(15_000_000),
            per_image_micros: Some(40_000),
            ..Rate::default()
        };
        let raw = |millis, characters, images| {
            r.media_raw(MediaUnits {
                millis,
                characters,
                images,
            })
            .unwrap()
        };
        // 13 s at $0.0001/s = 1300 µUSD; 12 characters at $15 per million = 180 µUSD;
        // 3 images at $0.04 = 120,000 µUSD.
        assert_eq!(raw(13_000, 0, 0) / 1_000_000, 1300);
        assert_eq!(raw(0, 12, 0) / 1_000_000, 180);
        assert_eq!(raw(0, 0, 3) / 1_000_000, 120_000);
        assert_eq!(
            Rate::default().media_raw(MediaUnits {
                millis: 5,
                characters: 5,
                images: 5
            }),
            Some(0)
        );
        for huge in [
            Rate {
                per_second_micros: Some(i64::MAX),
                ..Rate::default()
            },
            Rate {
                per_image_micros: Some(i64::MAX),
                ..Rate::default()
            },
        ] {
            let all = MediaUnits {
                millis: u64::MAX,
                characters: 0,
                images: u64::MAX,
            };
            assert_eq!(huge.media_raw(all), None, "never wraps");
        }
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
        // 1000 input of which 400 cached, 100 output: 600 × $2.5 + 400 × $1.25 + 100 × $10
        // per million = 1500 + 500 + 1000 µUSD.
        assert_eq!(r.cost_micros(&Tokens::new(1000, 100, 400)), Some(3000));
    }

    /// The convention: cache-write tokens are part of `input` (as the plugins report them:
    /// Anthropic's `input_tokens + cache_read + cache_creation`), priced at the cache-write
    /// rate instead of the input rate, never twice.
    #[test]
    fn cache_write_tokens_are_part_of_input_and_priced_once_at_their_rate() {
        let r = Rate {
            model: "anthropic/claude".into(),
            input_per_mtok_micros: 3_000_000,
            output_per_mtok_micros: 15_000_000,
            cached_per_mtok_micros: Some(300_000),
            cache_write_per_mtok_micros: Some(3_750_000),
            ..Rate::default()
        };
        // Anthropic: input_tokens 100, cache_read 1000, cache_creation 2000, output 10 →
        // Usage { input: 3100, cached: 1000, cache_write: 2000 }.
        let usage = plugin_api::Usage {
            input_tokens: 3100,
            output_tokens: 10,
            cached_input_tokens: 1000,
            cache_write_tokens: 2000,
            reasoning_tokens: 0,
        };
        let t = Tokens::from(&usage);
        // 100 × 3 + 1000 × 0.3 + 2000 × 3.75 + 10 × 15 = 300 + 300 + 7500 + 150 = 8250 µ$·Mtok⁻¹.
        assert_eq!(r.tokens_raw(&t), Some(8_250_000_000));
        assert_eq!(r.cost_micros(&t), Some(8250));
        // Without a cache-write price they cost what input costs.
        let plain = Rate {
            cache_write_per_mtok_micros: None,
            ..r.clone()
        };
        assert_eq!(plain.cost_micros(&t), Some(300 + 300 + 6000 + 150));
        // Counts that claim more cached and written tokens than input never go negative.
        let odd = Tokens {
            input: 10,
            output: 0,
            cached: 8,
            cache_write: 8,
        };
        // 8 cached at 0.3, the 2 left written at 3.75: 2.4 + 7.5 = 9.9 µ$ → 9 (down).
        assert_eq!(r.tokens_raw(&odd), Some(8 * 300_000 + 2 * 3_750_000));
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
        assert_eq!(top, MAX_PRICE_MICROS);
        let r = Rate {
            model: "x/y".into(),
            input_per_mtok_micros: top,
            output_per_mtok_micros: top,
            cache_write_per_mtok_micros: Some(top),
            ..Rate::default()
        };
        // Two million tokens at the top rate: $2,000,000, exactly.
        assert_eq!(
            r.cost_micros(&Tokens::new(1_000_000, 1_000_000, 0)),
            Some(2_000_000_000_000)
        );
        // Absurd usage from a hostile upstream: no wrap into a small number.
        assert_eq!(r.cost_micros(&Tokens::new(u64::MAX, u64::MAX, 0)), None);
        let writes = Tokens {
            input: u64::MAX,
            output: u64::MAX,
            cached: 0,
            cache_write: u64::MAX,
        };
        assert_eq!(r.cost_micros(&writes), None);
    }

    #[test]
    fn a_rate_round_trips_and_every_change_is_in_the_history() {
        let (_d, s) = test_store();
        let rate = Rate {
            model: "anthropic/claude-x".into(),
            input_per_mtok_micros: 3_000_000,
            output_per_mtok_micros: 15_000_000,
            cached_per_mtok_micros: Some(300_000),
            cache_write_per_mtok_micros: Some(3_750_000),
            per_image_micros: Some(40_000),
            ..Rate::default()
        };
        let saved = s.put_rate(&rate).unwrap();
        assert_eq!(saved.cache_write_per_mtok_micros, Some(3_750_000));
        assert_eq!(saved.per_image_micros, Some(40_000));
        assert_eq!(s.list_rates().unwrap(), vec![saved]);
        let bad = Rate {
            per_image_micros: Some(-1),
            ..rate.clone()
        };
        assert!(matches!(
            s.put_rate(&bad),
            Err(StoreError::Invalid { field, .. }) if field == "per_image_micros"
        ));
        s.delete_rate("anthropic/claude-x").unwrap();
        assert!(matches!(
            s.delete_rate("anthropic/claude-x"),
            Err(StoreError::NotFound(_))
        ));
        s.import_rates(std::slice::from_ref(&rate), "file.json")
            .unwrap();
        let (h, next) = s
            .rate_history(&rate_history::HistoryFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(next, None);
        let actions: Vec<_> = h.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["import", "delete", "put"],
            "newest first; the refused put is not there"
        );
        assert_eq!(h[0].note.as_deref(), Some("file.json"));
        assert_eq!(h[1].prices, None);
        assert_eq!(
            h[2].prices.as_ref().map(|p| p.cache_write_per_mtok_micros),
            Some(Some(3_750_000))
        );
    }
}
