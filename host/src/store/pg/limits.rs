//! Rate limits per app and per key on Postgres (JSON documents, as on SQLite).

use super::PgStores;
use crate::store::limits::{parse, Scope, StoredLimits};
use crate::store::traits::{LimitStore, Result};
use crate::store::{now_ms, StoreError};
use crate::traffic::Limits;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::collections::HashMap;

/// 404 unless the app (or the key of that app) exists.
pub(in crate::store) async fn scope_exists(c: &impl GenericClient, scope: Scope) -> Result<()> {
    let found = match scope {
        Scope::App(app) => {
            c.query_opt("SELECT id FROM apps WHERE id = $1", &[&app])
                .await?
        }
        Scope::Key(app, key) => {
            c.query_opt(
                "SELECT id FROM app_keys WHERE id = $1 AND app_id = $2",
                &[&key, &app],
            )
            .await?
        }
    };
    found.map(|_| ()).ok_or_else(|| match scope {
        Scope::App(app) => StoreError::NotFound(format!("app {app}")),
        Scope::Key(app, key) => StoreError::NotFound(format!("key {key} of app {app}")),
    })
}

fn table_of(scope: Scope) -> (&'static str, &'static str, i64) {
    match scope {
        Scope::App(app) => ("app_limits", "app_id", app),
        Scope::Key(_, key) => ("key_limits", "key_id", key),
    }
}

#[async_trait]
impl LimitStore for PgStores {
    async fn get_limits(&self, scope: Scope) -> Result<Limits> {
        let c = self.client().await?;
        scope_exists(&c, scope).await?;
        let (table, column, id) = table_of(scope);
        let raw: Option<String> = c
            .query_opt(
                &format!("SELECT limits FROM {table} WHERE {column} = $1"),
                &[&id],
            )
            .await?
            .map(|r| r.get(0));
        raw.map_or(Ok(Limits::default()), |r| parse(&r))
    }

    async fn put_limits(&self, scope: Scope, limits: Limits) -> Result<Limits> {
        let c = self.client().await?;
        scope_exists(&c, scope).await?;
        let json = serde_json::to_string(&limits)
            .map_err(|e| StoreError::invalid("limits", e.to_string()))?;
        let (table, column, id) = table_of(scope);
        if limits.is_empty() {
            c.execute(&format!("DELETE FROM {table} WHERE {column} = $1"), &[&id])
                .await?;
        } else {
            c.execute(
                &format!(
                    "INSERT INTO {table} ({column}, limits, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT ({column}) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at"
                ),
                &[&id, &json, &now_ms()],
            )
            .await?;
        }
        Ok(limits)
    }

    async fn all_limits(&self) -> Result<StoredLimits> {
        let c = self.client().await?;
        let mut out = (HashMap::new(), HashMap::new());
        for (sql, map) in [
            ("SELECT app_id, limits FROM app_limits", &mut out.0),
            ("SELECT key_id, limits FROM key_limits", &mut out.1),
        ] {
            for r in c.query(sql, &[]).await? {
                let id: i64 = r.get(0);
                let raw: String = r.get(1);
                match parse(&raw) {
                    Ok(l) => {
                        map.insert(id, l);
                    }
                    Err(e) => tracing::error!(id, error = %e, "stored limits left out"),
                }
            }
        }
        Ok(out)
    }
}
