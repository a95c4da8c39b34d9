//! Which store serves: `storage.url` unset or `sqlite:` is the embedded SQLite database in
//! the data dir (the default); `postgres://` / `postgresql://` is Postgres. Start-up and
//! the CLI open a [`Backend`], migrate it, find the master key with
//! [`Backend::secret_sample`], then take the [`Stores`] and the call-log sink from it.

use super::alerts::ChargeAlerts;
use super::pg::{self, PgDb, PgStores};
use super::secrets::Cipher;
use super::sqlite::SqliteStores;
use super::traits::{CallSink, Result, Stores};
use super::{Store, StoreError};
use crate::config::StorageConfig;
use std::sync::Arc;

/// An opened, possibly not yet migrated, database.
#[derive(Clone)]
pub enum Backend {
    Sqlite(Store),
    Postgres(PgDb),
}

/// What serving needs from a backend.
pub struct Served {
    pub stores: Stores,
    /// Where the call-log writer commits its batches.
    pub sink: Arc<dyn CallSink>,
    /// Which balance alerts charges raise (set from the billing config).
    pub charge_alerts: Arc<ChargeAlerts>,
}

impl Backend {
    /// Opens the configured store (Postgres: connects once, so a bad URL or an unreachable
    /// server fails here with the reason and without the password).
    pub async fn open(config: &StorageConfig) -> Result<Backend> {
        let url = config.url.as_ref().map(|u| u.expose().trim()).unwrap_or("");
        if url.is_empty() || url == "sqlite:" || url == "sqlite" {
            return Ok(Backend::Sqlite(Store::open_unmigrated(&config.data_dir)?));
        }
        if pg::is_postgres_url(url) {
            return Ok(Backend::Postgres(
                PgDb::connect(url, config.pool_size).await?,
            ));
        }
        Err(StoreError::invalid(
            "storage.url",
            format!(
                "'{}' is not a store URL: leave it unset (or 'sqlite:') for the embedded SQLite database, or give postgres://user@host/db",
                pg::redact_url(url)
            ),
        ))
    }

    /// Where the data is, fit to print (never a password).
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(s) => format!("database {}", s.path().display()),
            Backend::Postgres(p) => format!("postgres database {}", p.shown()),
        }
    }

    /// Applies pending migrations: (version before, version after).
    pub async fn migrate(&self) -> Result<(usize, usize)> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.migrate())
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))?
            }
            Backend::Postgres(p) => p.migrate().await,
        }
    }

    /// The newest schema version this binary knows.
    pub fn latest_version(&self) -> usize {
        match self {
            Backend::Sqlite(_) => super::migrations::latest(),
            Backend::Postgres(_) => pg::migrations::latest(),
        }
    }

    /// The first stored secrets, to try a master key on before the stores exist.
    pub async fn secret_sample(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.secret_sample())
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))?
            }
            Backend::Postgres(p) => p.secret_sample().await,
        }
    }

    /// The stores, with secrets sealed under `cipher`.
    pub fn stores(&self, cipher: Cipher) -> Stores {
        match self {
            Backend::Sqlite(s) => Stores::from_one(Arc::new(SqliteStores::new(s.clone(), cipher))),
            Backend::Postgres(p) => Stores::from_one(Arc::new(PgStores::new(p.clone(), cipher))),
        }
    }

    /// The stores and the call-log sink. Call inside the runtime that will serve: on
    /// Postgres the sink blocks on it.
    pub fn serve(&self, cipher: Cipher) -> Served {
        match self {
            Backend::Sqlite(s) => Served {
                stores: self.stores(cipher),
                sink: Arc::new(s.clone()),
                charge_alerts: s.charge_alerts.clone(),
            },
            Backend::Postgres(p) => Served {
                stores: self.stores(cipher),
                sink: Arc::new(pg::calls::PgSink::new(p.clone())),
                charge_alerts: p.charge_alerts.clone(),
            },
        }
    }
}
