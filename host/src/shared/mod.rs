//! The connection to what several instances share: Redis, for rate-limit counters
//! (`traffic::shared_counters`) and the response cache (`cache::redis`).
//!
//! One multiplexed connection (redis's `ConnectionManager`, which reconnects by itself)
//! serves every task: commands are pipelined on it, so a pool of sockets would only add
//! round trips. Every command has a deadline. While Redis is away the callers fall back
//! to what one instance can do alone (its own counters, a cache miss), so losing Redis
//! loosens limits to per instance but never stops traffic; `/readyz` and the
//! `aihub_redis_up` gauge say so.

use crate::config::SharedConfig;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Redis as this instance sees it.
pub struct Shared {
    conn: OnceLock<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    up: AtomicBool,
    pub slot_lease_ms: u64,
    errors: Counter,
    up_gauge: Gauge,
}

/// What went wrong opening Redis; the URL is never part of it (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("shared.redis_url: {0}")]
pub struct SharedError(String);

impl Shared {
    /// Connects in the background (the first attempt included), so an instance starts
    /// even while Redis is down. `None` without `shared.redis_url`.
    pub fn start(
        config: &SharedConfig,
        errors: Counter,
        up_gauge: Gauge,
    ) -> Result<Option<Arc<Shared>>, SharedError> {
        let Some(url) = &config.redis_url else {
            return Ok(None);
        };
        let client = redis::Client::open(url.expose())
            .map_err(|e| SharedError(format!("not a Redis URL ({:?})", e.kind())))?;
        let shared = Arc::new(Shared {
            conn: OnceLock::new(),
            prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            up: AtomicBool::new(false),
            slot_lease_ms: config.slot_lease_seconds.saturating_mul(1000),
            errors,
            up_gauge,
        });
        let s = shared.clone();
        tokio::spawn(async move { s.connect(client).await });
        Ok(Some(shared))
    }

    async fn connect(self: Arc<Self>, client: redis::Client) {
        let mut wait = Duration::from_millis(200);
        loop {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(self.timeout))
                .set_max_delay(Duration::from_secs(5));
            match ConnectionManager::new_with_config(client.clone(), config).await {
                Ok(conn) => {
                    let _ = self.conn.set(conn);
                    self.mark_up();
                    tracing::info!("connected to Redis: rate limits and the cache are shared");
                    return;
                }
                Err(e) => {
                    if wait == Duration::from_millis(200) {
                        tracing::warn!(error = %e, "cannot reach Redis; limiting on this instance's own counters until it answers");
                    }
                    self.errors.inc();
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// `prefix` + `key`: every key aihub writes.
    pub fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Runs one command (or script, or pipeline) within the deadline; `None` when Redis
    /// is not connected, failed or was too slow (counted, and logged when it changes).
    pub async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn.get()?.clone();
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.mark_up();
                Some(v)
            }
            Ok(Err(e)) => {
                self.mark_down(op, &e.to_string());
                None
            }
            Err(_) => {
                self.mark_down(op, "timed out");
                None
            }
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            self.up_gauge.set(1);
            tracing::info!("Redis answers: shared state in use");
        }
    }

    fn mark_down(&self, op: &'static str, error: &str) {
        self.errors.inc();
        if self.up.swap(false, Ordering::Relaxed) {
            self.up_gauge.set(0);
            tracing::warn!(op, error, "Redis failed; falling back to this instance's own counters (and cache misses) until it answers");
        }
    }
}

#[cfg(test)]
pub(crate) mod test_redis {
    //! The machine's Redis (127.0.0.1:6379), each test under its own key prefix.
    use super::*;

    fn random_hex() -> String {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        hex::encode(b)
    }

    pub async fn shared(url: &str) -> Arc<Shared> {
        let config = SharedConfig {
            redis_url: Some(crate::config::Secret::new(url)),
            key_prefix: format!("aihub-test:{}:", random_hex()),
            slot_lease_seconds: 1,
            timeout_ms: 1000,
        };
        let s = Shared::start(&config, Counter::default(), Gauge::default())
            .unwrap()
            .unwrap();
        if url.contains(":6379") {
            for _ in 0..100 {
                if s.conn.get().is_some() {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("Redis at {url} does not answer: the tests need the machine's Redis running");
        }
        s
    }
}
