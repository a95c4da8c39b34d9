//! The exact response cache: an answer kept under a hash of who asked (the app, unless
//! the operator shares answers), the model it is served by, and the request without
//! the fields that do not change the answer; replayed whole or as the same stream.
//!
//! Off by default: on per provider or alias (`cache_ttl_seconds` in config), for every
//! call (`[cache] enabled`), or per request (`x-aihub-cache: ttl=600`; `no-store` opts
//! out). Entries sit behind [`CacheStore`] (memory, bounded in bytes, by default) so a
//! shared store can take its place.

pub mod memory;
pub mod redis;

use crate::config::{CacheConfig, CacheScope, Config};
use crate::error::ApiError;
use bytes::Bytes;
use plugin_api::Usage;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The longest an answer is kept, whatever was asked.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);

pub type Key = [u8; 32];

/// One kept answer: the very bytes the client got.
#[derive(Debug, Clone)]
pub struct Cached {
    pub body: Bytes,
    pub content_type: Option<String>,
    /// The body is an event stream.
    pub stream: bool,
    pub usage: Option<Usage>,
    pub ttl: Duration,
}

/// Where answers are kept. Keeping one is not awaited: it happens after the client
/// has its answer, and a shared store writes it in the background.
#[async_trait::async_trait]
pub trait CacheStore: Send + Sync {
    async fn get(&self, key: &Key) -> Option<Arc<Cached>>;
    fn put(&self, key: Key, value: Cached);
    /// Bytes held now, and entries; `None` when another process holds them (Redis).
    fn size(&self) -> Option<(u64, u64)>;
}

/// Whether and for how long a call is cached: from config, per provider and alias.
pub struct Cache {
    pub store: Arc<dyn CacheStore>,
    config: CacheConfig,
    providers: HashMap<String, Duration>,
    aliases: HashMap<String, Duration>,
}

/// A miss that may be filled: where, for how long.
#[derive(Debug, Clone)]
pub struct Slot {
    pub key: Key,
    pub ttl: Duration,
    /// Largest answer kept.
    pub max_bytes: usize,
}

impl Cache {
    /// Answers are kept in Redis when `shared` is given, else in this instance's memory.
    pub fn new(config: &Config, shared: Option<Arc<crate::shared::Shared>>) -> Cache {
        let secs = |s: Option<u64>| s.filter(|s| *s > 0).map(Duration::from_secs);
        let store: Arc<dyn CacheStore> = match shared {
            Some(s) => Arc::new(redis::RedisCache::new(s)),
            None => Arc::new(memory::MemoryCache::new(config.cache.max_bytes)),
        };
        Cache {
            store,
            providers: config
                .providers
                .iter()
                .filter_map(|p| Some((p.prefix.clone(), secs(p.cache_ttl_seconds)?)))
                .collect(),
            aliases: config
                .routes
                .iter()
                .filter_map(|r| Some((r.model.clone(), secs(r.cache_ttl_seconds)?)))
                .collect(),
            config: config.cache.clone(),
        }
    }

    /// Nothing is cached unless a request asks (asked on every call).
    fn configured_ttl(&self, requested_model: &str, prefix: &str) -> Option<Duration> {
        self.aliases
            .get(requested_model)
            .or_else(|| self.providers.get(prefix))
            .copied()
            .or_else(|| {
                self.config
                    .enabled
                    .then(|| Duration::from_secs(self.config.default_ttl_seconds))
            })
    }

    /// The slot for this call, or `None` when it is not cached. A malformed
    /// `x-aihub-cache` header is the client's error.
    pub fn slot(&self, ask: &Ask<'_>) -> Result<Option<Slot>, ApiError> {
        let ttl = match header_ttl(ask.headers)? {
            Some(Directive::NoStore) => return Ok(None),
            Some(Directive::Ttl(t)) => Some(t),
            None => self.configured_ttl(ask.requested_model, ask.prefix),
        };
        let Some(ttl) = ttl.filter(|t| !t.is_zero()).map(|t| t.min(MAX_TTL)) else {
            return Ok(None);
        };
        let Some(key) = key(ask, self.config.scope) else {
            return Ok(None);
        };
        Ok(Some(Slot {
            key,
            ttl,
            max_bytes: usize::try_from(self.config.max_entry_bytes).unwrap_or(usize::MAX),
        }))
    }
}

/// What the key and the policy are made from.
pub struct Ask<'a> {
    pub app_id: i64,
    pub format: &'static str,
    pub endpoint: &'static str,
    pub stream: bool,
    pub requested_model: &'a str,
    /// The first target: routing prefix and upstream model.
    pub prefix: &'a str,
    pub upstream_model: &'a str,
    /// The client's body.
    pub body: &'a [u8],
    pub headers: &'a hyper::HeaderMap,
}

