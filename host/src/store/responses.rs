//! OpenAI Responses kept for `previous_response_id` and `GET /v1/responses/{id}`, scoped
//! to the app that made them, until they expire.

use super::{now_ms, Store, StoreError};
use rusqlite::{params, OptionalExtension};

/// One kept response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    pub app_id: i64,
    pub model: String,
    /// The routing prefix that served it.
    pub provider: String,
    /// The upstream itself holds it (served by pass-through); aihub has no conversation.
    pub native: bool,
    /// The Response object as the client received it (JSON).
    pub body: String,
    /// The chat messages up to and including it (JSON array), for a follow-up call.
    pub conversation: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// Keeps a response (replacing one with the same id of the same app) and drops
    /// expired ones, so the table stays bounded by the retention without a sweeper.
    pub fn save_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO responses (id, app_id, model, provider, native, body, conversation, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (id) DO UPDATE SET body = excluded.body, conversation = excluded.conversation,
                 expires_at = excluded.expires_at
             WHERE responses.app_id = excluded.app_id",
            params![
                r.id,
                r.app_id,
                r.model,
                r.provider,
                r.native,
                r.body,
                r.conversation,
                r.created_at,
                r.expires_at
            ],
        )?;
        conn.execute(
            "DELETE FROM responses WHERE expires_at < ?1",
            params![now_ms()],
        )?;
        Ok(())
    }

    /// The app's response with this id, unless it expired.
    pub fn get_response(
        &self,
        app_id: i64,
        id: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT id, app_id, model, provider, native, body, conversation, created_at, expires_at
                 FROM responses WHERE id = ?1 AND app_id = ?2 AND expires_at >= ?3",
                params![id, app_id, now_ms()],
                |r| {
                    Ok(StoredResponse {
                        id: r.get(0)?,
                        app_id: r.get(1)?,
                        model: r.get(2)?,
                        provider: r.get(3)?,
                        native: r.get(4)?,
                        body: r.get(5)?,
                        conversation: r.get(6)?,
                        created_at: r.get(7)?,
                        expires_at: r.get(8)?,
                    })
                },
            )
            .optional()?)
    }

    /// Deletes the app's response; false when it had none with this id.
    pub fn delete_response(&self, app_id: i64, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let n = conn.execute(
            "DELETE FROM responses WHERE id = ?1 AND app_id = ?2",
            params![id, app_id],
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(app_id: i64, id: &str, expires_at: i64) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            app_id,
            model: "echo/echo-1".into(),
            provider: "echo".into(),
            native: false,
            body: r#"{"id":"x"}"#.into(),
            conversation: Some("[]".into()),
            created_at: now_ms(),
            expires_at,
        }
    }

    #[test]
    fn responses_are_scoped_to_their_app_and_expire() {
        let (_dir, store) = crate::store::test_store();
        let a = store.create_app("a").unwrap().id;
        let b = store.create_app("b").unwrap().id;
        let later = now_ms() + 60_000;
        store.save_response(&sample(a, "resp_1", later)).unwrap();
        assert!(store.get_response(a, "resp_1").unwrap().is_some());
        assert!(store.get_response(b, "resp_1").unwrap().is_none());
        // Another app cannot overwrite it, nor delete it.
        store.save_response(&sample(b, "resp_1", later)).unwrap();
        assert_eq!(store.get_response(a, "resp_1").unwrap().unwrap().app_id, a);
        assert!(!store.delete_response(b, "resp_1").unwrap());
        assert!(store.delete_response(a, "resp_1").unwrap());
        assert!(store.get_response(a, "resp_1").unwrap().is_none());
        // Expired ones are gone.
        store
            .save_response(&sample(a, "resp_old", now_ms() - 1))
            .unwrap();
        assert!(store.get_response(a, "resp_old").unwrap().is_none());
    }
}
