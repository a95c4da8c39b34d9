//! `aihub migrate-store`: copies an aihub SQLite database into an empty Postgres database,
//! for operators moving from one instance to several.
//!
//! The SQLite file is opened read-only and read inside one read transaction (a consistent
//! snapshot even beside a running server; stop the server for a copy that misses no late
//! call). The target gets its migrations first (the same code as `aihub migrate`), then
//! every table is copied in ONE Postgres transaction (binary `COPY`, streamed in chunks) and
//! every identity column is restarted past the copied ids: a failure leaves no row behind.
//!
//! Rows keep their ids, so provider keys are copied still sealed: their associated data is
//! the credential id, and the master key is not needed here (the new instances need it).

use super::pg::PgDb;
use super::StoreError;
use deadpool_postgres::GenericClient;
use rusqlite::types::ValueRef;
use rusqlite::OpenFlags;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// Every table of the SQLite schema, parents before children (foreign keys are checked as
/// rows arrive). Transient Postgres-only tables (credit holds) are not copied.
pub const TABLES: &[&str] = &[
    "settings",
    "apps",
    "app_keys",
    "providers",
    "credentials",
    "model_rates",
    "model_aliases",
    "app_limits",
    "key_limits",
    "app_prices",
    "rate_history",
    "app_budgets",
    "key_budgets",
    "credit_grants",
    "ledger",
    "credit_balances",
    "payment_events",
    "model_calls",
    "usage_hourly",
    "key_usage_daily",
    "responses",
    "alert_outbox",
];

/// Rows per message from the SQLite reader to the Postgres writer.
const CHUNK_ROWS: usize = 1000;
/// A progress line this often within one large table.
const PROGRESS_ROWS: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("no SQLite database at {0} (give the aihub.db file, or the data dir holding it)")]
    MissingSource(PathBuf),
    #[error("{path} is not an aihub database (schema version 0); nothing was written")]
    NotAihub { path: PathBuf },
    #[error(
        "{path} is at schema version {found}; this aihub copies version {latest}: run `aihub migrate` \
         with this aihub on that data dir first (e.g. AIHUB_STORAGE__DATA_DIR={dir} aihub migrate); nothing was written"
    )]
    SourceOlder {
        path: PathBuf,
        dir: String,
        found: usize,
        latest: usize,
    },
    #[error(
        "{path} is at schema version {found}, newer than this aihub understands ({latest}): \
         run the migrate-store of the aihub that wrote it; nothing was written"
    )]
    SourceNewer {
        path: PathBuf,
        found: usize,
        latest: usize,
    },
    #[error(
        "the target {target} already holds data (rows in {tables}); migrate-store copies only into an \
         empty database (create a new one, and copy before any aihub serves it: the first start makes a \
         'default' app); nothing was written"
    )]
    TargetNotEmpty { target: String, tables: String },
    #[error("the schemas do not match: {0}; no row was copied")]
    Schema(String),
    #[error("reading the SQLite database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("writing to Postgres: {0}; no row was copied")]
    Postgres(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the copy stopped: {0}; no row was copied")]
    Task(String),
}

impl From<tokio_postgres::Error> for CopyError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's message and detail (e.g. which key a foreign key misses); row values
        // in a detail are ids and names, never a secret (secrets are ciphertext here).
        CopyError::Postgres(match e.as_db_error() {
            Some(db) => match db.detail() {
                Some(d) => format!("{}: {} ({d})", db.severity(), db.message()),
                None => format!("{}: {}", db.severity(), db.message()),
            },
            None => e.to_string(),
        })
    }
}

