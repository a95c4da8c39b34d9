//! Providers and their credentials on Postgres. Secrets are sealed before they reach the
//! database (the row's id is the associated data) and opened only for the routing table.

use super::{unique, PgStores};
use crate::store::providers::{
    validate_base_url, validate_prefix, CredentialChange, CredentialRow, LiveCredential,
    ProviderChange, ProviderRow, ProviderUpdate,
};
use crate::store::secrets::mask;
use crate::store::traits::{ProviderStore, Result};
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;

const PROVIDER_COLUMNS: &str =
    "id, prefix, plugin, base_url, enabled, options, models, created_at, updated_at";
const CREDENTIAL_COLUMNS: &str = "id, provider_id, name, secret_hint, weight, enabled, state, last_error, last_used_at, use_count, created_at, updated_at";

fn provider_row(r: &Row) -> ProviderRow {
    let options: String = r.get(5);
    let models: Option<String> = r.get(6);
    ProviderRow {
        id: r.get(0),
        prefix: r.get(1),
        plugin: r.get(2),
        base_url: r.get(3),
        enabled: r.get(4),
        options: serde_json::from_str(&options).unwrap_or(serde_json::Value::Null),
        models: models.and_then(|m| serde_json::from_str(&m).ok()),
        created_at: r.get(7),
        updated_at: r.get(8),
    }
}

fn credential_row(r: &Row) -> CredentialRow {
    CredentialRow {
        id: r.get(0),
        provider_id: r.get(1),
        name: r.get(2),
        secret: r.get(3),
        weight: r.get(4),
        enabled: r.get(5),
        state: r.get(6),
        last_error: r
            .get::<_, Option<String>>(7)
            .map(|m| crate::redact::scrub_patterns(&m)),
        last_used_at: r.get(8),
        use_count: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
    }
}

fn prefix_taken(prefix: &str) -> String {
    format!("a provider with prefix '{prefix}' already exists")
}

fn name_taken(name: &str) -> String {
    format!("this provider already has a credential named '{name}'")
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 100 {
        return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
    }
    Ok(())
}

fn check_weight(weight: i64) -> Result<()> {
    if !(0..=1000).contains(&weight) {
        return Err(StoreError::invalid("weight", "must be between 0 and 1000"));
    }
    Ok(())
}

fn credential_missing(provider_id: i64, id: i64) -> StoreError {
    StoreError::NotFound(format!("credential {id} of provider {provider_id}"))
}

