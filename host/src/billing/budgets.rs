//! Spend caps (budgets) per app and per app key, in USD per UTC day and per UTC month.
//! They hold whether credit billing is on or off: they are measured on the recorded
//! upstream cost (`cost_micros`), not on credits.
//!
//! Admission reserves each call's estimated cost against every cap it falls under, the
//! way credit holds work, so parallel calls cannot overshoot together: a scope's spend
//! can pass its cap only by what the calls in flight cost beyond their estimates. The
//! spend already recorded is read from the store at a scope's first capped call; from
//! then on every settled call adds its cost here, and a new day or month starts at zero.
//!
//! On a shared store (several instances) the other instances' spend reaches this one by
//! a re-read every [`RESYNC_MS`] (one read per scope and interval, by the call that
//! finds it due); the spend kept is the larger of this instance's count and the store's,
//! so calls settled here and still in the write queue are never lost by a re-read. A cap
//! can then be passed by what the other instances spend within one interval (plus their
//! call-log write delay) on top of the calls in flight.

use crate::store::budgets::{Budget, StoredBudgets};
use arc_swap::ArcSwap;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Whose spend: an app's, or one key's (with its app, for messages and alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    App(i64),
    Key { app: i64, key: i64 },
}

impl Who {
    pub fn scope(self) -> crate::store::limits::Scope {
        match self {
            Who::App(a) => crate::store::limits::Scope::App(a),
            Who::Key { app, key } => crate::store::limits::Scope::Key(app, key),
        }
    }
}

impl From<crate::store::limits::Scope> for Who {
    fn from(s: crate::store::limits::Scope) -> Who {
        match s {
            crate::store::limits::Scope::App(a) => Who::App(a),
            crate::store::limits::Scope::Key(app, key) => Who::Key { app, key },
        }
    }
}

/// What the store recorded for a scope today and this month (micro-USD): where a
/// scope's tracking starts, and what the admin view shows of one not tracked yet.
pub async fn stored_spend(
    stores: &crate::store::traits::Stores,
    who: Who,
    now: i64,
) -> Result<(i64, i64), crate::store::StoreError> {
    let spent = &stores.budgets;
    Ok((
        spent.spent_since(who.scope(), day_start(now)).await?,
        spent.spent_since(who.scope(), month_bounds(now).0).await?,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Daily,
    Monthly,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Monthly => "monthly",
        }
    }
}

/// Start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(86_400_000) * 86_400_000
}

/// Start of the UTC month holding `ms`, and of the next one.
pub fn month_bounds(ms: i64) -> (i64, i64) {
    let date = DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.date_naive())
        .unwrap_or_default();
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap_or(date);
    let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
    let at = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis())
    };
    (at(first), at(next))
}

/// A UTC time as RFC 3339 (`2026-12-03T00:00:00Z`).
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Micro-USD as dollars (`$4.200000`).
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}${}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// How often a scope's recorded spend is re-read on a shared store (milliseconds).
pub const RESYNC_MS: i64 = 2_000;

#[derive(Debug, Clone, Copy)]
struct Spend {
    /// When the store's figures were last read (or a re-read was claimed).
    read_at: i64,
    day_start: i64,
    day: i64,
    month_start: i64,
    month: i64,
    /// Estimates of the calls admitted and not yet settled.
    reserved: i64,
}

impl Spend {
    fn roll(&mut self, now: i64) {
        let d = day_start(now);
        if d != self.day_start {
            self.day_start = d;
            self.day = 0;
        }
        let m = month_bounds(now).0;
        if m != self.month_start {
            self.month_start = m;
            self.month = 0;
        }
    }
}

/// Why a call was refused: which cap, what it stands at, and when it resets.
#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    pub who: Who,
    pub period: Period,
    pub cap_micros: i64,
    pub spent_micros: i64,
    pub reserved_micros: i64,
    pub resets_at: i64,
}

impl Reached {
    pub fn message(&self, estimate: i64) -> String {
        let whose = match self.who {
            Who::App(a) => format!("app {a}"),
            Who::Key { app, key } => format!("key {key} of app {app}"),
        };
        format!(
            "budget exceeded: {whose} has spent {} of its {} budget of {} ({} held by calls in flight; this call may cost up to {}); it resets at {}",
            usd(self.spent_micros),
            self.period.as_str(),
            usd(self.cap_micros),
            usd(self.reserved_micros),
            usd(estimate),
            rfc3339(self.resets_at)
        )
    }

