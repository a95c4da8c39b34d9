//! The admin API (admin token required): plugins, providers and credentials, apps and
//! keys, model rates, the call log and usage reports.

use crate::admin::service::AdminService;
use crate::bounds::MAX_MODEL_NAME;
use crate::error::ApiError;
use crate::inbound::openai::read_body;
use crate::routing::Source;
use crate::server::http::{self, Body};
use crate::state::AppState;
use crate::store::calls::{CallFilter, ExportWindow, CALL_COLUMNS};
use crate::store::providers::{CredentialChange, ProviderChange};
use crate::store::rates::{usd_per_mtok_to_micros, MAX_USD_PER_MTOK};
use crate::store::traits::CallQueries;
use crate::store::usage::{GroupBy, UsageFilter};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The bearer admin token, or a console session (with its CSRF rule for mutations).
fn authorize(state: &AppState, req: &Request<Incoming>) -> Result<(), ApiError> {
    crate::console::auth::admin(state, req).map(|_| ())
}

#[derive(Clone, Copy)]
enum R {
    Plugins,
    PluginsReload,
    Providers,
    Provider,
    Credentials,
    Credential,
    CredentialTest,
    Apps,
    App,
    Keys,
    Key,
    KeyRevoke,
    AppLimits,
    KeyLimits,
    Calls,
    Usage,
    Rates,
    Rate,
    RateHistory,
    RatesImport,
    AppPrices,
    AppPrice,
    Aliases,
    Alias,
    Credits,
    CreditAdjustments,
    CreditRefunds,
    AppBudget,
    KeyBudget,
    Ledger,
    Overview,
}

fn router() -> &'static matchit::Router<R> {
    static ROUTER: OnceLock<matchit::Router<R>> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let mut r = matchit::Router::new();
        let routes = [
            ("/api/admin/plugins", R::Plugins),
            ("/api/admin/plugins/reload", R::PluginsReload),
            ("/api/admin/providers", R::Providers),
            ("/api/admin/providers/{id}", R::Provider),
            ("/api/admin/providers/{id}/credentials", R::Credentials),
            ("/api/admin/providers/{id}/credentials/{cid}", R::Credential),
            (
                "/api/admin/providers/{id}/credentials/{cid}/test",
                R::CredentialTest,
            ),
            ("/api/admin/apps", R::Apps),
            ("/api/admin/apps/{id}", R::App),
            ("/api/admin/apps/{id}/keys", R::Keys),
            ("/api/admin/apps/{id}/keys/{kid}", R::Key),
            ("/api/admin/apps/{id}/keys/{kid}/revoke", R::KeyRevoke),
            ("/api/admin/apps/{id}/limits", R::AppLimits),
            ("/api/admin/apps/{id}/keys/{kid}/limits", R::KeyLimits),
            ("/api/admin/calls", R::Calls),
            ("/api/admin/usage", R::Usage),
            ("/api/admin/rates", R::Rates),
            ("/api/admin/rates/{*model}", R::Rate),
            // Static, so it wins over the catch-all (a model name always has a '/').
            ("/api/admin/rates/history", R::RateHistory),
            ("/api/admin/rates/import", R::RatesImport),
            ("/api/admin/apps/{id}/prices", R::AppPrices),
            ("/api/admin/apps/{id}/prices/{*model}", R::AppPrice),
            ("/api/admin/aliases", R::Aliases),
            ("/api/admin/aliases/{*model}", R::Alias),
            ("/api/admin/apps/{id}/credits", R::Credits),
            (
                "/api/admin/apps/{id}/credits/adjustments",
                R::CreditAdjustments,
            ),
            ("/api/admin/apps/{id}/credits/refunds", R::CreditRefunds),
            ("/api/admin/apps/{id}/budget", R::AppBudget),
            ("/api/admin/apps/{id}/keys/{kid}/budget", R::KeyBudget),
            ("/api/admin/ledger", R::Ledger),
            ("/api/admin/overview", R::Overview),
        ];
        for (path, route) in routes {
            // The table is static and tested; a clash would be a programming error.
            let _ = r.insert(path, route);
        }
        r
    })
}