/// What the copy reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The target's schema: (version before, version after).
    Migrated { before: usize, after: usize },
    /// Still copying `table`: `rows` so far.
    Copying { table: &'a str, rows: u64 },
    /// `table` copied (not yet committed).
    Copied { table: &'a str, rows: u64 },
}

/// What was copied: each table and its row count, in copy order.
#[derive(Debug, Default)]
pub struct Report {
    pub source_version: usize,
    pub tables: Vec<(String, u64)>,
}

impl Report {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// How a SQLite value becomes a Postgres one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
}

impl Kind {
    fn of(ty: &Type) -> Option<Kind> {
        match *ty {
            Type::INT8 => Some(Kind::Int),
            Type::BOOL => Some(Kind::Bool),
            Type::TEXT | Type::VARCHAR => Some(Kind::Text),
            Type::BYTEA => Some(Kind::Bytes),
            _ => None,
        }
    }
}

/// One copied value, typed for its Postgres column.
#[derive(Debug)]
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(v) => v,
            Value::Bool(v) => v,
            Value::Text(v) => v,
            Value::Bytes(v) => v,
        }
    }

    /// `v` as `kind`; `None` when SQLite holds a value of another type.
    fn convert(v: ValueRef<'_>, kind: Kind) -> Option<Value> {
        Some(match (v, kind) {
            (ValueRef::Null, Kind::Int) => Value::Int(None),
            (ValueRef::Null, Kind::Bool) => Value::Bool(None),
            (ValueRef::Null, Kind::Text) => Value::Text(None),
            (ValueRef::Null, Kind::Bytes) => Value::Bytes(None),
            (ValueRef::Integer(i), Kind::Int) => Value::Int(Some(i)),
            (ValueRef::Integer(i), Kind::Bool) => Value::Bool(Some(i != 0)),
            (ValueRef::Text(t), Kind::Text) => {
                Value::Text(Some(String::from_utf8(t.to_vec()).ok()?))
            }
            (ValueRef::Blob(b), Kind::Bytes) => Value::Bytes(Some(b.to_vec())),
            _ => return None,
        })
    }
}

/// One table to copy: the Postgres columns SQLite has too, in the target's order.
#[derive(Debug, Clone)]
struct TablePlan {
    table: &'static str,
    columns: Vec<(String, Kind)>,
    types: Vec<Type>,
    /// Identity columns, restarted past the copied ids.
    identity: Vec<String>,
}

enum Msg {
    Rows(Vec<Vec<Value>>),
    /// The table is read: how many rows.
    End(u64),
}

/// The opened source: a read-only connection inside a read transaction (its snapshot).
struct Source {
    conn: rusqlite::Connection,
    version: usize,
    /// Each table's columns.
    columns: HashMap<String, Vec<String>>,
    /// `sqlite_sequence`: the last id an AUTOINCREMENT table handed out (ids are never reused).
    sequences: HashMap<String, i64>,
}

/// `path` itself, or `aihub.db` inside it when it is a directory.
pub fn resolve_source(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("aihub.db")
    } else {
        path.to_path_buf()
    }
}

fn open_source(path: &Path) -> Result<Source, CopyError> {
    let path = resolve_source(path);
    if !path.is_file() {
        return Err(CopyError::MissingSource(path));
    }
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Everything below, and every row copied, is read from this one snapshot.
    conn.execute_batch("BEGIN")?;
    let version = super::migrations::current_version(&conn)?;
    let latest = super::migrations::latest();
    if version == 0 {
        return Err(CopyError::NotAihub { path });
    }
    if version < latest {
        let dir = path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| ".".into());
        return Err(CopyError::SourceOlder {
            path,
            dir,
            found: version,
            latest,
        });
    }
    if version > latest {
        return Err(CopyError::SourceNewer {
            path,
            found: version,
            latest,
        });
    }
    let tables: Vec<String> = {
        let mut st = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let names = st.query_map([], |r| r.get(0))?;
        names.collect::<Result<_, _>>()?
    };
    let unknown: Vec<&String> = tables
        .iter()
        .filter(|t| !TABLES.contains(&t.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(CopyError::Schema(format!(
            "the SQLite database has tables this copy does not know: {unknown:?}"
        )));
    }
    let mut columns = HashMap::new();
    for t in &tables {
        let mut st = conn.prepare(&format!("PRAGMA table_info({})", quote(t)))?;
        let cols = st.query_map([], |r| r.get::<_, String>(1))?;
        columns.insert(t.clone(), cols.collect::<Result<Vec<_>, _>>()?);
    }
    let has_sequences = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    let mut sequences = HashMap::new();
    if has_sequences {
        let mut st = conn.prepare("SELECT name, seq FROM sqlite_sequence")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (name, seq) = row?;
            sequences.insert(name, seq);
        }
    }
    Ok(Source {
        conn,
        version,
        columns,
        sequences,
    })
}

