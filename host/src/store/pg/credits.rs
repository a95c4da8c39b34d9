//! Credit grants, the ledger and balances on Postgres, with the same rules as
//! `store::credits`: every change to a balance writes a ledger entry in its transaction,
//! grants are consumed earliest expiry first (no expiry last), and beyond them the
//! balance goes negative.
//!
//! Several aihub instances may charge one app at once, so every transaction that moves a
//! balance first locks the app's `credit_balances` row (`FOR UPDATE`, in app id order, so
//! two batches never deadlock), then works on its open grants in memory (a [`Book`]) and
//! writes the result back with a few set-based statements: a batch of charges costs the
//! same round trips whether it holds one call or two thousand.

use super::{page, Conditions, PgStores};
use crate::store::credits::{CreditSummary, Grant, HoldResult, LedgerEntry, LedgerFilter};
use crate::store::traits::{CreditStore, Result};
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use tokio_postgres::Row;

const GRANT_COLUMNS: &str = "id, app_id, amount, remaining, expires_at, note, created_at";
const LEDGER_COLUMNS: &str =
    "id, app_id, kind, amount, balance_after, call_id, grant_id, note, created_at";

fn grant_row(r: &Row) -> Grant {
    Grant {
        id: r.get(0),
        app_id: r.get(1),
        amount: r.get(2),
        remaining: r.get(3),
        expires_at: r.get(4),
        note: r.get(5),
        created_at: r.get(6),
    }
}

fn ledger_row(r: &Row) -> LedgerEntry {
    LedgerEntry {
        id: r.get(0),
        app_id: r.get(1),
        kind: r.get(2),
        amount: r.get(3),
        balance_after: r.get(4),
        call_id: r.get(5),
        grant_id: r.get(6),
        note: r.get(7),
        created_at: r.get(8),
    }
}

struct OpenGrant {
    id: i64,
    remaining: i64,
    expires_at: Option<i64>,
    changed: bool,
}

struct NewEntry {
    kind: &'static str,
    amount: i64,
    balance_after: i64,
    call_id: Option<i64>,
    grant_id: Option<i64>,
    note: Option<String>,
}

/// One app's locked balance and open grants, changed in memory, then written back.
pub(in crate::store) struct Book {
    pub(in crate::store) app_id: i64,
    balance: i64,
    grants: Vec<OpenGrant>,
    entries: Vec<NewEntry>,
    dirty: bool,
}

impl Book {
    fn push(
        &mut self,
        kind: &'static str,
        amount: i64,
        call_id: Option<i64>,
        grant_id: Option<i64>,
        note: Option<&str>,
    ) {
        self.entries.push(NewEntry {
            kind,
            amount,
            balance_after: self.balance,
            call_id,
            grant_id,
            note: note.map(str::to_string),
        });
        self.dirty = true;
    }

    pub(in crate::store) fn balance(&self) -> i64 {
        self.balance
    }

    /// Takes the credit left on expired grants out of the balance, one `expiry` entry
    /// per grant.
    pub(in crate::store) fn expire(&mut self, now: i64) {
        let mut due: Vec<usize> = (0..self.grants.len())
            .filter(|&i| {
                let g = &self.grants[i];
                g.remaining > 0 && g.expires_at.is_some_and(|e| e <= now)
            })
            .collect();
        due.sort_by_key(|&i| (self.grants[i].expires_at, self.grants[i].id));
        for i in due {
            let (id, remaining) = (self.grants[i].id, self.grants[i].remaining);
            self.grants[i].remaining = 0;
            self.grants[i].changed = true;
            self.balance = self.balance.saturating_sub(remaining);
            self.push("expiry", -remaining, None, Some(id), None);
        }
    }

    /// Takes `amount` from the grants, earliest expiry first (no expiry last).
    fn consume(&mut self, amount: i64) {
        let mut order: Vec<usize> = (0..self.grants.len())
            .filter(|&i| self.grants[i].remaining > 0)
            .collect();
        order.sort_by_key(|&i| {
            let g = &self.grants[i];
            (g.expires_at.is_none(), g.expires_at, g.id)
        });
        let mut left = amount;
        for i in order {
            if left == 0 {
                break;
            }
            let g = &mut self.grants[i];
            let take = left.min(g.remaining);
            g.remaining -= take;
            g.changed = true;
            left -= take;
        }
    }

    /// Charges one call (the writer's batch); the balance before and after.
    pub(in crate::store) fn charge(&mut self, call_id: i64, nanos: i64, now: i64) -> (i64, i64) {
        self.expire(now);
        let before = self.balance;
        self.consume(nanos);
        self.balance = before.saturating_sub(nanos);
        self.push("charge", -nanos, Some(call_id), None, None);
        (before, self.balance)
    }

