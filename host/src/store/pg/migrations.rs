//! Postgres migrations from `schema/pg/`, embedded in the binary. Each runs in its own
//! transaction holding a transaction-level advisory lock, so instances starting at once
//! wait for each other and every migration is applied exactly once. The applied version
//! is the highest row of `aihub_schema_version`; a database from a newer aihub is refused
//! untouched.

use super::PgDb;
use crate::store::StoreError;

/// In order; append only.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../../schema/pg/0001_init.sql"),
    include_str!("../../../../schema/pg/0002_credit_holds.sql"),
];

/// The advisory lock key every aihub instance takes to migrate ("aihub" in ASCII).
const LOCK_KEY: i64 = 0x0061_6968_7562;

pub fn latest() -> usize {
    MIGRATIONS.len()
}

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS aihub_schema_version (
    version    BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

fn newer(found: usize) -> StoreError {
    StoreError::Migration(format!(
        "the database is at schema version {found}, newer than this aihub understands ({}); \
         it was written by a newer aihub. Run that version, or restore a backup; the database was not changed",
        latest()
    ))
}

impl PgDb {
    /// The applied version (0: a fresh database).
    pub async fn schema_version(&self) -> Result<usize, StoreError> {
        let c = self.client().await?;
        let exists: bool = c
            .query_one(
                "SELECT to_regclass('aihub_schema_version') IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let v: Option<i64> = c
            .query_one("SELECT max(version) FROM aihub_schema_version", &[])
            .await?
            .get(0);
        Ok(v.unwrap_or(0).max(0) as usize)
    }

    /// Applies pending migrations. Returns (version before, version after).
    pub async fn migrate(&self) -> Result<(usize, usize), StoreError> {
        let mut c = self.client().await?;
        let mut before = None;
        loop {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
                .await?;
            tx.batch_execute(VERSION_TABLE).await?;
            let v: Option<i64> = tx
                .query_one("SELECT max(version) FROM aihub_schema_version", &[])
                .await?
                .get(0);
            let current = v.unwrap_or(0).max(0) as usize;
            let first = *before.get_or_insert(current);
            if current > latest() {
                tx.rollback().await?;
                return Err(newer(current));
            }
            if current == latest() {
                tx.commit().await?;
                return Ok((first, current));
            }
            tx.batch_execute(MIGRATIONS[current]).await.map_err(|e| {
                StoreError::Migration(format!("migration {} failed: {e}", current + 1))
            })?;
            tx.execute(
                "INSERT INTO aihub_schema_version (version, applied_at) VALUES ($1, $2)",
                &[&((current + 1) as i64), &crate::store::now_ms()],
            )
            .await?;
            tx.commit().await?;
        }
    }
}
