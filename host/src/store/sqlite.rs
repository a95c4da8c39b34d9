//! The store traits served by the embedded SQLite store. Each call runs the synchronous
//! rusqlite code on tokio's blocking pool, so no caller does its own `spawn_blocking`.

use super::alerts::PendingAlert;
use super::aliases::AliasRow;
use super::app_prices::AppPrice;
use super::apps::{App, AppKey, KeyOwner};
use super::budgets::{Budget, StoredBudgets};
use super::calls::{CallFilter, CallRow, ExportWindow};
use super::credits::{CreditSummary, Grant, LedgerEntry, LedgerFilter};
use super::limits::{Scope, StoredLimits};
use super::providers::{
    CredentialChange, CredentialRow, LiveCredential, ProviderChange, ProviderRow,
};
use super::rate_history::{HistoryEntry, HistoryFilter};
use super::rates::Rate;
use super::responses::StoredResponse;
use super::secrets::Cipher;
use super::traits::{
    AlertStore, AliasStore, AppStore, BudgetStore, CallQueries, CallSink, CreditStore, LimitStore,
    MetaStore, ProviderStore, RateStore, ResponseStore, Result,
};
use super::usage::{GroupBy, UsageFilter, UsageRow};
use super::{Store, StoreError};
use crate::traffic::Limits;
use async_trait::async_trait;

/// The SQLite store with the cipher its secrets are sealed under.
#[derive(Clone)]
pub struct SqliteStores {
    store: Store,
    cipher: Cipher,
}

impl SqliteStores {
    pub fn new(store: Store, cipher: Cipher) -> Self {
        SqliteStores { store, cipher }
    }

