//! What the rest of the host may ask of the store, one trait per concern, async at the
//! boundary. The embedded SQLite store implements all of them (`store::sqlite`); a
//! Postgres store implements the same traits without any caller changing. No SQL lives
//! outside `store/`. [`super::backend`] opens either and hands out [`Stores`].

use super::alerts::PendingAlert;
use super::aliases::AliasRow;
use super::app_prices::AppPrice;
use super::apps::{App, AppKey, KeyOwner};
use super::budgets::{Budget, StoredBudgets};
use super::calls::{CallFilter, CallRecord, CallRow, ExportWindow};
use super::credits::{CreditSummary, Grant, HoldResult, LedgerEntry, LedgerFilter};
use super::limits::{Scope, StoredLimits};
use super::providers::{
    CredentialChange, CredentialRow, LiveCredential, ProviderChange, ProviderRow,
};
use super::rate_history::{HistoryEntry, HistoryFilter};
use super::rates::Rate;
use super::responses::StoredResponse;
use super::secrets::Cipher;
use super::usage::{GroupBy, UsageFilter, UsageRow};
use super::StoreError;
use crate::traffic::Limits;
use async_trait::async_trait;
use std::sync::Arc;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Apps and their keys; the key lookup behind consumer authentication.
#[async_trait]
pub trait AppStore: Send + Sync {
    async fn list_apps(&self) -> Result<Vec<App>>;
    async fn get_app(&self, id: i64) -> Result<App>;
    /// Creates an app, disabled from the start when `enabled` is `Some(false)`.
    async fn create_app(&self, name: String, enabled: Option<bool>) -> Result<App>;
    async fn update_app(&self, id: i64, name: Option<String>, enabled: Option<bool>)
        -> Result<App>;
    async fn delete_app(&self, id: i64) -> Result<()>;
    async fn list_keys(&self, app_id: i64) -> Result<Vec<AppKey>>;
    /// A new key; the plaintext is returned once and never stored.
    async fn create_key(&self, app_id: i64, name: Option<String>) -> Result<(AppKey, String)>;
    async fn revoke_key(&self, app_id: i64, key_id: i64) -> Result<AppKey>;
    /// Who owns the key with this hash (revoked and disabled owners included).
    async fn key_owner(&self, hash: [u8; 32]) -> Result<Option<KeyOwner>>;
}

/// Stored provider instances and their (encrypted) credentials.
#[async_trait]
pub trait ProviderStore: Send + Sync {
    async fn list_providers(&self) -> Result<Vec<ProviderRow>>;
    async fn get_provider(&self, id: i64) -> Result<ProviderRow>;
    async fn create_provider(&self, change: ProviderChange) -> Result<ProviderRow>;
    async fn update_provider(&self, id: i64, change: ProviderChange) -> Result<ProviderRow>;
    async fn delete_provider(&self, id: i64) -> Result<()>;
    async fn list_credentials(&self, provider_id: i64) -> Result<Vec<CredentialRow>>;
    async fn get_credential(&self, provider_id: i64, id: i64) -> Result<CredentialRow>;
    async fn create_credential(
        &self,
        provider_id: i64,
        name: String,
        secret: String,
        weight: Option<i64>,
        enabled: Option<bool>,
    ) -> Result<CredentialRow>;
    async fn update_credential(
        &self,
        provider_id: i64,
        id: i64,
        change: CredentialChange,
    ) -> Result<CredentialRow>;
    async fn delete_credential(&self, provider_id: i64, id: i64) -> Result<()>;
    /// Every enabled credential with its secret opened, for the routing table.
    async fn live_credentials(&self) -> Result<Vec<LiveCredential>>;
    /// One credential's plaintext secret, for the admin "test" action.
    async fn credential_secret(&self, provider_id: i64, id: i64) -> Result<String>;
    /// Persists a credential's health so it survives a restart.
    async fn set_credential_state(
        &self,
        id: i64,
        state: String,
        until_ms: Option<i64>,
        last_error: Option<String>,
    ) -> Result<()>;
}

