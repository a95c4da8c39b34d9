//! What every handler shares.

use crate::auth::AuthCache;
use crate::config::Config;
use crate::plugin_host::Registry;
use crate::resilience::credential_health::{HealthPolicy, HealthRegistry};
use crate::routing::{RoutingTable, Sources};
use crate::store::calls::CallLog;
use crate::store::traits::Stores;
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

pub struct AppState {
    pub config: Config,
    /// The routing table, swapped whole when plugins, providers or rates change.
    pub routing: ArcSwap<RoutingTable>,
    registry: Mutex<Registry>,
    /// Serialises rescans and rebuilds (watcher, SIGHUP, admin API).
    rebuild_lock: tokio::sync::Mutex<()>,
    pub upstream: Upstream,
    /// Every store concern behind its trait.
    pub stores: Stores,
    pub calls: CallLog,
    /// Credit billing's holds and cached balances.
    pub credits: Arc<crate::billing::Credits>,
    /// Spend caps per app and key, and the spend they are checked against.
    pub budgets: crate::billing::budgets::Budgets,
    /// Alert webhook events (`billing.webhook_url`).
    pub alerts: crate::billing::alerts::Alerts,
    /// Mutations that change in-memory state are published here (after they are applied
    /// locally), for whatever else must follow them (another instance, later).
    pub changes: tokio::sync::broadcast::Sender<Change>,
    /// The change feed's state (Postgres only).
    pub feed: crate::feed::FeedStatus,
    pub auth: AuthCache,
    pub health: HealthRegistry,
    pub policy: HealthPolicy,
    pub metrics: crate::observability::metrics::Metrics,
    /// The rate limits in force, swapped whole when one changes.
    pub limits: ArcSwap<crate::traffic::LimitTable>,
    /// Limiter state (this instance's; shareable behind the trait).
    pub counters: Arc<dyn crate::traffic::counters::Counters>,
    /// The response cache and when it applies.
    pub cache: crate::cache::Cache,
    /// Redis, when `shared.redis_url` is set.
    pub shared: Option<Arc<crate::shared::Shared>>,
    /// Trace export is on: spans carry OpenTelemetry context.
    pub telemetry_enabled: bool,
    /// The web console's sessions and playground key (this instance's memory).
    pub console: crate::console::Console,
    admin_token_hash: [u8; 32],
    id_prefix: String,
    next_id: AtomicU64,
}

/// Process environment lookup used for provider keys.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What an admin mutation changed, so the in-memory state built from it is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// Providers, credentials, rates or aliases: the routing table is rebuilt.
    Routing,
    /// Apps or app keys: the auth cache is cleared.
    Auth,
    /// Rate limits: the limit table is reloaded.
    Limits,
    /// Spend caps: the budget table is reloaded.
    Budgets,
}

impl Change {
    pub const ALL: [Change; 4] = [
        Change::Routing,
        Change::Auth,
        Change::Limits,
        Change::Budgets,
    ];

    /// Its name on the change feed.
    pub fn name(self) -> &'static str {
        match self {
            Change::Routing => "routing",
            Change::Auth => "auth",
            Change::Limits => "limits",
            Change::Budgets => "budgets",
        }
    }

    pub fn from_name(name: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What the routing table is built from, read from the store.
#[derive(Default)]
struct Stored {
    providers: Vec<crate::store::providers::ProviderRow>,
    credentials: Vec<crate::store::providers::LiveCredential>,
    rates: Vec<crate::store::rates::Rate>,
    app_prices: Vec<crate::store::app_prices::AppPrice>,
    aliases: Vec<crate::store::aliases::AliasRow>,
}

async fn read_stored(stores: &Stores) -> Stored {
    let read = async {
        Ok::<_, crate::store::StoreError>(Stored {
            providers: stores.providers.list_providers().await?,
            credentials: stores.providers.live_credentials().await?,
            rates: stores.rates.list_rates().await?,
            app_prices: stores.rates.list_app_prices(None).await?,
            aliases: stores.aliases.list_aliases().await?,
        })
    };
    match read.await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read providers from the store; serving plugin and config providers only");
            Stored::default()
        }
    }
}

