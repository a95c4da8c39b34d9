//! Apps and their keys. A key is shown once, when made; only its SHA-256 is stored.

use super::{now_ms, Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub active_keys: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppKey {
    pub id: i64,
    pub app_id: i64,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What authenticating a key needs, cached in memory by the auth layer.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyOwner {
    pub key_id: i64,
    pub app_id: i64,
    /// Shared by the auth cache and every call of the app (no copy per call).
    pub app_name: std::sync::Arc<str>,
    pub app_enabled: bool,
    pub revoked: bool,
}

pub const KEY_PREFIX: &str = "ak-";

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// 256 random bits, URL-safe.
pub(in crate::store) fn new_key() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Crypto(format!("no randomness: {e}")))?;
    Ok(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

pub(in crate::store) fn validate_name(name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
    }
    Ok(name.to_string())
}

const APP_COLUMNS: &str = "a.id, a.name, a.enabled, a.created_at, a.updated_at,
    (SELECT count(*) FROM app_keys k WHERE k.app_id = a.id AND k.revoked_at IS NULL)";

fn app_row(r: &Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        id: r.get(0)?,
        name: r.get(1)?,
        enabled: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
        active_keys: r.get(5)?,
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<AppKey> {
    Ok(AppKey {
        id: r.get(0)?,
        app_id: r.get(1)?,
        prefix: r.get(2)?,
        name: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

const KEY_COLUMNS: &str = "id, app_id, key_prefix, name, created_at, last_used_at, revoked_at";

impl Store {
    pub fn create_app(&self, name: &str) -> Result<App, StoreError> {
        let name = validate_name(name)?;
        let conn = self.conn()?;
        let now = now_ms();
        conn.execute(
            "INSERT INTO apps (name, enabled, created_at, updated_at) VALUES (?1, 1, ?2, ?2)",
            params![name, now],
        )
        .map_err(|e| {
            StoreError::from_unique(e, || format!("an app named '{name}' already exists"))
        })?;
        self.get_app(conn.last_insert_rowid())
    }

    pub fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("SELECT {APP_COLUMNS} FROM apps a ORDER BY a.id"))?;
        let apps = stmt
            .query_map([], app_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(apps)
    }

    pub fn get_app(&self, id: i64) -> Result<App, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            &format!("SELECT {APP_COLUMNS} FROM apps a WHERE a.id = ?1"),
            [id],
            app_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("app {id}")))
    }

    pub fn update_app(
        &self,
        id: i64,
        name: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<App, StoreError> {
        let conn = self.conn()?;
        let current = self.get_app(id)?;
        let name = match name {
            Some(n) => validate_name(n)?,
            None => current.name,
        };
        conn.execute(
            "UPDATE apps SET name = ?1, enabled = ?2, updated_at = ?3 WHERE id = ?4",
            params![name, enabled.unwrap_or(current.enabled), now_ms(), id],
        )
        .map_err(|e| {
            StoreError::from_unique(e, || format!("an app named '{name}' already exists"))
        })?;
        self.get_app(id)
    }

    /// Deletes the app and its keys; its call records stay (with its id) for accounting.
    pub fn delete_app(&self, id: i64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        if conn.execute("DELETE FROM apps WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NotFound(format!("app {id}")));
        }
        Ok(())
    }

    /// Makes a key; the plaintext is returned once and never stored.
    pub fn create_key(
        &self,
        app_id: i64,
        name: Option<&str>,
    ) -> Result<(AppKey, String), StoreError> {
        self.get_app(app_id)?;
        let key = new_key()?;
        let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO app_keys (app_id, key_hash, key_prefix, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![app_id, hash_key(&key).as_slice(), prefix, name.map(str::trim), now_ms()],
        )?;
        let id = conn.last_insert_rowid();
        let row = conn.query_row(
            &format!("SELECT {KEY_COLUMNS} FROM app_keys WHERE id = ?1"),
            [id],
            key_row,
        )?;
        Ok((row, key))
    }

    pub fn list_keys(&self, app_id: i64) -> Result<Vec<AppKey>, StoreError> {
        self.get_app(app_id)?;
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM app_keys WHERE app_id = ?1 ORDER BY id"
        ))?;
        let keys = stmt
            .query_map([app_id], key_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(keys)
    }

    /// Revoking twice is not an error; the first revocation time is kept.
    pub fn revoke_key(&self, app_id: i64, key_id: i64) -> Result<AppKey, StoreError> {
        let conn = self.conn()?;
        let n = conn.execute(
            "UPDATE app_keys SET revoked_at = coalesce(revoked_at, ?1) WHERE id = ?2 AND app_id = ?3",
            params![now_ms(), key_id, app_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "key {key_id} of app {app_id}"
            )));
        }
        Ok(conn.query_row(
            &format!("SELECT {KEY_COLUMNS} FROM app_keys WHERE id = ?1"),
            [key_id],
            key_row,
        )?)
    }

    pub fn key_owner(&self, hash: &[u8; 32]) -> Result<Option<KeyOwner>, StoreError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT k.id, a.id, a.name, a.enabled, k.revoked_at IS NOT NULL
                 FROM app_keys k JOIN apps a ON a.id = k.app_id WHERE k.key_hash = ?1",
                [hash.as_slice()],
                |r| {
                    Ok(KeyOwner {
                        key_id: r.get(0)?,
                        app_id: r.get(1)?,
                        app_name: r.get::<_, String>(2)?.into(),
                        app_enabled: r.get(3)?,
                        revoked: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_store;

    #[test]
    fn keys_are_hashed_and_revocable() {
        let (_d, s) = test_store();
        let app = s.create_app("team-a").unwrap();
        let (row, key) = s.create_key(app.id, Some("ci")).unwrap();
        assert!(key.starts_with("ak-") && key.len() > 40);
        assert!(key.starts_with(&row.prefix));
        let owner = s.key_owner(&super::hash_key(&key)).unwrap().unwrap();
        assert_eq!(owner.app_id, app.id);
        assert!(!owner.revoked);
        s.revoke_key(app.id, row.id).unwrap();
        assert!(
            s.key_owner(&super::hash_key(&key))
                .unwrap()
                .unwrap()
                .revoked
        );
        assert_eq!(s.get_app(app.id).unwrap().active_keys, 0);
    }

    #[test]
    fn names_are_unique_and_validated() {
        let (_d, s) = test_store();
        s.create_app("a").unwrap();
        assert!(matches!(
            s.create_app("a"),
            Err(crate::store::StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_app("  "),
            Err(crate::store::StoreError::Invalid { .. })
        ));
        assert!(matches!(
            s.get_app(99),
            Err(crate::store::StoreError::NotFound(_))
        ));
    }
}