fn id_param(params: &matchit::Params<'_, '_>, name: &'static str) -> Result<i64, ApiError> {
    let raw = params.get(name).unwrap_or("");
    raw.parse::<i64>().map_err(|_| ApiError::Validation {
        field: name.to_string(),
        message: format!("'{raw}' is not a numeric id"),
    })
}

/// Runs a store operation off the async threads.
pub(super) async fn json_body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes = read_body(req, 1024 * 1024).await?;
    let bytes = if bytes.is_empty() {
        bytes::Bytes::from_static(b"{}")
    } else {
        bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                ApiError::Validation {
                    field: field_of(&message, &path),
                    message,
                }
            }
            _ => ApiError::InvalidJson(inner.to_string()),
        }
    })
}

/// The field a body error is about: the one serde names (unknown or missing), else the
/// path where it went wrong.
fn field_of(message: &str, path: &str) -> String {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            if let Some(name) = rest.split('`').next() {
                return name.to_string();
            }
        }
    }
    if path.is_empty() || path == "." {
        "body".into()
    } else {
        path.to_string()
    }
}

pub(super) fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Unix seconds or milliseconds.
pub fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(raw) = q.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let v: i64 = raw.parse().map_err(|_| ApiError::Validation {
        field: name.to_string(),
        message: format!("'{raw}' is not a Unix time (seconds or milliseconds)"),
    })?;
    // `unsigned_abs`: `abs` of i64::MIN overflows (found by fuzz/admin_query).
    Ok(Some(if v.unsigned_abs() < 100_000_000_000 {
        v * 1000
    } else {
        v
    }))
}

pub fn int_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    match q.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| ApiError::Validation {
            field: name.to_string(),
            message: format!("'{raw}' is not an integer"),
        }),
    }
}

pub(super) fn created<T: serde::Serialize>(v: &T) -> Response<Body> {
    http::json(201, v)
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(http::full(bytes::Bytes::new()));
    *r.status_mut() = hyper::StatusCode::NO_CONTENT;
    r
}