#[async_trait]
impl ProviderStore for PgStores {
    async fn list_providers(&self) -> Result<Vec<ProviderRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {PROVIDER_COLUMNS} FROM providers ORDER BY prefix"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(provider_row).collect())
    }

    async fn get_provider(&self, id: i64) -> Result<ProviderRow> {
        let c = self.client().await?;
        c.query_opt(
            &format!("SELECT {PROVIDER_COLUMNS} FROM providers WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| provider_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("provider {id}")))
    }

    async fn create_provider(&self, c: ProviderChange) -> Result<ProviderRow> {
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
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO providers (prefix, plugin, base_url, enabled, options, models, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {PROVIDER_COLUMNS}"
                ),
                &[
                    &prefix,
                    &plugin.trim(),
                    &base_url,
                    &c.enabled.unwrap_or(true),
                    &options.to_string(),
                    &models,
                    &now_ms(),
                ],
            )
            .await
            .map_err(|e| unique(e, || prefix_taken(&prefix)))?;
        Ok(provider_row(&row))
    }

    async fn update_provider(&self, id: i64, c: ProviderChange) -> Result<ProviderRow> {
        let ProviderUpdate {
            prefix,
            plugin,
            base_url,
            enabled,
            options,
            models,
        } = c.apply_to(self.get_provider(id).await?)?;
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "UPDATE providers SET prefix = $1, plugin = $2, base_url = $3, enabled = $4, options = $5,
                        models = $6, updated_at = $7 WHERE id = $8 RETURNING {PROVIDER_COLUMNS}"
                ),
                &[
                    &prefix,
                    &plugin,
                    &base_url,
                    &enabled,
                    &options.to_string(),
                    &models,
                    &now_ms(),
                    &id,
                ],
            )
            .await
            .map_err(|e| unique(e, || prefix_taken(&prefix)))?
            .map(|r| provider_row(&r))
            .ok_or_else(|| StoreError::NotFound(format!("provider {id}")))
    }

    async fn delete_provider(&self, id: i64) -> Result<()> {
        let c = self.client().await?;
        if c.execute("DELETE FROM providers WHERE id = $1", &[&id])
            .await?
            == 0
        {
            return Err(StoreError::NotFound(format!("provider {id}")));
        }
        Ok(())
    }

    async fn list_credentials(&self, provider_id: i64) -> Result<Vec<CredentialRow>> {
        self.get_provider(provider_id).await?;
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE provider_id = $1 ORDER BY id"
                ),
                &[&provider_id],
            )
            .await?;
        Ok(rows.iter().map(credential_row).collect())
    }

    async fn get_credential(&self, provider_id: i64, id: i64) -> Result<CredentialRow> {
        let c = self.client().await?;
        c.query_opt(
            &format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = $1 AND provider_id = $2"
            ),
            &[&id, &provider_id],
        )
        .await?
        .map(|r| credential_row(&r))
        .ok_or_else(|| credential_missing(provider_id, id))
    }

    /// The row first (its id seals the secret), the sealed secret in the same transaction.
    async fn create_credential(
        &self,
        provider_id: i64,
        name: String,
        secret: String,
        weight: Option<i64>,
        enabled: Option<bool>,
    ) -> Result<CredentialRow> {
        self.get_provider(provider_id).await?;
        let name = name.trim().to_string();
        check_name(&name)?;
        if secret.trim().is_empty() {
            return Err(StoreError::invalid("secret", "must not be empty"));
        }
        let weight = weight.unwrap_or(1);
        check_weight(weight)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        let id: i64 = tx
            .query_one(
                "INSERT INTO credentials (provider_id, name, secret, secret_hint, weight, enabled, created_at, updated_at)
                 VALUES ($1, $2, ''::bytea, $3, $4, $5, $6, $6) RETURNING id",
                &[&provider_id, &name, &mask(&secret), &weight, &enabled.unwrap_or(true), &now],
            )
            .await
            .map_err(|e| unique(e, || name_taken(&name)))?
            .get(0);
        tx.execute(
            "UPDATE credentials SET secret = $1 WHERE id = $2",
            &[&self.cipher.encrypt(id, &secret)?, &id],
        )
        .await?;
        tx.commit().await?;
        drop(c);
        self.get_credential(provider_id, id).await
    }

    async fn update_credential(
        &self,
        provider_id: i64,
        id: i64,
        ch: CredentialChange,
    ) -> Result<CredentialRow> {
        let cur = self.get_credential(provider_id, id).await?;
        let name = ch.name.map(|n| n.trim().to_string()).unwrap_or(cur.name);
        check_name(&name)?;
        let weight = ch.weight.unwrap_or(cur.weight);
        check_weight(weight)?;
        if ch.secret.as_ref().is_some_and(|s| s.trim().is_empty()) {
            return Err(StoreError::invalid("secret", "must not be empty"));
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE credentials SET name = $1, weight = $2, enabled = $3, updated_at = $4 WHERE id = $5",
            &[&name, &weight, &ch.enabled.unwrap_or(cur.enabled), &now_ms(), &id],
        )
        .await
        .map_err(|e| unique(e, || name_taken(&name)))?;
        if let Some(secret) = ch.secret {
            // A new secret starts healthy.
            tx.execute(
                "UPDATE credentials SET secret = $1, secret_hint = $2, state = 'healthy', last_error = NULL WHERE id = $3",
                &[&self.cipher.encrypt(id, &secret)?, &mask(&secret), &id],
            )
            .await?;
        }
        tx.commit().await?;
        drop(c);
        self.get_credential(provider_id, id).await
    }

    async fn delete_credential(&self, provider_id: i64, id: i64) -> Result<()> {
        let c = self.client().await?;
        if c.execute(
            "DELETE FROM credentials WHERE id = $1 AND provider_id = $2",
            &[&id, &provider_id],
        )
        .await?
            == 0
        {
            return Err(credential_missing(provider_id, id));
        }
        Ok(())
    }

    async fn live_credentials(&self) -> Result<Vec<LiveCredential>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT c.id, c.provider_id, c.name, c.weight, c.secret, c.state, c.state_until, c.last_error
                 FROM credentials c JOIN providers p ON p.id = c.provider_id
                 WHERE c.enabled AND p.enabled ORDER BY c.id",
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            let blob: Vec<u8> = r.get(4);
            match self.cipher.decrypt(id, &blob) {
                Ok(secret) => out.push(LiveCredential {
                    id,
                    provider_id: r.get(1),
                    name: r.get(2),
                    weight: r.get(3),
                    secret,
                    state: r.get(5),
                    state_until: r.get(6),
                    last_error: r
                        .get::<_, Option<String>>(7)
                        .map(|m| crate::redact::scrub_patterns(&m)),
                }),
                Err(e) => tracing::error!(credential = id, error = %e, "credential left out"),
            }
        }
        Ok(out)
    }

    async fn credential_secret(&self, provider_id: i64, id: i64) -> Result<String> {
        let c = self.client().await?;
        let blob: Vec<u8> = c
            .query_opt(
                "SELECT secret FROM credentials WHERE id = $1 AND provider_id = $2",
                &[&id, &provider_id],
            )
            .await?
            .ok_or_else(|| credential_missing(provider_id, id))?
            .get(0);
        self.cipher.decrypt(id, &blob)
    }

    async fn set_credential_state(
        &self,
        id: i64,
        state: String,
        until_ms: Option<i64>,
        last_error: Option<String>,
    ) -> Result<()> {
        let last_error = last_error.as_deref().map(crate::redact::scrub_patterns);
        let c = self.client().await?;
        c.execute(
            "UPDATE credentials SET state = $1, state_until = $2, last_error = $3, updated_at = $4 WHERE id = $5",
            &[&state, &until_ms, &last_error, &now_ms(), &id],
        )
        .await?;
        Ok(())
    }
}
