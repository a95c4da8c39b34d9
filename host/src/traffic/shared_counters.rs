//! Limiter state in Redis, shared by every instance: the same GCRA buckets as
//! [`LocalCounters`], each step one Lua script (atomic, one round trip), on Redis's own
//! clock so instances with skewed clocks still agree. Calls in flight are members of a
//! sorted set scored by when their lease ends: an instance that dies holds its slots
//! only until then.
//!
//! When Redis fails or is slow, the step runs on this instance's own counters instead:
//! limits loosen to per instance, traffic goes on.

use super::counters::{Counters, LocalCounters, Slot, Take};
use crate::shared::Shared;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// Times are microseconds since 2026-01-01 (Lua numbers are doubles: this keeps them
/// exact to a few nanoseconds for centuries, where Unix nanoseconds would not be).
const TAKE: &str = r#"
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1767225600) * 1000000 + tonumber(t[2])
local cap = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local minute = 60000000
local step = minute / cap
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local reset = math.ceil((tat - now) / 1000)
if cost > cap then return {0, -1, reset} end
local new = tat + step * cost
if new - now > minute then
  return {0, math.max(1, math.ceil((new - now - minute) / 1000)), reset}
end
redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
local free = math.floor((now + minute - new) / step + 0.000001)
if free > cap then free = cap end
return {1, free, math.ceil((new - now) / 1000)}
"#;

const ADJUST: &str = r#"
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1767225600) * 1000000 + tonumber(t[2])
local minute = 60000000
local step = minute / tonumber(ARGV[1])
local delta = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + step * delta
if new > now + 2 * minute then new = now + 2 * minute end
if new <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 1
"#;

/// Milliseconds here: Unix milliseconds are exact in a double.
const ENTER: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"#;

static TAKE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TAKE));
static ADJUST_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADJUST));
static ENTER_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ENTER));

pub struct SharedCounters {
    redis: Arc<Shared>,
    /// Used for a step Redis could not take.
    local: Arc<LocalCounters>,
    /// Slot members are `<instance>:<n>`, unique across instances and restarts.
    instance: String,
    next_slot: AtomicU64,
}

impl SharedCounters {
    pub fn new(redis: Arc<Shared>) -> Self {
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        SharedCounters {
            redis,
            local: Arc::new(LocalCounters::default()),
            instance: hex::encode(id),
            next_slot: AtomicU64::new(1),
        }
    }

    fn bucket(&self, key: &str) -> String {
        self.redis.key(&format!("rl:{key}"))
    }

    fn slots(&self, key: &str) -> String {
        self.redis.key(&format!("cc:{key}"))
    }
}

/// Runs `f` on the runtime if there is one (giving back must never block its caller).
fn in_background(f: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(f);
            true
        }
        Err(_) => false,
    }
}