enum Directive {
    NoStore,
    Ttl(Duration),
}

fn header_ttl(headers: &hyper::HeaderMap) -> Result<Option<Directive>, ApiError> {
    let Some(v) = headers.get("x-aihub-cache") else {
        return Ok(None);
    };
    let bad = || ApiError::InvalidParam {
        param: "x-aihub-cache".into(),
        message: "must be 'ttl=<seconds>' (e.g. ttl=600) or 'no-store'".into(),
    };
    let v = v.to_str().map_err(|_| bad())?.trim();
    if v.eq_ignore_ascii_case("no-store") {
        return Ok(Some(Directive::NoStore));
    }
    let secs = v
        .strip_prefix("ttl=")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(bad)?;
    Ok(Some(Directive::Ttl(Duration::from_secs(secs))))
}

/// Fields that do not change the answer: left out of the key.
const IGNORED: [&str; 5] = ["stream", "stream_options", "user", "metadata", "store"];

/// The key, or `None` for a body that is not a JSON object (it fails elsewhere anyway).
fn key(ask: &Ask<'_>, scope: CacheScope) -> Option<Key> {
    let mut v: serde_json::Value = serde_json::from_slice(ask.body).ok()?;
    let obj = v.as_object_mut()?;
    for f in IGNORED {
        obj.remove(f);
    }
    // The model as served is part of the key; how the client named it is not.
    obj.remove("model");
    // serde_json's maps are ordered by key: the same request in any field order is
    // the same text.
    let canonical = serde_json::to_vec(&v).ok()?;
    let mut h = Sha256::new();
    match scope {
        CacheScope::App => h.update(ask.app_id.to_le_bytes()),
        CacheScope::Global => h.update(b"global"),
    }
    for part in [
        ask.format.as_bytes(),
        ask.endpoint.as_bytes(),
        if ask.stream { b"stream" } else { b"whole" },
        ask.prefix.as_bytes(),
        ask.upstream_model.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&canonical);
    Some(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask<'a>(body: &'a [u8], headers: &'a hyper::HeaderMap, app: i64) -> Ask<'a> {
        Ask {
            app_id: app,
            format: "openai_chat",
            endpoint: "chat",
            stream: false,
            requested_model: "smart",
            prefix: "openai",
            upstream_model: "gpt-4o",
            body,
            headers,
        }
    }

    #[test]
    fn the_key_ignores_field_order_user_and_stream_but_not_the_app_or_the_prompt() {
        let h = hyper::HeaderMap::new();
        let a = key(
            &ask(
                br#"{"model":"smart","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
                &h,
                1,
            ),
            CacheScope::App,
        );
        let b = key(
            &ask(br#"{"temperature":0,"user":"u1","stream_options":{},"messages":[{"content":"hi","role":"user"}],"model":"openai/gpt-4o"}"#, &h, 1),
            CacheScope::App,
        );
        assert!(a.is_some());
        assert_eq!(a, b);
        let other_app = key(
            &ask(
                br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
                &h,
                2,
            ),
            CacheScope::App,
        );
        assert_ne!(a, other_app);
        let shared = |app| {
            key(
                &ask(
                    br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
                    &h,
                    app,
                ),
                CacheScope::Global,
            )
        };
        assert_eq!(shared(1), shared(2));
        let other_prompt = key(
            &ask(
                br#"{"messages":[{"role":"user","content":"ho"}],"temperature":0}"#,
                &h,
                1,
            ),
            CacheScope::App,
        );
        assert_ne!(a, other_prompt);
        assert_eq!(key(&ask(b"[1]", &h, 1), CacheScope::App), None);
    }

    #[test]
    fn the_request_header_turns_caching_on_off_or_is_refused() {
        let cfg = Config::default();
        let cache = Cache::new(&cfg, None);
        let body = br#"{"messages":[]}"#;
        let mut h = hyper::HeaderMap::new();
        assert!(
            cache.slot(&ask(body, &h, 1)).unwrap().is_none(),
            "off by default"
        );
        h.insert("x-aihub-cache", "ttl=600".parse().unwrap());
        let slot = cache.slot(&ask(body, &h, 1)).unwrap().unwrap();
        assert_eq!(slot.ttl, Duration::from_secs(600));
        h.insert("x-aihub-cache", "ttl=99999999999".parse().unwrap());
        assert_eq!(cache.slot(&ask(body, &h, 1)).unwrap().unwrap().ttl, MAX_TTL);
        h.insert("x-aihub-cache", "no-store".parse().unwrap());
        assert!(cache.slot(&ask(body, &h, 1)).unwrap().is_none());
        h.insert("x-aihub-cache", "forever".parse().unwrap());
        assert!(matches!(
            cache.slot(&ask(body, &h, 1)),
            Err(ApiError::InvalidParam { .. })
        ));
    }
}
