//! The alert webhook outbox on Postgres (balance events are written by the call-log
//! writer in the charge's transaction, `pg::calls`).

use super::PgStores;
use crate::store::alerts::{PendingAlert, CLAIM_MS};
use crate::store::now_ms;
use crate::store::traits::{AlertStore, Result};
use async_trait::async_trait;

#[async_trait]
impl AlertStore for PgStores {
    async fn enqueue_alert(&self, event: String, data: String) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO alert_outbox (event, data, next_attempt_at, created_at) VALUES ($1, $2, $3, $3)",
            &[&event, &data, &now_ms()],
        )
        .await?;
        Ok(())
    }

    async fn due_alerts(&self, now_ms: i64, limit: usize) -> Result<Vec<PendingAlert>> {
        let c = self.client().await?;
        // Claimed in the same statement: the rows another instance is claiming are
        // skipped, so an event goes to one deliverer.
        let rows = c
            .query(
                "UPDATE alert_outbox SET next_attempt_at = $3 WHERE id IN (
                     SELECT id FROM alert_outbox
                     WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id, event, data, attempts, created_at",
                &[&now_ms, &(limit as i64), &(now_ms + CLAIM_MS)],
            )
            .await?;
        let mut due: Vec<PendingAlert> = rows
            .iter()
            .map(|r| PendingAlert {
                id: r.get(0),
                event: r.get(1),
                data: r.get(2),
                attempts: r.get(3),
                created_at: r.get(4),
            })
            .collect();
        due.sort_by_key(|a| a.id);
        Ok(due)
    }

    async fn next_alert_due(&self) -> Result<Option<i64>> {
        let c = self.client().await?;
        Ok(c.query_one(
            "SELECT min(next_attempt_at) FROM alert_outbox WHERE next_attempt_at IS NOT NULL",
            &[],
        )
        .await?
        .get(0))
    }

    async fn alert_delivered(&self, id: i64) -> Result<()> {
        let c = self.client().await?;
        c.execute("DELETE FROM alert_outbox WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn alert_failed(&self, id: i64, next_at: Option<i64>, error: String) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
            &[&id, &next_at, &error],
        )
        .await?;
        Ok(())
    }
}
