//! What limits are set: per app (stored, else the config's `[limits]` defaults) and per
//! app key (stored), each with optional per-model limits.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One set of limits; an absent value is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Calls in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
}

impl Rates {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.max_concurrent.is_none()
    }

    /// `self` with `under`'s values where `self` has none.
    fn over(&self, under: &Rates) -> Rates {
        Rates {
            rpm: self.rpm.or(under.rpm),
            tpm: self.tpm.or(under.tpm),
            max_concurrent: self.max_concurrent.or(under.max_concurrent),
        }
    }
}

/// The limits of an app or a key: its own and per model (`prefix/model`, or the name the
/// client sent, e.g. an alias).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, from = "LimitsWire", into = "LimitsWire")]
pub struct Limits {
    pub all: Rates,
    pub models: BTreeMap<String, Rates>,
}

/// `Limits` as stored, configured and shown: the app-wide values at the top level.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_concurrent: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    models: BTreeMap<String, Rates>,
}

impl From<LimitsWire> for Limits {
    fn from(w: LimitsWire) -> Self {
        Limits {
            all: Rates {
                rpm: w.rpm,
                tpm: w.tpm,
                max_concurrent: w.max_concurrent,
            },
            models: w.models,
        }
    }
}

impl From<Limits> for LimitsWire {
    fn from(l: Limits) -> Self {
        LimitsWire {
            rpm: l.all.rpm,
            tpm: l.all.tpm,
            max_concurrent: l.all.max_concurrent,
            models: l.models,
        }
    }
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.models.values().all(Rates::is_empty)
    }

    /// `self` with `under`'s values where `self` has none, per field and per model.
    pub fn over(&self, under: &Limits) -> Limits {
        let mut models = under.models.clone();
        for (m, r) in &self.models {
            let merged = r.over(models.get(m).unwrap_or(&Rates::default()));
            models.insert(m.clone(), merged);
        }
        Limits {
            all: self.all.over(&under.all),
            models,
        }
    }

    /// Applies a `PUT .../limits` body: a field given sets it, `null` clears it, an absent
    /// one stays; under `models`, a model set to `null` (or `models: null`) is cleared.
    /// Errors name the field.
    pub fn patch(&self, body: &serde_json::Value) -> Result<Limits, (String, String)> {
        let obj = body
            .as_object()
            .ok_or_else(|| ("body".to_string(), "must be a JSON object".to_string()))?;
        let mut out = self.clone();
        for (k, v) in obj {
            match k.as_str() {
                "rpm" | "tpm" | "max_concurrent" => set_rate(&mut out.all, k, v, k)?,
                "models" => match v {
                    serde_json::Value::Null => out.models.clear(),
                    serde_json::Value::Object(models) => {
                        for (model, rates) in models {
                            let field = format!("models.{model}");
                            if model.is_empty() || model.len() > 256 {
                                return Err((field, "model names are 1 to 256 bytes".into()));
                            }
                            match rates {
                                serde_json::Value::Null => {
                                    out.models.remove(model);
                                }
                                serde_json::Value::Object(fields) => {
                                    let entry = out.models.entry(model.clone()).or_default();
                                    for (rk, rv) in fields {
                                        let f = format!("{field}.{rk}");
                                        match rk.as_str() {
                                            "rpm" | "tpm" | "max_concurrent" => {
                                                set_rate(entry, rk, rv, &f)?
                                            }
                                            _ => {
                                                return Err((
                                                    f,
                                                    "unknown field; expected rpm, tpm or max_concurrent".into(),
                                                ))
                                            }
                                        }
                                    }
                                    if entry.is_empty() {
                                        out.models.remove(model);
                                    }
                                }
                                _ => {
                                    return Err((
                                        field,
                                        "must be an object of limits, or null to clear".into(),
                                    ))
                                }
                            }
                        }
                    }
                    _ => {
                        return Err((
                            "models".into(),
                            "must be an object keyed by model, or null to clear".into(),
                        ))
                    }
                },
                other => {
                    return Err((
                        other.to_string(),
                        "unknown field; expected rpm, tpm, max_concurrent or models".into(),
                    ))
                }
            }
        }
        Ok(out)
    }
}

