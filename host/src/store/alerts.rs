//! The alert outbox: events wait here until the webhook receiver accepts them, so a
//! restart or a receiver that is down loses none (delivery is at least once). Balance
//! events are written in the same transaction as the charge that caused them.

use super::{now_ms, Store, StoreError};
use rusqlite::{params, Connection};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// How long an event handed out by `due_alerts` is kept from every other deliverer (the
/// instance that claimed it marks it delivered or failed well before: at most 32 events of
/// 10 s each); past it, an instance that died mid-delivery has its events delivered by
/// another.
pub const CLAIM_MS: i64 = 600_000;

/// One event waiting to be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAlert {
    pub id: i64,
    pub event: String,
    /// A JSON object.
    pub data: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Whether charges write balance alerts, and below what balance one is "low". Set once
/// at start from the config; read by the call-log writer.
#[derive(Debug, Default)]
pub struct ChargeAlerts {
    on: AtomicBool,
    /// Nano-credits; 0: no low-balance alert.
    low_nanos: AtomicI64,
}

impl ChargeAlerts {
    pub fn set(&self, on: bool, low_nanos: i64) {
        self.low_nanos.store(low_nanos.max(0), Ordering::Relaxed);
        self.on.store(on, Ordering::Relaxed);
    }

    /// The events a balance moving from `before` to `after` raises: `credits.low` when
    /// it falls below the threshold, `credits.exhausted` when it reaches zero.
    pub fn crossed(&self, before: i64, after: i64) -> impl Iterator<Item = &'static str> {
        let on = self.on.load(Ordering::Relaxed);
        let low = self.low_nanos.load(Ordering::Relaxed);
        let low_crossed = on && low > 0 && before >= low && after < low && after > 0;
        let exhausted = on && before > 0 && after <= 0;
        low_crossed
            .then_some("credits.low")
            .into_iter()
            .chain(exhausted.then_some("credits.exhausted"))
    }
}

/// Adds an event inside the caller's transaction.
pub(in crate::store) fn enqueue_in(
    c: &Connection,
    event: &str,
    data: &str,
    now: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO alert_outbox (event, data, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?3)",
    )?
    .execute(params![event, data, now])?;
    Ok(())
}

impl Store {
    pub fn enqueue_alert(&self, event: &str, data: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        enqueue_in(&conn, event, data, now_ms())
    }

    /// Events due for a delivery attempt, oldest first.
    pub fn due_alerts(&self, now: i64, limit: usize) -> Result<Vec<PendingAlert>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "UPDATE alert_outbox SET next_attempt_at = ?3 WHERE id IN (
                 SELECT id FROM alert_outbox
                 WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2)
             RETURNING id, event, data, attempts, created_at",
        )?;
        let mut rows = stmt
            .query_map(params![now, limit as i64, now + CLAIM_MS], |r| {
                Ok(PendingAlert {
                    id: r.get(0)?,
                    event: r.get(1)?,
                    data: r.get(2)?,
                    attempts: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort_by_key(|a| a.id);
        Ok(rows)
    }

    /// When the next event is due (Unix ms), if any is waiting.
    pub fn next_alert_due(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.conn()?;
        Ok(conn.query_row(
            "SELECT min(next_attempt_at) FROM alert_outbox WHERE next_attempt_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn alert_delivered(&self, id: i64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute("DELETE FROM alert_outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    /// A failed attempt: try again at `next_at` (Unix ms), or never (`None`: given up).
    pub fn alert_failed(
        &self,
        id: i64,
        next_at: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
            params![id, next_at, error],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    #[test]
    fn crossings_raise_low_then_exhausted_once() {
        let a = ChargeAlerts::default();
        assert_eq!(a.crossed(10, -1).count(), 0, "off");
        a.set(true, 100);
        let ev = |b, c| a.crossed(b, c).collect::<Vec<_>>();
        assert_eq!(ev(150, 90), ["credits.low"]);
        assert!(ev(90, 80).is_empty(), "already low");
        assert_eq!(ev(80, 0), ["credits.exhausted"]);
        assert_eq!(ev(150, -5), ["credits.exhausted"], "straight through");
        assert!(ev(-5, -10).is_empty());
        a.set(true, 0);
        assert!(ev(150, 90).is_empty(), "no threshold");
    }

    #[test]
    fn the_outbox_keeps_an_event_until_delivered_or_given_up() {
        let (_d, s) = test_store();
        s.enqueue_alert("credits.low", "{}").unwrap();
        s.enqueue_alert("budget.reached", "{\"x\":1}").unwrap();
        let due = s.due_alerts(now_ms() + 1, 10).unwrap();
        assert_eq!(due.len(), 2);
        s.alert_failed(due[0].id, Some(now_ms() + 60_000), "503")
            .unwrap();
        s.alert_delivered(due[1].id).unwrap();
        assert!(s.due_alerts(now_ms() + 1, 10).unwrap().is_empty());
        assert!(s.next_alert_due().unwrap().unwrap() > now_ms());
        s.alert_failed(due[0].id, None, "gave up").unwrap();
        assert_eq!(s.next_alert_due().unwrap(), None);
    }
}