/// Builds a routing table from the registry and what the store holds.
fn build_table(
    config: &Config,
    registry: &Registry,
    stored: &Stored,
    health: &HealthRegistry,
    policy: &HealthPolicy,
) -> RoutingTable {
    RoutingTable::build(&Sources {
        registry,
        configured: &config.providers,
        stored: &stored.providers,
        credentials: &stored.credentials,
        rates: &stored.rates,
        app_prices: &stored.app_prices,
        aliases: &config.routes,
        stored_aliases: &stored.aliases,
        health,
        policy,
        upstream: &config.upstream,
        env: &process_env,
    })
}

/// The limit table from the config's defaults and the stored limits; a store that cannot
/// be read leaves only the defaults (and says so).
async fn read_limits(config: &Config, stores: &Stores) -> crate::traffic::LimitTable {
    let (apps, keys) = match stores.limits.all_limits().await {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, "stored rate limits could not be read; only the config's apply");
            Default::default()
        }
    };
    crate::traffic::LimitTable::new(config.limits.clone(), apps, keys)
}

/// Every stored spend cap; `None` (and an error logged) when the store cannot be read.
async fn read_budgets(stores: &Stores) -> Option<crate::store::budgets::StoredBudgets> {
    match stores.budgets.all_budgets().await {
        Ok(all) => Some(all),
        Err(e) => {
            tracing::error!(error = %e, "stored budgets could not be read");
            None
        }
    }
}

pub struct Parts {
    pub config: Config,
    pub registry: Registry,
    pub upstream: Upstream,
    /// Every store concern behind its trait.
    pub stores: Stores,
    pub calls: CallLog,
    pub credits: Arc<crate::billing::Credits>,
    pub admin_token_hash: [u8; 32],
    pub telemetry_enabled: bool,
}

