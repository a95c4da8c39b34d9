//! Whether the database answers, as this instance last saw it (the call-log writer,
//! key lookups, `/readyz`), so an outage is reported the same way everywhere and the
//! auth cache knows when to answer from what it verified before.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub struct StoreHealth {
    /// Unix ms of the first failure of the current outage; 0 while the database answers.
    down_since: AtomicI64,
    /// Calls let in on a cached key verification while the database was unreachable.
    cached_auths: AtomicU64,
}

impl StoreHealth {
    /// The database answered.
    pub fn up(&self) {
        if self.down_since.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("the database answers again");
        }
    }

    /// The database could not be reached.
    pub fn down(&self) {
        let now = super::now_ms().max(1);
        if self
            .down_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::error!("the database cannot be reached: serving keys verified before and queueing call records");
        }
    }

    /// Records what a store call says about reachability.
    pub fn saw<T>(&self, result: &Result<T, super::StoreError>) {
        match result {
            Ok(_) => self.up(),
            Err(e) if e.is_unreachable() => self.down(),
            Err(_) => {}
        }
    }

    /// Since when (Unix ms) the database has been unreachable.
    pub fn down_since(&self) -> Option<i64> {
        match self.down_since.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    pub fn count_cached_auth(&self) {
        self.cached_auths.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cached_auths(&self) -> u64 {
        self.cached_auths.load(Ordering::Relaxed)
    }
}