    /// Takes `amount` (> 0) like a charge, refusing an overflow.
    fn debit(&mut self, kind: &'static str, amount: i64, note: Option<&str>) -> Result<()> {
        let after = self
            .balance
            .checked_sub(amount)
            .ok_or_else(|| StoreError::invalid("amount", "the balance would overflow"))?;
        self.consume(amount);
        self.balance = after;
        self.push(kind, -amount, None, None, note);
        Ok(())
    }
}

/// Locks the balances of `apps` (creating missing rows at 0) and loads their open
/// grants. An app that does not exist has no book.
pub(in crate::store) async fn load_books(
    c: &impl GenericClient,
    apps: &[i64],
) -> Result<HashMap<i64, Book>> {
    let mut apps = apps.to_vec();
    apps.sort_unstable();
    apps.dedup();
    c.execute(
        "INSERT INTO credit_balances (app_id, balance)
         SELECT id, 0 FROM apps WHERE id = ANY($1) ORDER BY id ON CONFLICT (app_id) DO NOTHING",
        &[&apps],
    )
    .await?;
    let mut books: HashMap<i64, Book> = c
        .query(
            "SELECT app_id, balance FROM credit_balances WHERE app_id = ANY($1) ORDER BY app_id FOR UPDATE",
            &[&apps],
        )
        .await?
        .iter()
        .map(|r| {
            let app_id: i64 = r.get(0);
            (
                app_id,
                Book {
                    app_id,
                    balance: r.get(1),
                    grants: Vec::new(),
                    entries: Vec::new(),
                    dirty: false,
                },
            )
        })
        .collect();
    for r in c
        .query(
            "SELECT id, app_id, remaining, expires_at FROM credit_grants
             WHERE app_id = ANY($1) AND remaining > 0 ORDER BY id",
            &[&apps],
        )
        .await?
    {
        if let Some(b) = books.get_mut(&r.get::<_, i64>(1)) {
            b.grants.push(OpenGrant {
                id: r.get(0),
                remaining: r.get(2),
                expires_at: r.get(3),
                changed: false,
            });
        }
    }
    Ok(books)
}

/// Writes the books back: changed grants, new ledger entries (in order), balances.
/// Returns the id of the last entry written, if any.
pub(in crate::store) async fn flush<'a>(
    c: &impl GenericClient,
    books: impl IntoIterator<Item = &'a Book>,
    now: i64,
) -> Result<Option<i64>> {
    let (mut g_ids, mut g_left) = (Vec::new(), Vec::new());
    let (mut apps, mut balances) = (Vec::new(), Vec::new());
    let mut e_app = Vec::new();
    let mut e_kind = Vec::new();
    let mut e_amount = Vec::new();
    let mut e_after = Vec::new();
    let mut e_call: Vec<Option<i64>> = Vec::new();
    let mut e_grant: Vec<Option<i64>> = Vec::new();
    let mut e_note: Vec<Option<String>> = Vec::new();
    for b in books {
        if !b.dirty {
            continue;
        }
        for g in b.grants.iter().filter(|g| g.changed) {
            g_ids.push(g.id);
            g_left.push(g.remaining);
        }
        apps.push(b.app_id);
        balances.push(b.balance);
        for e in &b.entries {
            e_app.push(b.app_id);
            e_kind.push(e.kind.to_string());
            e_amount.push(e.amount);
            e_after.push(e.balance_after);
            e_call.push(e.call_id);
            e_grant.push(e.grant_id);
            e_note.push(e.note.clone());
        }
    }
    if !g_ids.is_empty() {
        c.execute(
            "UPDATE credit_grants g SET remaining = v.remaining
             FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(id, remaining) WHERE g.id = v.id",
            &[&g_ids, &g_left],
        )
        .await?;
    }
    let mut last = None;
    if !e_app.is_empty() {
        let rows = c
            .query(
                "INSERT INTO ledger (app_id, kind, amount, balance_after, call_id, grant_id, note, created_at)
                 SELECT a, k, m, b, c, g, n, $8::BIGINT FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[],
                    $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::TEXT[]) WITH ORDINALITY AS v(a, k, m, b, c, g, n, o)
                 ORDER BY o RETURNING id",
                &[&e_app, &e_kind, &e_amount, &e_after, &e_call, &e_grant, &e_note, &now],
            )
            .await?;
        last = rows.iter().map(|r| r.get::<_, i64>(0)).max();
    }
    if !apps.is_empty() {
        c.execute(
            "UPDATE credit_balances b SET balance = v.balance
             FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(app_id, balance) WHERE b.app_id = v.app_id",
            &[&apps, &balances],
        )
        .await?;
    }
    Ok(last)
}

