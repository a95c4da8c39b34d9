//! `aihub serve`: start-up, signals, shutdown.

use crate::config::Config;
use crate::plugin_host::check::LoadCheck;
use crate::plugin_host::{watcher, Registry};
use crate::state::{AppState, Parts};
use crate::store::backend::{Backend, Served};
use crate::store::calls::CallLog;
use crate::store::secrets::{load_master_key, probe, Cipher, KeySource};
use crate::upstream::Upstream;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Writes `<data_dir>/aihub.addr` atomically so a reader never sees half an address.
fn write_addr_file(
    config: &Config,
    addr: &std::net::SocketAddr,
) -> std::io::Result<std::path::PathBuf> {
    let path = config.storage.data_dir.join("aihub.addr");
    let tmp = config.storage.data_dir.join(".aihub.addr.tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

pub fn run(config: Config) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: Config) -> Result<(), String> {
    let telemetry = crate::observability::telemetry::init(&config)?;
    config.warn_ignored_env();
    let data_dir = config.storage.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let plugin_dir = config.plugin_dir();
    std::fs::create_dir_all(&plugin_dir)
        .map_err(|e| format!("cannot create plugin dir {}: {e}", plugin_dir.display()))?;

    let opened = open_store(&config).await?;
    if let Some(token) = &opened.new_admin_token {
        // Shown once, on stdout rather than in the log.
        println!("admin token (shown once; set AIHUB_ADMIN_TOKEN to choose your own): {token}");
    }
    if let Some(key) = &opened.first_app_key {
        println!("app key of app 'default' (shown once): {key}");
    }

    let check = LoadCheck::this_executable(Duration::from_millis(config.plugins.check_timeout_ms));
    let mut registry = Registry::new(plugin_dir.clone(), &data_dir, check);
    let rescan = tokio::task::spawn_blocking(move || {
        registry.rescan();
        registry
    });
    let registry = rescan
        .await
        .map_err(|e| format!("plugin scan failed: {e}"))?;
    let upstream = Upstream::new(&config.upstream)?;
    let listen = config.server.listen;
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    let watch = config.plugins.watch;
    // On Postgres, credit holds live in the database, shared by every instance on it.
    let credits = Arc::new(
        crate::billing::Credits::new(&config.billing).with_store(&opened.served.stores.credits),
    );
    // Balance alerts are written by the charge's own transaction.
    opened.served.charge_alerts.set(
        config.billing.webhook_url.is_some() && config.billing.enabled,
        config.billing.low_balance_credits.0,
    );
    tracing::info!(store = %opened.backend.describe(), "store open");
    let calls = CallLog::start_billing(
        opened.served.sink.clone(),
        config.call_log.queue_capacity,
        config.billing.enabled.then(|| credits.clone()),
    );
    let state = Arc::new(
        AppState::new(Parts {
            config,
            registry,
            upstream,
            stores: opened.served.stores.clone(),
            calls,
            credits,
            admin_token_hash: opened.admin_token_hash,
            telemetry_enabled: telemetry.enabled(),
        })
        .await,
    );
    {
        let table = state.routing.load();
        tracing::info!(prefixes = ?table.prefixes(), "providers routable");
    }

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let addr_file = write_addr_file(&state.config, &bound)
        .map_err(|e| format!("cannot write the address file: {e}"))?;
    tracing::info!(addr = %bound, plugin_dir = %plugin_dir.display(), "aihub listening");

    if let Backend::Postgres(db) = &opened.backend {
        crate::feed::start(state.clone(), db.clone()).await;
    }
    crate::resilience::recheck::spawn(state.clone());
    crate::billing::alerts::spawn(state.clone());
    let _watcher = if watch {
        watcher::spawn(state.clone(), plugin_dir)
    } else {
        None
    };

    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let hup_state = state.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: rescanning plugins and reloading the routing table");
            hup_state.refresh().await;
        }
    });

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    };
    crate::server::serve(state.clone(), listener, shutdown, grace).await;
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.calls.shutdown()).await;
    tracing::info!(
        written = state.calls.written(),
        dropped = state.calls.dropped(),
        "call log flushed"
    );
    telemetry.shutdown();
    let _ = std::fs::remove_file(addr_file);
    tracing::info!("aihub stopped");
    Ok(())
}

/// The store with its master key and admin token, ready to serve.
pub struct OpenedStore {
    pub backend: Backend,
    pub served: Served,
    pub cipher: Cipher,
    pub key_source: KeySource,
    pub admin_token_hash: [u8; 32],
    /// Set when the token was generated now: shown once.
    pub new_admin_token: Option<String>,
    /// On a brand-new database, the key of the `default` app: shown once.
    pub first_app_key: Option<String>,
}

/// Opens and migrates the configured store (SQLite or Postgres), expires due credit,
/// finds the master key, resolves the admin token and, on a new database, makes the
/// `default` app. Everything after opening goes through the store traits.
pub async fn open_store(config: &Config) -> Result<OpenedStore, String> {
    let data_dir = &config.storage.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let backend = Backend::open(&config.storage)
        .await
        .map_err(|e| e.to_string())?;
    let (before, after) = backend.migrate().await.map_err(|e| e.to_string())?;
    if before != after {
        tracing::info!(from = before, to = after, store = %backend.describe(), "database schema migrated");
    }
    let sample = backend.secret_sample().await.map_err(|e| e.to_string())?;
    let (cipher, key_source) = load_master_key(
        data_dir,
        config.master_key.as_ref().map(|k| k.expose()),
        |c| Ok(probe(&sample, c)),
    )
    .map_err(|e| e.to_string())?;
    if probe(&sample, &cipher) == Some(false) {
        return Err("the master key does not decrypt the stored provider keys: start with the key they were stored under (AIHUB_MASTER_KEY or <data_dir>/master.key)".into());
    }
    let served = backend.serve(cipher.clone());
    let stores = &served.stores;
    match stores.credits.expire_credits().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(apps = n, "expired credit grants taken out of balances"),
        Err(e) => tracing::error!(error = %e, "expired credit grants could not be processed"),
    }
    let (admin_token_hash, new_admin_token) = crate::admin::token::resolve(
        &*stores.meta,
        config.admin_token.as_ref().map(|t| t.expose()),
    )
    .await
    .map_err(|e| e.to_string())?;
    // Several instances may start on one new database at once: only the one that makes
    // the app (the name is unique) gives it its grant and first key.
    let first_app_key = if before == 0
        && stores
            .apps
            .list_apps()
            .await
            .map(|a| a.is_empty())
            .unwrap_or(false)
    {
        match stores.apps.create_app("default".into(), None).await {
            Ok(app) => {
                crate::billing::grant_new_app(&*stores.credits, &config.billing, app.id).await;
                let (_, key) = stores
                    .apps
                    .create_key(app.id, Some("first start".into()))
                    .await
                    .map_err(|e| e.to_string())?;
                Some(key)
            }
            Err(crate::store::StoreError::Conflict(_)) => None,
            Err(e) => return Err(e.to_string()),
        }
    } else {
        None
    };
    Ok(OpenedStore {
        backend,
        served,
        cipher,
        key_source,
        admin_token_hash,
        new_admin_token,
        first_app_key,
    })
}
