//! The Postgres store (`storage.url = "postgres://..."`): a deadpool of tokio-postgres
//! connections, numbered migrations from `schema/pg/` applied under an advisory lock, and
//! every store trait, one file per concern (mirroring the SQLite modules). Validation and
//! row types are the SQLite modules'; only the SQL differs.
//!
//! Every mutation goes through these files, so a change feed (LISTEN/NOTIFY) can be added
//! here without touching a caller.

pub mod alerts;
pub mod aliases;
pub mod apps;
pub mod budgets;
pub mod calls;
pub mod credits;
pub mod feed;
pub mod holds;
pub mod limits;
pub mod meta;
pub mod migrations;
pub mod overview;
pub mod providers;
pub mod rates;
pub mod responses;
pub mod tls;
pub mod usage;

use super::alerts::ChargeAlerts;
use super::secrets::Cipher;
use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;

pub type Client = deadpool_postgres::Client;

/// A connection pool to one Postgres database.
#[derive(Clone)]
pub struct PgDb {
    pool: Pool,
    /// The URL with its password masked, for messages.
    shown: Arc<str>,
    /// Which balance alerts charges raise (set at start).
    pub charge_alerts: Arc<ChargeAlerts>,
    /// How to open a connection outside the pool (the change feed's listener).
    direct: Arc<Direct>,
}

/// The parsed URL and whether it asks for TLS.
struct Direct {
    config: tokio_postgres::Config,
    tls: bool,
}

/// Whether `url` selects Postgres.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with the password (if any) replaced by `***`, safe to log.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}://{masked}@{}", &url[..scheme_end], &authority[at + 1..])
        }
        None => format!("{}://{authority}", &url[..scheme_end]),
    };
    // Key-value parameters may carry a password too (`?password=`).
    let tail = &rest[authority_end..];
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

/// Takes `secret` out of a message (a driver error could quote what it was given).
fn scrub(message: String, secret: Option<&[u8]>) -> String {
    match secret.and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) if !s.is_empty() => message.replace(s, "***"),
        _ => message,
    }
}

impl PgDb {
    /// Parses the URL and builds the pool (`pool_size` connections at most). Connects
    /// once, so an unreachable or misconfigured server fails the start with a clear error.
    pub async fn connect(url: &str, pool_size: usize) -> Result<PgDb, StoreError> {
        let shown: Arc<str> = redact_url(url).into();
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!(
                "storage.url {shown} is not a valid Postgres URL: {e}"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("aihub");
        }
        let password = config.get_password().map(<[u8]>::to_vec);
        let tls = config.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
        let mut direct_config = config.clone();
        if !tls {
            direct_config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => {
                Manager::from_config(config, tls::MakeRustls::new()?, manager_config)
            }
            // `prefer` (the driver's default) and `disable`: plaintext. `prefer` would
            // otherwise fall back silently; operators who need TLS say `sslmode=require`.
            _ => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(config, tokio_postgres::NoTls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(15)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("{shown}: {e}")))?;
        let db = PgDb {
            pool,
            shown,
            charge_alerts: Default::default(),
            direct: Arc::new(Direct {
                config: direct_config,
                tls,
            }),
        };
        // Fail now, with the reason, rather than at the first request.
        let first = db.client().await.map_err(|e| {
            StoreError::Unavailable(scrub(
                format!("cannot connect to {}: {e}", db.shown),
                password.as_deref(),
            ))
        })?;
        drop(first);
        Ok(db)
    }

    /// The URL as it may be shown (password masked).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub(in crate::store) async fn client(&self) -> Result<Client, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Unavailable(match e {
                deadpool_postgres::PoolError::Backend(b) => {
                    format!("{}: {}", self.shown, source_chain(&b))
                }
                other => format!("{}: {other}", self.shown),
            })
        })
    }

    /// One round trip: is the database answering?
    pub async fn ping(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await?;
        Ok(())
    }
}

/// A driver error with its causes (tokio-postgres puts the reason in the source).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The Postgres store with the cipher its secrets are sealed under.
#[derive(Clone)]
pub struct PgStores {
    pub(in crate::store) db: PgDb,
    pub(in crate::store) cipher: Cipher,
}

impl PgStores {
    pub fn new(db: PgDb, cipher: Cipher) -> Self {
        PgStores { db, cipher }
    }

    pub(in crate::store) async fn client(&self) -> Result<Client, StoreError> {
        self.db.client().await
    }
}

/// A UNIQUE violation becomes a conflict naming what clashed.
pub(in crate::store) fn unique(
    e: tokio_postgres::Error,
    what: impl FnOnce() -> String,
) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(what())
    } else {
        StoreError::Postgres(e)
    }
}

/// Page of `limit` rows (fetched `limit + 1`) and the next cursor: the last id shown.
pub(in crate::store) fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> i64,
) -> (Vec<T>, Option<i64>) {
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(&id);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// Builds a `WHERE` clause with numbered placeholders.
pub(in crate::store) struct Conditions {
    pub sql: String,
    pub args: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
}

impl Conditions {
    pub fn new() -> Self {
        Conditions {
            sql: String::from(" WHERE TRUE"),
            args: Vec::new(),
        }
    }

    /// Appends ` AND {clause} $n`.
    pub fn push<T: tokio_postgres::types::ToSql + Sync + Send + 'static>(
        &mut self,
        clause: &str,
        v: T,
    ) {
        self.args.push(Box::new(v));
        self.sql
            .push_str(&format!(" AND {clause} ${}", self.args.len()));
    }

    pub fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.args
            .iter()
            .map(|a| a.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgresql://h/db?user=u&password=pw"),
            "postgresql://h/db?user=u&password=***"
        );
        assert_eq!(redact_url("postgres://u:p@w@h/db"), "postgres://u:***@h/db");
        assert!(!scrub("bad s3cret".into(), Some(b"s3cret")).contains("s3cret"));
    }
}