/// Operator-set prices per model and per app, and their history (every change writes
/// its history row in its own transaction).
#[async_trait]
pub trait RateStore: Send + Sync {
    async fn list_rates(&self) -> Result<Vec<Rate>>;
    /// Sets (or replaces) the rate of `rate.model`.
    async fn put_rate(&self, rate: Rate) -> Result<Rate>;
    async fn delete_rate(&self, model: String) -> Result<()>;
    /// Sets every rate of an import, each with an `import` history row noting `source`,
    /// all or nothing.
    async fn import_rates(&self, rates: Vec<Rate>, source: String) -> Result<usize>;
    /// One app's explicit prices (`NotFound` for an unknown app), or every app's.
    async fn list_app_prices(&self, app_id: Option<i64>) -> Result<Vec<AppPrice>>;
    /// Sets (or replaces) an app's price for `price.model` (micro-credits).
    async fn put_app_price(&self, app_id: i64, price: Rate) -> Result<AppPrice>;
    async fn delete_app_price(&self, app_id: i64, model: String) -> Result<()>;
    /// Newest first, and the next page's cursor.
    async fn rate_history(&self, filter: HistoryFilter)
        -> Result<(Vec<HistoryEntry>, Option<i64>)>;
}

/// Model aliases set through the admin API.
#[async_trait]
pub trait AliasStore: Send + Sync {
    async fn list_aliases(&self) -> Result<Vec<AliasRow>>;
    async fn put_alias(
        &self,
        model: String,
        targets: Vec<String>,
        strategy: String,
        weights: Option<Vec<u32>>,
    ) -> Result<AliasRow>;
    async fn delete_alias(&self, model: String) -> Result<()>;
}

/// Rate limits per app and per app key.
#[async_trait]
pub trait LimitStore: Send + Sync {
    async fn get_limits(&self, scope: Scope) -> Result<Limits>;
    async fn put_limits(&self, scope: Scope, limits: Limits) -> Result<Limits>;
    /// Every stored limit: (per app, per key).
    async fn all_limits(&self) -> Result<StoredLimits>;
}

/// OpenAI Responses kept for follow-up calls, per app.
#[async_trait]
pub trait ResponseStore: Send + Sync {
    async fn save_response(&self, response: StoredResponse) -> Result<()>;
    async fn get_response(&self, app_id: i64, id: String) -> Result<Option<StoredResponse>>;
    /// False when the app has no response with this id.
    async fn delete_response(&self, app_id: i64, id: String) -> Result<bool>;
}

/// Reading the call log back: listings, exports and usage reports. (Writing goes through
/// the call-log queue, `CallLog`, off the request path.)
#[async_trait]
pub trait CallQueries: Send + Sync {
    async fn list_calls(&self, filter: CallFilter) -> Result<(Vec<CallRow>, Option<i64>)>;
    async fn call_export_window(&self, filter: CallFilter) -> Result<ExportWindow>;
    async fn usage(&self, group: GroupBy, filter: UsageFilter) -> Result<Vec<UsageRow>>;
    /// The console's overview of one period (and the one before it).
    async fn overview(
        &self,
        q: super::overview::OverviewQuery,
    ) -> Result<super::overview::Overview>;
}

/// Credit grants, balances and the ledger. (Charges are written with the call records,
/// by the call-log writer.)
#[async_trait]
pub trait CreditStore: Send + Sync {
    /// `amount` nano-credits; `expires_at` Unix ms.
    async fn grant_credits(
        &self,
        app_id: i64,
        amount: i64,
        expires_at: Option<i64>,
        note: Option<String>,
    ) -> Result<Grant>;
    /// A grant for a payment event, at most once per `event_id`; `None`: granted already.
    async fn grant_credits_once(
        &self,
        event_id: String,
        app_id: i64,
        amount: i64,
        note: Option<String>,
    ) -> Result<Option<Grant>>;
    /// The balance after expiring what is due, and the grants.
    async fn credit_summary(&self, app_id: i64) -> Result<CreditSummary>;
    /// Just the balance and when the next grant expires (Unix ms), for admission.
    async fn credit_balance(&self, app_id: i64) -> Result<(i64, Option<i64>)>;
    async fn list_ledger(&self, filter: LedgerFilter) -> Result<(Vec<LedgerEntry>, Option<i64>)>;
    /// Expires every app's due grants; how many apps had some.
    async fn expire_credits(&self) -> Result<usize>;
    /// A signed operator correction (`adjustment` entry).
    async fn adjust_credits(&self, app_id: i64, amount: i64, note: String) -> Result<LedgerEntry>;
    /// Gives back (part of) a call's charge (`refund` entry); `None`: all that is left.
    async fn refund_call(
        &self,
        app_id: i64,
        call_id: i64,
        amount: Option<i64>,
        note: Option<String>,
    ) -> Result<LedgerEntry>;
    /// Whether this store keeps credit holds itself, shared by every instance on it
    /// (Postgres). Otherwise holds are the instance's memory (`billing::LocalHolds`).
    fn shares_holds(&self) -> bool {
        false
    }
    /// Holds `amount` of the app's balance (after expiring what is due, minus what live
    /// holds keep) until `lease_until` (Unix ms), or says why not. The hold is removed by
    /// the transaction that charges its call ([`CallRecord::hold_id`]) or by
    /// [`Self::release_holds`].
    async fn hold_credit(
        &self,
        _app_id: i64,
        _amount: i64,
        _lease_until: i64,
    ) -> Result<HoldResult> {
        Err(StoreError::Task("this store keeps no credit holds".into()))
    }
    /// What live holds keep of the app's balance.
    async fn held_credit(&self, _app_id: i64) -> Result<i64> {
        Err(StoreError::Task("this store keeps no credit holds".into()))
    }
    /// Removes holds whose calls will not be charged through the call log.
    async fn release_holds(&self, _ids: Vec<i64>) -> Result<()> {
        Err(StoreError::Task("this store keeps no credit holds".into()))
    }
}

