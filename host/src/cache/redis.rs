//! Answers kept in Redis, so every instance serves what any one of them cached. One hash
//! per answer (`body`, `content_type`, `stream`, `usage`) with the entry's TTL; Redis's
//! own `maxmemory` policy bounds the whole (`[cache] max_bytes` bounds memory caches
//! only). A Redis that fails or is slow is a miss, and a fresh answer not kept.

use super::{CacheStore, Cached, Key};
use crate::shared::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub struct RedisCache {
    redis: Arc<Shared>,
}

impl RedisCache {
    pub fn new(redis: Arc<Shared>) -> Self {
        RedisCache { redis }
    }

    fn key(&self, key: &Key) -> String {
        self.redis.key(&format!("cache:{}", hex::encode(key)))
    }
}

/// The hash back into an answer; anything malformed (another version's entry, a
/// hand edit) is a miss.
fn decode(mut h: HashMap<String, Vec<u8>>) -> Option<Cached> {
    let body = h.remove("body")?;
    let stream = match h.get("stream").map(Vec::as_slice) {
        Some(b"1") => true,
        Some(b"0") => false,
        _ => return None,
    };
    let content_type = match h.remove("content_type") {
        Some(v) => Some(String::from_utf8(v).ok()?),
        None => None,
    };
    let usage = match h.get("usage") {
        Some(v) => Some(serde_json::from_slice(v).ok()?),
        None => None,
    };
    Some(Cached {
        body: body.into(),
        content_type,
        stream,
        usage,
        ttl: Duration::ZERO,
    })
}

#[async_trait::async_trait]
impl CacheStore for RedisCache {
    async fn get(&self, key: &Key) -> Option<Arc<Cached>> {
        let k = self.key(key);
        let h: HashMap<String, Vec<u8>> = self
            .redis
            .run("cache_get", |mut c| async move {
                redis::cmd("HGETALL").arg(&k).query_async(&mut c).await
            })
            .await?;
        if h.is_empty() {
            return None;
        }
        decode(h).map(Arc::new)
    }

    fn put(&self, key: Key, value: Cached) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (redis, k) = (self.redis.clone(), self.key(&key));
        let ttl_ms = u64::try_from(value.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        handle.spawn(async move {
            let usage = value.usage.and_then(|u| serde_json::to_vec(&u).ok());
            let _: Option<()> = redis
                .run("cache_put", |mut c| async move {
                    let mut fields: Vec<(&str, &[u8])> = vec![
                        ("body", &value.body),
                        ("stream", if value.stream { b"1" } else { b"0" }),
                    ];
                    if let Some(ct) = &value.content_type {
                        fields.push(("content_type", ct.as_bytes()));
                    }
                    if let Some(u) = &usage {
                        fields.push(("usage", u));
                    }
                    // One transaction: an entry never exists without its expiry.
                    redis::pipe()
                        .atomic()
                        .del(&k)
                        .ignore()
                        .hset_multiple(&k, &fields)
                        .ignore()
                        .pexpire(&k, i64::try_from(ttl_ms).unwrap_or(i64::MAX))
                        .ignore()
                        .query_async(&mut c)
                        .await
                })
                .await;
        });
    }

    fn size(&self) -> Option<(u64, u64)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::test_redis::shared;
    use plugin_api::Usage;

    fn answer(ttl: Duration) -> Cached {
        Cached {
            body: bytes::Bytes::from_static(b"data: {\"x\":1}\n\n"),
            content_type: Some("text/event-stream".into()),
            stream: true,
            usage: Some(Usage {
                input_tokens: 3,
                output_tokens: 5,
                ..Usage::default()
            }),
            ttl,
        }
    }

    async fn eventually(c: &RedisCache, key: &Key) -> Option<Arc<Cached>> {
        for _ in 0..100 {
            if let Some(hit) = c.get(key).await {
                return Some(hit);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    #[tokio::test]
    async fn an_answer_kept_by_one_instance_is_served_by_another_until_it_expires() {
        let redis = shared("redis://127.0.0.1:6379").await;
        let (a, b) = (RedisCache::new(redis.clone()), RedisCache::new(redis));
        let key = [7u8; 32];
        assert!(b.get(&key).await.is_none());
        a.put(key, answer(Duration::from_millis(400)));
        let hit = eventually(&b, &key).await.expect("kept by a, read by b");
        assert_eq!(&hit.body[..], b"data: {\"x\":1}\n\n");
        assert!(hit.stream);
        assert_eq!(hit.content_type.as_deref(), Some("text/event-stream"));
        assert_eq!(hit.usage.map(|u| u.output_tokens), Some(5));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(b.get(&key).await.is_none(), "expired with its TTL");
    }

    #[tokio::test]
    async fn without_redis_every_lookup_is_a_miss() {
        let c = RedisCache::new(shared("redis://127.0.0.1:1").await);
        c.put([1; 32], answer(Duration::from_secs(60)));
        assert!(c.get(&[1; 32]).await.is_none());
        assert_eq!(c.size(), None);
    }

    #[test]
    fn a_malformed_entry_is_a_miss() {
        let mut h = HashMap::new();
        h.insert("body".to_string(), b"x".to_vec());
        h.insert("stream".to_string(), b"yes".to_vec());
        assert!(decode(h).is_none());
    }
}
