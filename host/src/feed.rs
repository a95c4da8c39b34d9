//! The change feed: instances on one Postgres database tell each other about admin
//! changes (providers, keys, apps, rates, aliases, limits, budgets), so a key revoked or a
//! provider added on one holds on every other within moments, not after a cache expires.
//!
//! Each instance publishes what it applied (`AppState::changes`) as `NOTIFY aihub_changes,
//! '<instance> <change>'` and listens on a connection of its own; what another instance
//! published is applied locally (`AppState::apply`: routing rebuilt, auth cache cleared,
//! limits or budgets re-read). A burst is coalesced, so a rates import rebuilds the table
//! once. The listener checks its connection every few seconds and reconnects; after a
//! reconnect it refreshes everything, since notifications sent meanwhile are lost.

use crate::state::{AppState, Change};
use crate::store::pg::PgDb;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often the listening connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long a check may take before the connection counts as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest pause between two attempts to listen again.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether the feed runs and is listening, for `/readyz` and the metrics.
#[derive(Default)]
pub struct FeedStatus {
    enabled: AtomicBool,
    listening: AtomicBool,
}

impl FeedStatus {
    /// `None` without a feed (SQLite); else whether it is listening.
    pub fn listening(&self) -> Option<bool> {
        self.enabled
            .load(Ordering::Relaxed)
            .then(|| self.listening.load(Ordering::Relaxed))
    }
}

/// How long the start waits for the first listening connection before serving without it.
const FIRST_LISTEN: Duration = Duration::from_secs(5);

/// Starts publishing this instance's changes and applying the others'. Waits (boundedly)
/// until it listens, so an instance that accepts traffic already hears every change; what
/// changed between loading the state and listening is then re-read.
pub async fn start(state: Arc<AppState>, db: PgDb) {
    let mut id = [0u8; 8];
    let _ = getrandom::fill(&mut id);
    let me: Arc<str> = hex::encode(id).into();
    state.feed.enabled.store(true, Ordering::Relaxed);
    tokio::spawn(publish(db.clone(), state.changes.subscribe(), me.clone()));
    let first = match tokio::time::timeout(FIRST_LISTEN, db.listen()).await {
        Ok(Ok(listener)) => {
            for c in Change::ALL {
                state.apply(c).await;
            }
            Some(listener)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "change feed: cannot listen yet; retrying in the background");
            None
        }
        Err(_) => {
            tracing::warn!("change feed: listening timed out; retrying in the background");
            None
        }
    };
    tokio::spawn(listen(state, db, me, first));
}

/// The payload for one change from `from` (`cli` for a command-line tool).
pub fn payload(from: &str, change: Change) -> String {
    format!("{from} {}", change.name())
}

/// Another instance's change named by `payload`; `None` for this instance's own or for
/// something this version does not know (a newer instance's: refresh all to be safe).
fn parse(payload: &str, me: &str) -> Option<Vec<Change>> {
    let (from, name) = payload.split_once(' ')?;
    if from == me {
        return None;
    }
    Some(match Change::from_name(name) {
        Some(c) => vec![c],
        None => Change::ALL.to_vec(),
    })
}

async fn publish(db: PgDb, mut changes: tokio::sync::broadcast::Receiver<Change>, me: Arc<str>) {
    loop {
        let mut due = BTreeSet::new();
        match changes.recv().await {
            Ok(c) => {
                due.insert(c);
            }
            Err(RecvError::Lagged(_)) => due.extend(Change::ALL),
            Err(RecvError::Closed) => return,
        }
        while let Ok(c) = changes.try_recv() {
            due.insert(c);
        }
        for change in due {
            let payload = payload(&me, change);
            let mut pause = Duration::from_millis(100);
            for attempt in 1..=3 {
                match db.notify(&payload).await {
                    Ok(()) => break,
                    Err(e) if attempt == 3 => tracing::error!(
                        change = change.name(),
                        error = %e,
                        "change feed: a change could not be published; other instances see it when their caches expire or on their next refresh (SIGHUP)"
                    ),
                    Err(_) => {
                        tokio::time::sleep(pause).await;
                        pause *= 4;
                    }
                }
            }
        }
    }
}

async fn listen(
    state: Arc<AppState>,
    db: PgDb,
    me: Arc<str>,
    mut first: Option<crate::store::pg::feed::Listener>,
) {
    // Without a first listener the state is as old as the start: re-read it on listening.
    let mut missed = first.is_none();
    let mut pause = Duration::from_millis(250);
    loop {
        let listened = match first.take() {
            Some(l) => Ok(l),
            None => db.listen().await,
        };
        match listened {
            Ok(mut listener) => {
                state.feed.listening.store(true, Ordering::Relaxed);
                state.metrics.change_feed_up.set(1);
                pause = Duration::from_millis(250);
                if missed {
                    tracing::info!("change feed: listening; refreshing everything");
                    for c in Change::ALL {
                        state.apply(c).await;
                    }
                }
                loop {
                    tokio::select! {
                        p = listener.payloads.recv() => {
                            let Some(p) = p else { break };
                            let mut due = BTreeSet::new();
                            due.extend(parse(&p, &me).into_iter().flatten());
                            while let Ok(p) = listener.payloads.try_recv() {
                                due.extend(parse(&p, &me).into_iter().flatten());
                            }
                            for c in due {
                                tracing::debug!(change = c.name(), "change feed: applying another instance's change");
                                state.apply(c).await;
                            }
                        }
                        _ = tokio::time::sleep(CHECK_EVERY) => {
                            let check = listener.client.simple_query("SELECT 1");
                            if !matches!(tokio::time::timeout(CHECK_TIMEOUT, check).await, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!("change feed: the listening connection was lost; reconnecting");
            }
            Err(e) => {
                if pause == RETRY_MAX {
                    tracing::warn!(error = %e, "change feed: cannot listen");
                }
            }
        }
        missed = true;
        state.feed.listening.store(false, Ordering::Relaxed);
        state.metrics.change_feed_up.set(0);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_sender_and_change() {
        assert_eq!(payload("ab12", Change::Auth), "ab12 auth");
        assert_eq!(parse("ab12 auth", "ab12"), None);
        assert_eq!(parse("cd34 auth", "ab12"), Some(vec![Change::Auth]));
        assert_eq!(parse("cli routing", "ab12"), Some(vec![Change::Routing]));
        // A newer instance's change this version does not know: refresh everything.
        assert_eq!(parse("cd34 quotas", "ab12"), Some(Change::ALL.to_vec()));
        assert_eq!(parse("garbage", "ab12"), None);
    }
}