/// Spend caps per app and per key, and the recorded spend they are checked against.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    async fn get_budget(&self, scope: Scope) -> Result<Budget>;
    async fn put_budget(&self, scope: Scope, budget: Budget) -> Result<Budget>;
    async fn all_budgets(&self) -> Result<StoredBudgets>;
    /// Micro-USD spent since `since_ms` (the start of a UTC day).
    async fn spent_since(&self, scope: Scope, since_ms: i64) -> Result<i64>;
}

/// The alert webhook outbox.
#[async_trait]
pub trait AlertStore: Send + Sync {
    async fn enqueue_alert(&self, event: String, data: String) -> Result<()>;
    /// Events due at `now_ms`, oldest first, claimed for `alerts::CLAIM_MS`: no other
    /// caller (instance) gets them meanwhile.
    async fn due_alerts(&self, now_ms: i64, limit: usize) -> Result<Vec<PendingAlert>>;
    async fn next_alert_due(&self) -> Result<Option<i64>>;
    async fn alert_delivered(&self, id: i64) -> Result<()>;
    async fn alert_failed(&self, id: i64, next_at: Option<i64>, error: String) -> Result<()>;
}

/// Settings and the master key's housekeeping (what start-up and the CLI need).
#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn setting(&self, key: String) -> Result<Option<String>>;
    async fn set_setting(&self, key: String, value: String) -> Result<()>;
    /// The first stored secrets (credential id, sealed bytes), to tell whether a master
    /// key is the one they were sealed under.
    async fn secret_sample(&self) -> Result<Vec<(i64, Vec<u8>)>>;
    /// Re-seals every secret under `new` in one transaction; nothing changes if any fails
    /// to open under `old`.
    async fn reencrypt_all(&self, old: Cipher, new: Cipher) -> Result<usize>;
    /// One round trip to the database, for `/readyz`.
    async fn ping(&self) -> Result<()>;
}

/// Where the call-log writer thread commits a batch: the records, their credit charges,
/// the usage rollups, key and credential last use and the balance alerts, in one
/// transaction. Called from the writer's own thread, so it may block.
pub trait CallSink: Send + Sync {
    fn write_calls(&self, batch: &[CallRecord]) -> Result<()>;
}

impl<T: CallSink + ?Sized> CallSink for Arc<T> {
    fn write_calls(&self, batch: &[CallRecord]) -> Result<()> {
        (**self).write_calls(batch)
    }
}

/// Every store concern, as the handlers hold them.
#[derive(Clone)]
pub struct Stores {
    pub apps: Arc<dyn AppStore>,
    pub providers: Arc<dyn ProviderStore>,
    pub rates: Arc<dyn RateStore>,
    pub aliases: Arc<dyn AliasStore>,
    pub calls: Arc<dyn CallQueries>,
    pub responses: Arc<dyn ResponseStore>,
    pub limits: Arc<dyn LimitStore>,
    pub credits: Arc<dyn CreditStore>,
    pub budgets: Arc<dyn BudgetStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub meta: Arc<dyn MetaStore>,
}

impl Stores {
    /// One implementation serving every concern.
    pub fn from_one<S>(store: Arc<S>) -> Stores
    where
        S: AppStore
            + ProviderStore
            + RateStore
            + AliasStore
            + CallQueries
            + ResponseStore
            + LimitStore
            + CreditStore
            + BudgetStore
            + AlertStore
            + MetaStore
            + 'static,
    {
        Stores {
            apps: store.clone(),
            providers: store.clone(),
            rates: store.clone(),
            aliases: store.clone(),
            calls: store.clone(),
            responses: store.clone(),
            credits: store.clone(),
            budgets: store.clone(),
            alerts: store.clone(),
            meta: store.clone(),
            limits: store,
        }
    }
}
