//! App-key authentication for the consumer API, with an in-memory cache in front of the
//! store. Admin actions that revoke keys or disable apps clear the cache, so they take
//! effect on the next request; entries also expire, to notice changes made by another
//! process on the same database.

use crate::error::ApiError;
use crate::store::apps::{hash_key, KeyOwner};
use crate::store::health::StoreHealth;
use crate::store::traits::AppStore;
use hyper::HeaderMap;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

const POSITIVE_TTL: Duration = Duration::from_secs(30);
/// Unknown keys are remembered briefly so a flood of bad keys does not hit the database.
const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// Known keys kept; only real keys get here, so a flood cannot fill it.
const MAX_KNOWN: usize = 100_000;
/// Unknown keys kept; a flood fills and clears only this map, never the known keys.
const MAX_UNKNOWN: usize = 10_000;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub app_id: i64,
    pub key_id: i64,
    pub app_name: std::sync::Arc<str>,
}

struct Entry {
    owner: KeyOwner,
    hash: [u8; 32],
    at: Instant,
}

#[derive(Default)]
struct Entries {
    known: HashMap<[u8; 32], Entry>,
    unknown: HashMap<[u8; 32], Instant>,
    /// Bumped by every invalidation. A lookup that started before one must not put its
    /// (possibly stale) answer back into the cleared cache.
    generation: u64,
}

pub struct AuthCache {
    store: Arc<dyn AppStore>,
    entries: RwLock<Entries>,
    health: Arc<StoreHealth>,
    /// While the database is unreachable, a key verified within this long is let in.
    outage_grace: Duration,
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), if any.
/// Shared by app keys, the admin token and the metrics token.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The app key from `Authorization: Bearer ...` or `x-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

impl AuthCache {
    pub fn new(store: Arc<dyn AppStore>) -> Self {
        Self::with_outage_grace(store, Arc::default(), Duration::ZERO)
    }

    /// Reports reachability to `health`; while the database cannot be reached, answers
    /// for keys it verified within `POSITIVE_TTL + grace`.
    pub fn with_outage_grace(
        store: Arc<dyn AppStore>,
        health: Arc<StoreHealth>,
        grace: Duration,
    ) -> Self {
        AuthCache {
            store,
            entries: RwLock::new(Entries::default()),
            health,
            outage_grace: grace,
        }
    }

    /// The owner of a key verified before, if that was recent enough to serve it while
    /// the database cannot be reached.
    fn verified_before(&self, hash: &[u8; 32]) -> Option<KeyOwner> {
        let entries = self.entries.read().ok()?;
        let e = entries.known.get(hash)?;
        (e.at.elapsed() < POSITIVE_TTL + self.outage_grace && bool::from(e.hash.ct_eq(hash)))
            .then(|| e.owner.clone())
    }

    /// Forget everything (after a revocation or an app change).
    pub fn invalidate(&self) {
        if let Ok(mut e) = self.entries.write() {
            e.known.clear();
            e.unknown.clear();
            e.generation += 1;
        }
    }

    /// The cached answer (`Some(None)`: known to be unknown), and the generation it was
    /// read in.
    fn cached(&self, hash: &[u8; 32]) -> (Option<Option<KeyOwner>>, u64) {
        let Ok(entries) = self.entries.read() else {
            return (None, u64::MAX);
        };
        let generation = entries.generation;
        if let Some(e) = entries.known.get(hash) {
            // The map lookup found it by hash; confirm in constant time all the same.
            if e.at.elapsed() < POSITIVE_TTL && bool::from(e.hash.ct_eq(hash)) {
                return (Some(Some(e.owner.clone())), generation);
            }
        } else if let Some(at) = entries.unknown.get(hash) {
            if at.elapsed() < NEGATIVE_TTL {
                return (Some(None), generation);
            }
        }
        (None, generation)
    }

