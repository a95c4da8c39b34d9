//! Settings and master-key housekeeping on Postgres.

use super::PgStores;
use crate::store::secrets::{Cipher, PROBE_ROWS};
use crate::store::traits::{MetaStore, Result};
use async_trait::async_trait;

#[async_trait]
impl MetaStore for PgStores {
    async fn setting(&self, key: String) -> Result<Option<String>> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
                .await?
                .map(|r| r.get(0)),
        )
    }

    async fn set_setting(&self, key: String, value: String) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .await?;
        Ok(())
    }

    async fn secret_sample(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        self.db.secret_sample().await
    }

    async fn reencrypt_all(&self, old: Cipher, new: Cipher) -> Result<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let rows = tx
            .query(
                "SELECT id, secret FROM credentials ORDER BY id FOR UPDATE",
                &[],
            )
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut sealed = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.get(0);
            let blob: Vec<u8> = r.get(1);
            let plain = old.decrypt(id, &blob)?;
            ids.push(id);
            sealed.push(new.encrypt(id, &plain)?);
        }
        tx.execute(
            "UPDATE credentials c SET secret = v.secret
             FROM unnest($1::BIGINT[], $2::BYTEA[]) AS v(id, secret) WHERE c.id = v.id",
            &[&ids, &sealed],
        )
        .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    async fn ping(&self) -> Result<()> {
        self.db.ping().await
    }
}

impl super::PgDb {
    /// The first stored secrets, for `secrets::probe` (before the cipher is known).
    pub async fn secret_sample(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, secret FROM credentials ORDER BY id LIMIT $1",
                &[&(PROBE_ROWS as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
