//! `POST /api/admin/rates/import?margin=PCT&dry_run=true|false&all=true|false`, the body
//! LiteLLM's `model_prices_and_context_window.json`: what `aihub rates import` does, for a
//! running server (the console's Models & prices page). `billing::import` maps and diffs;
//! this reads the body, the models the routing table serves and the store's rates,
//! answers every change field by field with the counts, and, unless `dry_run`, writes
//! them and rebuilds the routing table so they are charged from the next call on.
//!
//! A bad entry (a price that is not a number, out of bounds) is a 400 naming the entry
//! and the field, and nothing is written.

use super::http::{query, validation};
use super::service::AdminService;
use crate::billing::import::{self, ImportError, SHORT_NAMES};
use crate::error::ApiError;
use crate::inbound::openai::read_body;
use crate::server::http::{self, Body};
use crate::state::AppState;
use crate::store::rates::Rate;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The largest file accepted. LiteLLM's list is 1-2 MB today; the other admin routes
/// take at most 1 MiB, this one room for the list to grow.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

/// `true`/`false` (or `1`/`0`); `default` when absent.
fn bool_param(q: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(validation(
            name,
            &format!("'{other}' is not one of: true, false"),
        )),
    }
}

fn import_error(e: ImportError) -> ApiError {
    let field = match &e {
        ImportError::Format(_) => "body".to_string(),
        ImportError::Field { field, .. } => field.clone(),
        ImportError::Margin(_) => "margin".to_string(),
    };
    let message = match e {
        ImportError::Margin(m) => m,
        other => format!("{other}; nothing was written"),
    };
    ApiError::Validation { field, message }
}

/// `prefix/model` for every model a routable provider serves (its plugin's catalog or
/// its configured list): the server's view of "a loaded catalog lists it".
fn served_models(state: &AppState) -> HashSet<String> {
    let table = state.routing.load();
    table
        .routes_sorted()
        .into_iter()
        .flat_map(|r| r.models.iter().map(|m| format!("{}/{}", r.prefix, m.id)))
        .collect()
}

/// One new or changed rate, field by field (micro-USD per million units; `null`: none).
fn change_json(old: Option<&Rate>, new: &Rate, entry: Option<&String>) -> Value {
    let before = old.map(Rate::prices);
    let after = new.prices();
    let fields: Vec<Value> = SHORT_NAMES
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let was = before.and_then(|b| b[i]);
            let changed = if old.is_none() {
                after[i].is_some()
            } else {
                was != after[i]
            };
            changed.then(|| json!({"field": name, "before_micros": was, "after_micros": after[i]}))
        })
        .collect();
    json!({
        "model": new.model,
        "entry": entry,
        "kind": if old.is_none() { "new" } else { "changed" },
        "fields": fields,
    })
}

pub async fn run(
    state: &Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let q = query(&req);
    let dry_run = bool_param(&q, "dry_run", false)?;
    let all = bool_param(&q, "all", false)?;
    let margin = q.get("margin").filter(|m| !m.is_empty()).cloned();
    let margin_bp = margin
        .as_deref()
        .map(import::parse_margin)
        .transpose()
        .map_err(import_error)?
        .unwrap_or(0);
    let bytes = read_body(req, MAX_IMPORT_BYTES).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| validation("body", "the file is not UTF-8 text"))?;
    let parsed = import::parse(text, margin_bp).map_err(import_error)?;
    let current = state.stores.rates.list_rates().await?;
    let known = (!all).then(|| served_models(state));
    let plan = import::plan(&parsed, &current, known.as_ref());
    let entries: HashMap<&str, &String> = parsed
        .entries
        .iter()
        .map(|e| (e.model.as_str(), &e.key))
        .collect();
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|(old, new)| change_json(old.as_ref(), new, entries.get(new.model.as_str()).copied()))
        .collect();
    let written = if dry_run || plan.changes.is_empty() {
        0
    } else {
        AdminService::new(state).import_rates(plan.rates()).await?
    };
    Ok(http::json(
        200,
        &json!({
            "dry_run": dry_run,
            "all": all,
            "margin_percent": margin,
            "counts": {
                "new": plan.new_count(),
                "changed": plan.changed_count(),
                "unchanged": plan.unchanged,
                "not_served": parsed.unmapped,
                "unpriced": parsed.unpriced,
                "duplicates": parsed.duplicates,
                "not_in_catalog": plan.not_known,
            },
            "written": written,
            "changes": changes,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_are_strict() {
        let q: HashMap<String, String> = [("dry_run".to_string(), "yes".to_string())].into();
        assert!(bool_param(&q, "dry_run", false).is_err());
        assert!(bool_param(&q, "all", true).unwrap());
        let q: HashMap<String, String> = [("all".to_string(), "0".to_string())].into();
        assert!(!bool_param(&q, "all", true).unwrap());
    }

    #[test]
    fn a_bad_entry_names_entry_and_field() {
        let e = import::parse(
            r#"{"gpt-x": {"litellm_provider": "openai", "input_cost_per_token": "3"}}"#,
            0,
        )
        .unwrap_err();
        match import_error(e) {
            ApiError::Validation { field, message } => {
                assert_eq!(field, "input_cost_per_token");
                assert!(message.contains("'gpt-x'"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn changes_list_only_the_fields_that_move() {
        let old = Rate {
            model: "openai/x".into(),
            input_per_mtok_micros: 1,
            output_per_mtok_micros: 2,
            ..Rate::default()
        };
        let new = Rate {
            output_per_mtok_micros: 3,
            ..old.clone()
        };
        let v = change_json(Some(&old), &new, None);
        assert_eq!(v["kind"], "changed");
        assert_eq!(
            v["fields"],
            json!([{"field": "output", "before_micros": 2, "after_micros": 3}])
        );
        let v = change_json(None, &new, Some(&"x".to_string()));
        assert_eq!(v["kind"], "new");
        assert_eq!(v["fields"].as_array().unwrap().len(), 2);
    }
}
