//! Reading LiteLLM's price list (`model_prices_and_context_window.json`) into our rates:
//! which entries map to which `prefix/model`, their prices as exact integer micros, and
//! what an import would change. Pure (no I/O): `cli::rates_cmd` reads the file, asks the
//! store and writes.
//!
//! Prices are converted without float drift: each JSON number is read as an `f64`, whose
//! shortest decimal form (the digits the file had, for any price with up to 15
//! significant digits) is scaled by a power of ten in integers and rounded half up. So
//! `3e-06` USD a token is exactly 3,000,000 micro-USD per million tokens.

use crate::store::rates::{Rate, MAX_PRICE_MICROS};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// LiteLLM's `litellm_provider` → our prefix. Earlier rows win when two entries map to
/// one model (Google AI Studio's `gemini/...` over Vertex's copy of the same model).
const PROVIDERS: &[(&str, &str)] = &[
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("gemini", "gemini"),
    ("vertex_ai-language-models", "gemini"),
    ("bedrock_converse", "bedrock"),
    ("bedrock", "bedrock"),
    ("volcengine", "doubao"),
    ("poe", "poe"),
    ("deepseek", "deepseek"),
    ("xai", "xai"),
    ("openrouter", "openrouter"),
    ("groq", "groq"),
    ("mistral", "mistral"),
    ("together_ai", "together"),
];

/// The price fields read, in the order of [`Rate::prices`]: (LiteLLM field, power of ten
/// from its unit to ours). Per token → micros per million tokens is 1e12; per image or
/// per second → micros is 1e6; per character → micros per million characters is 1e12.
const FIELDS: [(&str, u32); 7] = [
    ("input_cost_per_token", 12),
    ("output_cost_per_token", 12),
    ("cache_read_input_token_cost", 12),
    ("cache_creation_input_token_cost", 12),
    ("output_cost_per_image", 6),
    ("input_cost_per_second", 6),
    ("input_cost_per_character", 12),
];

/// Our names for the fields, in the same order (as the change table prints them).
pub const SHORT_NAMES: [&str; 7] = [
    "input",
    "output",
    "cached",
    "cache_write",
    "per_image",
    "per_second",
    "per_mchar",
];

/// The `sample_spec` key documents the format; it is no model.
const SAMPLE_KEY: &str = "sample_spec";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the file is not LiteLLM's price list (a JSON object of model entries): {0}")]
    Format(String),
    #[error("entry '{entry}': '{field}' {message}")]
    Field {
        entry: String,
        field: String,
        message: String,
    },
    #[error("--margin: {0}")]
    Margin(String),
}

/// One entry mapped to our model name; `None` prices are those the entry does not state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// `prefix/model`.
    pub model: String,
    /// The entry's key in the file.
    pub key: String,
    pub prices: [Option<i64>; 7],
}

/// Everything the file holds, mapped, with what was left out and why.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Imported>,
    /// A `litellm_provider` we do not serve (or none).
    pub unmapped: usize,
    /// No price we read.
    pub unpriced: usize,
    /// Another entry mapped to the same model first.
    pub duplicates: usize,
}

/// `--margin PCT` as hundredths of a percent: a decimal with at most two decimals,
/// between 0 and 1000.
pub fn parse_margin(raw: &str) -> Result<i64, ImportError> {
    let bad = || {
        ImportError::Margin(format!(
            "'{raw}' is not a percentage between 0 and 1000 with at most two decimals"
        ))
    };
    let (whole, frac) = raw.trim().split_once('.').unwrap_or((raw.trim(), ""));
    if whole.is_empty()
        || frac.len() > 2
        || !(whole.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bp = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)?;
    if bp > 100_000 {
        return Err(bad());
    }
    Ok(bp)
}

/// `v × 10^scale` as an integer, rounded half up, from `v`'s shortest decimal form;
/// `None` for a negative or non-finite `v` or one that does not fit.
pub fn scaled(v: f64, scale: u32) -> Option<i64> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    // `{:e}` is the shortest representation that reads back as `v`: "3e-6", "1.25e-7".
    let text = format!("{v:e}");
    let (mantissa, exp) = text.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let power = exp + scale as i32 - frac.len() as i32;
    let value = if power >= 0 {
        digits.checked_mul(10i128.checked_pow(power as u32)?)?
    } else if power < -38 {
        0
    } else {
        let d = 10i128.pow(power.unsigned_abs());
        let (q, r) = (digits / d, digits % d);
        if r * 2 >= d {
            q + 1
        } else {
            q
        }
    };
    i64::try_from(value).ok()
}