    /// Remembers a store answer, unless an invalidation happened since `generation`.
    fn remember(&self, hash: [u8; 32], found: &Option<KeyOwner>, generation: u64) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.generation != generation {
            return;
        }
        let now = Instant::now();
        match found {
            Some(owner) => {
                if entries.known.len() >= MAX_KNOWN {
                    entries.known.retain(|_, e| e.at.elapsed() < POSITIVE_TTL);
                    if entries.known.len() >= MAX_KNOWN {
                        return;
                    }
                }
                entries.unknown.remove(&hash);
                entries.known.insert(
                    hash,
                    Entry {
                        owner: owner.clone(),
                        hash,
                        at: now,
                    },
                );
            }
            None => {
                if entries.unknown.len() >= MAX_UNKNOWN {
                    entries.unknown.clear();
                }
                entries.known.remove(&hash);
                entries.unknown.insert(hash, now);
            }
        }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let key = presented_key(headers).ok_or_else(|| {
            ApiError::Unauthorized(
                "missing API key: send 'Authorization: Bearer <app key>' or 'x-api-key: <app key>'"
                    .into(),
            )
        })?;
        let hash = hash_key(key);
        let (cached, generation) = self.cached(&hash);
        let owner = match cached {
            Some(o) => o,
            None => {
                let looked_up = self.store.key_owner(hash).await;
                self.health.saw(&looked_up);
                match looked_up {
                    Ok(found) => {
                        self.remember(hash, &found, generation);
                        found
                    }
                    Err(e) if e.is_unreachable() => match self.verified_before(&hash) {
                        Some(owner) => {
                            self.health.count_cached_auth();
                            Some(owner)
                        }
                        None => {
                            return Err(ApiError::Unavailable(
                                "the database cannot be reached and this key was not verified recently; try again shortly".into(),
                            ))
                        }
                    },
                    Err(e) => return Err(ApiError::Internal(format!("key lookup failed: {e}"))),
                }
            }
        };
        match owner {
            None => Err(ApiError::Unauthorized("invalid API key".into())),
            Some(o) if o.revoked => Err(ApiError::Unauthorized(
                "this API key has been revoked".into(),
            )),
            Some(o) if !o.app_enabled => Err(ApiError::Forbidden(format!(
                "the app '{}' is disabled",
                o.app_name
            ))),
            Some(o) => Ok(Principal {
                app_id: o.app_id,
                key_id: o.key_id,
                app_name: o.app_name,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    fn cache_of(s: &crate::store::Store) -> AuthCache {
        AuthCache::new(Arc::new(crate::store::sqlite::SqliteStores::new(
            s.clone(),
            crate::store::secrets::Cipher::generate(),
        )))
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", auth.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn matrix() {
        let (_d, s) = test_store();
        let cache = cache_of(&s);
        let app = s.create_app("a").unwrap();
        let (row, key) = s.create_key(app.id, None).unwrap();
        assert!(matches!(
            cache.authenticate(&HeaderMap::new()).await,
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            cache.authenticate(&headers("Bearer ak-nope")).await,
            Err(ApiError::Unauthorized(_))
        ));
        let p = cache
            .authenticate(&headers(&format!("Bearer {key}")))
            .await
            .unwrap();
        assert_eq!(p.app_id, app.id);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", key.parse().unwrap());
        assert!(cache.authenticate(&h).await.is_ok());
        s.update_app(app.id, None, Some(false)).unwrap();
        cache.invalidate();
        assert!(matches!(
            cache.authenticate(&h).await,
            Err(ApiError::Forbidden(_))
        ));
        s.update_app(app.id, None, Some(true)).unwrap();
        s.revoke_key(app.id, row.id).unwrap();
        cache.invalidate();
        assert!(matches!(
            cache.authenticate(&h).await,
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn a_lookup_racing_an_invalidation_is_not_cached() {
        let (_d, s) = test_store();
        let cache = cache_of(&s);
        let app = s.create_app("a").unwrap();
        let (row, key) = s.create_key(app.id, None).unwrap();
        let hash = hash_key(&key);
        // A lookup reads the generation, then the store answers "valid"...
        let (_, generation) = cache.cached(&hash);
        let stale = s.key_owner(&hash).unwrap();
        // ...while an admin revokes the key and clears the cache...
        s.revoke_key(app.id, row.id).unwrap();
        cache.invalidate();
        // ...so the stale answer is not put back.
        cache.remember(hash, &stale, generation);
        assert!(cache.cached(&hash).0.is_none());
        assert!(matches!(
            cache.authenticate(&headers(&format!("Bearer {key}"))).await,
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn while_the_database_is_down_keys_verified_within_the_grace_are_served() {
        let (_d, s) = test_store();
        let cache = AuthCache::with_outage_grace(
            Arc::new(crate::store::sqlite::SqliteStores::new(
                s.clone(),
                crate::store::secrets::Cipher::generate(),
            )),
            Arc::default(),
            Duration::from_secs(300),
        );
        let app = s.create_app("a").unwrap();
        let (_, key) = s.create_key(app.id, None).unwrap();
        let hash = hash_key(&key);
        cache
            .authenticate(&headers(&format!("Bearer {key}")))
            .await
            .unwrap();
        let age = |secs: u64| {
            let mut e = cache.entries.write().unwrap();
            e.known.get_mut(&hash).unwrap().at = Instant::now()
                .checked_sub(Duration::from_secs(secs))
                .unwrap();
        };
        // Past the ordinary TTL the cache asks the store; if it cannot be reached, a
        // verification within TTL + grace still counts...
        age(200);
        assert!(cache.cached(&hash).0.is_none());
        assert_eq!(cache.verified_before(&hash).map(|o| o.app_id), Some(app.id));
        // ...and an older one does not.
        age(331);
        assert!(cache.verified_before(&hash).is_none());
        assert!(cache.verified_before(&hash_key("ak-other")).is_none());
    }

    #[tokio::test]
    async fn a_flood_of_unknown_keys_does_not_flush_known_ones() {
        let (_d, s) = test_store();
        let cache = cache_of(&s);
        let app = s.create_app("a").unwrap();
        let (_, key) = s.create_key(app.id, None).unwrap();
        cache
            .authenticate(&headers(&format!("Bearer {key}")))
            .await
            .unwrap();
        let (_, generation) = cache.cached(&hash_key(&key));
        for i in 0..(MAX_UNKNOWN + 10) {
            cache.remember(hash_key(&format!("ak-nope-{i}")), &None, generation);
        }
        assert!(matches!(cache.cached(&hash_key(&key)).0, Some(Some(_))));
    }
}