    /// The `budget.reached` alert's data.
    pub fn alert(&self) -> serde_json::Value {
        let (scope, app, key) = match self.who {
            Who::App(a) => ("app", a, None),
            Who::Key { app, key } => ("key", app, Some(key)),
        };
        serde_json::json!({
            "scope": scope,
            "app_id": app,
            "key_id": key,
            "period": self.period.as_str(),
            "budget_usd": usd(self.cap_micros).trim_start_matches('$'),
            "spent_usd": usd(self.spent_micros).trim_start_matches('$'),
            "resets_at": rfc3339(self.resets_at),
        })
    }
}

/// What admission reserved for one call, settled once with its real cost.
#[derive(Debug, Default)]
pub struct Reservation {
    who: Vec<Who>,
    estimate: i64,
}

impl Reservation {
    pub fn estimate(&self) -> i64 {
        self.estimate
    }
}

#[derive(Default)]
struct Table {
    apps: HashMap<i64, Budget>,
    keys: HashMap<i64, Budget>,
}

/// The caps in force and each capped scope's spend.
#[derive(Default)]
pub struct Budgets {
    table: ArcSwap<Table>,
    spend: Mutex<HashMap<Who, Spend>>,
    /// (scope, period, period start) already alerted, so `budget.reached` goes out once.
    alerted: Mutex<HashSet<(Who, Period, i64)>>,
    /// Re-read recorded spend this often (a shared store); `None`: this instance's
    /// count is the whole truth after the first read.
    resync_ms: Option<i64>,
}

impl Budgets {
    pub fn new((apps, keys): StoredBudgets) -> Budgets {
        let b = Budgets::default();
        b.table.store(std::sync::Arc::new(Table { apps, keys }));
        b
    }

    /// For a store other instances write to: recorded spend is re-read every `ms`.
    pub fn resync_every(mut self, ms: i64) -> Budgets {
        self.resync_ms = Some(ms);
        self
    }

    /// Swaps in the caps read from the store after a change.
    pub fn replace(&self, (apps, keys): StoredBudgets) {
        self.table.store(std::sync::Arc::new(Table { apps, keys }));
    }

    /// The caps a call of this app and key falls under (none: nothing to check).
    pub fn caps(&self, app: i64, key: i64) -> Vec<(Who, Budget)> {
        let t = self.table.load();
        if t.apps.is_empty() && t.keys.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(b) = t.apps.get(&app) {
            out.push((Who::App(app), *b));
        }
        if let Some(b) = t.keys.get(&key) {
            out.push((Who::Key { app, key }, *b));
        }
        out
    }

    /// Whether this scope's recorded spend must be read now: it is not tracked yet, or
    /// (shared store) its last read is older than the interval, in which case this caller
    /// claims the re-read and the others go on with the figures they have.
    pub fn needs_load(&self, who: Who, now: i64) -> bool {
        let Ok(mut m) = self.spend.lock() else {
            return false;
        };
        match (m.get_mut(&who), self.resync_ms) {
            (None, _) => true,
            (Some(s), Some(every)) if now.saturating_sub(s.read_at) >= every => {
                s.read_at = now;
                true
            }
            _ => false,
        }
    }

    /// Tracks a scope from the spend the store recorded today and this month; a scope
    /// already tracked keeps the larger of its own count and the store's.
    pub fn load(&self, who: Who, day: i64, month: i64, now: i64) {
        let Ok(mut m) = self.spend.lock() else {
            return;
        };
        let s = m.entry(who).or_insert(Spend {
            read_at: now,
            day_start: day_start(now),
            day,
            month_start: month_bounds(now).0,
            month,
            reserved: 0,
        });
        s.roll(now);
        s.read_at = now;
        s.day = s.day.max(day);
        s.month = s.month.max(month);
    }