/// One app's book, 404 when there is no such app.
pub(in crate::store) async fn book_of(c: &impl GenericClient, app_id: i64) -> Result<Book> {
    load_books(c, &[app_id])
        .await?
        .remove(&app_id)
        .ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))
}

/// Adds credit (a grant, a refund, a positive adjustment): a grant row saying what is
/// left of it after any debt is paid, one ledger entry of `kind`, the new balance.
/// Returns (ledger entry id, grant id).
#[allow(clippy::too_many_arguments)]
async fn credit_in(
    c: &impl GenericClient,
    app_id: i64,
    kind: &'static str,
    amount: i64,
    expires_at: Option<i64>,
    call_id: Option<i64>,
    note: Option<&str>,
    now: i64,
) -> Result<(i64, i64)> {
    let mut book = book_of(c, app_id).await?;
    book.expire(now);
    let after = book
        .balance
        .checked_add(amount)
        .ok_or_else(|| StoreError::invalid("amount", "the balance would overflow"))?;
    let debt = book.balance.min(0).saturating_neg();
    let remaining = amount - debt.min(amount);
    let grant: i64 = c
        .query_one(
            "INSERT INTO credit_grants (app_id, amount, remaining, expires_at, note, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&app_id, &amount, &remaining, &expires_at, &note, &now],
        )
        .await?
        .get(0);
    book.balance = after;
    book.push(kind, amount, call_id, Some(grant), note);
    let entry = flush(c, [&book], now)
        .await?
        .ok_or_else(|| StoreError::Task("no ledger entry was written".into()))?;
    Ok((entry, grant))
}

