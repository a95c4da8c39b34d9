//! Schema migrations, through the real binary: a fresh database, a re-run (no-op), older
//! databases upgraded with their rows kept, and a database from a newer aihub refused by
//! both `aihub migrate` and `aihub serve` without a byte of it changing.
//!
//! The database is inspected with python3's `sqlite3` module: the test crate has no SQLite
//! library of its own (rusqlite is a dependency of the binary only).

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The numbered migration files, in order (`schema/NNNN_*.sql`).
fn migration_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no migrations in {}", dir.display());
    files
}

/// The schema version this aihub builds: one per migration file.
fn latest() -> usize {
    migration_files().len()
}

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("aihub-migr-")
        .tempdir()
        .expect("temp dir")
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("aihub.db")
}

fn user_version(db: &Path) -> usize {
    python_sqlite(
        db,
        "print(c.execute('PRAGMA user_version').fetchone()[0])",
        &[],
    )
    .trim()
    .parse()
    .expect("user_version is a number")
}

fn tables(db: &Path) -> Vec<String> {
    python_sqlite(
        db,
        "for (n,) in c.execute(\"SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name\"): print(n)",
        &[],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Runs `aihub migrate`, asserts success, returns stdout.
fn migrate_ok(dir: &Path) -> String {
    let out = run_aihub(dir, &["migrate"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "aihub migrate failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// Bytes of the database and its WAL (if any), to prove nothing was written.
fn snapshot(db: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    let wal = db.with_file_name("aihub.db-wal");
    (
        std::fs::read(db).expect("read database"),
        std::fs::read(&wal).ok().filter(|w| !w.is_empty()),
    )
}

#[test]
fn fresh_database_is_created_at_the_latest_version_and_a_rerun_is_a_noop() {
    let dir = data_dir();
    let n = latest();
    let out = migrate_ok(dir.path());
    assert!(
        out.contains(&format!("migrated from schema version 0 to {n}")),
        "first run should report 0 -> {n}: {out}"
    );
    let db = db_path(dir.path());
    assert!(db.is_file(), "aihub migrate made no {}", db.display());
    assert_eq!(user_version(&db), n);
    let before_tables = tables(&db);
    for t in [
        "providers",
        "credentials",
        "apps",
        "app_keys",
        "model_calls",
        "usage_hourly",
    ] {
        assert!(
            before_tables.iter().any(|x| x == t),
            "table {t} missing: {before_tables:?}"
        );
    }

    let before = snapshot(&db);
    let out = migrate_ok(dir.path());
    assert!(
        out.contains("up to date") && out.contains(&format!("schema version {n}")),
        "a re-run should say the database is up to date at {n}: {out}"
    );
    assert_eq!(user_version(&db), n);
    assert_eq!(tables(&db), before_tables);
    assert!(
        snapshot(&db) == before,
        "a re-run of aihub migrate changed the database file"
    );
}

#[test]
fn empty_database_file_is_migrated_from_version_0() {
    let dir = data_dir();
    let db = db_path(dir.path());
    std::fs::write(&db, b"").unwrap();
    let n = latest();
    let out = migrate_ok(dir.path());
    assert!(
        out.contains(&format!("migrated from schema version 0 to {n}")),
        "{out}"
    );
    assert_eq!(user_version(&db), n);
}

/// A database left at each older version is upgraded to the latest, keeping its rows.
///
/// The fixtures are made by applying the first `k` migration files by hand and setting
/// `user_version` to `k`, the way aihub records the applied version. While there is only
/// one migration this loop has nothing to do beyond version 0 (covered above); each new
/// migration adds the step from the version before it.
#[test]
fn older_databases_are_upgraded_keeping_their_rows() {
    let files = migration_files();
    let n = files.len();
    for k in 1..n {
        let dir = data_dir();
        let db = db_path(dir.path());
        let mut script = String::new();
        for f in &files[..k] {
            script.push_str(&std::fs::read_to_string(f).unwrap());
            script.push('\n');
        }
        // Rows valid since version 1.
        python_sqlite(
            &db,
            "c.executescript(open(sys.argv[2]).read())\n\
             c.execute(\"INSERT INTO apps (name, enabled, created_at, updated_at) VALUES ('old-app', 1, 1, 1)\")\n\
             c.execute(\"INSERT INTO model_calls (request_id, endpoint, stream, status, http_status, latency_ms, created_at) VALUES ('old-call', 'chat', 0, 'ok', 200, 5, 1)\")\n\
             c.execute('PRAGMA user_version = ' + sys.argv[3])",
            &[
                &{
                    let p = dir.path().join("fixture.sql");
                    std::fs::write(&p, &script).unwrap();
                    p.to_string_lossy().into_owned()
                },
                &k.to_string(),
            ],
        );
        assert_eq!(user_version(&db), k);

        let out = migrate_ok(dir.path());
        assert!(
            out.contains(&format!("migrated from schema version {k} to {n}")),
            "version {k} database: {out}"
        );
        assert_eq!(user_version(&db), n);
        let kept = python_sqlite(
            &db,
            "print(c.execute(\"SELECT count(*) FROM apps WHERE name = 'old-app'\").fetchone()[0])\n\
             print(c.execute(\"SELECT count(*) FROM model_calls WHERE request_id = 'old-call'\").fetchone()[0])",
            &[],
        );
        assert_eq!(
            kept.split_whitespace().collect::<Vec<_>>(),
            ["1", "1"],
            "rows of the version {k} database"
        );
    }
}

#[test]
fn database_from_a_newer_aihub_is_refused_untouched() {
    let dir = data_dir();
    migrate_ok(dir.path());
    let db = db_path(dir.path());
    python_sqlite(&db, "c.execute('PRAGMA user_version = 99')", &[]);
    assert_eq!(user_version(&db), 99);
    let before = snapshot(&db);

    // aihub migrate
    let out = run_aihub(dir.path(), &["migrate"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "aihub migrate accepted a version 99 database: {text}"
    );
    assert!(
        text.contains("newer"),
        "the refusal should say the database is newer: {text}"
    );
    assert!(
        snapshot(&db) == before,
        "aihub migrate changed a database it refused"
    );

    // aihub serve
    let (status, stdout, stderr) =
        run_aihub_timeout(dir.path(), &["serve"], Duration::from_secs(20));
    let status = status.unwrap_or_else(|| {
        panic!("aihub serve kept running on a version 99 database:\n{stdout}\n{stderr}")
    });
    assert!(
        !status.success(),
        "aihub serve exited 0 on a version 99 database:\n{stdout}\n{stderr}"
    );
    assert!(
        format!("{stdout}{stderr}").contains("newer"),
        "the refusal should say the database is newer:\n{stdout}\n{stderr}"
    );
    assert!(
        snapshot(&db) == before,
        "aihub serve changed a database it refused"
    );
    assert_eq!(user_version(&db), 99);
    assert!(
        !dir.path().join("aihub.addr").exists(),
        "aihub serve should not have started listening"
    );
}
