//! Model aliases managed through the admin API (config `[[routes]]` declares others).

use super::{now_ms, Store, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AliasRow {
    pub model: String,
    pub targets: Vec<String>,
    pub strategy: String,
    pub weights: Option<Vec<u32>>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
}

/// Checks an alias definition; shared with the config's `[[routes]]`.
pub fn validate(
    model: &str,
    targets: &[String],
    strategy: &str,
    weights: Option<&[u32]>,
) -> Result<(), StoreError> {
    if model.trim().is_empty() || model.len() > 200 {
        return Err(StoreError::invalid("model", "must be 1 to 200 characters"));
    }
    if targets.is_empty() {
        return Err(StoreError::invalid(
            "targets",
            "must list at least one 'prefix/model'",
        ));
    }
    if let Some(t) = targets
        .iter()
        .find(|t| !t.contains('/') || t.starts_with('/') || t.ends_with('/'))
    {
        return Err(StoreError::invalid(
            "targets",
            format!("'{t}' is not 'prefix/model'"),
        ));
    }
    match strategy {
        "ordered" => {}
        "weighted" => {
            let w = weights.ok_or_else(|| {
                StoreError::invalid("weights", "is required for strategy 'weighted'")
            })?;
            if w.len() != targets.len() || w.iter().all(|x| *x == 0) {
                return Err(StoreError::invalid(
                    "weights",
                    "needs one weight per target, not all zero",
                ));
            }
        }
        other => {
            return Err(StoreError::invalid(
                "strategy",
                format!("'{other}' is not one of: ordered, weighted"),
            ))
        }
    }
    Ok(())
}

fn alias_row(r: &Row<'_>) -> rusqlite::Result<AliasRow> {
    let targets: String = r.get(1)?;
    let weights: Option<String> = r.get(3)?;
    Ok(AliasRow {
        model: r.get(0)?,
        targets: serde_json::from_str(&targets).unwrap_or_default(),
        strategy: r.get(2)?,
        weights: weights.and_then(|w| serde_json::from_str(&w).ok()),
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

impl Store {
    pub fn list_aliases(&self) -> Result<Vec<AliasRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT model, targets, strategy, weights, created_at, updated_at FROM model_aliases ORDER BY model",
        )?;
        let rows = stmt
            .query_map([], alias_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Creates or replaces the alias `model`.
    pub fn put_alias(
        &self,
        model: &str,
        targets: &[String],
        strategy: &str,
        weights: Option<&[u32]>,
    ) -> Result<AliasRow, StoreError> {
        validate(model, targets, strategy, weights)?;
        let conn = self.conn()?;
        let now = now_ms();
        conn.execute(
            "INSERT INTO model_aliases (model, targets, strategy, weights, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (model) DO UPDATE SET targets = excluded.targets, strategy = excluded.strategy,
                weights = excluded.weights, updated_at = excluded.updated_at",
            params![
                model,
                serde_json::json!(targets).to_string(),
                strategy,
                weights.map(|w| serde_json::json!(w).to_string()),
                now
            ],
        )?;
        conn.query_row(
            "SELECT model, targets, strategy, weights, created_at, updated_at FROM model_aliases WHERE model = ?1",
            [model],
            alias_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("alias {model}")))
    }

    pub fn delete_alias(&self, model: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        if conn.execute("DELETE FROM model_aliases WHERE model = ?1", [model])? == 0 {
            return Err(StoreError::NotFound(format!("alias {model}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_store;

    #[test]
    fn put_replace_delete() {
        let (_d, s) = test_store();
        let t = vec!["a/x".to_string(), "b/y".to_string()];
        s.put_alias("smart", &t, "ordered", None).unwrap();
        let r = s.put_alias("smart", &t, "weighted", Some(&[3, 1])).unwrap();
        assert_eq!(r.weights, Some(vec![3, 1]));
        assert_eq!(s.list_aliases().unwrap().len(), 1);
        assert!(s
            .put_alias("bad", &["nope".to_string()], "ordered", None)
            .is_err());
        assert!(s.put_alias("bad", &t, "weighted", Some(&[1])).is_err());
        s.delete_alias("smart").unwrap();
        assert!(s.delete_alias("smart").is_err());
    }
}