async fn entry_by_id(c: &impl GenericClient, id: i64) -> Result<LedgerEntry> {
    let r = c
        .query_one(
            &format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(ledger_row(&r))
}

async fn grant_by_id(c: &impl GenericClient, id: i64) -> Result<Grant> {
    let r = c
        .query_one(
            &format!("SELECT {GRANT_COLUMNS} FROM credit_grants WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(grant_row(&r))
}

fn positive(amount: i64) -> Result<()> {
    if amount <= 0 {
        return Err(StoreError::invalid("amount", "must be greater than 0"));
    }
    Ok(())
}

#[async_trait]
impl CreditStore for PgStores {
    async fn grant_credits(
        &self,
        app_id: i64,
        amount: i64,
        expires_at: Option<i64>,
        note: Option<String>,
    ) -> Result<Grant> {
        positive(amount)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        let (_, grant) = credit_in(
            &tx,
            app_id,
            "grant",
            amount,
            expires_at,
            None,
            note.as_deref(),
            now,
        )
        .await?;
        let grant = grant_by_id(&tx, grant).await?;
        tx.commit().await?;
        Ok(grant)
    }

    async fn grant_credits_once(
        &self,
        event_id: String,
        app_id: i64,
        amount: i64,
        note: Option<String>,
    ) -> Result<Option<Grant>> {
        positive(amount)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        // Two deliveries of one event for one app wait for each other on the balance lock
        // taken by `credit_in`; the primary key settles any other race.
        let seen = tx
            .query_opt(
                "SELECT grant_id FROM payment_events WHERE event_id = $1",
                &[&event_id],
            )
            .await?;
        if seen.is_some() {
            return Ok(None);
        }
        let (_, grant) = credit_in(
            &tx,
            app_id,
            "grant",
            amount,
            None,
            None,
            note.as_deref(),
            now,
        )
        .await?;
        let inserted = tx
            .execute(
                "INSERT INTO payment_events (event_id, app_id, grant_id, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (event_id) DO NOTHING",
                &[&event_id, &app_id, &grant, &now],
            )
            .await?;
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let grant = grant_by_id(&tx, grant).await?;
        tx.commit().await?;
        Ok(Some(grant))
    }

    async fn credit_summary(&self, app_id: i64) -> Result<CreditSummary> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        let mut book = book_of(&tx, app_id).await?;
        book.expire(now);
        flush(&tx, [&book], now).await?;
        let grants = tx
            .query(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM credit_grants WHERE app_id = $1 ORDER BY id DESC LIMIT 1000"
                ),
                &[&app_id],
            )
            .await?
            .iter()
            .map(grant_row)
            .collect();
        let next_expiry: Option<i64> = tx
            .query_one(
                "SELECT min(expires_at) FROM credit_grants WHERE app_id = $1 AND remaining > 0",
                &[&app_id],
            )
            .await?
            .get(0);
        tx.commit().await?;
        Ok(CreditSummary {
            balance: book.balance,
            next_expiry,
            grants,
        })
    }

    async fn credit_balance(&self, app_id: i64) -> Result<(i64, Option<i64>)> {
        let now = now_ms();
        {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT b.balance, (SELECT min(expires_at) FROM credit_grants g
                        WHERE g.app_id = b.app_id AND g.remaining > 0)
                     FROM credit_balances b WHERE b.app_id = $1",
                )
                .await?;
            if let Some(r) = c.query_opt(&stmt, &[&app_id]).await? {
                let (balance, next): (i64, Option<i64>) = (r.get(0), r.get(1));
                if next.is_none_or(|e| e > now) {
                    return Ok((balance, next));
                }
            }
        }
        let s = self.credit_summary(app_id).await?;
        Ok((s.balance, s.next_expiry))
    }

    async fn list_ledger(&self, f: LedgerFilter) -> Result<(Vec<LedgerEntry>, Option<i64>)> {
        let mut w = Conditions::new();
        for (clause, v) in [
            ("app_id =", f.app_id),
            ("created_at >=", f.since),
            ("created_at <", f.until),
            ("id <", f.cursor),
        ] {
            if let Some(v) = v {
                w.push(clause, v);
            }
        }
        let limit = f.limit.clamp(1, 1000);
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger{} ORDER BY id DESC LIMIT {}",
            w.sql,
            limit + 1
        );
        let c = self.client().await?;
        let rows: Vec<LedgerEntry> = c
            .query(&sql, &w.params())
            .await?
            .iter()
            .map(ledger_row)
            .collect();
        Ok(page(rows, limit, |e| e.id))
    }

    async fn expire_credits(&self) -> Result<usize> {
        let now = now_ms();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let apps: Vec<i64> = tx
            .query(
                "SELECT DISTINCT app_id FROM credit_grants
                 WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $1",
                &[&now],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut books = load_books(&tx, &apps).await?;
        for b in books.values_mut() {
            b.expire(now);
        }
        flush(&tx, books.values(), now).await?;
        tx.commit().await?;
        Ok(apps.len())
    }

    async fn adjust_credits(&self, app_id: i64, amount: i64, note: String) -> Result<LedgerEntry> {
        if amount == 0 {
            return Err(StoreError::invalid("amount", "must not be 0"));
        }
        let now = now_ms();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let id = if amount > 0 {
            credit_in(
                &tx,
                app_id,
                "adjustment",
                amount,
                None,
                None,
                Some(&note),
                now,
            )
            .await?
            .0
        } else {
            let mut book = book_of(&tx, app_id).await?;
            book.expire(now);
            book.debit(
                "adjustment",
                amount
                    .checked_neg()
                    .ok_or_else(|| StoreError::invalid("amount", "the balance would overflow"))?,
                Some(&note),
            )?;
            flush(&tx, [&book], now)
                .await?
                .ok_or_else(|| StoreError::Task("no ledger entry was written".into()))?
        };
        let entry = entry_by_id(&tx, id).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn refund_call(
        &self,
        app_id: i64,
        call_id: i64,
        amount: Option<i64>,
        note: Option<String>,
    ) -> Result<LedgerEntry> {
        let now = now_ms();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Lock the balance first: two refunds of one call cannot both see it unrefunded.
        book_of(&tx, app_id).await?;
        let charged: i64 = tx
            .query_opt(
                "SELECT -amount FROM ledger WHERE kind = 'charge' AND call_id = $1 AND app_id = $2",
                &[&call_id, &app_id],
            )
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("a charge for call {call_id} of app {app_id}"))
            })?
            .get(0);
        let refunded: i64 = tx
            .query_one(
                "SELECT coalesce(sum(amount), 0)::BIGINT FROM ledger WHERE kind = 'refund' AND call_id = $1",
                &[&call_id],
            )
            .await?
            .get(0);
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
        let (id, _) = credit_in(
            &tx,
            app_id,
            "refund",
            amount,
            None,
            Some(call_id),
            note.as_deref(),
            now,
        )
        .await?;
        let entry = entry_by_id(&tx, id).await?;
        tx.commit().await?;
        Ok(entry)
    }

    fn shares_holds(&self) -> bool {
        true
    }

    async fn hold_credit(&self, app_id: i64, amount: i64, lease_until: i64) -> Result<HoldResult> {
        self.hold(app_id, amount, lease_until).await
    }

    async fn release_holds(&self, ids: Vec<i64>) -> Result<()> {
        self.release(ids).await
    }

    async fn held_credit(&self, app_id: i64) -> Result<i64> {
        self.held(app_id).await
    }
}