/// Reads the file's text; `margin_bp` raises every price by that many hundredths of a
/// percent (rounded half up). An entry that is not an object, or, in an entry of a
/// provider we serve, a price that is not a non-negative number within our bounds, is an
/// error naming the entry and the field.
pub fn parse(text: &str, margin_bp: i64) -> Result<Parsed, ImportError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ImportError::Format(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(ImportError::Format("the top level is not an object".into()));
    };
    let mut out = Parsed::default();
    // model -> (rank of its provider, index into `entries`).
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for (key, entry) in &root {
        if key == SAMPLE_KEY {
            continue;
        }
        let Value::Object(entry) = entry else {
            return Err(field_error(key, "(entry)", "is not an object"));
        };
        let provider = match entry.get("litellm_provider") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err(field_error(key, "litellm_provider", "is not a string")),
        };
        let Some((rank, prefix)) = provider.and_then(|p| {
            PROVIDERS
                .iter()
                .position(|(name, _)| *name == p)
                .map(|i| (i, PROVIDERS[i].1))
        }) else {
            out.unmapped += 1;
            continue;
        };
        // Only entries we would import are checked: a quirk in another provider's entry
        // does not stop an import.
        let prices = prices(key, entry, margin_bp)?;
        if prices.iter().all(Option::is_none) {
            out.unpriced += 1;
            continue;
        }
        let provider = provider.unwrap_or_default();
        let Some(model) = model_name(key, provider, prefix) else {
            out.unmapped += 1;
            continue;
        };
        let imported = Imported {
            model: model.clone(),
            key: key.clone(),
            prices,
        };
        match seen.get(&model).copied() {
            Some((held, i)) => {
                out.duplicates += 1;
                if rank < held {
                    out.entries[i] = imported;
                    seen.insert(model, (rank, i));
                }
            }
            None => {
                seen.insert(model, (rank, out.entries.len()));
                out.entries.push(imported);
            }
        }
    }
    Ok(out)
}

