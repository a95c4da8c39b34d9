//! Numbered SQL migrations from `schema/`, embedded in the binary. The applied version is
//! SQLite's `user_version`; a database from a newer aihub is refused untouched.

use super::StoreError;
use rusqlite_migration::{Migrations, M};

/// In order; append only. Each file runs once, in its own transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../schema/0001_init.sql"),
    include_str!("../../../schema/0002_resilience.sql"),
    include_str!("../../../schema/0003_formats.sql"),
    include_str!("../../../schema/0004_limits.sql"),
    include_str!("../../../schema/0005_cache.sql"),
    include_str!("../../../schema/0006_billing.sql"),
    include_str!("../../../schema/0007_audio_rates.sql"),
    include_str!("../../../schema/0008_payments.sql"),
    include_str!("../../../schema/0009_rates.sql"),
    include_str!("../../../schema/0010_budgets_alerts.sql"),
    include_str!("../../../schema/0011_call_request_index.sql"),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

pub fn latest() -> usize {
    MIGRATIONS.len()
}

pub fn current_version(conn: &rusqlite::Connection) -> Result<usize, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(v.max(0) as usize)
}

pub fn apply(conn: &mut rusqlite::Connection) -> Result<(usize, usize), StoreError> {
    let before = current_version(conn)?;
    if before > latest() {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {before}, newer than this aihub understands ({}); \
             it was written by a newer aihub. Run that version, or restore a backup; the database was not changed",
            latest()
        )));
    }
    migrations()
        .to_latest(conn)
        .map_err(|e| StoreError::Migration(format!("migration failed: {e}")))?;
    Ok((before, current_version(conn)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    #[test]
    fn fresh_then_rerun_is_a_noop() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut c).unwrap(), (0, latest()));
        assert_eq!(apply(&mut c).unwrap(), (latest(), latest()));
    }

    #[test]
    fn version_1_database_is_upgraded_keeping_its_rows() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        Migrations::new(vec![M::up(MIGRATIONS[0])])
            .to_latest(&mut c)
            .unwrap();
        c.execute_batch(
            "INSERT INTO apps (name, enabled, created_at, updated_at) VALUES ('old', 1, 1, 1);
             INSERT INTO model_calls (request_id, endpoint, stream, status, http_status, latency_ms, created_at)
             VALUES ('r1', 'chat', 0, 'ok', 200, 5, 1);",
        )
        .unwrap();
        assert_eq!(apply(&mut c).unwrap(), (1, latest()));
        let (name, tried): (String, Option<String>) = c
            .query_row(
                "SELECT a.name, m.credentials_tried FROM apps a, model_calls m",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((name.as_str(), tried), ("old", None));
    }

    #[test]
    fn future_database_is_refused_untouched() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 99;")
            .unwrap();
        let err = apply(&mut c).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
        assert_eq!(current_version(&c).unwrap(), 99);
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }
}
