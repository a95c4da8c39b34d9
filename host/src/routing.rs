//! The routing table: model prefix -> provider instance, with its credentials and the
//! prices used for cost. Rebuilt whole when plugins, providers, credentials or rates
//! change and swapped in atomically; requests in flight keep the `Arc<Route>` (and so the
//! adapter) they started with.

use crate::config::ProviderEntry;
use crate::plugins::Registry;
use crate::store::providers::{LiveCredential, ProviderRow};
use crate::store::rates::Rate;
use plugin_api::host::{Adapter, PluginLibrary};
use plugin_api::{AuthScheme, ModelSpec, ProviderConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A key a provider can be called with.
#[derive(Clone)]
pub struct RouteCredential {
    /// The store's id; `None` for a key from the environment.
    pub id: Option<i64>,
    pub weight: u32,
    pub secret: String,
}

impl std::fmt::Debug for RouteCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCredential")
            .field("id", &self.id)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

/// Where a provider instance was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Plugin,
    Config,
    Store,
}

/// A routable provider instance.
#[derive(Debug)]
pub struct Route {
    pub prefix: String,
    pub plugin: String,
    pub plugin_version: String,
    pub base_url: String,
    pub auth: AuthScheme,
    pub source: Source,
    pub store_id: Option<i64>,
    pub credentials: Vec<RouteCredential>,
    /// Where an environment key was expected, for the error message when none is set.
    pub api_key_env: Option<String>,
    pub models: Vec<ModelSpec>,
    pub adapter: Adapter,
    next: AtomicU64,
    _library: Arc<PluginLibrary>,
}

impl Route {
    /// Weighted round-robin over the credentials with weight > 0.
    pub fn pick_credential(&self) -> Option<&RouteCredential> {
        let total: u64 = self.credentials.iter().map(|c| c.weight as u64).sum();
        if total == 0 {
            return None;
        }
        let mut n = self.next.fetch_add(1, Ordering::Relaxed) % total;
        for c in &self.credentials {
            if n < c.weight as u64 {
                return Some(c);
            }
            n -= c.weight as u64;
        }
        None
    }
}

/// What the table is built from.
pub struct Sources<'a> {
    pub registry: &'a Registry,
    pub configured: &'a [ProviderEntry],
    pub stored: &'a [ProviderRow],
    pub credentials: &'a [LiveCredential],
    pub rates: &'a [Rate],
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: HashMap<String, Arc<Route>>,
    /// `prefix/model` -> price; operator rates override plugin list prices.
    prices: HashMap<String, Rate>,
    /// Providers that could not be built, and why (shown to operators).
    pub problems: Vec<String>,
}

/// A declared provider before its adapter is made.
struct Decl {
    prefix: String,
    plugin: String,
    base_url: Option<String>,
    options: serde_json::Value,
    models: Option<Vec<String>>,
    source: Source,
    store_id: Option<i64>,
    api_key_env: Option<String>,
}

fn per_mtok_micros(usd: f64) -> i64 {
    (usd * 1_000_000.0).round() as i64
}

impl RoutingTable {
    pub fn get(&self, prefix: &str) -> Option<&Arc<Route>> {
        self.routes.get(prefix)
    }

    pub fn price(&self, model: &str) -> Option<&Rate> {
        self.prices.get(model)
    }

    /// Prefixes in sorted order.
    pub fn prefixes(&self) -> Vec<&str> {
        let mut p: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        p.sort_unstable();
        p
    }

    pub fn routes_sorted(&self) -> Vec<&Arc<Route>> {
        let mut r: Vec<&Arc<Route>> = self.routes.values().collect();
        r.sort_unstable_by(|a, b| a.prefix.cmp(&b.prefix));
        r
    }