pub async fn dispatch(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    authorize(state, &req)?;
    let Ok(matched) = router().at(path) else {
        return Err(ApiError::NotFound {
            method: method.to_string(),
            path: path.to_string(),
        });
    };
    let p = matched.params;
    let m = method.clone();
    let stores = &state.stores;
    let admin = AdminService::new(state);
    let not_allowed = || crate::server::router::not_allowed(method, path);
    match (*matched.value, m) {
        (R::Plugins, Method::GET) => Ok(plugins(state)),
        (R::PluginsReload, Method::POST) => {
            state.refresh().await;
            Ok(plugins(state))
        }
        (R::Providers, Method::GET) => providers(state).await,
        (R::Providers, Method::POST) => {
            let body: ProviderBody = json_body(req).await?;
            let row = admin.create_provider(body.into_change()).await?;
            Ok(created(&row))
        }
        (R::Provider, Method::GET) => {
            let id = id_param(&p, "id")?;
            let row = stores.providers.get_provider(id).await?;
            let creds = stores.providers.list_credentials(id).await?;
            Ok(http::json(
                200,
                &json!({"provider": row, "credentials": creds}),
            ))
        }
        (R::Provider, Method::PATCH) => {
            let id = id_param(&p, "id")?;
            let body: ProviderBody = json_body(req).await?;
            let row = admin.update_provider(id, body.into_change()).await?;
            Ok(http::json(200, &row))
        }
        (R::Provider, Method::DELETE) => {
            let id = id_param(&p, "id")?;
            admin.delete_provider(id).await?;
            Ok(no_content())
        }
        (R::Credentials, Method::GET) => {
            let id = id_param(&p, "id")?;
            let rows = stores.providers.list_credentials(id).await?;
            Ok(http::json(200, &json!({"object": "list", "data": rows})))
        }
        (R::Credentials, Method::POST) => {
            let id = id_param(&p, "id")?;
            let body: CredentialBody = json_body(req).await?;
            let name = body.name.ok_or_else(|| validation("name", "is required"))?;
            let secret = body
                .secret
                .ok_or_else(|| validation("secret", "is required"))?;
            let row = admin
                .create_credential(id, name, secret, body.weight, body.enabled)
                .await?;
            Ok(created(&row))
        }
        (R::Credential, Method::GET) => {
            let (id, cid) = (id_param(&p, "id")?, id_param(&p, "cid")?);
            Ok(http::json(
                200,
                &stores.providers.get_credential(id, cid).await?,
            ))
        }
        (R::Credential, Method::PATCH) => {
            let (id, cid) = (id_param(&p, "id")?, id_param(&p, "cid")?);
            let body: CredentialBody = json_body(req).await?;
            let change = CredentialChange {
                name: body.name,
                secret: body.secret,
                weight: body.weight,
                enabled: body.enabled,
            };
            let row = admin.update_credential(id, cid, change).await?;
            Ok(http::json(200, &row))
        }
        (R::Credential, Method::DELETE) => {
            let (id, cid) = (id_param(&p, "id")?, id_param(&p, "cid")?);
            admin.delete_credential(id, cid).await?;
            Ok(no_content())
        }
        (R::CredentialTest, Method::POST) => {
            let (id, cid) = (id_param(&p, "id")?, id_param(&p, "cid")?);
            let body: TestBody = json_body(req).await?;
            crate::admin::credential_test::run(state, id, cid, body.model).await
        }
        (R::Apps, Method::GET) => {
            let rows = stores.apps.list_apps().await?;
            Ok(http::json(200, &json!({"object": "list", "data": rows})))
        }
        (R::Apps, Method::POST) => {
            let body: AppBody = json_body(req).await?;
            let name = body.name.ok_or_else(|| validation("name", "is required"))?;
            let app = stores.apps.create_app(name, body.enabled).await?;
            new_app_grant(state, app.id).await;
            Ok(created(&app))
        }
        (R::App, Method::GET) => {
            let id = id_param(&p, "id")?;
            Ok(http::json(200, &stores.apps.get_app(id).await?))
        }
        (R::App, Method::PATCH) => {
            let id = id_param(&p, "id")?;
            let body: AppBody = json_body(req).await?;
            let app = admin.update_app(id, body.name, body.enabled).await?;
            Ok(http::json(200, &app))
        }
        (R::App, Method::DELETE) => {
            let id = id_param(&p, "id")?;
            admin.delete_app(id).await?;
            Ok(no_content())
        }
        (R::Keys, Method::GET) => {
            let id = id_param(&p, "id")?;
            let rows = stores.apps.list_keys(id).await?;
            Ok(http::json(200, &json!({"object": "list", "data": rows})))
        }
        (R::Keys, Method::POST) => {
            let id = id_param(&p, "id")?;
            let body: KeyBody = json_body(req).await?;
            let (row, key) = stores.apps.create_key(id, body.name).await?;
            // The only time the key is ever shown.
            Ok(created(&json!({"key": key, "info": row})))
        }
        (R::Key, Method::DELETE) | (R::KeyRevoke, Method::POST) => {
            let (id, kid) = (id_param(&p, "id")?, id_param(&p, "kid")?);
            let row = admin.revoke_key(id, kid).await?;
            Ok(http::json(200, &row))
        }
        (R::AppLimits | R::KeyLimits, Method::GET | Method::PUT) => {
            use crate::store::limits::Scope;
            let id = id_param(&p, "id")?;
            let scope = match *matched.value {
                R::KeyLimits => Scope::Key(id, id_param(&p, "kid")?),
                _ => Scope::App(id),
            };
            let limits = if *method == Method::PUT {
                let patch: serde_json::Value = json_body(req).await?;
                admin.patch_limits(scope, patch).await?
            } else {
                stores.limits.get_limits(scope).await?
            };
            let mut v =
                serde_json::to_value(&limits).map_err(|e| ApiError::Internal(e.to_string()))?;
            if let (Scope::App(app), Some(obj)) = (scope, v.as_object_mut()) {
                // What applies, the config's defaults included.
                let effective = state.limits.load().app(app);
                obj.insert(
                    "effective".into(),
                    serde_json::to_value(&effective).unwrap_or_default(),
                );
            }
            Ok(http::json(200, &v))
        }
        (R::Calls, Method::GET) => calls(state, &req).await,
        (R::Usage, Method::GET) => usage(state, &req).await,
        (R::Rates, Method::GET) => {
            let rows = stores.rates.list_rates().await?;
            Ok(http::json(200, &json!({"object": "list", "data": rows})))
        }
        (R::Rate, Method::PUT) => {
            let model = model_param(&p)?;
            let body: RateBody = json_body(req).await?;
            let row = admin.put_rate(body.into_rate(model, "USD")?).await?;
            Ok(http::json(200, &row))
        }
        (R::RateHistory, Method::GET) => rate_history(state, &req).await,
        (R::RatesImport, Method::POST) => super::rates_import::run(state, req).await,
        (R::AppPrices, Method::GET) => {
            let id = id_param(&p, "id")?;
            let rows = stores.rates.list_app_prices(Some(id)).await?;
            Ok(http::json(200, &json!({"object": "list", "data": rows})))
        }
        (R::AppPrice, Method::PUT) => {
            let id = id_param(&p, "id")?;
            let model = model_param(&p)?;
            let body: RateBody = json_body(req).await?;
            let row = admin
                .put_app_price(id, body.into_rate(model, "credits")?)
                .await?;
            Ok(http::json(200, &row))
        }
        (R::AppPrice, Method::DELETE) => {
            let id = id_param(&p, "id")?;
            let model = p.get("model").unwrap_or("").to_string();
            admin.delete_app_price(id, model).await?;
            Ok(no_content())
        }
        (R::Rate, Method::DELETE) => {
            let model = p.get("model").unwrap_or("").to_string();
            admin.delete_rate(model).await?;
            Ok(no_content())
        }
        (R::Credits, Method::POST) => {
            let id = id_param(&p, "id")?;
            let body: GrantBody = json_body(req).await?;
            let amount = body.amount.0;
            if amount <= 0 {
                return Err(validation("amount", "must be greater than 0"));
            }
            let expires_at = body
                .expires_at
                .as_ref()
                .map(|v| {
                    crate::billing::view::parse_time(v).map_err(|m| validation("expires_at", &m))
                })
                .transpose()?;
            if expires_at.is_some_and(|e| e <= crate::store::now_ms()) {
                return Err(validation("expires_at", "must be in the future"));
            }
            if body.note.as_ref().is_some_and(|n| n.len() > 1000) {
                return Err(validation("note", "must be at most 1000 bytes"));
            }
            let grant = stores
                .credits
                .grant_credits(id, amount, expires_at, body.note)
                .await?;
            state.credits.invalidate(id);
            Ok(created(&crate::billing::view::grant(&grant)))
        }
        (R::Credits, Method::GET) => {
            let id = id_param(&p, "id")?;
            let summary = stores.credits.credit_summary(id).await?;
            let held = state.credits.held(id).await?;
            let mut o = crate::billing::view::balances(summary.balance, held);
            o.insert(
                "grants".into(),
                summary
                    .grants
                    .iter()
                    .map(crate::billing::view::grant)
                    .collect::<Vec<_>>()
                    .into(),
            );
            Ok(http::json(200, &o))
        }
        (R::Ledger, Method::GET) => ledger(state, &req).await,
        (R::AppBudget | R::KeyBudget, Method::GET | Method::PUT) => {
            let id = id_param(&p, "id")?;
            let scope = match *matched.value {
                R::KeyBudget => crate::store::limits::Scope::Key(id, id_param(&p, "kid")?),
                _ => crate::store::limits::Scope::App(id),
            };
            super::billing::budget(state, scope, method, req).await
        }
        (R::CreditAdjustments, Method::POST) => {
            super::billing::adjust(state, id_param(&p, "id")?, req).await
        }
        (R::CreditRefunds, Method::POST) => {
            super::billing::refund(state, id_param(&p, "id")?, req).await
        }
        (R::Overview, Method::GET) => crate::console::overview::get(state, &query(&req)).await,
        (R::Aliases, Method::GET) => aliases(state).await,
        (R::Alias, Method::PUT) => {
            let model = p.get("model").unwrap_or("").to_string();
            let body: AliasBody = json_body(req).await?;
            let strategy = body.strategy.unwrap_or_else(|| "ordered".into());
            let row = admin
                .put_alias(model, body.targets, strategy, body.weights)
                .await?;
            Ok(http::json(200, &row))
        }
        (R::Alias, Method::DELETE) => {
            let model = p.get("model").unwrap_or("").to_string();
            admin.delete_alias(model).await?;
            Ok(no_content())
        }
        _ => Err(not_allowed()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    amount: crate::billing::CreditAmount,
    expires_at: Option<serde_json::Value>,
    note: Option<String>,
}

/// The configured grant for an app just created through the API (logged on failure:
/// the app exists either way).
async fn new_app_grant(state: &Arc<AppState>, app_id: i64) {
    let c = &state.config.billing;
    if let Some((amount, expires)) = crate::billing::new_app_grant(c, crate::store::now_ms()) {
        let r = state
            .stores
            .credits
            .grant_credits(app_id, amount, expires, Some("new app grant".into()))
            .await;
        if let Err(e) = r {
            tracing::error!(app_id, error = %e, "the new-app credit grant failed");
        }
    }
}

async fn ledger(
    state: &Arc<AppState>,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(validation(
                "format",
                &format!("'{other}' is not one of: json, csv"),
            ))
        }
    };
    let limit = int_param(&q, "limit")?;
    let mut filter = crate::store::credits::LedgerFilter {
        app_id: int_param(&q, "app")?,
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
        cursor: int_param(&q, "cursor")?,
        limit: 0,
    };
    if csv {
        let limit = limit.map(|l| usize::try_from(l).unwrap_or(0));
        return super::billing::ledger_csv(state, filter, limit).await;
    }
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(validation("limit", "must be between 1 and 1000"));
    }
    filter.limit = limit as usize;
    let (rows, next) = state.stores.credits.list_ledger(filter).await?;
    let data: Vec<_> = rows.iter().map(crate::billing::view::entry).collect();
    let mut body = json!({"object": "list", "data": data});
    if let Some(n) = next {
        body["next_cursor"] = n.into();
    }
    Ok(http::json(200, &body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    targets: Vec<String>,
    strategy: Option<String>,
    weights: Option<Vec<u32>>,
}

/// Aliases from the config file (read-only here) and from the store.
async fn aliases(state: &Arc<AppState>) -> Result<Response<Body>, ApiError> {
    let stored = state.stores.aliases.list_aliases().await?;
    let mut data: Vec<serde_json::Value> = state
        .config
        .routes
        .iter()
        .map(|r| json!({"model": r.model, "targets": r.targets, "strategy": r.strategy, "weights": r.weights, "source": "config"}))
        .collect();
    for a in stored {
        if !state.config.routes.iter().any(|r| r.model == a.model) {
            let mut v = serde_json::to_value(&a).unwrap_or_default();
            v["source"] = "store".into();
            data.push(v);
        }
    }
    Ok(http::json(200, &json!({"object": "list", "data": data})))
}

pub(super) fn validation(field: &str, message: &str) -> ApiError {
    ApiError::Validation {
        field: field.to_string(),
        message: message.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderBody {
    prefix: Option<String>,
    plugin: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    base_url: Option<Option<String>>,
    enabled: Option<bool>,
    options: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "nullable")]
    models: Option<Option<Vec<String>>>,
}

/// Distinguishes an absent field (keep) from an explicit `null` (clear).
fn nullable<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl ProviderBody {
    fn into_change(self) -> ProviderChange {
        ProviderChange {
            prefix: self.prefix,
            plugin: self.plugin,
            base_url: self.base_url,
            enabled: self.enabled,
            options: self.options,
            models: self.models,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    name: Option<String>,
    secret: Option<String>,
    weight: Option<i64>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppBody {
    name: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    model: Option<String>,
}

/// A model's rate (USD) or an app's explicit price (credits): amounts per million tokens,
/// per image, per second of audio, per million characters spoken.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    input_per_mtok: f64,
    output_per_mtok: f64,
    cached_per_mtok: Option<f64>,
    /// Tokens written to the provider's prompt cache; unset: as input.
    cache_write_per_mtok: Option<f64>,
    /// Image generation: per image returned.
    per_image: Option<f64>,
    /// Audio transcription: per second of audio.
    per_second: Option<f64>,
    /// Speech: per million characters.
    per_million_characters: Option<f64>,
}

impl RateBody {
    /// The prices as integer micros of `unit` ("USD" or "credits"); 400 naming the first
    /// field out of range.
    fn into_rate(self, model: String, unit: &str) -> Result<crate::store::rates::Rate, ApiError> {
        let micros = |v: f64, field: &str, per: &str| -> Result<i64, ApiError> {
            usd_per_mtok_to_micros(v).ok_or_else(|| {
                validation(
                    field,
                    &format!("must be a number of {unit}{per} between 0 and {MAX_USD_PER_MTOK}"),
                )
            })
        };
        let mtok = " per million tokens";
        let opt =
            |v: Option<f64>, field: &str, per: &str| v.map(|v| micros(v, field, per)).transpose();
        Ok(crate::store::rates::Rate {
            model,
            input_per_mtok_micros: micros(self.input_per_mtok, "input_per_mtok", mtok)?,
            output_per_mtok_micros: micros(self.output_per_mtok, "output_per_mtok", mtok)?,
            cached_per_mtok_micros: opt(self.cached_per_mtok, "cached_per_mtok", mtok)?,
            cache_write_per_mtok_micros: opt(
                self.cache_write_per_mtok,
                "cache_write_per_mtok",
                mtok,
            )?,
            per_image_micros: opt(self.per_image, "per_image", " per image")?,
            per_second_micros: opt(self.per_second, "per_second", " per second")?,
            per_mchar_micros: opt(
                self.per_million_characters,
                "per_million_characters",
                " per million characters",
            )?,
            updated_at: 0,
        })
    }
}

/// The `{*model}` of a path: `prefix/model`, bounded.
fn model_param(p: &matchit::Params<'_, '_>) -> Result<String, ApiError> {
    let model = p.get("model").unwrap_or("");
    if model.len() > MAX_MODEL_NAME || !model.contains('/') {
        return Err(validation(
            "model",
            &format!("must be '<prefix>/<model>', at most {MAX_MODEL_NAME} bytes"),
        ));
    }
    Ok(model.to_string())
}

/// `GET /api/admin/rates/history?model=&app=&cursor=&limit=`: newest first.
async fn rate_history(
    state: &Arc<AppState>,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let limit = int_param(&q, "limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(validation("limit", "must be between 1 and 1000"));
    }
    let model = q.get("model").filter(|m| !m.is_empty()).cloned();
    if model.as_ref().is_some_and(|m| m.len() > MAX_MODEL_NAME) {
        return Err(validation(
            "model",
            &format!("must be at most {MAX_MODEL_NAME} bytes"),
        ));
    }
    let filter = crate::store::rate_history::HistoryFilter {
        model,
        app_id: int_param(&q, "app")?,
        cursor: int_param(&q, "cursor")?,
        limit: limit as usize,
    };
    let (rows, next) = state.stores.rates.rate_history(filter).await?;
    let data: Vec<_> = rows.iter().map(|e| e.to_json()).collect();
    let mut body = json!({"object": "list", "data": data, "has_more": next.is_some()});
    if let Some(n) = next {
        body["next_cursor"] = n.into();
    }
    Ok(http::json(200, &body))
}

fn plugins(state: &AppState) -> Response<Body> {
    let table = state.routing.load();
    http::json(
        200,
        &json!({
            "object": "list",
            "data": state.plugin_views(),
            "providers": table.prefixes(),
            "problems": table.problems,
        }),
    )
}

/// Every routable provider, plus stored ones that are not routable (disabled, or their
/// plugin is missing). Keys are never shown, only whether there are some.
async fn providers(state: &Arc<AppState>) -> Result<Response<Body>, ApiError> {
    let stored = state.stores.providers.list_providers().await?;
    let table = state.routing.load();
    let mut data: Vec<serde_json::Value> = table
        .routes_sorted()
        .into_iter()
        .map(|r| {
            json!({
                "prefix": r.prefix,
                "plugin": r.plugin,
                "plugin_version": r.plugin_version,
                "source": r.source,
                "id": r.store_id,
                "base_url": r.base_url,
                "routable": true,
                "needs_key": r.auth.needs_key(),
                "credentials": r.credentials.iter().map(|c| json!({
                    "id": c.id,
                    "name": c.name,
                    "weight": c.weight,
                    "health": c.health.view(),
                })).collect::<Vec<_>>(),
                "api_key_env": r.api_key_env,
                "models": r.models.len(),
            })
        })
        .collect();
    for p in stored.iter().filter(|p| {
        table
            .get(&p.prefix)
            .is_none_or(|r| r.source != Source::Store)
    }) {
        data.push(json!({
            "prefix": p.prefix,
            "plugin": p.plugin,
            "source": Source::Store,
            "id": p.id,
            "base_url": p.base_url,
            "enabled": p.enabled,
            "routable": false,
        }));
    }
    Ok(http::json(
        200,
        &json!({"object": "list", "data": data, "problems": table.problems}),
    ))
}

async fn calls(state: &Arc<AppState>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(validation(
                "format",
                &format!("'{other}' is not one of: json, csv"),
            ))
        }
    };
    let status = q.get("status").cloned();
    if let Some(s) = &status {
        if !matches!(s.as_str(), "ok" | "error" | "cancelled") {
            return Err(validation("status", "must be one of: ok, error, cancelled"));
        }
    }
    let max = if csv { MAX_EXPORT_ROWS } else { 1000 };
    let limit = int_param(&q, "limit")?.unwrap_or(if csv { max } else { 100 });
    if limit < 1 || limit > max {
        return Err(validation("limit", &format!("must be between 1 and {max}")));
    }
    let filter = CallFilter {
        app_id: int_param(&q, "app")?,
        provider: q.get("provider").cloned(),
        model: q.get("model").cloned(),
        status,
        request_id: q.get("request_id").filter(|r| !r.is_empty()).cloned(),
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
        cursor: int_param(&q, "cursor")?,
        min_id: None,
        limit: limit as usize,
    };
    if !csv {
        let (rows, next) = state.stores.calls.list_calls(filter).await?;
        return Ok(http::json(
            200,
            &json!({"object": "list", "data": rows, "next_cursor": next}),
        ));
    }
    let window = state
        .stores
        .calls
        .call_export_window(filter.clone())
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(export_csv(state.stores.calls.clone(), filter, window, tx));
    let mut resp = Response::new(http::Body::new(http::ChannelBody::new(rx)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Some(n) = window.next_cursor {
        resp.headers_mut().insert("x-next-cursor", n.into());
    }
    Ok(resp)
}

/// Most rows one CSV export streams; `x-next-cursor` continues after them.
const MAX_EXPORT_ROWS: i64 = 1_000_000;
/// Rows read from the store per page of an export.
const EXPORT_PAGE: usize = 1000;

/// Streams the calls of `window` as CSV, a page at a time, so an export of any size holds
/// one page in memory. A store error midway cuts the body (the status was sent already), so
/// the client sees an incomplete transfer, not a short export.
async fn export_csv(
    calls: Arc<dyn CallQueries>,
    mut filter: CallFilter,
    window: ExportWindow,
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, http::StreamCut>>,
) {
    let writer = || {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new())
    };
    let mut out = writer();
    let _ = out.write_record(CALL_COLUMNS);
    let Some(top) = window.top else {
        let _ = tx
            .send(Ok(out.into_inner().unwrap_or_default().into()))
            .await;
        return;
    };
    filter.cursor = Some(top.saturating_add(1));
    filter.min_id = window.next_cursor;
    filter.limit = EXPORT_PAGE;
    loop {
        let (rows, next) = match calls.list_calls(filter.clone()).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "call export stopped early: store error");
                let _ = tx.send(Err(http::StreamCut)).await;
                return;
            }
        };
        for r in &rows {
            let v = serde_json::to_value(r).unwrap_or_default();
            let _ = out.write_record(CALL_COLUMNS.iter().map(|c| csv_cell(&v[*c])));
        }
        let chunk = std::mem::replace(&mut out, writer())
            .into_inner()
            .unwrap_or_default();
        if tx.send(Ok(chunk.into())).await.is_err() {
            return; // the client went away
        }
        match next {
            Some(n) => filter.cursor = Some(n),
            None => return,
        }
    }
}

