//! Credit holds on Postgres, shared by every instance: a hold is taken with the app's
//! `credit_balances` row locked (the lock every charge takes too), so the balance, the
//! charges committed and the holds alive are read as one consistent state, and two
//! instances can never both spend the same credit. A charge removes its call's hold in
//! its own transaction; an instance that dies leaves holds that stop counting when their
//! lease ends.

use super::credits::{book_of, flush};
use super::PgStores;
use crate::store::credits::HoldResult;
use crate::store::now_ms;
use crate::store::traits::Result;

impl PgStores {
    pub(in crate::store) async fn hold(
        &self,
        app_id: i64,
        amount: i64,
        lease_until: i64,
    ) -> Result<HoldResult> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        // Locks the balance row: from here on every statement sees every charge and hold
        // committed before the lock was granted.
        let mut book = book_of(&tx, app_id).await?;
        book.expire(now);
        flush(&tx, [&book], now).await?;
        let balance = book.balance();
        let stmt = tx
            .prepare_cached(
                "WITH gone AS (DELETE FROM credit_holds WHERE app_id = $1 AND expires_at <= $2),
                 held AS (SELECT COALESCE(SUM(amount), 0)::BIGINT AS h FROM credit_holds
                          WHERE app_id = $1 AND expires_at > $2),
                 taken AS (INSERT INTO credit_holds (app_id, amount, expires_at, created_at)
                           SELECT $1, $3, $4, $2 FROM held WHERE $5::BIGINT - h >= $3 RETURNING id)
                 SELECT (SELECT h FROM held), (SELECT id FROM taken)",
            )
            .await?;
        let row = tx
            .query_one(&stmt, &[&app_id, &now, &amount, &lease_until, &balance])
            .await?;
        tx.commit().await?;
        let (held, id): (i64, Option<i64>) = (row.get(0), row.get(1));
        Ok(match id {
            Some(id) => HoldResult::Held(id),
            None => HoldResult::Short { balance, held },
        })
    }

    pub(in crate::store) async fn held(&self, app_id: i64) -> Result<i64> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT COALESCE(SUM(amount), 0)::BIGINT FROM credit_holds WHERE app_id = $1 AND expires_at > $2",
                &[&app_id, &now_ms()],
            )
            .await?;
        Ok(row.get(0))
    }

    pub(in crate::store) async fn release(&self, ids: Vec<i64>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // No balance lock: removing a hold only frees credit, so an admission that does
        // not see it yet errs on the safe side.
        let c = self.client().await?;
        c.execute("DELETE FROM credit_holds WHERE id = ANY($1)", &[&ids])
            .await?;
        Ok(())
    }
}