impl AppState {
    pub async fn new(p: Parts) -> Self {
        let health = HealthRegistry::default();
        let policy = p.config.health_policy();
        let stored = read_stored(&p.stores).await;
        let table = build_table(&p.config, &p.registry, &stored, &health, &policy);
        let limits = read_limits(&p.config, &p.stores).await;
        let mut budgets = crate::billing::budgets::Budgets::new(
            read_budgets(&p.stores).await.unwrap_or_default(),
        );
        if p.config
            .storage
            .url
            .as_ref()
            .is_some_and(|u| crate::store::pg::is_postgres_url(u.expose().trim()))
        {
            budgets = budgets.resync_every(crate::billing::budgets::RESYNC_MS);
        }
        let mut rnd = [0u8; 4];
        let _ = getrandom::fill(&mut rnd);
        let metrics = crate::observability::metrics::Metrics::new();
        let shared = crate::shared::Shared::start(
            &p.config.shared,
            metrics.redis_errors.clone(),
            metrics.redis_up.clone(),
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "Redis not used");
            None
        });
        let counters: Arc<dyn crate::traffic::counters::Counters> = match &shared {
            Some(s) => Arc::new(crate::traffic::shared_counters::SharedCounters::new(
                s.clone(),
            )),
            None => Arc::new(crate::traffic::counters::LocalCounters::default()),
        };
        AppState {
            routing: ArcSwap::from_pointee(table),
            limits: ArcSwap::from_pointee(limits),
            counters,
            cache: crate::cache::Cache::new(&p.config, shared.clone()),
            shared,
            registry: Mutex::new(p.registry),
            rebuild_lock: tokio::sync::Mutex::new(()),
            upstream: p.upstream,
            auth: AuthCache::with_outage_grace(
                p.stores.apps.clone(),
                p.calls.health().clone(),
                std::time::Duration::from_secs(p.config.storage.outage_grace_seconds),
            ),
            health,
            policy,
            metrics,
            telemetry_enabled: p.telemetry_enabled,
            console: crate::console::Console::new(&p.config.console),
            stores: p.stores,
            calls: p.calls,
            credits: p.credits,
            budgets,
            alerts: crate::billing::alerts::Alerts::new(&p.config.billing),
            changes: tokio::sync::broadcast::channel(64).0,
            feed: Default::default(),
            admin_token_hash: p.admin_token_hash,
            id_prefix: hex::encode(rnd),
            next_id: AtomicU64::new(1),
            config: p.config,
        }
    }

    /// Constant-time comparison through hashes (equal lengths whatever was sent).
    pub fn is_admin_token(&self, presented: &str) -> bool {
        crate::admin::token::hash(presented)
            .ct_eq(&self.admin_token_hash)
            .into()
    }

    /// `req-<instance prefix>-<hex counter>`, formatted on the stack and copied once.
    pub fn new_request_id(&self) -> hyper::header::HeaderValue {
        use std::io::Write;
        let mut buf = [0u8; 48];
        let mut w = &mut buf[..];
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = write!(w, "req-{}-{n:x}", self.id_prefix);
        let len = 48 - w.len();
        // The prefix is hex: always a valid value.
        hyper::header::HeaderValue::from_bytes(&buf[..len])
            .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("req"))
    }

    /// Rescans the plugin directory, and rebuilds the routing table if anything changed.
    pub async fn rescan(self: &Arc<Self>) {
        self.rebuild(true, false).await
    }

    /// Rescans the plugin directory and rebuilds the routing table whatever changed, so
    /// what another process wrote to the store (`aihub rates import`) is read too
    /// (SIGHUP, `POST /api/admin/plugins/reload`).
    pub async fn refresh(self: &Arc<Self>) {
        self.rebuild(true, true).await
    }

    /// Rebuilds the routing table from the registry and the store (after admin changes).
    pub async fn reload_routes(self: &Arc<Self>) {
        self.rebuild(false, true).await
    }

    /// Applies a change to the in-memory state before the admin call answers, so it holds
    /// from the next request on, then publishes it.
    pub async fn changed(self: &Arc<Self>, change: Change) {
        self.apply(change).await;
        // No subscriber is fine: there is no change feed on SQLite.
        let _ = self.changes.send(change);
    }

    /// Refreshes what `change` touched from the store, without publishing it (what the
    /// change feed does with another instance's changes).
    pub async fn apply(self: &Arc<Self>, change: Change) {
        match change {
            Change::Routing => self.reload_routes().await,
            Change::Auth => self.auth.invalidate(),
            Change::Limits => {
                let table = read_limits(&self.config, &self.stores).await;
                self.limits.store(Arc::new(table));
            }
            Change::Budgets => {
                if let Some(all) = read_budgets(&self.stores).await {
                    self.budgets.replace(all);
                }
            }
        }
    }

    /// `rescan`: look at the plugin directory first; `always`: rebuild even when no
    /// plugin changed.
    async fn rebuild(self: &Arc<Self>, rescan: bool, always: bool) {
        let _guard = self.rebuild_lock.lock().await;
        let stored = read_stored(&self.stores).await;
        let state = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let Ok(mut registry) = state.registry.lock() else {
                tracing::error!("plugin registry lock poisoned; rebuild skipped");
                return;
            };
            if rescan && !registry.rescan() && !always {
                return;
            }
            let table = build_table(
                &state.config,
                &registry,
                &stored,
                &state.health,
                &state.policy,
            );
            tracing::info!(prefixes = ?table.prefixes(), "routing table updated");
            state.routing.store(Arc::new(table));
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "routing rebuild failed");
        }
    }

    /// Brings the plugin load counters up to the registry's.
    pub fn sync_plugin_metrics(&self) {
        let Ok(r) = self.registry.lock() else { return };
        for (result, total) in [("loaded", r.loaded_count), ("refused", r.refused_count)] {
            let c = self.metrics.plugin_loads.get_or_create(
                &crate::observability::metrics::ResultLabels {
                    result: result.into(),
                },
            );
            let seen = c.get();
            if total > seen {
                c.inc_by(total - seen);
            }
        }
    }

    pub fn plugin_views(&self) -> Vec<crate::plugin_host::registry::PluginView> {
        match self.registry.lock() {
            Ok(r) => r.views(),
            Err(_) => Vec::new(),
        }
    }
}
