//! Providers and their credentials as operators manage them through the admin API.
//! Secrets are write-only: they go in encrypted and come out only to the routing table.

use super::secrets::{mask, Cipher};
use super::{now_ms, Store, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProviderRow {
    pub id: i64,
    pub prefix: String,
    pub plugin: String,
    pub base_url: Option<String>,
    pub enabled: bool,
    pub options: serde_json::Value,
    pub models: Option<Vec<String>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Fields of a provider to create or change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ProviderChange {
    pub prefix: Option<String>,
    pub plugin: Option<String>,
    pub base_url: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub options: Option<serde_json::Value>,
    pub models: Option<Option<Vec<String>>>,
}

/// A provider row after a change, checked, as both stores write it (`models` as JSON text).
pub struct ProviderUpdate {
    pub prefix: String,
    pub plugin: String,
    pub base_url: Option<String>,
    pub enabled: bool,
    pub options: serde_json::Value,
    pub models: Option<String>,
}

impl ProviderChange {
    /// `cur` with this change's fields over it, validated.
    pub fn apply_to(self, cur: ProviderRow) -> Result<ProviderUpdate, StoreError> {
        let prefix = self.prefix.unwrap_or(cur.prefix);
        validate_prefix(&prefix)?;
        let plugin = self.plugin.unwrap_or(cur.plugin);
        if plugin.trim().is_empty() {
            return Err(StoreError::invalid("plugin", "must not be empty"));
        }
        let base_url = self.base_url.unwrap_or(cur.base_url);
        if let Some(u) = &base_url {
            validate_base_url(u)?;
        }
        let options = self.options.unwrap_or(cur.options);
        if !options.is_object() {
            return Err(StoreError::invalid("options", "must be a JSON object"));
        }
        let models = self
            .models
            .unwrap_or(cur.models)
            .map(|m| serde_json::json!(m).to_string());
        Ok(ProviderUpdate {
            prefix,
            plugin,
            base_url,
            enabled: self.enabled.unwrap_or(cur.enabled),
            options,
            models,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CredentialRow {
    pub id: i64,
    pub provider_id: i64,
    pub name: String,
    /// Masked: `sk-...abcd`.
    pub secret: String,
    pub weight: i64,
    pub enabled: bool,
    pub state: String,
    pub last_error: Option<String>,
    pub last_used_at: Option<i64>,
    pub use_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct CredentialChange {
    pub name: Option<String>,
    pub secret: Option<String>,
    pub weight: Option<i64>,
    pub enabled: Option<bool>,
}

/// A credential with its plaintext, for the routing table only.
#[derive(Clone)]
pub struct LiveCredential {
    pub id: i64,
    pub provider_id: i64,
    pub name: String,
    pub weight: i64,
    pub secret: String,
    /// Persisted health, restored at start.
    pub state: String,
    pub state_until: Option<i64>,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for LiveCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCredential")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

pub(in crate::store) fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        return Err(StoreError::invalid(
            "prefix",
            "must be 1 to 64 characters of letters, digits, '-', '_' or '.' (no '/')",
        ));
    }
    Ok(())
}

pub(in crate::store) fn validate_base_url(url: &str) -> Result<(), StoreError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(StoreError::invalid(
            "base_url",
            "must be an http:// or https:// URL",
        ));
    }
    Ok(())
}

fn provider_row(r: &Row<'_>) -> rusqlite::Result<ProviderRow> {
    let options: String = r.get(5)?;
    let models: Option<String> = r.get(6)?;
    Ok(ProviderRow {
        id: r.get(0)?,
        prefix: r.get(1)?,
        plugin: r.get(2)?,
        base_url: r.get(3)?,
        enabled: r.get(4)?,
        options: serde_json::from_str(&options).unwrap_or(serde_json::Value::Null),
        models: models.and_then(|m| serde_json::from_str(&m).ok()),
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

const PROVIDER_COLUMNS: &str =
    "id, prefix, plugin, base_url, enabled, options, models, created_at, updated_at";
const CREDENTIAL_COLUMNS: &str = "id, provider_id, name, secret_hint, weight, enabled, state, last_error, last_used_at, use_count, created_at, updated_at";

fn credential_row(r: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok(CredentialRow {
        id: r.get(0)?,
        provider_id: r.get(1)?,
        name: r.get(2)?,
        secret: r.get(3)?,
        weight: r.get(4)?,
        enabled: r.get(5)?,
        state: r.get(6)?,
        // Rows written before errors were scrubbed may hold a key an upstream echoed.
        last_error: r
            .get::<_, Option<String>>(7)?
            .map(|m| crate::redact::scrub_patterns(&m)),
        last_used_at: r.get(8)?,
        use_count: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

impl Store {
    pub fn create_provider(&self, c: ProviderChange) -> Result<ProviderRow, StoreError> {
        let prefix = c
            .prefix
            .ok_or_else(|| StoreError::invalid("prefix", "is required"))?;
        validate_prefix(&prefix)?;
        let plugin = c
            .plugin
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| StoreError::invalid("plugin", "is required"))?;
        let base_url = c.base_url.flatten();
        if let Some(u) = &base_url {
            validate_base_url(u)?;
        }
        let options = c.options.unwrap_or_else(|| serde_json::json!({}));
        if !options.is_object() {
            return Err(StoreError::invalid("options", "must be a JSON object"));
        }
        let models = c.models.flatten().map(|m| serde_json::json!(m).to_string());
        let conn = self.conn()?;
        let now = now_ms();
        conn.execute(
            "INSERT INTO providers (prefix, plugin, base_url, enabled, options, models, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![prefix, plugin.trim(), base_url, c.enabled.unwrap_or(true), json_text(&options), models, now],
        )
        .map_err(|e| StoreError::from_unique(e, || format!("a provider with prefix '{prefix}' already exists")))?;
        self.get_provider(conn.last_insert_rowid())
    }

    pub fn list_providers(&self) -> Result<Vec<ProviderRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM providers ORDER BY prefix"
        ))?;
        let rows = stmt
            .query_map([], provider_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn get_provider(&self, id: i64) -> Result<ProviderRow, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            &format!("SELECT {PROVIDER_COLUMNS} FROM providers WHERE id = ?1"),
            [id],
            provider_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("provider {id}")))
    }

    pub fn update_provider(&self, id: i64, c: ProviderChange) -> Result<ProviderRow, StoreError> {
        let ProviderUpdate {
            prefix,
            plugin,
            base_url,
            enabled,
            options,
            models,
        } = c.apply_to(self.get_provider(id)?)?;
        let conn = self.conn()?;
        conn.execute(
            "UPDATE providers SET prefix = ?1, plugin = ?2, base_url = ?3, enabled = ?4, options = ?5, models = ?6, updated_at = ?7
             WHERE id = ?8",
            params![prefix, plugin, base_url, enabled, json_text(&options), models, now_ms(), id],
        )
        .map_err(|e| StoreError::from_unique(e, || format!("a provider with prefix '{prefix}' already exists")))?;
        self.get_provider(id)
    }

    pub fn delete_provider(&self, id: i64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        if conn.execute("DELETE FROM providers WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NotFound(format!("provider {id}")));
        }
        Ok(())
    }

    /// Inserts the row first: its id is the associated data the secret is sealed with.
    pub fn create_credential(
        &self,
        cipher: &Cipher,
        provider_id: i64,
        name: &str,
        secret: &str,
        weight: Option<i64>,
        enabled: Option<bool>,
    ) -> Result<CredentialRow, StoreError> {
        self.get_provider(provider_id)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
        }
        if secret.trim().is_empty() {
            return Err(StoreError::invalid("secret", "must not be empty"));
        }
        let weight = weight.unwrap_or(1);
        if !(0..=1000).contains(&weight) {
            return Err(StoreError::invalid("weight", "must be between 0 and 1000"));
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO credentials (provider_id, name, secret, secret_hint, weight, enabled, created_at, updated_at)
             VALUES (?1, ?2, x'', ?3, ?4, ?5, ?6, ?6)",
            params![provider_id, name, mask(secret), weight, enabled.unwrap_or(true), now],
        )
        .map_err(|e| StoreError::from_unique(e, || format!("this provider already has a credential named '{name}'")))?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE credentials SET secret = ?1 WHERE id = ?2",
            params![cipher.encrypt(id, secret)?, id],
        )?;
        tx.commit()?;
        self.get_credential(provider_id, id)
    }

    pub fn list_credentials(&self, provider_id: i64) -> Result<Vec<CredentialRow>, StoreError> {
        self.get_provider(provider_id)?;
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE provider_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([provider_id], credential_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn get_credential(&self, provider_id: i64, id: i64) -> Result<CredentialRow, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            &format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = ?1 AND provider_id = ?2"
            ),
            [id, provider_id],
            credential_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("credential {id} of provider {provider_id}")))
    }

    pub fn update_credential(
        &self,
        cipher: &Cipher,
        provider_id: i64,
        id: i64,
        c: CredentialChange,
    ) -> Result<CredentialRow, StoreError> {
        let cur = self.get_credential(provider_id, id)?;
        let name = c.name.map(|n| n.trim().to_string()).unwrap_or(cur.name);
        if name.is_empty() || name.len() > 100 {
            return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
        }
        let weight = c.weight.unwrap_or(cur.weight);
        if !(0..=1000).contains(&weight) {
            return Err(StoreError::invalid("weight", "must be between 0 and 1000"));
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE credentials SET name = ?1, weight = ?2, enabled = ?3, updated_at = ?4 WHERE id = ?5",
            params![name, weight, c.enabled.unwrap_or(cur.enabled), now_ms(), id],
        )
        .map_err(|e| StoreError::from_unique(e, || format!("this provider already has a credential named '{name}'")))?;
        if let Some(secret) = c.secret {
            if secret.trim().is_empty() {
                return Err(StoreError::invalid("secret", "must not be empty"));
            }
            // A new secret starts healthy.
            tx.execute(
                "UPDATE credentials SET secret = ?1, secret_hint = ?2, state = 'healthy', last_error = NULL WHERE id = ?3",
                params![cipher.encrypt(id, &secret)?, mask(&secret), id],
            )?;
        }
        tx.commit()?;
        self.get_credential(provider_id, id)
    }

    pub fn delete_credential(&self, provider_id: i64, id: i64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        if conn.execute(
            "DELETE FROM credentials WHERE id = ?1 AND provider_id = ?2",
            [id, provider_id],
        )? == 0
        {
            return Err(StoreError::NotFound(format!(
                "credential {id} of provider {provider_id}"
            )));
        }
        Ok(())
    }

    /// Enabled credentials of enabled providers, decrypted, by provider id. One that does
    /// not decrypt is left out and reported, never served garbled.
    pub fn live_credentials(&self, cipher: &Cipher) -> Result<Vec<LiveCredential>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT c.id, c.provider_id, c.name, c.weight, c.secret, c.state, c.state_until, c.last_error
             FROM credentials c JOIN providers p ON p.id = c.provider_id
             WHERE c.enabled = 1 AND p.enabled = 1 ORDER BY c.id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let blob: Vec<u8> = r.get(4)?;
                Ok((
                    blob,
                    LiveCredential {
                        id: r.get(0)?,
                        provider_id: r.get(1)?,
                        name: r.get(2)?,
                        weight: r.get(3)?,
                        secret: String::new(),
                        state: r.get(5)?,
                        state_until: r.get(6)?,
                        last_error: r
                            .get::<_, Option<String>>(7)?
                            .map(|m| crate::redact::scrub_patterns(&m)),
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (blob, mut cred) in rows {
            match cipher.decrypt(cred.id, &blob) {
                Ok(secret) => {
                    cred.secret = secret;
                    out.push(cred);
                }
                Err(e) => tracing::error!(credential = cred.id, error = %e, "credential left out"),
            }
        }
        Ok(out)
    }

    /// Re-encrypts every secret under `new` in one transaction; nothing changes if any
    /// secret fails to decrypt under `old`.
    pub fn reencrypt_all(&self, old: &Cipher, new: &Cipher) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let rows: Vec<(i64, Vec<u8>)> = {
            let mut stmt = tx.prepare("SELECT id, secret FROM credentials")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        for (id, blob) in &rows {
            let plain = old.decrypt(*id, blob)?;
            tx.execute(
                "UPDATE credentials SET secret = ?1 WHERE id = ?2",
                params![new.encrypt(*id, &plain)?, id],
            )?;
        }
        tx.commit()?;
        Ok(rows.len())
    }

    /// Whether `cipher` is the key the secrets were stored under: true when any of the
    /// first stored secrets opens (one damaged row must not stop the server), `None` when
    /// there are none.
    pub fn probe_cipher(&self, cipher: &Cipher) -> Result<Option<bool>, StoreError> {
        Ok(super::secrets::probe(&self.secret_sample()?, cipher))
    }

    /// The first stored secrets (id, sealed bytes), for [`super::secrets::probe`].
    pub fn secret_sample(&self) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT id, secret FROM credentials ORDER BY id LIMIT {}",
            super::secrets::PROBE_ROWS
        ))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl Store {
    /// The plaintext of one credential, for the admin "test" action.
    pub fn credential_secret(
        &self,
        cipher: &Cipher,
        provider_id: i64,
        id: i64,
    ) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let blob: Vec<u8> = conn
            .query_row(
                "SELECT secret FROM credentials WHERE id = ?1 AND provider_id = ?2",
                [id, provider_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::NotFound(format!("credential {id} of provider {provider_id}"))
            })?;
        cipher.decrypt(id, &blob)
    }

    /// Persists a credential's health so it survives a restart.
    pub fn set_credential_state(
        &self,
        id: i64,
        state: &str,
        until_ms: Option<i64>,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        // Scrubbed where it entered the host already; again here, by pattern and bounded,
        // because whatever reaches the table is shown by the admin API.
        let last_error = last_error.map(crate::redact::scrub_patterns);
        let conn = self.conn()?;
        conn.execute(
            "UPDATE credentials SET state = ?1, state_until = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?5",
            params![state, until_ms, last_error, now_ms(), id],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    fn provider(s: &Store) -> ProviderRow {
        s.create_provider(ProviderChange {
            prefix: Some("oa".into()),
            plugin: Some("openai".into()),
            base_url: Some(Some("http://127.0.0.1:9/v1".into())),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn secrets_are_sealed_per_row() {
        let (_d, s) = test_store();
        let c = Cipher::generate();
        let p = provider(&s);
        let a = s
            .create_credential(&c, p.id, "a", "sk-aaaaaaaaaaaaaaaa1111", None, None)
            .unwrap();
        let b = s
            .create_credential(&c, p.id, "b", "sk-bbbbbbbbbbbbbbbb2222", Some(3), None)
            .unwrap();
        assert_eq!(a.secret, "sk-...1111");
        let live = s.live_credentials(&c).unwrap();
        assert_eq!(live.len(), 2);
        assert_eq!(live[1].secret, "sk-bbbbbbbbbbbbbbbb2222");
        // Swap ciphertexts between rows: neither decrypts any more.
        let conn = s.conn().unwrap();
        conn.execute_batch(&format!(
            "UPDATE credentials SET secret = (SELECT secret FROM credentials WHERE id = {b}) WHERE id = {a};",
            a = a.id,
            b = b.id
        ))
        .unwrap();
        let live = s.live_credentials(&c).unwrap();
        assert_eq!(live.iter().map(|l| l.id).collect::<Vec<_>>(), vec![b.id]);
    }

    #[test]
    fn rotation_reencrypts_everything() {
        let (_d, s) = test_store();
        let old = Cipher::generate();
        let p = provider(&s);
        s.create_credential(&old, p.id, "a", "sk-aaaaaaaaaaaaaaaa1111", None, None)
            .unwrap();
        let new = Cipher::generate();
        assert_eq!(s.reencrypt_all(&old, &new).unwrap(), 1);
        assert_eq!(s.probe_cipher(&new).unwrap(), Some(true));
        assert_eq!(s.probe_cipher(&old).unwrap(), Some(false));
        // Wrong old key: nothing changes.
        assert!(s.reencrypt_all(&old, &Cipher::generate()).is_err());
        assert_eq!(s.probe_cipher(&new).unwrap(), Some(true));
    }

    #[test]
    fn validation_and_conflicts() {
        let (_d, s) = test_store();
        provider(&s);
        let dup = s.create_provider(ProviderChange {
            prefix: Some("oa".into()),
            plugin: Some("openai".into()),
            ..Default::default()
        });
        assert!(matches!(dup, Err(StoreError::Conflict(_))));
        let bad = s.create_provider(ProviderChange {
            prefix: Some("a/b".into()),
            plugin: Some("openai".into()),
            ..Default::default()
        });
        assert!(matches!(bad, Err(StoreError::Invalid { ref field, .. }) if field == "prefix"));
    }
}