    /// Runs `f` with the store (and cipher) on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store, &Cipher) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this.store, &this.cipher))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[async_trait]
impl AppStore for SqliteStores {
    async fn list_apps(&self) -> Result<Vec<App>> {
        self.run(|s, _| s.list_apps()).await
    }
    async fn get_app(&self, id: i64) -> Result<App> {
        self.run(move |s, _| s.get_app(id)).await
    }
    async fn create_app(&self, name: String, enabled: Option<bool>) -> Result<App> {
        self.run(move |s, _| {
            let app = s.create_app(&name)?;
            if enabled == Some(false) {
                return s.update_app(app.id, None, Some(false));
            }
            Ok(app)
        })
        .await
    }
    async fn update_app(
        &self,
        id: i64,
        name: Option<String>,
        enabled: Option<bool>,
    ) -> Result<App> {
        self.run(move |s, _| s.update_app(id, name.as_deref(), enabled))
            .await
    }
    async fn delete_app(&self, id: i64) -> Result<()> {
        self.run(move |s, _| s.delete_app(id)).await
    }
    async fn list_keys(&self, app_id: i64) -> Result<Vec<AppKey>> {
        self.run(move |s, _| s.list_keys(app_id)).await
    }
    async fn create_key(&self, app_id: i64, name: Option<String>) -> Result<(AppKey, String)> {
        self.run(move |s, _| s.create_key(app_id, name.as_deref()))
            .await
    }
    async fn revoke_key(&self, app_id: i64, key_id: i64) -> Result<AppKey> {
        self.run(move |s, _| s.revoke_key(app_id, key_id)).await
    }
    async fn key_owner(&self, hash: [u8; 32]) -> Result<Option<KeyOwner>> {
        self.run(move |s, _| s.key_owner(&hash)).await
    }
}

#[async_trait]
impl ProviderStore for SqliteStores {
    async fn list_providers(&self) -> Result<Vec<ProviderRow>> {
        self.run(|s, _| s.list_providers()).await
    }
    async fn get_provider(&self, id: i64) -> Result<ProviderRow> {
        self.run(move |s, _| s.get_provider(id)).await
    }
    async fn create_provider(&self, change: ProviderChange) -> Result<ProviderRow> {
        self.run(move |s, _| s.create_provider(change)).await
    }
    async fn update_provider(&self, id: i64, change: ProviderChange) -> Result<ProviderRow> {
        self.run(move |s, _| s.update_provider(id, change)).await
    }
    async fn delete_provider(&self, id: i64) -> Result<()> {
        self.run(move |s, _| s.delete_provider(id)).await
    }
    async fn list_credentials(&self, provider_id: i64) -> Result<Vec<CredentialRow>> {
        self.run(move |s, _| s.list_credentials(provider_id)).await
    }
    async fn get_credential(&self, provider_id: i64, id: i64) -> Result<CredentialRow> {
        self.run(move |s, _| s.get_credential(provider_id, id))
            .await
    }
    async fn create_credential(
        &self,
        provider_id: i64,
        name: String,
        secret: String,
        weight: Option<i64>,
        enabled: Option<bool>,
    ) -> Result<CredentialRow> {
        self.run(move |s, c| s.create_credential(c, provider_id, &name, &secret, weight, enabled))
            .await
    }
    async fn update_credential(
        &self,
        provider_id: i64,
        id: i64,
        change: CredentialChange,
    ) -> Result<CredentialRow> {
        self.run(move |s, c| s.update_credential(c, provider_id, id, change))
            .await
    }
    async fn delete_credential(&self, provider_id: i64, id: i64) -> Result<()> {
        self.run(move |s, _| s.delete_credential(provider_id, id))
            .await
    }
    async fn live_credentials(&self) -> Result<Vec<LiveCredential>> {
        self.run(|s, c| s.live_credentials(c)).await
    }
    async fn credential_secret(&self, provider_id: i64, id: i64) -> Result<String> {
        self.run(move |s, c| s.credential_secret(c, provider_id, id))
            .await
    }
    async fn set_credential_state(
        &self,
        id: i64,
        state: String,
        until_ms: Option<i64>,
        last_error: Option<String>,
    ) -> Result<()> {
        self.run(move |s, _| s.set_credential_state(id, &state, until_ms, last_error.as_deref()))
            .await
    }
}

#[async_trait]
impl RateStore for SqliteStores {
    async fn list_rates(&self) -> Result<Vec<Rate>> {
        self.run(|s, _| s.list_rates()).await
    }
    async fn put_rate(&self, rate: Rate) -> Result<Rate> {
        self.run(move |s, _| s.put_rate(&rate)).await
    }
    async fn delete_rate(&self, model: String) -> Result<()> {
        self.run(move |s, _| s.delete_rate(&model)).await
    }
    async fn import_rates(&self, rates: Vec<Rate>, source: String) -> Result<usize> {
        self.run(move |s, _| s.import_rates(&rates, &source)).await
    }
    async fn list_app_prices(&self, app_id: Option<i64>) -> Result<Vec<AppPrice>> {
        self.run(move |s, _| s.list_app_prices(app_id)).await
    }
    async fn put_app_price(&self, app_id: i64, price: Rate) -> Result<AppPrice> {
        self.run(move |s, _| s.put_app_price(app_id, &price)).await
    }
    async fn delete_app_price(&self, app_id: i64, model: String) -> Result<()> {
        self.run(move |s, _| s.delete_app_price(app_id, &model))
            .await
    }
    async fn rate_history(
        &self,
        filter: HistoryFilter,
    ) -> Result<(Vec<HistoryEntry>, Option<i64>)> {
        self.run(move |s, _| s.rate_history(&filter)).await
    }
}

#[async_trait]
impl AliasStore for SqliteStores {
    async fn list_aliases(&self) -> Result<Vec<AliasRow>> {
        self.run(|s, _| s.list_aliases()).await
    }
    async fn put_alias(
        &self,
        model: String,
        targets: Vec<String>,
        strategy: String,
        weights: Option<Vec<u32>>,
    ) -> Result<AliasRow> {
        self.run(move |s, _| s.put_alias(&model, &targets, &strategy, weights.as_deref()))
            .await
    }
    async fn delete_alias(&self, model: String) -> Result<()> {
        self.run(move |s, _| s.delete_alias(&model)).await
    }
}

#[async_trait]
impl CallQueries for SqliteStores {
    async fn list_calls(&self, filter: CallFilter) -> Result<(Vec<CallRow>, Option<i64>)> {
        self.run(move |s, _| s.list_calls(&filter)).await
    }
    async fn call_export_window(&self, filter: CallFilter) -> Result<ExportWindow> {
        self.run(move |s, _| s.call_export_window(&filter)).await
    }
    async fn usage(&self, group: GroupBy, filter: UsageFilter) -> Result<Vec<UsageRow>> {
        self.run(move |s, _| s.usage(group, &filter)).await
    }
    async fn overview(
        &self,
        q: super::overview::OverviewQuery,
    ) -> Result<super::overview::Overview> {
        self.run(move |s, _| s.overview(&q)).await
    }
}

#[async_trait]
impl LimitStore for SqliteStores {
    async fn get_limits(&self, scope: Scope) -> Result<Limits> {
        self.run(move |s, _| s.get_limits(scope)).await
    }
    async fn put_limits(&self, scope: Scope, limits: Limits) -> Result<Limits> {
        self.run(move |s, _| s.put_limits(scope, &limits)).await
    }
    async fn all_limits(&self) -> Result<StoredLimits> {
        self.run(|s, _| s.all_limits()).await
    }
}

#[async_trait]
impl CreditStore for SqliteStores {
    async fn grant_credits(
        &self,
        app_id: i64,
        amount: i64,
        expires_at: Option<i64>,
        note: Option<String>,
    ) -> Result<Grant> {
        self.run(move |s, _| s.grant_credits(app_id, amount, expires_at, note.as_deref()))
            .await
    }
    async fn grant_credits_once(
        &self,
        event_id: String,
        app_id: i64,
        amount: i64,
        note: Option<String>,
    ) -> Result<Option<Grant>> {
        self.run(move |s, _| s.grant_credits_once(&event_id, app_id, amount, note.as_deref()))
            .await
    }
    async fn credit_summary(&self, app_id: i64) -> Result<CreditSummary> {
        self.run(move |s, _| s.credit_summary(app_id)).await
    }
    async fn credit_balance(&self, app_id: i64) -> Result<(i64, Option<i64>)> {
        self.run(move |s, _| s.credit_balance(app_id)).await
    }
    async fn list_ledger(&self, filter: LedgerFilter) -> Result<(Vec<LedgerEntry>, Option<i64>)> {
        self.run(move |s, _| s.list_ledger(&filter)).await
    }
    async fn expire_credits(&self) -> Result<usize> {
        self.run(|s, _| s.expire_credits()).await
    }
    async fn adjust_credits(&self, app_id: i64, amount: i64, note: String) -> Result<LedgerEntry> {
        self.run(move |s, _| s.adjust_credits(app_id, amount, &note))
            .await
    }
    async fn refund_call(
        &self,
        app_id: i64,
        call_id: i64,
        amount: Option<i64>,
        note: Option<String>,
    ) -> Result<LedgerEntry> {
        self.run(move |s, _| s.refund_call(app_id, call_id, amount, note.as_deref()))
            .await
    }
}

#[async_trait]
impl BudgetStore for SqliteStores {
    async fn get_budget(&self, scope: Scope) -> Result<Budget> {
        self.run(move |s, _| s.get_budget(scope)).await
    }
    async fn put_budget(&self, scope: Scope, budget: Budget) -> Result<Budget> {
        self.run(move |s, _| s.put_budget(scope, budget)).await
    }
    async fn all_budgets(&self) -> Result<StoredBudgets> {
        self.run(|s, _| s.all_budgets()).await
    }
    async fn spent_since(&self, scope: Scope, since_ms: i64) -> Result<i64> {
        self.run(move |s, _| s.spent_since(scope, since_ms)).await
    }
}

#[async_trait]
impl AlertStore for SqliteStores {
    async fn enqueue_alert(&self, event: String, data: String) -> Result<()> {
        self.run(move |s, _| s.enqueue_alert(&event, &data)).await
    }
    async fn due_alerts(&self, now_ms: i64, limit: usize) -> Result<Vec<PendingAlert>> {
        self.run(move |s, _| s.due_alerts(now_ms, limit)).await
    }
    async fn next_alert_due(&self) -> Result<Option<i64>> {
        self.run(|s, _| s.next_alert_due()).await
    }
    async fn alert_delivered(&self, id: i64) -> Result<()> {
        self.run(move |s, _| s.alert_delivered(id)).await
    }
    async fn alert_failed(&self, id: i64, next_at: Option<i64>, error: String) -> Result<()> {
        self.run(move |s, _| s.alert_failed(id, next_at, &error))
            .await
    }
}

#[async_trait]
impl MetaStore for SqliteStores {
    async fn setting(&self, key: String) -> Result<Option<String>> {
        self.run(move |s, _| s.setting(&key)).await
    }
    async fn set_setting(&self, key: String, value: String) -> Result<()> {
        self.run(move |s, _| s.set_setting(&key, &value)).await
    }
    async fn secret_sample(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        self.run(|s, _| s.secret_sample()).await
    }
    async fn reencrypt_all(&self, old: Cipher, new: Cipher) -> Result<usize> {
        self.run(move |s, _| s.reencrypt_all(&old, &new)).await
    }
    async fn ping(&self) -> Result<()> {
        self.run(|s, _| s.ping()).await
    }
}

impl CallSink for Store {
    fn write_calls(&self, batch: &[super::calls::CallRecord]) -> Result<()> {
        Store::write_calls(self, batch)
    }
}

#[async_trait]
impl ResponseStore for SqliteStores {
    async fn save_response(&self, response: StoredResponse) -> Result<()> {
        self.run(move |s, _| s.save_response(&response)).await
    }
    async fn get_response(&self, app_id: i64, id: String) -> Result<Option<StoredResponse>> {
        self.run(move |s, _| s.get_response(app_id, &id)).await
    }
    async fn delete_response(&self, app_id: i64, id: String) -> Result<bool> {
        self.run(move |s, _| s.delete_response(app_id, &id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;
    use crate::store::traits::Stores;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_concern_is_served_through_the_traits() {
        let (_d, store) = test_store();
        let stores = Stores::from_one(Arc::new(SqliteStores::new(store, Cipher::generate())));
        let app = stores
            .apps
            .create_app("t".into(), Some(false))
            .await
            .unwrap();
        assert!(!app.enabled);
        let (key, plain) = stores.apps.create_key(app.id, None).await.unwrap();
        let owner = stores
            .apps
            .key_owner(crate::store::apps::hash_key(&plain))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(owner.key_id, key.id);
        let p = stores
            .providers
            .create_provider(ProviderChange {
                prefix: Some("p".into()),
                plugin: Some("openai".into()),
                base_url: Some(Some("http://127.0.0.1:9".into())),
                ..Default::default()
            })
            .await
            .unwrap();
        let c = stores
            .providers
            .create_credential(p.id, "k".into(), "sk-secret-1".into(), None, None)
            .await
            .unwrap();
        assert_eq!(
            stores
                .providers
                .credential_secret(p.id, c.id)
                .await
                .unwrap(),
            "sk-secret-1"
        );
        assert_eq!(stores.providers.live_credentials().await.unwrap().len(), 1);
        stores
            .rates
            .put_rate(Rate {
                model: "p/m".into(),
                input_per_mtok_micros: 1,
                output_per_mtok_micros: 2,
                ..Rate::default()
            })
            .await
            .unwrap();
        assert_eq!(stores.rates.list_rates().await.unwrap().len(), 1);
        assert!(matches!(
            stores.apps.get_app(9999).await,
            Err(StoreError::NotFound(_))
        ));
    }
}