    /// Plugin defaults first; `[[providers]]` from config override them; providers from
    /// the store override both (the admin API refuses prefixes declared in config).
    pub fn build(src: &Sources<'_>) -> Self {
        let mut table = RoutingTable::default();
        // The latest file carrying a plugin name wins.
        let mut by_name: BTreeMap<String, Arc<PluginLibrary>> = BTreeMap::new();
        let mut decls: BTreeMap<String, Decl> = BTreeMap::new();
        for loaded in src.registry.active() {
            let lib = &loaded.library;
            by_name.insert(lib.manifest().name.clone(), lib.clone());
            for spec in &lib.manifest().providers {
                decls.insert(
                    spec.prefix.clone(),
                    Decl {
                        prefix: spec.prefix.clone(),
                        plugin: lib.manifest().name.clone(),
                        base_url: None,
                        options: serde_json::json!({}),
                        models: None,
                        source: Source::Plugin,
                        store_id: None,
                        api_key_env: spec.api_key_env.clone(),
                    },
                );
            }
        }
        for e in src.configured {
            decls.insert(
                e.prefix.clone(),
                Decl {
                    prefix: e.prefix.clone(),
                    plugin: e.plugin.clone(),
                    base_url: e.base_url.clone(),
                    options: if e.options.is_null() {
                        serde_json::json!({})
                    } else {
                        e.options.clone()
                    },
                    models: e.models.clone(),
                    source: Source::Config,
                    store_id: None,
                    api_key_env: e.api_key_env.clone(),
                },
            );
        }
        for p in src.stored {
            if !p.enabled {
                decls.remove(&p.prefix);
                continue;
            }
            decls.insert(
                p.prefix.clone(),
                Decl {
                    prefix: p.prefix.clone(),
                    plugin: p.plugin.clone(),
                    base_url: p.base_url.clone(),
                    options: p.options.clone(),
                    models: p.models.clone(),
                    source: Source::Store,
                    store_id: Some(p.id),
                    api_key_env: None,
                },
            );
        }
        for decl in decls.into_values() {
            let Some(lib) = by_name.get(&decl.plugin) else {
                table.problems.push(format!(
                    "provider '{}': plugin '{}' is not loaded (loaded: {})",
                    decl.prefix,
                    decl.plugin,
                    by_name.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            table.insert(lib, decl, src);
        }
        for route in table.routes.values() {
            for m in &route.models {
                if let (Some(i), Some(o)) = (m.input_price_per_mtok, m.output_price_per_mtok) {
                    let model = format!("{}/{}", route.prefix, m.id);
                    table.prices.insert(
                        model.clone(),
                        Rate {
                            model,
                            input_per_mtok_micros: per_mtok_micros(i),
                            output_per_mtok_micros: per_mtok_micros(o),
                            cached_per_mtok_micros: None,
                            updated_at: 0,
                        },
                    );
                }
            }
        }
        for r in src.rates {
            table.prices.insert(r.model.clone(), r.clone());
        }
        for p in &table.problems {
            tracing::warn!(problem = %p, "provider not routable");
        }
        table
    }

    fn insert(&mut self, lib: &Arc<PluginLibrary>, decl: Decl, src: &Sources<'_>) {
        let manifest = lib.manifest();
        let default = manifest
            .providers
            .iter()
            .find(|p| p.prefix == decl.prefix)
            .or_else(|| manifest.providers.first());
        let base_url = decl
            .base_url
            .clone()
            .or_else(|| default.map(|d| d.base_url.clone()))
            .unwrap_or_default();
        let auth = default.map(|d| d.auth.clone()).unwrap_or_default();
        let models = match &decl.models {
            Some(ids) => ids.iter().map(ModelSpec::chat).collect(),
            None => manifest
                .providers
                .iter()
                .find(|p| p.prefix == decl.prefix)
                .map(|p| p.models.clone())
                .unwrap_or_default(),
        };
        let credentials: Vec<RouteCredential> = match decl.store_id {
            Some(id) => src
                .credentials
                .iter()
                .filter(|c| c.provider_id == id)
                .map(|c| RouteCredential {
                    id: Some(c.id),
                    weight: c.weight.clamp(0, u32::MAX as i64) as u32,
                    secret: c.secret.clone(),
                })
                .collect(),
            None => decl
                .api_key_env
                .as_deref()
                .and_then(src.env)
                .filter(|k| !k.is_empty())
                .map(|secret| RouteCredential {
                    id: None,
                    weight: 1,
                    secret,
                })
                .into_iter()
                .collect(),
        };
        let config = ProviderConfig {
            prefix: decl.prefix.clone(),
            base_url: base_url.clone(),
            options: decl.options.clone(),
        };
        match lib.new_adapter(&config) {
            Ok(adapter) => {
                let route = Route {
                    prefix: decl.prefix.clone(),
                    plugin: manifest.name.clone(),
                    plugin_version: manifest.version.clone(),
                    base_url,
                    auth,
                    source: decl.source,
                    store_id: decl.store_id,
                    credentials,
                    api_key_env: decl.api_key_env,
                    models,
                    adapter,
                    next: AtomicU64::new(0),
                    _library: lib.clone(),
                };
                self.routes.insert(decl.prefix, Arc::new(route));
            }
            Err(e) => self.problems.push(format!(
                "provider '{}' (plugin '{}'): {e}",
                decl.prefix, manifest.name
            )),
        }
    }
}