#[async_trait::async_trait]
impl Counters for SharedCounters {
    async fn take(&self, key: &str, capacity: u64, cost: u64, now_ns: u128) -> Take {
        let bucket = self.bucket(key);
        let answer: Option<(i64, i64, i64)> = self
            .redis
            .run("take", |mut c| async move {
                TAKE_SCRIPT
                    .key(&bucket)
                    .arg(capacity.max(1))
                    .arg(cost)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        let Some((ok, n, reset)) = answer else {
            return self.local.take_now(key, capacity, cost, now_ns);
        };
        let reset_ms = u64::try_from(reset).unwrap_or(0);
        if ok == 1 {
            Take::Admitted {
                remaining: u64::try_from(n).unwrap_or(0),
                reset_ms,
            }
        } else {
            Take::Refused {
                retry_after_ms: u64::try_from(n).ok(),
                reset_ms,
            }
        }
    }

    fn adjust(&self, key: &str, capacity: u64, delta: i64, now_ns: u128) {
        let (redis, local, bucket, k) = (
            self.redis.clone(),
            self.local.clone(),
            self.bucket(key),
            key.to_string(),
        );
        let spawned = in_background(async move {
            let done: Option<i64> = redis
                .run("adjust", |mut c| async move {
                    ADJUST_SCRIPT
                        .key(&bucket)
                        .arg(capacity.max(1))
                        .arg(delta)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            if done.is_none() {
                local.adjust_now(&k, capacity, delta, super::admission::now_ns());
            }
        });
        if !spawned {
            self.local.adjust_now(key, capacity, delta, now_ns);
        }
    }

    async fn enter(&self, key: &str, max: u64) -> Option<Slot> {
        let n = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let (set, member, lease) = (
            self.slots(key),
            format!("{}:{n}", self.instance),
            self.redis.slot_lease_ms,
        );
        let answer: Option<i64> = self
            .redis
            .run("enter", |mut c| async move {
                ENTER_SCRIPT
                    .key(&set)
                    .arg(max)
                    .arg(&member)
                    .arg(lease)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        match answer {
            Some(1) => Some(Slot::Shared(n)),
            Some(_) => None,
            None => self.local.enter_now(key, max).then_some(Slot::Local),
        }
    }

    fn leave(&self, key: &str, slot: Slot) {
        let n = match slot {
            Slot::Local => return self.local.leave_now(key),
            Slot::Shared(n) => n,
        };
        let (redis, set, member) = (
            self.redis.clone(),
            self.slots(key),
            format!("{}:{n}", self.instance),
        );
        // Without a runtime (never on the request path) the lease frees the slot.
        in_background(async move {
            let _: Option<i64> = redis
                .run("leave", |mut c| async move {
                    redis::cmd("ZREM")
                        .arg(&set)
                        .arg(&member)
                        .query_async(&mut c)
                        .await
                })
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::test_redis::shared;
    use std::time::Duration;

    const REDIS: &str = "redis://127.0.0.1:6379";

    #[tokio::test]
    async fn a_shared_bucket_admits_its_capacity_across_instances_then_refuses() {
        let redis = shared(REDIS).await;
        // Two instances: two counter sets on one Redis, one key prefix.
        let a = SharedCounters::new(redis.clone());
        let b = SharedCounters::new(redis.clone());
        for i in 0..30u64 {
            let c = if i % 2 == 0 { &a } else { &b };
            match c.take("app:1:rpm", 30, 1, 0).await {
                Take::Admitted { remaining, .. } => assert_eq!(remaining, 29 - i),
                other => panic!("request {i}: {other:?}"),
            }
        }
        match b.take("app:1:rpm", 30, 1, 0).await {
            Take::Refused {
                retry_after_ms: Some(ms),
                reset_ms,
            } => {
                assert!((1_900..=2_000).contains(&ms), "one request's worth: {ms}");
                assert!((59_000..=60_000).contains(&reset_ms), "{reset_ms}");
            }
            other => panic!("{other:?}"),
        }
        assert!(redis.is_up());
    }

    #[tokio::test]
    async fn token_costs_are_corrected_and_refused_when_larger_than_the_capacity() {
        let c = SharedCounters::new(shared(REDIS).await);
        assert!(matches!(
            c.take("t", 1000, 2000, 0).await,
            Take::Refused {
                retry_after_ms: None,
                ..
            }
        ));
        assert!(matches!(
            c.take("t", 1000, 800, 0).await,
            Take::Admitted { remaining: 200, .. }
        ));
        assert!(matches!(
            c.take("t", 1000, 300, 0).await,
            Take::Refused { .. }
        ));
        c.adjust("t", 1000, -700, 0);
        // Giving back runs in the background.
        for _ in 0..100 {
            if let Take::Admitted { remaining, .. } = c.take("t", 1000, 300, 0).await {
                assert!((599..=600).contains(&remaining), "{remaining}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the 700 tokens given back never arrived");
    }

    #[tokio::test]
    async fn slots_are_shared_given_back_and_end_with_their_lease() {
        let redis = shared(REDIS).await; // lease: 1 s
        let (a, b) = (
            SharedCounters::new(redis.clone()),
            SharedCounters::new(redis.clone()),
        );
        let first = a.enter("c", 2).await.expect("first slot");
        assert!(matches!(first, Slot::Shared(_)));
        let _second = b.enter("c", 2).await.expect("second slot");
        assert_eq!(a.enter("c", 2).await, None);
        assert_eq!(b.enter("c", 2).await, None);
        a.leave("c", first);
        let mut again = None;
        for _ in 0..100 {
            again = b.enter("c", 2).await;
            if again.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(again.is_some(), "a slot given back is free again");
        // Neither slot is given back now, as if both instances died: the leases end.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(a.enter("c", 2).await.is_some());
        assert!(a.enter("c", 2).await.is_some());
    }

    #[tokio::test]
    async fn without_redis_each_instance_limits_on_its_own_counters() {
        // Nothing listens on port 1: never connected, every step runs locally.
        let c = SharedCounters::new(shared("redis://127.0.0.1:1").await);
        for _ in 0..2 {
            assert!(matches!(
                c.take("k", 2, 1, 1_000_000_000).await,
                Take::Admitted { .. }
            ));
        }
        assert!(matches!(
            c.take("k", 2, 1, 1_000_000_000).await,
            Take::Refused { .. }
        ));
        let s = c.enter("c", 1).await;
        assert_eq!(s, Some(Slot::Local));
        assert_eq!(c.enter("c", 1).await, None);
        c.leave("c", Slot::Local);
        assert_eq!(c.enter("c", 1).await, Some(Slot::Local));
    }
}
