//! Credit grants, the ledger and per-app balances. Every change to a balance writes a
//! ledger entry in the same transaction, so an app's ledger always sums to its balance.
//! Charges are applied by the call-log writer inside its batch transaction
//! ([`charge_in`]), so a call's record and its charge commit together or not at all.

use super::{now_ms, Store, StoreError};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub id: i64,
    pub app_id: i64,
    pub amount: i64,
    pub remaining: i64,
    /// Unix ms; `None`: never.
    pub expires_at: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub id: i64,
    pub app_id: i64,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub call_id: Option<i64>,
    pub grant_id: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
}

/// An app's balance (expired credit already taken out) and its grants, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditSummary {
    pub balance: i64,
    /// When the next grant with credit left expires (Unix ms).
    pub next_expiry: Option<i64>,
    pub grants: Vec<Grant>,
}

/// What [`super::traits::CreditStore::hold_credit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldResult {
    /// Held, under this id.
    Held(i64),
    /// Not enough credit: the balance, and what live holds keep of it already.
    Short { balance: i64, held: i64 },
}

#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    pub app_id: Option<i64>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// Entries older than this id (the previous page's `next_cursor`).
    pub cursor: Option<i64>,
    pub limit: usize,
}

const GRANT_COLUMNS: &str = "id, app_id, amount, remaining, expires_at, note, created_at";

fn grant_row(r: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: r.get(0)?,
        app_id: r.get(1)?,
        amount: r.get(2)?,
        remaining: r.get(3)?,
        expires_at: r.get(4)?,
        note: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// The app's balance, creating its row at 0; `None` when there is no such app.
fn balance_in(c: &Connection, app_id: i64) -> Result<Option<i64>, StoreError> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO credit_balances (app_id, balance) SELECT id, 0 FROM apps WHERE id = ?1",
    )?
    .execute([app_id])?;
    Ok(
        c.prepare_cached("SELECT balance FROM credit_balances WHERE app_id = ?1")?
            .query_row([app_id], |r| r.get(0))
            .optional()?,
    )
}

