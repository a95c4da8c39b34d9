//! The routing table: model prefix -> provider instance, with its credentials and the
//! prices used for cost. Rebuilt whole when plugins, providers, credentials or rates
//! change and swapped in atomically; requests in flight keep the `Arc<Route>` (and so the
//! adapter) they started with.

use crate::billing::ChargeRate;
use crate::config::{AliasEntry, ProviderEntry, UpstreamConfig};
use crate::observability::metrics::{Metrics, ProviderLabels};
use crate::plugin_host::Registry;
use crate::resilience::balance::Rotation;
use crate::resilience::credential_health::{CredHealth, HealthKey, HealthPolicy, HealthRegistry};
use crate::store::aliases::AliasRow;
use crate::store::providers::{LiveCredential, ProviderRow};
use crate::store::rates::{usd_per_mtok_to_micros, Rate};
use plugin_api::host::{Adapter, PluginLibrary};
use plugin_api::{AuthScheme, Format, ModelSpec, ProviderConfig};
use prometheus_client::metrics::histogram::Histogram;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A key a provider can be called with.
#[derive(Clone)]
pub struct RouteCredential {
    /// The store's id; `None` for a key from the environment.
    pub id: Option<i64>,
    pub name: String,
    pub weight: u32,
    pub secret: String,
    pub health: Arc<CredHealth>,
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
    /// Inbound formats the plugin takes as they are for this provider (plugin ABI 2).
    pub native_formats: Vec<Format>,
    pub adapter: Adapter,
    pub timeouts: Timeouts,
    rotation: Rotation,
    /// This provider's metric handles, looked up once rather than per call.
    metric_handles: std::sync::OnceLock<RouteMetrics>,
    _library: Arc<PluginLibrary>,
}

/// The per-provider metrics every call observes.
#[derive(Debug)]
pub struct RouteMetrics {
    pub upstream_duration: Histogram,
    pub time_to_first_token: Histogram,
}

/// Per-provider upstream timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Route {
    /// The provider's metric handles (a histogram handle is shared with its family).
    pub fn metrics(&self, m: &Metrics) -> &RouteMetrics {
        self.metric_handles.get_or_init(|| {
            let labels = ProviderLabels {
                provider: self.prefix.clone(),
            };
            RouteMetrics {
                upstream_duration: m.upstream_duration.get_or_create(&labels).clone(),
                time_to_first_token: m.time_to_first_token.get_or_create(&labels).clone(),
            }
        })
    }

    /// Whether a call in `format` can go to this provider untranslated. The canonical
    /// OpenAI format always can: every plugin takes it.
    pub fn accepts_natively(&self, format: Format) -> bool {
        format == Format::OpenAiChat || self.native_formats.contains(&format)
    }

    /// The credential for the next attempt: smooth weighted round-robin over the ones
    /// that are available now, preferring any not yet `tried` in this call. Taking an
    /// expired ejection claims its single half-open probe (`CredHealth::try_take`), so
    /// only the credential returned is claimed.
    pub fn pick_credential(&self, tried: &[usize]) -> Option<(usize, &RouteCredential)> {
        let now = Instant::now();
        let order = self.rotation.order(self.credentials.len());
        let take = |i: &usize| self.credentials[*i].health.try_take(now);
        order
            .clone()
            .filter(|i| !tried.contains(i))
            .find(take)
            .or_else(|| order.clone().find(take))
            .map(|i| (i, &self.credentials[i]))
    }
}

/// What the table is built from.
pub struct Sources<'a> {
    pub registry: &'a Registry,
    pub configured: &'a [ProviderEntry],
    pub stored: &'a [ProviderRow],
    pub credentials: &'a [LiveCredential],
    pub rates: &'a [Rate],
    /// Apps' explicit prices (micro-credits).
    pub app_prices: &'a [crate::store::app_prices::AppPrice],
    pub aliases: &'a [AliasEntry],
    pub stored_aliases: &'a [AliasRow],
    pub health: &'a HealthRegistry,
    pub policy: &'a HealthPolicy,
    pub upstream: &'a UpstreamConfig,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// A model name clients use, served by the first of its targets that can.
#[derive(Debug)]
pub struct Alias {
    pub model: String,
    pub targets: Vec<String>,
    /// For `weighted`: which target goes first.
    rotation: Option<Rotation>,
}

impl Alias {
    /// Targets in the order to try for one call.
    pub fn order(&self) -> Vec<&str> {
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        if let Some(first) = self
            .rotation
            .as_ref()
            .and_then(|r| r.order(self.targets.len()).next())
        {
            order.retain(|i| *i != first);
            order.insert(0, first);
        }
        order.iter().map(|i| self.targets[*i].as_str()).collect()
    }
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: HashMap<String, Arc<Route>>,
    aliases: HashMap<String, Alias>,
    /// Model id -> prefixes whose catalog lists it, for models asked without a prefix.
    catalog: HashMap<String, Vec<String>>,
    catalog_next: AtomicU64,
    /// `prefix/model` -> price; operator rates override plugin list prices.
    prices: HashMap<String, Rate>,
    /// app id -> `prefix/model` -> the app's explicit price (micro-credits).
    app_prices: HashMap<i64, HashMap<String, Rate>>,
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
    first_byte_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
}