/// One CSV cell. Text that a spreadsheet would run as a formula (a leading `=`, `+`, `-`,
/// `@`, tab or carriage return) gets a leading `'`, as OWASP recommends; the csv writer
/// quotes what needs quoting.
pub(super) fn csv_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => {
            if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{s}")
            } else {
                s.clone()
            }
        }
        other => other.to_string(),
    }
}

async fn usage(state: &Arc<AppState>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let raw = q.get("group_by").map(String::as_str).unwrap_or("app");
    let group = GroupBy::parse(raw).ok_or_else(|| {
        validation(
            "group_by",
            &format!("'{raw}' is not one of: app, provider, model, hour, day"),
        )
    })?;
    let filter = UsageFilter {
        app_id: int_param(&q, "app")?,
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
    };
    let rows = state.stores.calls.usage(group, filter).await?;
    Ok(http::json(
        200,
        &json!({"object": "list", "group_by": raw, "data": rows}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_resolves_every_route() {
        let r = router();
        assert!(matches!(
            r.at("/api/admin/apps/3/keys/9").map(|m| *m.value),
            Ok(R::Key)
        ));
        let m = r.at("/api/admin/rates/openai/gpt-4o").unwrap();
        assert_eq!(m.params.get("model"), Some("openai/gpt-4o"));
        assert!(matches!(
            r.at("/api/admin/rates/history").map(|m| *m.value),
            Ok(R::RateHistory)
        ));
        assert!(matches!(
            r.at("/api/admin/rates/import").map(|m| *m.value),
            Ok(R::RatesImport)
        ));
        // A model named like the route still has its prefix.
        assert!(matches!(
            r.at("/api/admin/rates/history/x").map(|m| *m.value),
            Ok(R::Rate)
        ));
        let m = r
            .at("/api/admin/apps/4/prices/bedrock/anthropic.claude-3")
            .unwrap();
        assert!(matches!(*m.value, R::AppPrice));
        assert_eq!(m.params.get("model"), Some("bedrock/anthropic.claude-3"));
        assert!(matches!(
            r.at("/api/admin/apps/4/prices").map(|m| *m.value),
            Ok(R::AppPrices)
        ));
        assert!(r.at("/api/admin/nope").is_err());
    }

    #[test]
    fn csv_cells_defuse_formulas_and_are_quoted_by_the_writer() {
        assert_eq!(csv_cell(&json!("a,b")), "a,b");
        assert_eq!(csv_cell(&json!(12)), "12");
        assert_eq!(csv_cell(&serde_json::Value::Null), "");
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(&json!(bad)), format!("'{bad}"));
        }
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_record([
            csv_cell(&json!("a,b")),
            csv_cell(&json!("say \"hi\"")),
            csv_cell(&json!("=HYPERLINK(\"http://x\",\"y\")")),
        ])
        .unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "\"a,b\",\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n"
        );
    }
}