fn set_balance(c: &Connection, app_id: i64, balance: i64) -> Result<(), StoreError> {
    c.prepare_cached("UPDATE credit_balances SET balance = ?1 WHERE app_id = ?2")?
        .execute(params![balance, app_id])?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn entry(
    c: &Connection,
    app_id: i64,
    kind: &str,
    amount: i64,
    balance_after: i64,
    call_id: Option<i64>,
    grant_id: Option<i64>,
    note: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO ledger (app_id, kind, amount, balance_after, call_id, grant_id, note, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![app_id, kind, amount, balance_after, call_id, grant_id, note, now])?;
    Ok(())
}

/// Takes the credit left on the app's expired grants out of its balance, one `expiry`
/// entry per grant. Returns the balance after (`None`: no such app).
fn expire_in(c: &Connection, app_id: i64, now: i64) -> Result<Option<i64>, StoreError> {
    let expired: Vec<(i64, i64)> = c
        .prepare_cached(
            "SELECT id, remaining FROM credit_grants
             WHERE app_id = ?1 AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?2
             ORDER BY expires_at, id",
        )?
        .query_map(params![app_id, now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let Some(mut balance) = balance_in(c, app_id)? else {
        return Ok(None);
    };
    if expired.is_empty() {
        return Ok(Some(balance));
    }
    for (id, remaining) in expired {
        balance = balance.saturating_sub(remaining);
        c.prepare_cached("UPDATE credit_grants SET remaining = 0 WHERE id = ?1")?
            .execute([id])?;
        entry(
            c,
            app_id,
            "expiry",
            -remaining,
            balance,
            None,
            Some(id),
            None,
            now,
        )?;
    }
    set_balance(c, app_id, balance)?;
    Ok(Some(balance))
}

/// Charges one call record's price inside the call-log transaction: grants are consumed
/// earliest expiry first (no expiry last); beyond them the balance goes negative. An app
/// that no longer exists is not charged. Returns the balance before and after.
pub(in crate::store) fn charge_in(
    c: &Connection,
    app_id: i64,
    call_id: i64,
    nanos: i64,
    now: i64,
) -> Result<Option<(i64, i64)>, StoreError> {
    let Some(balance) = expire_in(c, app_id, now)? else {
        return Ok(None);
    };
    consume_grants(c, app_id, nanos)?;
    let after = balance.saturating_sub(nanos);
    entry(
        c,
        app_id,
        "charge",
        -nanos,
        after,
        Some(call_id),
        None,
        None,
        now,
    )?;
    set_balance(c, app_id, after)?;
    Ok(Some((balance, after)))
}

/// These transactions read, then write: taking the write lock up front makes a
/// concurrent writer wait (busy timeout) instead of failing the upgrade with BUSY.
fn write_tx(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

impl Store {
    /// Grants `amount` nano-credits. A negative balance (a debt) is paid from the grant
    /// first, so only what is left of it counts as `remaining`.
    pub fn grant_credits(
        &self,
        app_id: i64,
        amount: i64,
        expires_at: Option<i64>,
        note: Option<&str>,
    ) -> Result<Grant, StoreError> {
        if amount <= 0 {
            return Err(StoreError::invalid("amount", "must be greater than 0"));
        }
        let now = now_ms();
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let grant = grant_in(&tx, app_id, amount, expires_at, note, now)?;
        tx.commit()?;
        Ok(grant)
    }

    /// An operator's correction: a positive `amount` adds credit (kept as a grant without
    /// expiry, so it is consumed like one), a negative one takes it like a charge (the
    /// balance may go negative). One `adjustment` entry either way.
    pub fn adjust_credits(
        &self,
        app_id: i64,
        amount: i64,
        note: &str,
    ) -> Result<LedgerEntry, StoreError> {
        if amount == 0 {
            return Err(StoreError::invalid("amount", "must not be 0"));
        }
        let now = now_ms();
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let id = if amount > 0 {
            credit_in(
                &tx,
                app_id,
                "adjustment",
                amount,
                None,
                None,
                Some(note),
                now,
            )?
        } else {
            debit_in(&tx, app_id, "adjustment", -amount, None, Some(note), now)?
        };
        let entry = entry_by_id(&tx, id)?;
        tx.commit()?;
        Ok(entry)
    }

    /// Gives back (part of) a call's charge: at most what was charged less what was
    /// refunded already; `amount` `None` refunds all that is left.
    pub fn refund_call(
        &self,
        app_id: i64,
        call_id: i64,
        amount: Option<i64>,
        note: Option<&str>,
    ) -> Result<LedgerEntry, StoreError> {
        let now = now_ms();
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let charged: Option<i64> = tx
            .query_row(
                "SELECT -amount FROM ledger WHERE kind = 'charge' AND call_id = ?1 AND app_id = ?2",
                params![call_id, app_id],
                |r| r.get(0),
            )
            .optional()?;
        let charged = charged.ok_or_else(|| {
            StoreError::NotFound(format!("a charge for call {call_id} of app {app_id}"))
        })?;
        let refunded: i64 = tx.query_row(
            "SELECT coalesce(sum(amount), 0) FROM ledger WHERE kind = 'refund' AND call_id = ?1",
            [call_id],
            |r| r.get(0),
        )?;
        let left = charged - refunded;
        let amount = amount.unwrap_or(left);
        if amount <= 0 || amount > left {
            return Err(StoreError::invalid(
                "amount",
                format!(
                    "must be greater than 0 and at most what is left to refund of this call ({} credits)",
                    crate::billing::format_nanos(left)
                ),
            ));
        }
        let id = credit_in(
            &tx,
            app_id,
            "refund",
            amount,
            None,
            Some(call_id),
            note,
            now,
        )?;
        let entry = entry_by_id(&tx, id)?;
        tx.commit()?;
        Ok(entry)
    }

    /// A grant for a payment event, made at most once per `event_id` (the event row and the
    /// grant commit together); `None` when that event was granted already.
    pub fn grant_credits_once(
        &self,
        event_id: &str,
        app_id: i64,
        amount: i64,
        note: Option<&str>,
    ) -> Result<Option<Grant>, StoreError> {
        if amount <= 0 {
            return Err(StoreError::invalid("amount", "must be greater than 0"));
        }
        let now = now_ms();
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let seen: Option<i64> = tx
            .query_row(
                "SELECT grant_id FROM payment_events WHERE event_id = ?1",
                [event_id],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() {
            return Ok(None);
        }
        let grant = grant_in(&tx, app_id, amount, None, note, now)?;
        tx.execute(
            "INSERT INTO payment_events (event_id, app_id, grant_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![event_id, app_id, grant.id, now],
        )?;
        tx.commit()?;
        Ok(Some(grant))
    }
}

/// Adds a grant inside `tx`: the grant row, its ledger entry and the new balance.
fn grant_in(
    tx: &Connection,
    app_id: i64,
    amount: i64,
    expires_at: Option<i64>,
    note: Option<&str>,
    now: i64,
) -> Result<Grant, StoreError> {
    let entry = credit_in(tx, app_id, "grant", amount, expires_at, None, note, now)?;
    let id: i64 = tx.query_row("SELECT grant_id FROM ledger WHERE id = ?1", [entry], |r| {
        r.get(0)
    })?;
    Ok(tx.query_row(
        &format!("SELECT {GRANT_COLUMNS} FROM credit_grants WHERE id = ?1"),
        [id],
        grant_row,
    )?)
}

/// Adds credit (a grant, a refund, a positive adjustment) inside `tx`: a grant row that
/// says what is left of it, one ledger entry of `kind`, the new balance. A negative
/// balance (a debt) is paid from it first. Returns the ledger entry's id.
#[allow(clippy::too_many_arguments)]
fn credit_in(
    tx: &Connection,
    app_id: i64,
    kind: &str,
    amount: i64,
    expires_at: Option<i64>,
    call_id: Option<i64>,
    note: Option<&str>,
    now: i64,
) -> Result<i64, StoreError> {
    let balance =
        expire_in(tx, app_id, now)?.ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))?;
    let after = balance
        .checked_add(amount)
        .ok_or_else(|| StoreError::invalid("amount", "the balance would overflow"))?;
    let debt = balance.min(0).saturating_neg();
    let remaining = amount - debt.min(amount);
    tx.execute(
        "INSERT INTO credit_grants (app_id, amount, remaining, expires_at, note, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![app_id, amount, remaining, expires_at, note, now],
    )?;
    let grant = tx.last_insert_rowid();
    entry(
        tx,
        app_id,
        kind,
        amount,
        after,
        call_id,
        Some(grant),
        note,
        now,
    )?;
    let id = tx.last_insert_rowid();
    set_balance(tx, app_id, after)?;
    Ok(id)
}

/// Takes `amount` (> 0) inside `tx`, consuming grants earliest expiry first; returns
/// the ledger entry's id. The app must exist.
fn debit_in(
    tx: &Connection,
    app_id: i64,
    kind: &str,
    amount: i64,
    call_id: Option<i64>,
    note: Option<&str>,
    now: i64,
) -> Result<i64, StoreError> {
    let balance =
        expire_in(tx, app_id, now)?.ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))?;
    let after = balance
        .checked_sub(amount)
        .ok_or_else(|| StoreError::invalid("amount", "the balance would overflow"))?;
    consume_grants(tx, app_id, amount)?;
    entry(tx, app_id, kind, -amount, after, call_id, None, note, now)?;
    let id = tx.last_insert_rowid();
    set_balance(tx, app_id, after)?;
    Ok(id)
}

/// Takes `amount` from the app's grants, earliest expiry first (no expiry last); what
/// they do not cover is debt.
fn consume_grants(c: &Connection, app_id: i64, amount: i64) -> Result<(), StoreError> {
    let open: Vec<(i64, i64)> = c
        .prepare_cached(
            "SELECT id, remaining FROM credit_grants WHERE app_id = ?1 AND remaining > 0
             ORDER BY expires_at IS NULL, expires_at, id",
        )?
        .query_map([app_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut left = amount;
    for (id, remaining) in open {
        if left == 0 {
            break;
        }
        let take = left.min(remaining);
        c.prepare_cached("UPDATE credit_grants SET remaining = remaining - ?1 WHERE id = ?2")?
            .execute(params![take, id])?;
        left -= take;
    }
    Ok(())
}

fn entry_by_id(c: &Connection, id: i64) -> Result<LedgerEntry, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE id = ?1"),
        [id],
        ledger_row,
    )?)
}

