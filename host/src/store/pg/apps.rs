//! Apps and their keys on Postgres (see `store::apps`: only a key's SHA-256 is stored).

use super::{unique, PgStores};
use crate::store::apps::{hash_key, new_key, validate_name, App, AppKey, KeyOwner, KEY_PREFIX};
use crate::store::traits::{AppStore, Result};
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;

const APP_COLUMNS: &str = "a.id, a.name, a.enabled, a.created_at, a.updated_at,
    (SELECT count(*) FROM app_keys k WHERE k.app_id = a.id AND k.revoked_at IS NULL)";

const KEY_COLUMNS: &str = "id, app_id, key_prefix, name, created_at, last_used_at, revoked_at";

fn app_row(r: &Row) -> App {
    App {
        id: r.get(0),
        name: r.get(1),
        enabled: r.get(2),
        created_at: r.get(3),
        updated_at: r.get(4),
        active_keys: r.get(5),
    }
}

fn key_row(r: &Row) -> AppKey {
    AppKey {
        id: r.get(0),
        app_id: r.get(1),
        prefix: r.get(2),
        name: r.get(3),
        created_at: r.get(4),
        last_used_at: r.get(5),
        revoked_at: r.get(6),
    }
}

fn exists_msg(name: &str) -> String {
    format!("an app named '{name}' already exists")
}

#[async_trait]
impl AppStore for PgStores {
    async fn list_apps(&self) -> Result<Vec<App>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {APP_COLUMNS} FROM apps a ORDER BY a.id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(app_row).collect())
    }

    async fn get_app(&self, id: i64) -> Result<App> {
        let c = self.client().await?;
        c.query_opt(
            &format!("SELECT {APP_COLUMNS} FROM apps a WHERE a.id = $1"),
            &[&id],
        )
        .await?
        .map(|r| app_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("app {id}")))
    }

    async fn create_app(&self, name: String, enabled: Option<bool>) -> Result<App> {
        let name = validate_name(&name)?;
        let c = self.client().await?;
        let now = now_ms();
        let id: i64 = c
            .query_one(
                "INSERT INTO apps (name, enabled, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
                &[&name, &enabled.unwrap_or(true), &now],
            )
            .await
            .map_err(|e| unique(e, || exists_msg(&name)))?
            .get(0);
        drop(c);
        self.get_app(id).await
    }

    async fn update_app(
        &self,
        id: i64,
        name: Option<String>,
        enabled: Option<bool>,
    ) -> Result<App> {
        let current = self.get_app(id).await?;
        let name = match name {
            Some(n) => validate_name(&n)?,
            None => current.name,
        };
        let c = self.client().await?;
        c.execute(
            "UPDATE apps SET name = $1, enabled = $2, updated_at = $3 WHERE id = $4",
            &[&name, &enabled.unwrap_or(current.enabled), &now_ms(), &id],
        )
        .await
        .map_err(|e| unique(e, || exists_msg(&name)))?;
        drop(c);
        self.get_app(id).await
    }

    async fn delete_app(&self, id: i64) -> Result<()> {
        let c = self.client().await?;
        if c.execute("DELETE FROM apps WHERE id = $1", &[&id]).await? == 0 {
            return Err(StoreError::NotFound(format!("app {id}")));
        }
        Ok(())
    }

    async fn list_keys(&self, app_id: i64) -> Result<Vec<AppKey>> {
        self.get_app(app_id).await?;
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM app_keys WHERE app_id = $1 ORDER BY id"),
                &[&app_id],
            )
            .await?;
        Ok(rows.iter().map(key_row).collect())
    }

    async fn create_key(&self, app_id: i64, name: Option<String>) -> Result<(AppKey, String)> {
        self.get_app(app_id).await?;
        let key = new_key()?;
        let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
        let c = self.client().await?;
        let name = name.as_deref().map(str::trim);
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO app_keys (app_id, key_hash, key_prefix, name, created_at)
                     VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"
                ),
                &[
                    &app_id,
                    &hash_key(&key).as_slice(),
                    &prefix,
                    &name,
                    &now_ms(),
                ],
            )
            .await
            .map_err(|e| {
                // The app was deleted in between: its id no longer exists.
                if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::NotFound(format!("app {app_id}"))
                } else {
                    StoreError::Postgres(e)
                }
            })?;
        Ok((key_row(&row), key))
    }

    async fn revoke_key(&self, app_id: i64, key_id: i64) -> Result<AppKey> {
        let c = self.client().await?;
        c.query_opt(
            &format!(
                "UPDATE app_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 AND app_id = $3
                 RETURNING {KEY_COLUMNS}"
            ),
            &[&now_ms(), &key_id, &app_id],
        )
        .await?
        .map(|r| key_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("key {key_id} of app {app_id}")))
    }

    async fn key_owner(&self, hash: [u8; 32]) -> Result<Option<KeyOwner>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT k.id, a.id, a.name, a.enabled, k.revoked_at IS NOT NULL
                 FROM app_keys k JOIN apps a ON a.id = k.app_id WHERE k.key_hash = $1",
            )
            .await?;
        Ok(c.query_opt(&stmt, &[&hash.as_slice()])
            .await?
            .map(|r| KeyOwner {
                key_id: r.get(0),
                app_id: r.get(1),
                app_name: r.get::<_, String>(2).into(),
                app_enabled: r.get(3),
                revoked: r.get(4),
            }))
    }
}
