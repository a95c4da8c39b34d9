//! Kept OpenAI Responses on Postgres, scoped to their app, until they expire.

use super::PgStores;
use crate::store::now_ms;
use crate::store::responses::StoredResponse;
use crate::store::traits::{ResponseStore, Result};
use async_trait::async_trait;

#[async_trait]
impl ResponseStore for PgStores {
    async fn save_response(&self, r: StoredResponse) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO responses (id, app_id, model, provider, native, body, conversation, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET body = excluded.body, conversation = excluded.conversation,
                 expires_at = excluded.expires_at
             WHERE responses.app_id = excluded.app_id",
            &[
                &r.id,
                &r.app_id,
                &r.model,
                &r.provider,
                &r.native,
                &r.body,
                &r.conversation,
                &r.created_at,
                &r.expires_at,
            ],
        )
        .await?;
        c.execute("DELETE FROM responses WHERE expires_at < $1", &[&now_ms()])
            .await?;
        Ok(())
    }

    async fn get_response(&self, app_id: i64, id: String) -> Result<Option<StoredResponse>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT id, app_id, model, provider, native, body, conversation, created_at, expires_at
                 FROM responses WHERE id = $1 AND app_id = $2 AND expires_at >= $3",
            &[&id, &app_id, &now_ms()],
        )
        .await?
        .map(|r| StoredResponse {
            id: r.get(0),
            app_id: r.get(1),
            model: r.get(2),
            provider: r.get(3),
            native: r.get(4),
            body: r.get(5),
            conversation: r.get(6),
            created_at: r.get(7),
            expires_at: r.get(8),
        }))
    }

    async fn delete_response(&self, app_id: i64, id: String) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM responses WHERE id = $1 AND app_id = $2",
                &[&id, &app_id],
            )
            .await?;
        Ok(n > 0)
    }
}