const LEDGER_COLUMNS: &str =
    "id, app_id, kind, amount, balance_after, call_id, grant_id, note, created_at";

fn ledger_row(r: &Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: r.get(0)?,
        app_id: r.get(1)?,
        kind: r.get(2)?,
        amount: r.get(3)?,
        balance_after: r.get(4)?,
        call_id: r.get(5)?,
        grant_id: r.get(6)?,
        note: r.get(7)?,
        created_at: r.get(8)?,
    })
}

impl Store {
    /// The app's balance and grants, expiring what is due first.
    pub fn credit_summary(&self, app_id: i64) -> Result<CreditSummary, StoreError> {
        let now = now_ms();
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let balance = expire_in(&tx, app_id, now)?
            .ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))?;
        let grants = tx
            .prepare(&format!(
                "SELECT {GRANT_COLUMNS} FROM credit_grants WHERE app_id = ?1 ORDER BY id DESC LIMIT 1000"
            ))?
            .query_map([app_id], grant_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let next_expiry: Option<i64> = tx.query_row(
            "SELECT min(expires_at) FROM credit_grants WHERE app_id = ?1 AND remaining > 0",
            [app_id],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(CreditSummary {
            balance,
            next_expiry,
            grants,
        })
    }

    /// The balance and the next expiry only, for admission: a plain read when nothing is
    /// due to expire (the common case), else the expiring write first.
    pub fn credit_balance(&self, app_id: i64) -> Result<(i64, Option<i64>), StoreError> {
        let now = now_ms();
        {
            let conn = self.conn()?;
            let read: Option<(i64, Option<i64>)> = conn
                .prepare_cached(
                    "SELECT b.balance, (SELECT min(expires_at) FROM credit_grants g
                        WHERE g.app_id = b.app_id AND g.remaining > 0)
                     FROM credit_balances b WHERE b.app_id = ?1",
                )?
                .query_row([app_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((balance, next)) = read {
                if next.is_none_or(|e| e > now) {
                    return Ok((balance, next));
                }
            }
        }
        let s = self.credit_summary(app_id)?;
        Ok((s.balance, s.next_expiry))
    }

    /// Expires every app's due grants (at start).
    pub fn expire_credits(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let apps: Vec<i64> = tx
            .prepare(
                "SELECT DISTINCT app_id FROM credit_grants
                 WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?1",
            )?
            .query_map([now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for &a in &apps {
            expire_in(&tx, a, now)?;
        }
        tx.commit()?;
        Ok(apps.len())
    }

    /// Newest first, paged by id like the call log.
    pub fn list_ledger(
        &self,
        f: &LedgerFilter,
    ) -> Result<(Vec<LedgerEntry>, Option<i64>), StoreError> {
        let mut sql = String::from(
            "SELECT id, app_id, kind, amount, balance_after, call_id, grant_id, note, created_at FROM ledger WHERE 1 = 1",
        );
        let mut args: Vec<SqlValue> = Vec::new();
        for (clause, v) in [
            ("app_id =", f.app_id),
            ("created_at >=", f.since),
            ("created_at <", f.until),
            ("id <", f.cursor),
        ] {
            if let Some(v) = v {
                args.push(v.into());
                sql.push_str(&format!(" AND {clause} ?{}", args.len()));
            }
        }
        let limit = f.limit.clamp(1, 1000);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt
            .query_map(params_from_iter(args), ledger_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok((rows, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    fn ledger_sum(s: &Store, app: i64) -> i64 {
        let (rows, _) = s
            .list_ledger(&LedgerFilter {
                app_id: Some(app),
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        rows.iter().map(|r| r.amount).sum()
    }

    #[test]
    fn charges_take_earliest_expiry_first_and_the_ledger_sums_to_the_balance() {
        let (_d, s) = test_store();
        let app = s.create_app("a").unwrap().id;
        let late = now_ms() + 3_600_000;
        let never = s.grant_credits(app, 100, None, Some("base")).unwrap();
        let soon = s.grant_credits(app, 50, Some(late), None).unwrap();
        {
            let c = s.conn().unwrap();
            charge_in(&c, app, 1, 70, now_ms()).unwrap();
        }
        let sum = s.credit_summary(app).unwrap();
        assert_eq!(sum.balance, 80);
        let left = |id| sum.grants.iter().find(|g| g.id == id).unwrap().remaining;
        assert_eq!((left(soon.id), left(never.id)), (0, 80));
        assert_eq!(ledger_sum(&s, app), 80);
        // Beyond the grants the balance goes negative; a later grant pays the debt first.
        {
            let c = s.conn().unwrap();
            charge_in(&c, app, 2, 100, now_ms()).unwrap();
        }
        assert_eq!(s.credit_summary(app).unwrap().balance, -20);
        let g = s.grant_credits(app, 30, None, None).unwrap();
        assert_eq!(g.remaining, 10);
        assert_eq!(s.credit_summary(app).unwrap().balance, 10);
        assert_eq!(ledger_sum(&s, app), 10);
    }

    #[test]
    fn expired_credit_leaves_with_an_expiry_entry() {
        let (_d, s) = test_store();
        let app = s.create_app("a").unwrap().id;
        s.grant_credits(app, 5, None, None).unwrap();
        s.grant_credits(app, 40, Some(now_ms() - 1), None).unwrap();
        assert_eq!(s.expire_credits().unwrap(), 1);
        assert_eq!(s.expire_credits().unwrap(), 0);
        let sum = s.credit_summary(app).unwrap();
        assert_eq!(sum.balance, 5);
        let (rows, _) = s
            .list_ledger(&LedgerFilter {
                app_id: Some(app),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rows[0].kind, "expiry");
        assert_eq!(rows[0].amount, -40);
        assert_eq!(ledger_sum(&s, app), 5);
        let soon = now_ms() + 60_000;
        s.grant_credits(app, 7, Some(soon), None).unwrap();
        assert_eq!(s.credit_balance(app).unwrap(), (12, Some(soon)));
        // Due: the read expires it first.
        s.grant_credits(app, 3, Some(now_ms() + 1), None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(s.credit_balance(app).unwrap(), (12, Some(soon)));
    }

    #[test]
    fn adjustments_and_refunds_keep_the_books_balanced() {
        let (_d, s) = test_store();
        let app = s.create_app("a").unwrap().id;
        s.grant_credits(app, 100, None, None).unwrap();
        {
            let c = s.conn().unwrap();
            charge_in(&c, app, 7, 30, now_ms()).unwrap();
        }
        let e = s.adjust_credits(app, -50, "correction").unwrap();
        assert_eq!(
            (e.kind.as_str(), e.amount, e.balance_after),
            ("adjustment", -50, 20)
        );
        let e = s.adjust_credits(app, 5, "goodwill").unwrap();
        assert_eq!((e.amount, e.balance_after), (5, 25));
        assert!(s.adjust_credits(app, 0, "x").is_err());
        // Refunds: at most what was charged, in parts, then nothing is left.
        let r = s.refund_call(app, 7, Some(10), Some("bad answer")).unwrap();
        assert_eq!(
            (r.kind.as_str(), r.call_id, r.balance_after),
            ("refund", Some(7), 35)
        );
        assert!(s.refund_call(app, 7, Some(21), None).is_err());
        let r = s.refund_call(app, 7, None, None).unwrap();
        assert_eq!(r.amount, 20);
        assert!(s.refund_call(app, 7, None, None).is_err());
        assert!(matches!(
            s.refund_call(app, 8, None, None),
            Err(StoreError::NotFound(_))
        ));
        let sum = s.credit_summary(app).unwrap();
        assert_eq!(sum.balance, 55);
        assert_eq!(ledger_sum(&s, app), 55);
        assert_eq!(sum.grants.iter().map(|g| g.remaining).sum::<i64>(), 55);
    }

    #[test]
    fn unknown_apps_and_bad_amounts_are_refused() {
        let (_d, s) = test_store();
        assert!(matches!(
            s.grant_credits(99, 1, None, None),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(s.credit_summary(99), Err(StoreError::NotFound(_))));
        let app = s.create_app("a").unwrap().id;
        assert!(s.grant_credits(app, 0, None, None).is_err());
        {
            // A charge for a deleted app is skipped, not a failed batch.
            let c = s.conn().unwrap();
            charge_in(&c, 12345, 1, 10, now_ms()).unwrap();
        }
    }
}
