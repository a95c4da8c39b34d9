//! `aihub serve`: start-up, signals, shutdown.

use crate::config::Config;
use crate::plugins::{watcher, Registry};
use crate::state::AppState;
use crate::upstream::Upstream;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the admin token: {e}"))?;
    Ok(format!("adm-{}", hex::encode(bytes)))
}

/// Writes `<data_dir>/aihub.addr` atomically so a reader never sees half an address.
fn write_addr_file(config: &Config, addr: &std::net::SocketAddr) -> std::io::Result<std::path::PathBuf> {
    let path = config.storage.data_dir.join("aihub.addr");
    let tmp = config.storage.data_dir.join(".aihub.addr.tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

pub fn run(config: Config) -> Result<(), String> {
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: Config) -> Result<(), String> {
    let data_dir = config.storage.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let plugin_dir = config.plugin_dir();
    std::fs::create_dir_all(&plugin_dir)
        .map_err(|e| format!("cannot create plugin dir {}: {e}", plugin_dir.display()))?;

    let admin_token = match config.admin_token.clone().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            let t = random_token()?;
            // Shown once, on stdout rather than in the log.
            println!("admin token (set AIHUB_ADMIN_TOKEN to choose your own): {t}");
            t
        }
    };

    let mut registry = Registry::new(plugin_dir.clone(), &data_dir);
    let rescan = tokio::task::spawn_blocking(move || {
        registry.rescan();
        registry
    });
    let registry = rescan.await.map_err(|e| format!("plugin scan failed: {e}"))?;
    let upstream = Upstream::new(&config.upstream)?;
    let listen = config.server.listen;
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    let watch = config.plugins.watch;
    let state = Arc::new(AppState::new(config, registry, upstream, &admin_token));
    {
        let table = state.routes.load();
        tracing::info!(prefixes = ?table.prefixes(), "providers routable");
    }

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let addr_file = write_addr_file(&state.config, &bound).map_err(|e| format!("cannot write the address file: {e}"))?;
    tracing::info!(addr = %bound, plugin_dir = %plugin_dir.display(), "aihub listening");

    let _watcher = if watch { watcher::spawn(state.clone(), plugin_dir) } else { None };

    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let hup_state = state.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: rescanning plugins");
            hup_state.rescan().await;
        }
    });

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    };
    crate::server::serve(state, listener, shutdown, grace).await;
    let _ = std::fs::remove_file(addr_file);
    tracing::info!("aihub stopped");
    Ok(())
}