    /// Reserves `estimate` micro-USD under every cap, or refuses with the first one it
    /// would pass (a cap already reached refuses even a free call). Check and reserve are
    /// one step.
    pub fn try_reserve(
        &self,
        caps: &[(Who, Budget)],
        estimate: i64,
        now: i64,
    ) -> Result<Reservation, Reached> {
        let Ok(mut m) = self.spend.lock() else {
            return Ok(Reservation::default());
        };
        for (who, budget) in caps {
            let Some(s) = m.get_mut(who) else { continue };
            s.roll(now);
            let checks = [
                (
                    Period::Daily,
                    budget.daily_micros,
                    s.day,
                    s.day_start + 86_400_000,
                ),
                (
                    Period::Monthly,
                    budget.monthly_micros,
                    s.month,
                    month_bounds(now).1,
                ),
            ];
            for (period, cap, spent, resets_at) in checks {
                let Some(cap) = cap else { continue };
                let after = spent.saturating_add(s.reserved).saturating_add(estimate);
                if spent >= cap || after > cap {
                    return Err(Reached {
                        who: *who,
                        period,
                        cap_micros: cap,
                        spent_micros: spent,
                        reserved_micros: s.reserved,
                        resets_at,
                    });
                }
            }
        }
        let mut r = Reservation {
            who: Vec::with_capacity(caps.len()),
            estimate,
        };
        for (who, _) in caps {
            if let Some(s) = m.get_mut(who) {
                s.reserved = s.reserved.saturating_add(estimate);
                r.who.push(*who);
            }
        }
        Ok(r)
    }

    /// Settles a reservation at the call's real cost; returns the caps this cost reached
    /// (each once per period), for `budget.reached` alerts.
    pub fn settle(&self, r: Reservation, cost: i64, now: i64) -> Vec<Reached> {
        let mut reached = Vec::new();
        let caps = {
            let t = self.table.load();
            r.who
                .iter()
                .map(|w| match w {
                    Who::App(a) => t.apps.get(a).copied(),
                    Who::Key { key, .. } => t.keys.get(key).copied(),
                })
                .collect::<Vec<_>>()
        };
        let Ok(mut m) = self.spend.lock() else {
            return reached;
        };
        for (who, budget) in r.who.iter().zip(caps) {
            let Some(s) = m.get_mut(who) else { continue };
            s.reserved = s.reserved.saturating_sub(r.estimate).max(0);
            s.roll(now);
            let (day_before, month_before) = (s.day, s.month);
            s.day = s.day.saturating_add(cost);
            s.month = s.month.saturating_add(cost);
            let Some(b) = budget else { continue };
            for (period, cap, before, after, resets_at) in [
                (
                    Period::Daily,
                    b.daily_micros,
                    day_before,
                    s.day,
                    s.day_start + 86_400_000,
                ),
                (
                    Period::Monthly,
                    b.monthly_micros,
                    month_before,
                    s.month,
                    month_bounds(now).1,
                ),
            ] {
                if let Some(cap) = cap.filter(|c| before < *c && after >= *c) {
                    reached.push(Reached {
                        who: *who,
                        period,
                        cap_micros: cap,
                        spent_micros: after,
                        reserved_micros: s.reserved,
                        resets_at,
                    });
                }
            }
        }
        drop(m);
        reached.retain(|r| self.first_alert(r));
        reached
    }

    /// True the first time this cap is reported reached in its period.
    pub fn first_alert(&self, r: &Reached) -> bool {
        let Ok(mut a) = self.alerted.lock() else {
            return false;
        };
        if a.len() > 100_000 {
            a.clear();
        }
        a.insert((r.who, r.period, r.resets_at))
    }