/// One target of a call: `(route, upstream model)`, the model borrowed from the client's
/// name where it is part of it.
pub type Target<'m> = (Arc<Route>, Cow<'m, str>);
/// A call's targets in order, inline for the usual one or two.
pub type Targets<'m> = smallvec::SmallVec<[Target<'m>; 2]>;

impl RoutingTable {
    pub fn get(&self, prefix: &str) -> Option<&Arc<Route>> {
        self.routes.get(prefix)
    }

    /// What to try for `model`, in order: `(route, upstream model)` pairs. An alias wins;
    /// then `prefix/model`; then, for a model without a known prefix, every provider whose
    /// catalog lists it (rotating which goes first).
    pub fn resolve<'m>(&self, model: &'m str) -> Targets<'m> {
        if let Some(alias) = self.aliases.get(model) {
            return alias
                .order()
                .into_iter()
                .filter_map(|t| {
                    let (prefix, rest) = t.split_once('/')?;
                    Some((
                        self.routes.get(prefix)?.clone(),
                        Cow::Owned(rest.to_string()),
                    ))
                })
                .collect();
        }
        if let Some((prefix, rest)) = model.split_once('/') {
            if let (Some(route), false) = (self.routes.get(prefix), rest.is_empty()) {
                return smallvec::smallvec![(route.clone(), Cow::Borrowed(rest))];
            }
        }
        let Some(prefixes) = self.catalog.get(model) else {
            return Targets::new();
        };
        let start = self.catalog_next.fetch_add(1, Ordering::Relaxed) as usize;
        (0..prefixes.len())
            .filter_map(|k| {
                let p = &prefixes[(start + k) % prefixes.len()];
                Some((self.routes.get(p)?.clone(), Cow::Borrowed(model)))
            })
            .collect()
    }

    pub fn aliases(&self) -> impl Iterator<Item = &Alias> {
        self.aliases.values()
    }

    /// The model's cost rate (USD): the operator's rate, else the plugin's list price.
    pub fn price(&self, model: &str) -> Option<&Rate> {
        self.prices.get(model)
    }

    /// What `app_id` is charged for `model` by: its explicit price when the operator set
    /// one, else the model's cost rate.
    pub fn charge_rate(&self, app_id: i64, model: &str) -> Option<ChargeRate<'_>> {
        match self.app_prices.get(&app_id).and_then(|m| m.get(model)) {
            Some(own) => Some(ChargeRate::App(own)),
            None => self.price(model).map(ChargeRate::Cost),
        }
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
                // A default whose URL is a template (Azure's per-resource host) is only
                // usable once an operator configures it.
                if spec.base_url.contains('{') {
                    continue;
                }
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
                        first_byte_timeout_ms: None,
                        idle_timeout_ms: None,
                        total_timeout_ms: None,
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
                    first_byte_timeout_ms: e.first_byte_timeout_ms,
                    idle_timeout_ms: e.idle_timeout_ms,
                    total_timeout_ms: e.total_timeout_ms,
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
                    first_byte_timeout_ms: None,
                    idle_timeout_ms: None,
                    total_timeout_ms: None,
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
                let price = |p: Option<f64>| p.and_then(usd_per_mtok_to_micros);
                // A list price out of range (a broken manifest) is no price at all.
                if let (Some(i), Some(o)) = (
                    price(m.input_price_per_mtok),
                    price(m.output_price_per_mtok),
                ) {
                    let model = format!("{}/{}", route.prefix, m.id);
                    table.prices.insert(
                        model.clone(),
                        Rate {
                            model,
                            input_per_mtok_micros: i,
                            output_per_mtok_micros: o,
                            cached_per_mtok_micros: None,
                            ..Rate::default()
                        },
                    );
                }
            }
        }
        for r in src.rates {
            table.prices.insert(r.model.clone(), r.clone());
        }
        for p in src.app_prices {
            table
                .app_prices
                .entry(p.app_id)
                .or_default()
                .insert(p.price.model.clone(), p.price.clone());
        }
        let from_config = src.aliases.iter().map(|a| {
            (
                &a.model,
                &a.targets,
                a.strategy.as_str(),
                a.weights.as_deref(),
            )
        });
        let from_store = src
            .stored_aliases
            .iter()
            .filter(|a| !src.aliases.iter().any(|c| c.model == a.model))
            .map(|a| {
                (
                    &a.model,
                    &a.targets,
                    a.strategy.as_str(),
                    a.weights.as_deref(),
                )
            });
        for (model, targets, strategy, weights) in from_config.chain(from_store) {
            let rotation = (strategy == "weighted").then(|| Rotation::new(weights.unwrap_or(&[])));
            table.aliases.insert(
                model.clone(),
                Alias {
                    model: model.clone(),
                    targets: targets.clone(),
                    rotation,
                },
            );
        }
        let mut prefixes: Vec<&String> = table.routes.keys().collect();
        prefixes.sort();
        for prefix in prefixes {
            for m in &table.routes[prefix].models {
                table
                    .catalog
                    .entry(m.id.clone())
                    .or_default()
                    .push(prefix.clone());
            }
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
        let native_formats = native_formats(manifest, &decl.prefix);
        // The plugin's catalog for this prefix, plus the models the operator lists.
        let mut models: Vec<ModelSpec> = manifest
            .providers
            .iter()
            .find(|p| p.prefix == decl.prefix)
            .map(|p| p.models.clone())
            .unwrap_or_default();
        for id in decl.models.iter().flatten() {
            if !models.iter().any(|m| &m.id == id) {
                models.push(ModelSpec::chat(id));
            }
        }
        let credentials: Vec<RouteCredential> = match decl.store_id {
            Some(id) => src
                .credentials
                .iter()
                .filter(|c| c.provider_id == id)
                .map(|c| RouteCredential {
                    id: Some(c.id),
                    name: c.name.clone(),
                    weight: c.weight.clamp(0, u32::MAX as i64) as u32,
                    secret: c.secret.clone(),
                    health: src.health.get_or(HealthKey::Stored(c.id), || {
                        CredHealth::restored(
                            &c.state,
                            c.state_until,
                            c.last_error.clone(),
                            src.policy,
                        )
                    }),
                })
                .collect(),
            None => decl
                .api_key_env
                .as_deref()
                .and_then(src.env)
                .filter(|k| !k.is_empty())
                .map(|secret| RouteCredential {
                    id: None,
                    name: decl.api_key_env.clone().unwrap_or_default(),
                    weight: 1,
                    secret,
                    health: src
                        .health
                        .get_or(HealthKey::Env(decl.prefix.clone()), CredHealth::default),
                })
                .into_iter()
                .collect(),
        };
        let weights: Vec<u32> = credentials.iter().map(|c| c.weight).collect();
        let ms = Duration::from_millis;
        let timeouts = Timeouts {
            first_byte: ms(decl
                .first_byte_timeout_ms
                .unwrap_or(src.upstream.first_byte_timeout_ms)),
            idle: ms(decl.idle_timeout_ms.unwrap_or(src.upstream.idle_timeout_ms)),
            total: ms(decl.total_timeout_ms.unwrap_or(u64::MAX / 4)),
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
                    native_formats,
                    adapter,
                    timeouts,
                    rotation: Rotation::new(&weights),
                    metric_handles: std::sync::OnceLock::new(),
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

/// The formats a provider instance takes natively: its own manifest entry's, or for a
/// prefix the manifest does not name (an operator's `local` on the openai plugin) only
/// those every default provider of the plugin takes, since nothing says which it is like.
fn native_formats(manifest: &plugin_api::Manifest, prefix: &str) -> Vec<Format> {
    if let Some(spec) = manifest.providers.iter().find(|p| p.prefix == prefix) {
        return spec.native_formats.clone();
    }
    let mut specs = manifest.providers.iter();
    let Some(first) = specs.next() else {
        return Vec::new();
    };
    let rest: Vec<_> = specs.collect();
    first
        .native_formats
        .iter()
        .copied()
        .filter(|f| rest.iter().all(|s| s.native_formats.contains(f)))
        .collect()
}

#[cfg(test)]
mod native_format_tests {
    use super::*;

    fn spec(prefix: &str, formats: &[Format]) -> plugin_api::ProviderSpec {
        plugin_api::ProviderSpec {
            prefix: prefix.into(),
            base_url: String::new(),
            auth: AuthScheme::None,
            api_key_env: None,
            native_formats: formats.to_vec(),
            models: vec![],
        }
    }

    #[test]
    fn a_prefix_gets_its_entry_or_what_every_entry_shares() {
        let manifest = plugin_api::Manifest {
            name: "openai".into(),
            version: "1".into(),
            description: String::new(),
            abi_version: plugin_api::ABI_VERSION,
            providers: vec![
                spec("openai", &[Format::OpenAiChat, Format::OpenAiResponses]),
                spec("groq", &[Format::OpenAiChat]),
            ],
        };
        assert_eq!(
            native_formats(&manifest, "openai"),
            [Format::OpenAiChat, Format::OpenAiResponses]
        );
        assert_eq!(native_formats(&manifest, "groq"), [Format::OpenAiChat]);
        assert_eq!(native_formats(&manifest, "local"), [Format::OpenAiChat]);
    }
}
