//! The routing table: model prefix -> provider instance. Rebuilt whole when plugins or
//! providers change and swapped in atomically; requests in flight keep the `Arc<Route>`
//! (and so the adapter) they started with.

use crate::config::ProviderEntry;
use crate::plugins::Registry;
use plugin_api::host::{Adapter, PluginLibrary};
use plugin_api::{AuthScheme, ModelSpec, ProviderConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A routable provider instance.
#[derive(Debug)]
pub struct Route {
    pub prefix: String,
    pub plugin: String,
    pub plugin_version: String,
    pub base_url: String,
    pub auth: AuthScheme,
    /// The secret; never logged or returned.
    pub api_key: Option<String>,
    /// Where the key was expected, for the error message when it is missing.
    pub api_key_env: Option<String>,
    pub models: Vec<ModelSpec>,
    pub adapter: Adapter,
    _library: Arc<PluginLibrary>,
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: HashMap<String, Arc<Route>>,
    /// Providers that could not be built, and why (shown to operators).
    pub problems: Vec<String>,
}

impl RoutingTable {
    pub fn get(&self, prefix: &str) -> Option<&Arc<Route>> {
        self.routes.get(prefix)
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

    /// Builds the table from the active plugins' default providers, then the operator's
    /// `[[providers]]`, which win over a plugin default of the same prefix.
    pub fn build(registry: &Registry, configured: &[ProviderEntry], env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut table = RoutingTable::default();
        // Latest loaded wins when two files carry the same plugin name.
        let mut by_name: BTreeMap<String, Arc<PluginLibrary>> = BTreeMap::new();
        for loaded in registry.active() {
            let lib = &loaded.library;
            by_name.insert(lib.manifest().name.clone(), lib.clone());
            for spec in &lib.manifest().providers {
                let config = ProviderConfig {
                    prefix: spec.prefix.clone(),
                    base_url: spec.base_url.clone(),
                    options: serde_json::Value::Object(Default::default()),
                };
                let key_env = spec.api_key_env.clone();
                let api_key = key_env.as_deref().and_then(env).filter(|k| !k.is_empty());
                table.insert(lib, config, spec.auth.clone(), api_key, key_env, spec.models.clone());
            }
        }
        for entry in configured {
            let Some(lib) = by_name.get(&entry.plugin) else {
                table.problems.push(format!(
                    "provider '{}': plugin '{}' is not loaded (loaded: {})",
                    entry.prefix,
                    entry.plugin,
                    by_name.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            let manifest = lib.manifest();
            let default = manifest
                .providers
                .iter()
                .find(|p| p.prefix == entry.prefix)
                .or_else(|| manifest.providers.first());
            let base_url = entry
                .base_url
                .clone()
                .or_else(|| default.map(|d| d.base_url.clone()))
                .unwrap_or_default();
            let auth = default.map(|d| d.auth.clone()).unwrap_or_default();
            let key_env = entry.api_key_env.clone();
            let api_key = key_env.as_deref().and_then(env).filter(|k| !k.is_empty());
            let models = match &entry.models {
                Some(ids) => ids.iter().map(ModelSpec::chat).collect(),
                None => manifest
                    .providers
                    .iter()
                    .find(|p| p.prefix == entry.prefix)
                    .map(|p| p.models.clone())
                    .unwrap_or_default(),
            };
            let config = ProviderConfig {
                prefix: entry.prefix.clone(),
                base_url,
                options: if entry.options.is_null() {
                    serde_json::Value::Object(Default::default())
                } else {
                    entry.options.clone()
                },
            };
            table.insert(lib, config, auth, api_key, key_env, models);
        }
        for p in &table.problems {
            tracing::warn!(problem = %p, "provider not routable");
        }
        table
    }

    fn insert(
        &mut self,
        lib: &Arc<PluginLibrary>,
        config: ProviderConfig,
        auth: AuthScheme,
        api_key: Option<String>,
        api_key_env: Option<String>,
        models: Vec<ModelSpec>,
    ) {
        let manifest = lib.manifest();
        match lib.new_adapter(&config) {
            Ok(adapter) => {
                let route = Route {
                    prefix: config.prefix.clone(),
                    plugin: manifest.name.clone(),
                    plugin_version: manifest.version.clone(),
                    base_url: config.base_url,
                    auth,
                    api_key,
                    api_key_env,
                    models,
                    adapter,
                    _library: lib.clone(),
                };
                self.routes.insert(config.prefix, Arc::new(route));
            }
            Err(e) => {
                self.routes.remove(&config.prefix);
                self.problems.push(format!(
                    "provider '{}' (plugin '{}'): {e}",
                    config.prefix, manifest.name
                ));
            }
        }
    }
}
