//! Notices new or replaced libraries in the plugin directory and triggers a rescan.
//! Bursts of file events (a copy is many writes) are coalesced into one rescan.

use crate::state::AppState;
use notify::{RecursiveMode, Watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last event before rescanning.
const SETTLE: Duration = Duration::from_millis(250);
/// Used when the OS watcher cannot be set up (e.g. inotify limits).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Starts watching; the returned watcher must be kept alive.
pub fn spawn(state: Arc<AppState>, dir: std::path::PathBuf) -> Option<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::channel::<()>(64);
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|_| w));
    match watcher {
        Ok(w) => {
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    loop {
                        match tokio::time::timeout(SETTLE, rx.recv()).await {
                            Ok(Some(())) => continue,
                            Ok(None) => return,
                            Err(_) => break,
                        }
                    }
                    state.rescan().await;
                }
            });
            Some(w)
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the plugin directory; polling it instead");
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(POLL_EVERY);
                loop {
                    tick.tick().await;
                    state.rescan().await;
                }
            });
            None
        }
    }
}
