//! Every admin mutation that changes in-memory state goes through here: the store is
//! written, then the routing table or the auth cache is refreshed (before the admin call
//! answers, so the change holds from the next request on) and the change is published.
//! Handlers never call `reload_routes` or invalidate the auth cache themselves.

use crate::error::ApiError;
use crate::state::{AppState, Change};
use crate::store::aliases::AliasRow;
use crate::store::app_prices::AppPrice;
use crate::store::apps::{App, AppKey};
use crate::store::providers::{CredentialChange, CredentialRow, ProviderChange, ProviderRow};
use crate::store::rates::Rate;
use std::sync::Arc;

pub struct AdminService<'a> {
    state: &'a Arc<AppState>,
}

type Result<T> = std::result::Result<T, ApiError>;

impl<'a> AdminService<'a> {
    pub fn new(state: &'a Arc<AppState>) -> Self {
        AdminService { state }
    }

    async fn done<T>(&self, value: T, change: Change) -> Result<T> {
        self.state.changed(change).await;
        Ok(value)
    }

    pub async fn create_provider(&self, change: ProviderChange) -> Result<ProviderRow> {
        if let Some(prefix) = &change.prefix {
            if self
                .state
                .config
                .providers
                .iter()
                .any(|p| &p.prefix == prefix)
            {
                return Err(ApiError::Conflict(format!(
                    "prefix '{prefix}' is declared in the config file; change it there"
                )));
            }
        }
        let row = self.state.stores.providers.create_provider(change).await?;
        self.done(row, Change::Routing).await
    }

    pub async fn update_provider(&self, id: i64, change: ProviderChange) -> Result<ProviderRow> {
        let row = self
            .state
            .stores
            .providers
            .update_provider(id, change)
            .await?;
        self.done(row, Change::Routing).await
    }

    pub async fn delete_provider(&self, id: i64) -> Result<()> {
        self.state.stores.providers.delete_provider(id).await?;
        self.done((), Change::Routing).await
    }

    pub async fn create_credential(
        &self,
        provider_id: i64,
        name: String,
        secret: String,
        weight: Option<i64>,
        enabled: Option<bool>,
    ) -> Result<CredentialRow> {
        let row = self
            .state
            .stores
            .providers
            .create_credential(provider_id, name, secret, weight, enabled)
            .await?;
        self.done(row, Change::Routing).await
    }

    pub async fn update_credential(
        &self,
        provider_id: i64,
        id: i64,
        change: CredentialChange,
    ) -> Result<CredentialRow> {
        let row = self
            .state
            .stores
            .providers
            .update_credential(provider_id, id, change)
            .await?;
        self.done(row, Change::Routing).await
    }

    pub async fn delete_credential(&self, provider_id: i64, id: i64) -> Result<()> {
        self.state
            .stores
            .providers
            .delete_credential(provider_id, id)
            .await?;
        self.done((), Change::Routing).await
    }

    pub async fn put_rate(&self, rate: Rate) -> Result<Rate> {
        let row = self.state.stores.rates.put_rate(rate).await?;
        self.done(row, Change::Routing).await
    }

    /// Sets every rate of an import, then rebuilds the routing table once (not per rate).
    /// The store has no batch write behind its trait, so each rate is its own transaction
    /// (with its history row): a store error midway leaves the earlier ones written, says
    /// how many, and the table is rebuilt either way; importing again finishes the job.
    pub async fn import_rates(&self, rates: Vec<Rate>) -> Result<usize> {
        let mut written = 0;
        let mut failed = None;
        for rate in rates {
            let model = rate.model.clone();
            match self.state.stores.rates.put_rate(rate).await {
                Ok(_) => written += 1,
                Err(e) => {
                    failed = Some((model, e));
                    break;
                }
            }
        }
        self.state.changed(Change::Routing).await;
        match failed {
            None => Ok(written),
            Some((model, e)) => Err(ApiError::Internal(format!(
                "the import stopped at {model} after writing {written} rates: {e}"
            ))),
        }
    }

    pub async fn delete_rate(&self, model: String) -> Result<()> {
        self.state.stores.rates.delete_rate(model).await?;
        self.done((), Change::Routing).await
    }

    /// An app's explicit price (credits); charged from the next call on.
    pub async fn put_app_price(&self, app_id: i64, price: Rate) -> Result<AppPrice> {
        let row = self.state.stores.rates.put_app_price(app_id, price).await?;
        self.done(row, Change::Routing).await
    }

    pub async fn delete_app_price(&self, app_id: i64, model: String) -> Result<()> {
        self.state
            .stores
            .rates
            .delete_app_price(app_id, model)
            .await?;
        self.done((), Change::Routing).await
    }

    pub async fn put_alias(
        &self,
        model: String,
        targets: Vec<String>,
        strategy: String,
        weights: Option<Vec<u32>>,
    ) -> Result<AliasRow> {
        if self.state.config.routes.iter().any(|r| r.model == model) {
            return Err(ApiError::Conflict(format!(
                "alias '{model}' is declared in the config file; change it there"
            )));
        }
        let row = self
            .state
            .stores
            .aliases
            .put_alias(model, targets, strategy, weights)
            .await?;
        self.done(row, Change::Routing).await
    }

    pub async fn delete_alias(&self, model: String) -> Result<()> {
        self.state.stores.aliases.delete_alias(model).await?;
        self.done((), Change::Routing).await
    }

    pub async fn update_app(
        &self,
        id: i64,
        name: Option<String>,
        enabled: Option<bool>,
    ) -> Result<App> {
        let app = self.state.stores.apps.update_app(id, name, enabled).await?;
        self.done(app, Change::Auth).await
    }

    pub async fn delete_app(&self, id: i64) -> Result<()> {
        self.state.stores.apps.delete_app(id).await?;
        self.done((), Change::Auth).await
    }

    /// Applies a limits patch (`null` clears a field) to an app's or key's limits; they
    /// hold from the next request on.
    pub async fn patch_limits(
        &self,
        scope: crate::store::limits::Scope,
        patch: serde_json::Value,
    ) -> Result<crate::traffic::Limits> {
        let stores = &self.state.stores;
        let current = stores.limits.get_limits(scope).await?;
        let next = current
            .patch(&patch)
            .map_err(|(field, message)| ApiError::Validation { field, message })?;
        let saved = stores.limits.put_limits(scope, next).await?;
        self.done(saved, Change::Limits).await
    }

    pub async fn revoke_key(&self, app_id: i64, key_id: i64) -> Result<AppKey> {
        let key = self.state.stores.apps.revoke_key(app_id, key_id).await?;
        self.done(key, Change::Auth).await
    }
}
