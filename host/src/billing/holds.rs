//! What admission needs in memory: each app's held credit (behind [`Holds`], so several
//! instances can later share it through Postgres or Redis) and a cache of balances.

use super::Pricing;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per-app sums of credit held by calls in flight.
pub trait Holds: Send + Sync {
    /// Holds `amount` for `app_id` when `balance` minus what is held covers it; else
    /// `Err` with what is held already. Check and add are one step.
    fn try_hold(&self, app_id: i64, balance: i64, amount: i64) -> Result<(), i64>;
    fn release(&self, app_id: i64, amount: i64);
    fn held(&self, app_id: i64) -> i64;
}

/// This instance's holds.
#[derive(Default)]
pub struct LocalHolds {
    held: Mutex<HashMap<i64, i64>>,
}

impl Holds for LocalHolds {
    fn try_hold(&self, app_id: i64, balance: i64, amount: i64) -> Result<(), i64> {
        let Ok(mut map) = self.held.lock() else {
            return Err(0);
        };
        let held = map.get(&app_id).copied().unwrap_or(0);
        if balance.saturating_sub(held) < amount {
            return Err(held);
        }
        map.insert(app_id, held.saturating_add(amount));
        Ok(())
    }

    fn release(&self, app_id: i64, amount: i64) {
        if let Ok(mut map) = self.held.lock() {
            if let Some(h) = map.get_mut(&app_id) {
                *h = h.saturating_sub(amount).max(0);
                if *h == 0 {
                    map.remove(&app_id);
                }
            }
        }
    }

    fn held(&self, app_id: i64) -> i64 {
        self.held
            .lock()
            .ok()
            .and_then(|m| m.get(&app_id).copied())
            .unwrap_or(0)
    }
}

#[derive(Default)]
struct Cached {
    /// Bumped by every invalidation, so a read that started before one is not cached.
    generation: u64,
    /// Balance and the next grant expiry (Unix ms) it is good until.
    value: Option<(i64, Option<i64>)>,
}

/// Why a hold was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefused {
    /// The balance changed since it was read: read it again.
    Stale,
    /// Not enough available credit; what is held already.
    Short(i64),
}

/// Holds the store keeps (Postgres), shared by every instance on it: admission takes
/// them in the store, and the charge's transaction removes them.
pub struct StoreHolds {
    pub store: Arc<dyn crate::store::traits::CreditStore>,
    runtime: tokio::runtime::Handle,
}

impl StoreHolds {
    /// Removes holds whose calls will not be charged (a record dropped or lost), from
    /// any thread; a store that cannot be reached now lets their leases end them.
    pub fn release_later(&self, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        self.runtime.spawn(async move {
            if let Err(e) = store.release_holds(ids).await {
                tracing::warn!(error = %e, "credit holds could not be released; their leases will end them");
            }
        });
    }
}

/// Billing's shared in-memory state: whether it is on, its prices, holds and balances.
pub struct Credits {
    pub enabled: bool,
    pub pricing: Pricing,
    pub holds: Arc<dyn Holds>,
    /// Set on a store that keeps holds: then `holds` and the balance cache are unused.
    pub store_holds: Option<StoreHolds>,
    balances: Mutex<HashMap<i64, Cached>>,
}

impl Credits {
    pub fn new(config: &crate::config::BillingConfig) -> Credits {
        Credits {
            enabled: config.enabled,
            pricing: Pricing::from_config(config),
            holds: Arc::new(LocalHolds::default()),
            store_holds: None,
            balances: Mutex::new(HashMap::new()),
        }
    }

