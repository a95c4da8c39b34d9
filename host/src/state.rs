//! What every handler shares.

use crate::config::Config;
use crate::plugins::Registry;
use crate::routing::RoutingTable;
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

pub struct AppState {
    pub config: Config,
    pub routes: ArcSwap<RoutingTable>,
    registry: Mutex<Registry>,
    /// Serialises rescans (watcher, SIGHUP, admin API).
    rescan_lock: tokio::sync::Mutex<()>,
    pub upstream: Upstream,
    admin_token_hash: [u8; 32],
    id_prefix: String,
    next_id: AtomicU64,
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Process environment lookup used for provider keys.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl AppState {
    pub fn new(config: Config, registry: Registry, upstream: Upstream, admin_token: &str) -> Self {
        let table = RoutingTable::build(&registry, &config.providers, &process_env);
        let mut rnd = [0u8; 4];
        let _ = getrandom::fill(&mut rnd);
        AppState {
            routes: ArcSwap::from_pointee(table),
            registry: Mutex::new(registry),
            rescan_lock: tokio::sync::Mutex::new(()),
            upstream,
            admin_token_hash: sha256(admin_token),
            id_prefix: hex::encode(rnd),
            next_id: AtomicU64::new(1),
            config,
        }
    }

    /// Constant-time comparison through hashes (equal lengths whatever was sent).
    pub fn is_admin_token(&self, presented: &str) -> bool {
        sha256(presented).ct_eq(&self.admin_token_hash).into()
    }

    pub fn new_request_id(&self) -> String {
        format!("req-{}-{:x}", self.id_prefix, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Rescans the plugin directory and swaps in a new routing table if anything changed.
    pub async fn rescan(self: &Arc<Self>) {
        let _guard = self.rescan_lock.lock().await;
        let state = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let Ok(mut registry) = state.registry.lock() else {
                tracing::error!("plugin registry lock poisoned; rescan skipped");
                return;
            };
            if registry.rescan() {
                let table = RoutingTable::build(&registry, &state.config.providers, &process_env);
                tracing::info!(prefixes = ?table.prefixes(), "routing table updated");
                state.routes.store(Arc::new(table));
            }
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "plugin rescan failed");
        }
    }

    pub fn plugin_views(&self) -> Vec<crate::plugins::registry::PluginView> {
        match self.registry.lock() {
            Ok(r) => r.views(),
            Err(_) => Vec::new(),
        }
    }
}