fn set_rate(
    rates: &mut Rates,
    key: &str,
    v: &serde_json::Value,
    field: &str,
) -> Result<(), (String, String)> {
    let value = match v {
        serde_json::Value::Null => None,
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(x) if (1..=1_000_000_000_000).contains(&x) => Some(x),
            _ => {
                return Err((
                    field.to_string(),
                    "must be a whole number from 1 to 10^12, or null to clear".into(),
                ))
            }
        },
        _ => {
            return Err((
                field.to_string(),
                "must be a whole number, or null to clear".into(),
            ))
        }
    };
    match key {
        "rpm" => rates.rpm = value,
        "tpm" => rates.tpm = value,
        _ => rates.max_concurrent = value,
    }
    Ok(())
}

/// Every limit in force, swapped whole when one changes.
#[derive(Debug, Default)]
pub struct LimitTable {
    /// The config's `[limits]`: every app's, where its own say nothing.
    pub defaults: Limits,
    pub apps: HashMap<i64, Limits>,
    pub keys: HashMap<i64, Limits>,
    /// No limit anywhere (computed once: asked on every call).
    empty: bool,
}

impl LimitTable {
    pub fn new(defaults: Limits, apps: HashMap<i64, Limits>, keys: HashMap<i64, Limits>) -> Self {
        let empty = defaults.is_empty()
            && apps.values().all(Limits::is_empty)
            && keys.values().all(Limits::is_empty);
        LimitTable {
            defaults,
            apps,
            keys,
            empty,
        }
    }

    /// The app's limits in force (its own over the defaults).
    pub fn app(&self, app_id: i64) -> Limits {
        match self.apps.get(&app_id) {
            Some(own) => own.over(&self.defaults),
            None => self.defaults.clone(),
        }
    }

    /// Nothing limits any call: admission has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.empty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_sets_clears_and_keeps_fields_and_names_bad_ones() {
        let l = Limits::default()
            .patch(&json!({"rpm": 30, "tpm": 1000, "models": {"a/b": {"rpm": 5}}}))
            .unwrap();
        assert_eq!(l.all.rpm, Some(30));
        assert_eq!(l.models["a/b"].rpm, Some(5));
        let l2 = l.patch(&json!({"rpm": null, "max_concurrent": 2})).unwrap();
        assert_eq!(l2.all.rpm, None);
        assert_eq!(l2.all.tpm, Some(1000), "absent fields stay");
        assert_eq!(l2.all.max_concurrent, Some(2));
        let l3 = l2.patch(&json!({"models": {"a/b": null}})).unwrap();
        assert!(l3.models.is_empty());
        for (bad, field) in [
            (json!({"rpm": 0}), "rpm"),
            (json!({"rpm": "10"}), "rpm"),
            (json!({"rpm": 1.5}), "rpm"),
            (json!({"burst": 1}), "burst"),
            (json!({"models": {"a/b": {"rpn": 1}}}), "models.a/b.rpn"),
            (json!({"models": [1]}), "models"),
            (json!([1]), "body"),
        ] {
            assert_eq!(l.patch(&bad).unwrap_err().0, field, "{bad}");
        }
    }

    #[test]
    fn an_apps_own_limits_override_the_defaults_field_by_field() {
        let mut t = LimitTable::default();
        t.defaults.all.rpm = Some(60);
        t.defaults.all.tpm = Some(10_000);
        t.apps.insert(
            1,
            Limits {
                all: Rates {
                    rpm: Some(5),
                    ..Rates::default()
                },
                ..Limits::default()
            },
        );
        let a = t.app(1);
        assert_eq!((a.all.rpm, a.all.tpm), (Some(5), Some(10_000)));
        assert_eq!(t.app(2).all.rpm, Some(60));
        // Round trip as stored and shown.
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v, json!({"rpm": 5, "tpm": 10_000}));
        let back: Limits = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