fn field_error(entry: &str, field: &str, message: &str) -> ImportError {
    ImportError::Field {
        entry: entry.to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// The entry's prices in our units, with the margin.
fn prices(
    key: &str,
    entry: &Map<String, Value>,
    margin_bp: i64,
) -> Result<[Option<i64>; 7], ImportError> {
    let mut out = [None; 7];
    for (slot, (field, scale)) in out.iter_mut().zip(FIELDS) {
        let v = match entry.get(field) {
            None | Some(Value::Null) => {
                // Transcription is priced by the second of audio, which LiteLLM puts on
                // the input or, for some models, only on the output.
                if field == "input_cost_per_second" {
                    match entry.get("output_cost_per_second") {
                        Some(Value::Number(n)) => n.as_f64(),
                        _ => None,
                    }
                } else {
                    None
                }
            }
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => return Err(field_error(key, field, "is not a number")),
        };
        let Some(v) = v else { continue };
        let micros = scaled(v, scale)
            .and_then(|m| with_margin(m, margin_bp))
            .filter(|m| *m <= MAX_PRICE_MICROS)
            .ok_or_else(|| {
                field_error(
                    key,
                    field,
                    &format!("must be a non-negative number of USD (at most {} per million units after the margin)", MAX_PRICE_MICROS / 1_000_000),
                )
            })?;
        *slot = Some(micros);
    }
    Ok(out)
}

/// `micros × (1 + bp / 10,000)`, rounded half up.
fn with_margin(micros: i64, bp: i64) -> Option<i64> {
    let num = i128::from(micros).checked_mul(i128::from(bp.checked_add(10_000)?))?;
    i64::try_from((num + 5_000) / 10_000).ok()
}

/// `prefix/model` for a key: a leading `provider/` (LiteLLM's or ours) is dropped.
fn model_name(key: &str, provider: &str, prefix: &str) -> Option<String> {
    let rest = match key.split_once('/') {
        Some((first, rest)) if first == provider || first == prefix || first == "vertex_ai" => rest,
        _ => key,
    };
    let model = format!("{prefix}/{rest}");
    (!rest.is_empty() && model.len() <= crate::bounds::MAX_MODEL_NAME).then_some(model)
}

/// A rate after the import: the entry's prices over the current ones (a price the entry
/// does not state keeps its current value; input and output default to 0).
pub fn merged(current: Option<&Rate>, imported: &Imported) -> Rate {
    let base = current.cloned().unwrap_or_else(|| Rate {
        model: imported.model.clone(),
        ..Rate::default()
    });
    let old = base.prices();
    let p: Vec<Option<i64>> = imported
        .prices
        .iter()
        .zip(old)
        .map(|(new, old)| new.or(old))
        .collect();
    Rate {
        model: imported.model.clone(),
        input_per_mtok_micros: p[0].unwrap_or(0),
        output_per_mtok_micros: p[1].unwrap_or(0),
        cached_per_mtok_micros: p[2],
        cache_write_per_mtok_micros: p[3],
        per_image_micros: p[4],
        per_second_micros: p[5],
        per_mchar_micros: p[6],
        updated_at: base.updated_at,
    }
}

/// What an import would do.
#[derive(Debug, Default)]
pub struct Plan {
    /// (rate before, if any; rate after), for every new or changed rate, by model.
    pub changes: Vec<(Option<Rate>, Rate)>,
    pub unchanged: usize,
    /// Mappable entries left out because no loaded catalog lists the model and it has no
    /// rate yet.
    pub not_known: usize,
}

impl Plan {
    pub fn new_count(&self) -> usize {
        self.changes.iter().filter(|(old, _)| old.is_none()).count()
    }

    pub fn changed_count(&self) -> usize {
        self.changes.len() - self.new_count()
    }

    /// The rates to write.
    pub fn rates(&self) -> Vec<Rate> {
        self.changes.iter().map(|(_, new)| new.clone()).collect()
    }
}

/// Compares the entries with the current rates. `known`: the models the loaded catalogs
/// list; `None` imports every mappable entry (`--all`). A model with a rate is always
/// considered.
pub fn plan(parsed: &Parsed, current: &[Rate], known: Option<&HashSet<String>>) -> Plan {
    let current: HashMap<&str, &Rate> = current.iter().map(|r| (r.model.as_str(), r)).collect();
    let mut changes = BTreeMap::new();
    let mut plan = Plan::default();
    for e in &parsed.entries {
        let old = current.get(e.model.as_str()).copied();
        if old.is_none() && known.is_some_and(|k| !k.contains(&e.model)) {
            plan.not_known += 1;
            continue;
        }
        let new = merged(old, e);
        if old.is_some_and(|o| o.prices() == new.prices()) {
            plan.unchanged += 1;
        } else {
            changes.insert(e.model.clone(), (old.cloned(), new));
        }
    }
    plan.changes = changes.into_values().collect();
    plan
}

/// Micros as a decimal of the unit ("3", "0.15", "-" for none).
pub fn show_micros(v: Option<i64>) -> String {
    match v {
        None => "-".into(),
        Some(m) => {
            let (int, frac) = (m / 1_000_000, m % 1_000_000);
            if frac == 0 {
                int.to_string()
            } else {
                let f = format!("{frac:06}");
                format!("{int}.{}", f.trim_end_matches('0'))
            }
        }
    }
}

/// One line per new or changed rate: `model  field old → new, ...`.
pub fn describe(old: Option<&Rate>, new: &Rate) -> String {
    let before = old.map(Rate::prices);
    let after = new.prices();
    let mut parts = Vec::new();
    for (i, name) in SHORT_NAMES.iter().enumerate() {
        let was = before.and_then(|b| b[i]);
        if old.is_none() {
            if after[i].is_some() {
                parts.push(format!("{name} {}", show_micros(after[i])));
            }
        } else if was != after[i] {
            parts.push(format!(
                "{name} {} → {}",
                show_micros(was),
                show_micros(after[i])
            ));
        }
    }
    let tag = if old.is_none() { "new" } else { "changed" };
    format!("{tag:8} {}  {}", new.model, parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_convert_exactly() {
        // USD per token → micro-USD per million tokens.
        assert_eq!(scaled(3e-06, 12), Some(3_000_000));
        assert_eq!(scaled(0.000015, 12), Some(15_000_000));
        assert_eq!(scaled(1.5e-07, 12), Some(150_000));
        assert_eq!(scaled(3.75e-06, 12), Some(3_750_000));
        assert_eq!(scaled(2.5e-06, 12), Some(2_500_000));
        assert_eq!(scaled(1.25e-06, 12), Some(1_250_000));
        assert_eq!(scaled(0.0, 12), Some(0));
        // Finer than a micro per Mtok: rounded half up.
        assert_eq!(scaled(1.5e-18, 12), Some(0));
        assert_eq!(scaled(5e-19, 12), Some(0));
        assert_eq!(scaled(5e-13, 12), Some(1));
        // Per image (USD) → micro-USD.
        assert_eq!(scaled(0.04, 6), Some(40_000));
        assert_eq!(scaled(0.0001, 6), Some(100));
        assert_eq!(scaled(-1e-6, 12), None);
        assert_eq!(scaled(f64::NAN, 12), None);
        assert_eq!(scaled(1e300, 12), None);
        // A range of prices as typed: never one micro off.
        for cents in 0..5000u32 {
            let usd_per_mtok = f64::from(cents) / 100.0;
            let per_token: f64 = format!("{}e-6", usd_per_mtok).parse().unwrap();
            assert_eq!(
                scaled(per_token, 12),
                Some(i64::from(cents) * 10_000),
                "{per_token}"
            );
        }
    }

    #[test]
    fn margins_parse_and_apply() {
        assert_eq!(parse_margin("20"), Ok(2000));
        assert_eq!(parse_margin("12.5"), Ok(1250));
        assert_eq!(parse_margin("0.05"), Ok(5));
        for bad in ["-5", "abc", "1.234", "", "2000", ".5"] {
            assert!(parse_margin(bad).is_err(), "{bad}");
        }
        assert_eq!(with_margin(3_000_000, 2000), Some(3_600_000));
        assert_eq!(with_margin(1, 5000), Some(2), "half up");
        assert_eq!(with_margin(i64::MAX, 100_000), None);
    }

    const FILE: &str = r#"{
        "sample_spec": {"input_cost_per_token": "documentation", "litellm_provider": "one of..."},
        "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                   "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai", "mode": "chat",
                   "max_input_tokens": 128000},
        "claude-3-5-sonnet-20241022": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                   "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
                   "litellm_provider": "anthropic"},
        "gemini/gemini-1.5-pro": {"input_cost_per_token": 1.25e-06, "output_cost_per_token": 5e-06, "litellm_provider": "gemini"},
        "gemini-1.5-pro": {"input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06, "litellm_provider": "vertex_ai-language-models"},
        "anthropic.claude-3-haiku-20240307-v1:0": {"input_cost_per_token": 2.5e-07, "output_cost_per_token": 1.25e-06, "litellm_provider": "bedrock"},
        "volcengine/doubao-pro-32k": {"input_cost_per_token": 1e-07, "output_cost_per_token": 3e-07, "litellm_provider": "volcengine"},
        "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
        "whisper-1": {"output_cost_per_second": 0.0001, "litellm_provider": "openai"},
        "tts-1": {"input_cost_per_character": 1.5e-05, "litellm_provider": "openai"},
        "command-r": {"input_cost_per_token": 5e-07, "output_cost_per_token": 1.5e-06, "litellm_provider": "cohere_chat"},
        "text-moderation-latest": {"litellm_provider": "openai", "mode": "moderation"}
    }"#;

    fn by_model(p: &Parsed) -> HashMap<&str, &Imported> {
        p.entries.iter().map(|e| (e.model.as_str(), e)).collect()
    }

    #[test]
    fn entries_map_to_our_names_and_units() {
        let p = parse(FILE, 0).unwrap();
        let m = by_model(&p);
        assert_eq!(
            m["openai/gpt-4o"].prices,
            [
                Some(2_500_000),
                Some(10_000_000),
                Some(1_250_000),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(
            m["anthropic/claude-3-5-sonnet-20241022"].prices[..4],
            [
                Some(3_000_000),
                Some(15_000_000),
                Some(300_000),
                Some(3_750_000)
            ]
        );
        // AI Studio's entry wins over Vertex's copy of the same model.
        assert_eq!(m["gemini/gemini-1.5-pro"].key, "gemini/gemini-1.5-pro");
        assert_eq!(p.duplicates, 1);
        assert!(m.contains_key("bedrock/anthropic.claude-3-haiku-20240307-v1:0"));
        assert!(m.contains_key("doubao/doubao-pro-32k"));
        assert_eq!(m["openai/dall-e-3"].prices[4], Some(40_000));
        assert_eq!(m["openai/whisper-1"].prices[5], Some(100));
        assert_eq!(m["openai/tts-1"].prices[6], Some(15_000_000));
        // Cohere is not served; moderation has no price; sample_spec is skipped.
        assert_eq!((p.unmapped, p.unpriced), (1, 1));
        assert_eq!(p.entries.len(), 8);
    }

    #[test]
    fn a_malformed_entry_is_named() {
        let e = parse(
            r#"{"gpt-x": {"input_cost_per_token": "cheap", "litellm_provider": "openai"}}"#,
            0,
        )
        .unwrap_err();
        assert_eq!(
            e,
            field_error("gpt-x", "input_cost_per_token", "is not a number")
        );
        let e = parse(
            r#"{"gpt-x": {"output_cost_per_token": -1, "litellm_provider": "openai"}}"#,
            0,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("'gpt-x': 'output_cost_per_token'"),
            "{e}"
        );
        let e = parse(r#"{"gpt-x": 3}"#, 0).unwrap_err();
        assert!(e.to_string().contains("'gpt-x'"), "{e}");
        assert!(matches!(parse("[1]", 0), Err(ImportError::Format(_))));
        assert!(matches!(parse("{", 0), Err(ImportError::Format(_))));
        // Too large after the margin: refused, not wrapped.
        let e = parse(
            r#"{"gpt-x": {"input_cost_per_token": 1.0, "litellm_provider": "openai"}}"#,
            5000,
        )
        .unwrap_err();
        assert!(e.to_string().contains("input_cost_per_token"), "{e}");
    }

    #[test]
    fn the_margin_raises_every_price() {
        let p = parse(FILE, 2000).unwrap();
        let m = by_model(&p);
        assert_eq!(m["openai/gpt-4o"].prices[0], Some(3_000_000));
        assert_eq!(m["openai/dall-e-3"].prices[4], Some(48_000));
    }

    #[test]
    fn the_plan_keeps_known_models_and_unstated_prices() {
        let p = parse(FILE, 0).unwrap();
        let current = vec![
            Rate {
                model: "openai/gpt-4o".into(),
                input_per_mtok_micros: 2_500_000,
                output_per_mtok_micros: 10_000_000,
                cached_per_mtok_micros: Some(1_250_000),
                ..Rate::default()
            },
            Rate {
                model: "anthropic/claude-3-5-sonnet-20241022".into(),
                input_per_mtok_micros: 1,
                output_per_mtok_micros: 1,
                per_image_micros: Some(7),
                ..Rate::default()
            },
        ];
        let known: HashSet<String> = ["openai/dall-e-3".to_string()].into();
        let plan = plan(&p, &current, Some(&known));
        assert_eq!(plan.unchanged, 1, "gpt-4o is as it was");
        assert_eq!((plan.new_count(), plan.changed_count()), (1, 1));
        assert_eq!(plan.not_known, 5);
        let (old, new) = &plan.changes[0];
        assert_eq!(new.model, "anthropic/claude-3-5-sonnet-20241022");
        assert_eq!(
            new.per_image_micros,
            Some(7),
            "a price the entry does not state stays"
        );
        assert_eq!(new.cache_write_per_mtok_micros, Some(3_750_000));
        let line = describe(old.as_ref(), new);
        assert!(line.contains("input 0.000001 → 3"), "{line}");
        assert!(line.contains("cache_write - → 3.75"), "{line}");
        assert!(!line.contains("per_image"), "{line}");
        assert_eq!(
            describe(None, &plan.changes[1].1),
            "new      openai/dall-e-3  input 0, output 0, per_image 0.04"
        );
        // --all: every mappable entry.
        let all = super::plan(&p, &current, None);
        assert_eq!(all.not_known, 0);
        assert_eq!(all.changes.len(), 7);
    }
}