/// A quoted SQL identifier (the names are this module's constants and the schemas' own).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Which of `tables` hold at least one row.
async fn tables_with_rows(
    c: &impl GenericClient,
    tables: &[&str],
) -> Result<Vec<String>, CopyError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let sql = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT '{t}'::TEXT WHERE EXISTS (SELECT 1 FROM {})",
                quote(t)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    Ok(c.query(&sql, &[]).await?.iter().map(|r| r.get(0)).collect())
}

/// Which of [`TABLES`] exist on the target (before its migrations).
async fn existing_tables(c: &impl GenericClient) -> Result<Vec<&'static str>, CopyError> {
    let names: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    let found: HashSet<String> = c
        .query(
            "SELECT t FROM unnest($1::TEXT[]) AS t WHERE to_regclass(quote_ident(t)) IS NOT NULL",
            &[&names],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(TABLES
        .iter()
        .copied()
        .filter(|t| found.contains(*t))
        .collect())
}

fn not_empty(db: &PgDb, tables: Vec<String>) -> Result<(), CopyError> {
    if tables.is_empty() {
        return Ok(());
    }
    Err(CopyError::TargetNotEmpty {
        target: db.shown().to_string(),
        tables: tables.join(", "),
    })
}

/// The copy plan for each table SQLite has, from the target's columns.
async fn plan(c: &impl GenericClient, source: &Source) -> Result<Vec<TablePlan>, CopyError> {
    let mut plans = Vec::new();
    for &table in TABLES {
        let Some(src_cols) = source.columns.get(table) else {
            continue;
        };
        let rows = c
            .query(
                "SELECT a.attname::TEXT, a.atttypid, a.attnotnull, a.atthasdef, a.attidentity <> ''
                 FROM pg_attribute a
                 WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[&table],
            )
            .await?;
        if rows.is_empty() {
            return Err(CopyError::Schema(format!(
                "the Postgres database has no table {table}"
            )));
        }
        let src: HashSet<&str> = src_cols.iter().map(String::as_str).collect();
        let mut p = TablePlan {
            table,
            columns: Vec::new(),
            types: Vec::new(),
            identity: Vec::new(),
        };
        let mut target_cols = HashSet::new();
        for r in &rows {
            let name: String = r.get(0);
            let oid: u32 = r.get(1);
            let not_null: bool = r.get(2);
            let has_default: bool = r.get(3);
            let identity: bool = r.get(4);
            target_cols.insert(name.clone());
            if !src.contains(name.as_str()) {
                // A Postgres-only column takes its default; one without cannot be filled.
                if not_null && !has_default && !identity {
                    return Err(CopyError::Schema(format!(
                        "{table}.{name} is required in Postgres but SQLite has no such column"
                    )));
                }
                continue;
            }
            let ty = Type::from_oid(oid).ok_or_else(|| {
                CopyError::Schema(format!("{table}.{name} has a type this copy does not know"))
            })?;
            let kind = Kind::of(&ty).ok_or_else(|| {
                CopyError::Schema(format!("{table}.{name} is {ty} in Postgres; not copied"))
            })?;
            if identity {
                p.identity.push(name.clone());
            }
            p.columns.push((name, kind));
            p.types.push(ty);
        }
        if let Some(missing) = src_cols.iter().find(|c| !target_cols.contains(*c)) {
            return Err(CopyError::Schema(format!(
                "SQLite's {table}.{missing} has no column in Postgres"
            )));
        }
        plans.push(p);
    }
    Ok(plans)
}