    /// Today's and this month's spend and reservations of a scope, if tracked.
    pub fn view(&self, who: Who, now: i64) -> Option<(i64, i64, i64)> {
        let mut m = self.spend.lock().ok()?;
        let s = m.get_mut(&who)?;
        s.roll(now);
        Some((s.day, s.month, s.reserved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn cap(daily: Option<i64>, monthly: Option<i64>) -> Budget {
        Budget {
            daily_micros: daily,
            monthly_micros: monthly,
        }
    }

    #[test]
    fn months_and_days_start_in_utc() {
        let t = 1_796_083_200_000 + DAY + 10 * 3_600_000;
        assert_eq!(rfc3339(t), "2026-12-02T10:00:00Z");
        assert_eq!(rfc3339(day_start(t)), "2026-12-02T00:00:00Z");
        let (first, next) = month_bounds(t);
        assert_eq!(rfc3339(first), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(month_bounds(first - 1).0), "2026-11-01T00:00:00Z");
        assert!(first <= t && t < next);
        // December rolls into January of the next year.
        let dec = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        assert_eq!(rfc3339(dec), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(month_bounds(dec).1), "2027-01-01T00:00:00Z");
        assert_eq!(usd(4_200_000), "$4.200000");
        assert_eq!(usd(-5), "-$0.000005");
    }

    #[test]
    fn parallel_reservations_cannot_pass_the_cap_together() {
        let app = Who::App(1);
        let b = Budgets::new((HashMap::from([(1, cap(Some(100), None))]), HashMap::new()));
        let now = 1_796_083_200_000;
        let caps = b.caps(1, 9);
        assert!(b.needs_load(app, now));
        b.load(app, 40, 40, now);
        assert!(!b.needs_load(app, now + RESYNC_MS), "one store: read once");
        let r1 = b.try_reserve(&caps, 30, now).unwrap();
        let r2 = b.try_reserve(&caps, 30, now).unwrap();
        let refused = b.try_reserve(&caps, 1, now).unwrap_err();
        assert_eq!(
            (
                refused.spent_micros,
                refused.reserved_micros,
                refused.period
            ),
            (40, 60, Period::Daily)
        );
        assert_eq!(rfc3339(refused.resets_at), "2026-12-02T00:00:00Z");
        assert!(b.settle(r1, 10, now).is_empty());
        // 50 spent: the second call's real cost reaches the cap; alerted once.
        let reached = b.settle(r2, 50, now);
        assert_eq!(reached.len(), 1);
        assert_eq!(b.view(app, now), Some((100, 100, 0)));
        assert!(
            b.try_reserve(&caps, 0, now).is_err(),
            "reached: even free calls"
        );
        assert!(!b.first_alert(&reached[0]));
        // The next day starts at zero; the month keeps counting.
        assert!(b.try_reserve(&caps, 5, now + DAY).is_ok());
        assert_eq!(b.view(app, now + DAY).map(|v| v.1), Some(100));
    }

    #[test]
    fn app_and_key_caps_both_apply() {
        let b = Budgets::new((
            HashMap::from([(1, cap(None, Some(1000)))]),
            HashMap::from([(7, cap(Some(10), None))]),
        ));
        let now = 1_796_083_200_000;
        let caps = b.caps(1, 7);
        assert_eq!(caps.len(), 2);
        for (w, _) in &caps {
            b.load(*w, 0, 0, now);
        }
        let r = b.try_reserve(&caps, 8, now).unwrap();
        let e = b.try_reserve(&caps, 8, now).unwrap_err();
        assert_eq!(e.who, Who::Key { app: 1, key: 7 });
        assert!(e.message(8).contains("key 7 of app 1"), "{}", e.message(8));
        b.settle(r, 8, now);
        assert_eq!(b.view(Who::App(1), now), Some((8, 8, 0)));
        assert!(b.caps(2, 8).is_empty());
    }

    #[test]
    fn a_shared_store_is_re_read_and_the_larger_spend_is_kept() {
        let app = Who::App(1);
        let b = Budgets::new((HashMap::from([(1, cap(Some(100), None))]), HashMap::new()))
            .resync_every(RESYNC_MS);
        let now = 1_796_083_200_000;
        let caps = b.caps(1, 9);
        assert!(b.needs_load(app, now));
        b.load(app, 10, 10, now);
        assert!(!b.needs_load(app, now + RESYNC_MS - 1));
        // Settled here (maybe not written yet): 30.
        let r = b.try_reserve(&caps, 20, now).unwrap();
        b.settle(r, 20, now);
        let later = now + RESYNC_MS;
        assert!(b.needs_load(app, later), "due");
        assert!(!b.needs_load(app, later), "claimed by the first caller");
        // The store lags this instance: its own count stays.
        b.load(app, 25, 25, later);
        assert_eq!(b.view(app, later), Some((30, 30, 0)));
        // Other instances spent: the store's larger figure wins and binds.
        let again = later + RESYNC_MS;
        assert!(b.needs_load(app, again));
        b.load(app, 95, 95, again);
        assert_eq!(b.view(app, again), Some((95, 95, 0)));
        assert!(b.try_reserve(&caps, 10, again).is_err());
    }
}
