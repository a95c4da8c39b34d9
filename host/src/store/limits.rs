//! Rate limits per app and per app key (JSON documents; the `traffic` module reads them).

use super::{now_ms, Store, StoreError};
use crate::traffic::Limits;
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

/// Every stored limit: (per app, per key).
pub type StoredLimits = (HashMap<i64, Limits>, HashMap<i64, Limits>);

/// Whose limits: an app's or one of its keys'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    App(i64),
    /// (app id, key id): the key must belong to the app.
    Key(i64, i64),
}

pub(in crate::store) fn parse(raw: &str) -> Result<Limits, StoreError> {
    serde_json::from_str(raw)
        .map_err(|e| StoreError::invalid("limits", format!("stored limits are unreadable: {e}")))
}

impl Store {
    /// The scope's limits (none set: empty); 404 when the app or key does not exist.
    pub fn get_limits(&self, scope: Scope) -> Result<Limits, StoreError> {
        let conn = self.conn()?;
        let raw: Option<String> = match scope {
            Scope::App(app) => {
                let exists: Option<i64> = conn
                    .query_row("SELECT id FROM apps WHERE id = ?1", params![app], |r| {
                        r.get(0)
                    })
                    .optional()?;
                exists.ok_or_else(|| StoreError::NotFound(format!("app {app}")))?;
                conn.query_row(
                    "SELECT limits FROM app_limits WHERE app_id = ?1",
                    params![app],
                    |r| r.get(0),
                )
                .optional()?
            }
            Scope::Key(app, key) => {
                let exists: Option<i64> = conn
                    .query_row(
                        "SELECT id FROM app_keys WHERE id = ?1 AND app_id = ?2",
                        params![key, app],
                        |r| r.get(0),
                    )
                    .optional()?;
                exists.ok_or_else(|| StoreError::NotFound(format!("key {key} of app {app}")))?;
                conn.query_row(
                    "SELECT limits FROM key_limits WHERE key_id = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()?
            }
        };
        raw.map_or(Ok(Limits::default()), |r| parse(&r))
    }

    /// Replaces the scope's limits (empty limits delete the row).
    pub fn put_limits(&self, scope: Scope, limits: &Limits) -> Result<Limits, StoreError> {
        // Also the existence check (404).
        self.get_limits(scope)?;
        let conn = self.conn()?;
        let json = serde_json::to_string(limits)
            .map_err(|e| StoreError::invalid("limits", e.to_string()))?;
        let (table, column, id) = match scope {
            Scope::App(app) => ("app_limits", "app_id", app),
            Scope::Key(_, key) => ("key_limits", "key_id", key),
        };
        if limits.is_empty() {
            conn.execute(
                &format!("DELETE FROM {table} WHERE {column} = ?1"),
                params![id],
            )?;
        } else {
            conn.execute(
                &format!(
                    "INSERT INTO {table} ({column}, limits, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT ({column}) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at"
                ),
                params![id, json, now_ms()],
            )?;
        }
        Ok(limits.clone())
    }

    /// Every stored limit: (per app, per key). An unreadable row is left out and logged.
    pub fn all_limits(&self) -> Result<StoredLimits, StoreError> {
        let conn = self.conn()?;
        let read = |sql: &str| -> Result<HashMap<i64, Limits>, StoreError> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = HashMap::new();
            for row in rows {
                let (id, raw) = row?;
                match parse(&raw) {
                    Ok(l) => {
                        out.insert(id, l);
                    }
                    Err(e) => tracing::error!(id, error = %e, "stored limits left out"),
                }
            }
            Ok(out)
        };
        Ok((
            read("SELECT app_id, limits FROM app_limits")?,
            read("SELECT key_id, limits FROM key_limits")?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_kept_per_app_and_key_and_an_empty_set_deletes_them() {
        let (_dir, store) = crate::store::test_store();
        let app = store.create_app("a").unwrap().id;
        let other = store.create_app("b").unwrap().id;
        let (key, _) = store.create_key(app, None).unwrap();
        let l: Limits = serde_json::from_value(serde_json::json!({"rpm": 5})).unwrap();
        store.put_limits(Scope::App(app), &l).unwrap();
        store.put_limits(Scope::Key(app, key.id), &l).unwrap();
        assert_eq!(store.get_limits(Scope::App(app)).unwrap(), l);
        assert!(matches!(
            store.get_limits(Scope::Key(other, key.id)),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.put_limits(Scope::App(9999), &l),
            Err(StoreError::NotFound(_))
        ));
        let (apps, keys) = store.all_limits().unwrap();
        assert_eq!((apps.len(), keys.len()), (1, 1));
        store
            .put_limits(Scope::App(app), &Limits::default())
            .unwrap();
        assert!(store.all_limits().unwrap().0.is_empty());
    }
}