/// Reads every planned table from the snapshot and sends it in chunks; stops when the
/// writer has gone (it failed: the transaction is rolled back anyway).
fn read_rows(
    source: Source,
    plans: Vec<TablePlan>,
    tx: mpsc::Sender<Msg>,
) -> Result<(), CopyError> {
    let gone = || CopyError::Task("the Postgres writer stopped".into());
    for p in &plans {
        let cols: Vec<String> = p.columns.iter().map(|(c, _)| quote(c)).collect();
        let sql = format!(
            "SELECT rowid, {} FROM {} ORDER BY rowid",
            cols.join(", "),
            quote(p.table)
        );
        let mut st = source.conn.prepare(&sql)?;
        let mut rows = st.query([])?;
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            let rowid: i64 = r.get(0)?;
            let mut row = Vec::with_capacity(p.columns.len());
            for (i, (name, kind)) in p.columns.iter().enumerate() {
                let v = r.get_ref(i + 1)?;
                let found = v.data_type();
                row.push(Value::convert(v, *kind).ok_or_else(|| {
                    CopyError::Schema(format!(
                        "{}.{name} of row {rowid} holds {found} where Postgres expects {kind:?}",
                        p.table
                    ))
                })?);
            }
            chunk.push(row);
            n += 1;
            if chunk.len() == CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                tx.blocking_send(Msg::Rows(full)).map_err(|_| gone())?;
            }
        }
        if !chunk.is_empty() {
            tx.blocking_send(Msg::Rows(chunk)).map_err(|_| gone())?;
        }
        tx.blocking_send(Msg::End(n)).map_err(|_| gone())?;
    }
    Ok(())
}

