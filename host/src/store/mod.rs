//! The store. The embedded SQLite store (the default): one r2d2 pool of rusqlite
//! connections (WAL, `synchronous=NORMAL`, foreign keys on), numbered migrations from
//! `schema/`. The Postgres store (`storage.url = "postgres://..."`) lives in [`pg`];
//! [`backend`] picks one and hands out the traits of [`traits`]; [`copy`] copies a SQLite
//! database into Postgres (`aihub migrate-store`).

pub mod alerts;
pub mod aliases;
pub mod app_prices;
pub mod apps;
pub mod backend;
pub mod budgets;
pub mod calls;
pub mod copy;
pub mod credits;
pub mod health;
pub mod limits;
pub mod migrations;
pub mod overview;
pub mod pg;
pub mod providers;
pub mod rate_history;
pub mod rates;
pub mod responses;
pub mod secrets;
pub mod sqlite;
pub mod traits;
pub mod usage;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OptionalExtension;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;
pub type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// Connecting or the pool, with any password already taken out of the message.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Migration(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid '{field}': {message}")]
    Invalid { field: String, message: String },
    #[error("secret store: {0}")]
    Crypto(String),
    #[error("store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// The database could not be reached (down, network, pool exhausted), as opposed to
    /// refusing what was asked: worth waiting out, not worth giving up a record for.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Pool(_) => true,
            StoreError::Postgres(e) => {
                e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::DatabaseBusy
            ),
            _ => false,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A UNIQUE violation becomes a conflict naming what clashed.
    pub fn from_unique(e: rusqlite::Error, what: impl FnOnce() -> String) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(what())
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    path: PathBuf,
    /// Which balance alerts charges raise (set at start).
    pub charge_alerts: std::sync::Arc<alerts::ChargeAlerts>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn init_connection(c: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    c.busy_timeout(Duration::from_secs(5))?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
}

impl Store {
    /// Opens (creating) `<data_dir>/aihub.db`; the caller migrates (and reports it).
    pub fn open_unmigrated(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Migration(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("aihub.db");
        // WAL is a property of the file: switch it once, on one connection, before the
        // pool opens several at a time (concurrent switches fail with "locked").
        {
            let mut first = rusqlite::Connection::open(&path)?;
            init_connection(&mut first)?;
        }
        let manager = SqliteConnectionManager::file(&path).with_init(init_connection);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Store {
            pool,
            path,
            charge_alerts: Default::default(),
        })
    }

    pub(in crate::store) fn conn(&self) -> Result<Conn, StoreError> {
        Ok(self.pool.get()?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies pending migrations. Returns (version before, version after).
    pub fn migrate(&self) -> Result<(usize, usize), StoreError> {
        let mut conn = self.conn()?;
        migrations::apply(&mut conn)
    }

    /// One query, for `/readyz`.
    pub fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_unmigrated(dir.path()).expect("open store");
    store.migrate().expect("migrate");
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_have_the_pragmas() {
        let (_d, store) = test_store();
        let c = store.conn().unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let fk: i64 = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 1);
        assert_eq!(fk, 1);
    }

    #[test]
    fn settings_round_trip() {
        let (_d, store) = test_store();
        assert_eq!(store.setting("x").unwrap(), None);
        store.set_setting("x", "1").unwrap();
        store.set_setting("x", "2").unwrap();
        assert_eq!(store.setting("x").unwrap().as_deref(), Some("2"));
    }
}