    /// Takes holds in `store` when it keeps them (Postgres), so instances sharing it share
    /// them. Call inside the serving runtime.
    pub fn with_store(mut self, store: &Arc<dyn crate::store::traits::CreditStore>) -> Credits {
        if store.shares_holds() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                self.store_holds = Some(StoreHolds {
                    store: store.clone(),
                    runtime,
                });
            }
        }
        self
    }

    /// The cached balance and its generation, unless a grant has expired since it was
    /// read. `Err` carries the generation to pass to [`Self::fill`] after reading the
    /// store.
    pub fn cached(&self, app_id: i64, now_ms: i64) -> Result<(i64, u64), u64> {
        let Ok(mut map) = self.balances.lock() else {
            return Err(0);
        };
        let c = map.entry(app_id).or_default();
        match c.value {
            Some((b, exp)) if exp.is_none_or(|e| e > now_ms) => Ok((b, c.generation)),
            _ => Err(c.generation),
        }
    }

    /// Caches a balance read from the store, unless it changed since the read began.
    pub fn fill(&self, app_id: i64, generation: u64, balance: i64, next_expiry: Option<i64>) {
        if let Ok(mut map) = self.balances.lock() {
            let c = map.entry(app_id).or_default();
            if c.generation == generation {
                c.value = Some((balance, next_expiry));
            }
        }
    }

    /// What calls in flight hold of the app's balance: on every instance when the store
    /// keeps holds, else on this one.
    pub async fn held(&self, app_id: i64) -> Result<i64, crate::store::StoreError> {
        match &self.store_holds {
            Some(s) => s.store.held_credit(app_id).await,
            None => Ok(self.holds.held(app_id)),
        }
    }

    /// The balance's generation now: a balance read at this generation is current until
    /// the next [`Self::invalidate`].
    pub fn generation(&self, app_id: i64) -> u64 {
        self.balances
            .lock()
            .ok()
            .and_then(|m| m.get(&app_id).map(|c| c.generation))
            .unwrap_or(0)
    }

    /// Holds `amount` against `balance` only if the balance is still current (no charge
    /// or grant invalidated it since it was read at `generation`). A charge invalidates
    /// before its call's hold is released, so a stale balance can never meet a released
    /// hold: `Stale` asks the caller to read the balance again.
    pub fn hold_if_current(
        &self,
        app_id: i64,
        generation: u64,
        balance: i64,
        amount: i64,
    ) -> Result<(), HoldRefused> {
        let Ok(map) = self.balances.lock() else {
            return Err(HoldRefused::Short(0));
        };
        let now = map.get(&app_id).map_or(0, |c| c.generation);
        if now != generation {
            return Err(HoldRefused::Stale);
        }
        // Under the balances lock: no invalidation can slip in between check and hold.
        self.holds
            .try_hold(app_id, balance, amount)
            .map_err(HoldRefused::Short)
    }

    /// The stored balance changed (a charge, a grant).
    pub fn invalidate(&self, app_id: i64) {
        if let Ok(mut map) = self.balances.lock() {
            let c = map.entry(app_id).or_default();
            c.generation += 1;
            c.value = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_refuse_beyond_the_balance_and_release() {
        let h = LocalHolds::default();
        assert_eq!(h.try_hold(1, 100, 60), Ok(()));
        assert_eq!(h.try_hold(1, 100, 60), Err(60));
        assert_eq!(h.try_hold(2, 100, 60), Ok(()));
        h.release(1, 60);
        assert_eq!(h.held(1), 0);
        assert_eq!(h.try_hold(1, 100, 100), Ok(()));
    }

    #[test]
    fn a_read_overtaken_by_a_change_is_not_cached() {
        let c = Credits::new(&crate::config::BillingConfig::default());
        let g = c.cached(1, 0).unwrap_err();
        c.invalidate(1);
        c.fill(1, g, 50, None);
        let g = c.cached(1, 0).unwrap_err();
        c.fill(1, g, 40, Some(1000));
        assert_eq!(c.cached(1, 999).map(|v| v.0), Ok(40));
        assert!(c.cached(1, 1000).is_err());
    }

    #[test]
    fn a_balance_read_before_a_charge_cannot_take_a_hold() {
        let c = Credits::new(&crate::config::BillingConfig::default());
        let g = c.generation(1);
        c.invalidate(1);
        assert_eq!(c.hold_if_current(1, g, 100, 10), Err(HoldRefused::Stale));
        let g = c.generation(1);
        assert_eq!(c.hold_if_current(1, g, 100, 60), Ok(()));
        assert_eq!(
            c.hold_if_current(1, g, 100, 60),
            Err(HoldRefused::Short(60))
        );
    }
}
