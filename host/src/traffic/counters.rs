//! Limiter state: per-minute buckets (GCRA, i.e. a token bucket of one minute's capacity
//! kept as a single "theoretical arrival time") and in-flight counts.
//!
//! Hand-written rather than `governor`: quotas change live per app, a token bucket must
//! take a cost of many tokens and later give part of it back (or take more) once the real
//! usage is known, the headers need "remaining" and "reset", and the state must fit a
//! shared store (Redis) behind the same trait. Integer nanoseconds throughout.

use std::collections::HashMap;
use std::sync::Mutex;

const MINUTE_NS: u128 = 60_000_000_000;

/// What taking from a bucket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Taken; what is left and when the bucket is full again.
    Admitted { remaining: u64, reset_ms: u64 },
    /// Not enough: retry after this long (`None`: the cost exceeds the whole capacity).
    Refused {
        retry_after_ms: Option<u64>,
        reset_ms: u64,
    },
}

/// Limiter state, this instance's or shared. Keys name one bucket or one in-flight
/// count each. Taking is awaited (admission needs the answer); giving back is not (it
/// runs where nothing can wait, a `Drop` among them), so a shared store applies it in
/// the background.
#[async_trait::async_trait]
pub trait Counters: Send + Sync {
    /// Takes `cost` from a bucket holding `capacity` per minute.
    async fn take(&self, key: &str, capacity: u64, cost: u64, now_ns: u128) -> Take;
    /// Adds `delta` to what was taken (negative gives back), once the real cost is known.
    fn adjust(&self, key: &str, capacity: u64, delta: i64, now_ns: u128);
    /// Counts one more call in flight unless `max` already are: the slot to give back.
    async fn enter(&self, key: &str, max: u64) -> Option<Slot>;
    fn leave(&self, key: &str, slot: Slot);
}

/// One call's place among the calls in flight (which store holds it, and under what).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Local,
    Shared(u64),
}

/// One instance's counters.
#[derive(Default)]
pub struct LocalCounters {
    buckets: Mutex<HashMap<String, u128>>,
    in_flight: Mutex<HashMap<String, u64>>,
}

fn interval(capacity: u64) -> u128 {
    MINUTE_NS / u128::from(capacity.max(1))
}

fn ms(ns: u128) -> u64 {
    u64::try_from(ns.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

#[async_trait::async_trait]
impl Counters for LocalCounters {
    async fn take(&self, key: &str, capacity: u64, cost: u64, now_ns: u128) -> Take {
        self.take_now(key, capacity, cost, now_ns)
    }

    fn adjust(&self, key: &str, capacity: u64, delta: i64, now_ns: u128) {
        self.adjust_now(key, capacity, delta, now_ns)
    }

    async fn enter(&self, key: &str, max: u64) -> Option<Slot> {
        self.enter_now(key, max).then_some(Slot::Local)
    }

    fn leave(&self, key: &str, _slot: Slot) {
        self.leave_now(key)
    }
}

impl LocalCounters {
    pub fn take_now(&self, key: &str, capacity: u64, cost: u64, now_ns: u128) -> Take {
        let t = interval(capacity);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let tat = buckets.get(key).copied().unwrap_or(now_ns).max(now_ns);
        let reset_ms = ms(tat - now_ns);
        if cost > capacity {
            return Take::Refused {
                retry_after_ms: None,
                reset_ms,
            };
        }
        let new_tat = tat + t * u128::from(cost);
        if new_tat - now_ns > MINUTE_NS {
            return Take::Refused {
                retry_after_ms: Some(ms(new_tat - now_ns - MINUTE_NS).max(1)),
                reset_ms,
            };
        }
        buckets.insert(key.to_string(), new_tat);
        let free = (now_ns + MINUTE_NS - new_tat) / t;
        Take::Admitted {
            remaining: u64::try_from(free).unwrap_or(u64::MAX).min(capacity),
            reset_ms: ms(new_tat - now_ns),
        }
    }

    pub fn adjust_now(&self, key: &str, capacity: u64, delta: i64, now_ns: u128) {
        let t = interval(capacity);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let tat = buckets.get(key).copied().unwrap_or(now_ns).max(now_ns);
        let step = t * u128::from(delta.unsigned_abs());
        let new_tat = if delta >= 0 {
            // Over the capacity at most: a long answer makes the bucket owe a minute.
            (tat + step).min(now_ns + 2 * MINUTE_NS)
        } else {
            tat.saturating_sub(step).max(now_ns)
        };
        buckets.insert(key.to_string(), new_tat);
    }

    pub fn enter_now(&self, key: &str, max: u64) -> bool {
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn leave_now(&self, key: &str) {
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u128 = 1_000_000_000;

    #[test]
    fn a_bucket_admits_its_capacity_then_refuses_until_it_refills() {
        let c = LocalCounters::default();
        let now = 1_000 * S;
        for i in 0..30 {
            match c.take_now("k", 30, 1, now) {
                Take::Admitted { remaining, .. } => assert_eq!(remaining, 29 - i),
                other => panic!("request {i}: {other:?}"),
            }
        }
        match c.take_now("k", 30, 1, now) {
            Take::Refused {
                retry_after_ms: Some(ms),
                reset_ms,
            } => {
                assert_eq!(ms, 2_000, "one request's worth: 60 s / 30");
                assert_eq!(reset_ms, 60_000);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.take_now("k", 30, 1, now + 2 * S),
            Take::Admitted { remaining: 0, .. }
        ));
        // Another key is another bucket.
        assert!(matches!(
            c.take_now("other", 30, 1, now),
            Take::Admitted { .. }
        ));
    }

    #[test]
    fn token_costs_are_taken_corrected_and_refused_when_larger_than_the_capacity() {
        let c = LocalCounters::default();
        let now = 5 * S;
        assert!(matches!(
            c.take_now("t", 1000, 2000, now),
            Take::Refused {
                retry_after_ms: None,
                ..
            }
        ));
        assert!(matches!(
            c.take_now("t", 1000, 800, now),
            Take::Admitted { remaining: 200, .. }
        ));
        assert!(matches!(
            c.take_now("t", 1000, 300, now),
            Take::Refused { .. }
        ));
        // The call used 100 of its 800: 700 come back.
        c.adjust_now("t", 1000, -700, now);
        assert!(matches!(
            c.take_now("t", 1000, 300, now),
            Take::Admitted { remaining: 600, .. }
        ));
    }

    #[test]
    fn in_flight_counts_cap_and_release() {
        let c = LocalCounters::default();
        assert!(c.enter_now("c", 2));
        assert!(c.enter_now("c", 2));
        assert!(!c.enter_now("c", 2));
        c.leave_now("c");
        assert!(c.enter_now("c", 2));
    }
}