/// Copies the SQLite database at `source` (the file, or its data dir) into the Postgres
/// database at `target_url`, which must hold no rows; `progress` hears each step.
pub async fn sqlite_to_postgres(
    source: &Path,
    target_url: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, CopyError> {
    let path = source.to_path_buf();
    let source = tokio::task::spawn_blocking(move || open_source(&path))
        .await
        .map_err(|e| CopyError::Task(e.to_string()))??;
    let db = PgDb::connect(target_url, 2).await?;
    // A database aihub has used: refuse before migrating it, so nothing is written.
    if db.schema_version().await? > 0 {
        let c = db.client().await?;
        let existing = existing_tables(&c).await?;
        not_empty(&db, tables_with_rows(&c, &existing).await?)?;
    }
    let (before, after) = db.migrate().await?;
    progress(Progress::Migrated { before, after });

    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    // No aihub may write while the copy runs (it would collide with the copied ids).
    let all: Vec<String> = TABLES.iter().map(|t| quote(t)).collect();
    tx.batch_execute(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", all.join(", ")))
        .await?;
    not_empty(&db, tables_with_rows(&tx, TABLES).await?)?;
    let plans = plan(&tx, &source).await?;

    let mut report = Report {
        source_version: source.version,
        tables: Vec::new(),
    };
    let sequences = source.sequences.clone();
    let (send, mut recv) = mpsc::channel::<Msg>(4);
    let reader_plans = plans.clone();
    let reader = tokio::task::spawn_blocking(move || read_rows(source, reader_plans, send));
    // The reader's own error explains a channel that closed early.
    let reader_failed = |reader: tokio::task::JoinHandle<Result<(), CopyError>>| async move {
        match reader.await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => CopyError::Task("the SQLite reader ended early".into()),
            Err(e) => CopyError::Task(e.to_string()),
        }
    };

    for p in &plans {
        let cols: Vec<String> = p.columns.iter().map(|(c, _)| quote(c)).collect();
        let sink = tx
            .copy_in(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                quote(p.table),
                cols.join(", ")
            ))
            .await?;
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &p.types));
        let mut sent = 0u64;
        let read = loop {
            match recv.recv().await {
                Some(Msg::Rows(rows)) => {
                    for row in &rows {
                        let values: Vec<&(dyn ToSql + Sync)> =
                            row.iter().map(Value::as_sql).collect();
                        writer.as_mut().write(&values).await?;
                    }
                    let was = sent;
                    sent += rows.len() as u64;
                    if sent / PROGRESS_ROWS > was / PROGRESS_ROWS {
                        progress(Progress::Copying {
                            table: p.table,
                            rows: sent,
                        });
                    }
                }
                Some(Msg::End(n)) => break n,
                None => return Err(reader_failed(reader).await),
            }
        };
        let written = writer.as_mut().finish().await?;
        if written != read || written != sent {
            return Err(CopyError::Task(format!(
                "{}: read {read} rows, wrote {written}",
                p.table
            )));
        }
        progress(Progress::Copied {
            table: p.table,
            rows: written,
        });
        report.tables.push((p.table.to_string(), written));
    }
    match reader.await {
        Ok(r) => r?,
        Err(e) => return Err(CopyError::Task(e.to_string())),
    }

    // New rows continue after the copied ids (and after ids SQLite handed out and then
    // deleted, for its AUTOINCREMENT tables).
    for p in &plans {
        for col in &p.identity {
            let max: Option<i64> = tx
                .query_one(
                    &format!("SELECT max({}) FROM {}", quote(col), quote(p.table)),
                    &[],
                )
                .await?
                .get(0);
            let last = max
                .unwrap_or(0)
                .max(sequences.get(p.table).copied().unwrap_or(0));
            if last > 0 {
                tx.batch_execute(&format!(
                    "ALTER TABLE {} ALTER COLUMN {} RESTART WITH {}",
                    quote(p.table),
                    quote(col),
                    last + 1
                ))
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sqlite_table_is_copied_in_an_order_foreign_keys_accept() {
        let (dir, store) = crate::store::test_store();
        drop(store);
        let source = open_source(dir.path()).unwrap();
        let mut names: Vec<&str> = source.columns.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut known = TABLES.to_vec();
        known.sort_unstable();
        assert_eq!(
            names, known,
            "TABLES lists every table of the SQLite schema"
        );
        // Each table's parents come before it.
        for (i, t) in TABLES.iter().enumerate() {
            let mut st = source
                .conn
                .prepare(&format!("PRAGMA foreign_key_list({})", quote(t)))
                .unwrap();
            let parents: Vec<String> = st
                .query_map([], |r| r.get(2))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for parent in parents {
                let at = TABLES.iter().position(|x| *x == parent).unwrap();
                assert!(at < i, "{t} is copied before its parent {parent}");
            }
        }
    }

    #[test]
    fn sources_that_cannot_be_copied_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            open_source(&dir.path().join("nope.db")),
            Err(CopyError::MissingSource(_))
        ));
        assert!(matches!(
            open_source(dir.path()),
            Err(CopyError::MissingSource(p)) if p.ends_with("aihub.db")
        ));
        let file = dir.path().join("old.db");
        let c = rusqlite::Connection::open(&file).unwrap();
        c.execute_batch("CREATE TABLE apps (id INTEGER PRIMARY KEY); PRAGMA user_version = 3;")
            .unwrap();
        let err = open_source(&file).err().unwrap().to_string();
        assert!(err.contains("aihub migrate"), "{err}");
        c.execute_batch("PRAGMA user_version = 999;").unwrap();
        let err = open_source(&file).err().unwrap().to_string();
        assert!(err.contains("newer"), "{err}");
        c.execute_batch("PRAGMA user_version = 0;").unwrap();
        assert!(matches!(
            open_source(&file),
            Err(CopyError::NotAihub { .. })
        ));
    }

    #[test]
    fn values_convert_to_their_column_types_only() {
        assert!(matches!(
            Value::convert(ValueRef::Integer(1), Kind::Bool),
            Some(Value::Bool(Some(true)))
        ));
        assert!(matches!(
            Value::convert(ValueRef::Null, Kind::Bytes),
            Some(Value::Bytes(None))
        ));
        assert!(Value::convert(ValueRef::Text(b"x"), Kind::Int).is_none());
        assert!(Value::convert(ValueRef::Real(1.5), Kind::Int).is_none());
        assert!(Value::convert(ValueRef::Text(&[0xff, 0xfe]), Kind::Text).is_none());
    }
}
