//! Answers kept in this instance's memory, bounded in bytes (moka: size-aware eviction,
//! per-entry time to live).

use super::{CacheStore, Cached, Key};
use moka::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes an entry costs beyond its body (key, headers, bookkeeping).
const OVERHEAD: usize = 256;

struct PerEntry;

impl moka::Expiry<Key, Arc<Cached>> for PerEntry {
    fn expire_after_create(&self, _: &Key, v: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

pub struct MemoryCache {
    entries: Cache<Key, Arc<Cached>>,
}

impl MemoryCache {
    pub fn new(max_bytes: u64) -> Self {
        MemoryCache {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                // Recency, not TinyLFU's frequency admission: a fresh answer is the
                // likeliest to be asked again (a retried job, an eval rerun).
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .weigher(|_, v: &Arc<Cached>| {
                    u32::try_from(v.body.len() + OVERHEAD).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build(),
        }
    }
}

#[async_trait::async_trait]
impl CacheStore for MemoryCache {
    async fn get(&self, key: &Key) -> Option<Arc<Cached>> {
        self.entries.get(key)
    }

    fn put(&self, key: Key, value: Cached) {
        self.entries.insert(key, Arc::new(value));
    }

    fn size(&self) -> Option<(u64, u64)> {
        self.entries.run_pending_tasks();
        Some((self.entries.weighted_size(), self.entries.entry_count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Cached {
        Cached {
            body: bytes::Bytes::from(vec![b'x'; n]),
            content_type: None,
            stream: false,
            usage: None,
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn many_distinct_entries_stay_under_the_byte_bound() {
        let c = MemoryCache::new(100_000);
        for i in 0..2_000u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            c.put(k, entry(1_000));
        }
        let (bytes, entries) = c.size().unwrap();
        assert!(bytes <= 100_000, "{bytes} bytes in {entries} entries");
        assert!(entries > 0);
    }

    #[tokio::test]
    async fn an_entry_expires_after_its_ttl() {
        let c = MemoryCache::new(1_000_000);
        let mut e = entry(10);
        e.ttl = Duration::from_millis(50);
        c.put([1; 32], e);
        assert!(c.get(&[1; 32]).await.is_some());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(c.get(&[1; 32]).await.is_none());
    }
}
