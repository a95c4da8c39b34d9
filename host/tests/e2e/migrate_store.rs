//! `aihub migrate-store` with the real binary: a SQLite data dir with apps, keys, a stored
//! provider key, rates, prices, an alias, limits, budgets, credit and calls is copied into a
//! throwaway Postgres database (see `common::pg`; Postgres must be running), then served
//! from there with the same master key: every row is the same (table by table, and through
//! the admin API), keys still authenticate, the stored provider key still reaches the
//! upstream, and new rows get fresh ids. A copy onto a database that holds data is refused
//! without a change; a missing or unmigrated SQLite file is a clear error; a copy that
//! fails part-way leaves no row.

use crate::common;

use common::pg::TestDb;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const BILLING: &str = "[billing]\nenabled = true\n";
/// The password put into the target URL (trust auth ignores it): never printed.
const PASSWORD: &str = "hunter2-not-shown";

/// `url` with [`PASSWORD`] for its user, when it has none.
fn with_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains(':') => {
                format!("{scheme}://{user}:{PASSWORD}@{host}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Runs `aihub migrate-store ARGS` in a scratch dir; (success, stdout, stderr).
fn migrate_store(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["migrate-store"];
    all.extend_from_slice(args);
    let out = run_aihub(dir.path(), &all);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password is printed: {stdout}{stderr}"
    );
    (out.status.success(), stdout, stderr)
}

/// Every table of the SQLite database as sorted JSON rows (BLOBs as `\x` hex, as Postgres
/// shows BYTEA).
fn sqlite_tables(db: &Path) -> BTreeMap<String, Vec<String>> {
    let out = python_sqlite(
        db,
        r#"
import json
c.row_factory = sqlite3.Row
out = {}
for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'").fetchall():
    rows = []
    for r in c.execute(f'SELECT * FROM "{t}"'):
        rows.append({k: ('\\x' + r[k].hex()) if isinstance(r[k], bytes) else r[k] for k in r.keys()})
    out[t] = rows
print(json.dumps(out))
"#,
        &[],
    );
    let v: BTreeMap<String, Vec<Value>> = serde_json::from_str(out.trim()).unwrap();
    v.into_iter()
        .map(|(t, rows)| (t, sorted(rows.into_iter())))
        .collect()
}

/// Rows as canonical strings, sorted; Postgres booleans as SQLite's 0/1.
fn sorted(rows: impl Iterator<Item = Value>) -> Vec<String> {
    fn bools(v: Value) -> Value {
        match v {
            Value::Bool(b) => json!(b as i64),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, bools(v))).collect()),
            other => other,
        }
    }
    let mut out: Vec<String> = rows.map(|r| bools(r).to_string()).collect();
    out.sort();
    out
}

/// The same tables read from Postgres.
async fn pg_tables(db: &TestDb, tables: &[String]) -> BTreeMap<String, Vec<String>> {
    let c = db.client().await;
    let mut out = BTreeMap::new();
    for t in tables {
        let text: String = c
            .query_one(
                &format!("SELECT coalesce(json_agg(row_to_json(x)), '[]')::TEXT FROM \"{t}\" x"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("read {t}: {e}"))
            .get(0);
        let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
        out.insert(t.clone(), sorted(rows.into_iter()));
    }
    out
}

/// What the admin API lists, path by path.
async fn api_view(s: &TestServer, apps: &[(i64, i64)], provider: i64) -> Vec<(String, Value)> {
    let mut paths = vec![
        "/api/admin/apps".to_string(),
        "/api/admin/providers".into(),
        format!("/api/admin/providers/{provider}/credentials"),
        "/api/admin/rates".into(),
        "/api/admin/rates/history".into(),
        "/api/admin/aliases".into(),
        "/api/admin/ledger?limit=1000".into(),
        "/api/admin/calls?limit=1000".into(),
        "/api/admin/usage?group_by=model".into(),
        "/api/admin/usage?group_by=app".into(),
    ];
    for (app, key) in apps {
        for p in ["keys", "limits", "budget", "prices", "credits"] {
            paths.push(format!("/api/admin/apps/{app}/{p}"));
        }
        paths.push(format!("/api/admin/apps/{app}/keys/{key}/limits"));
        paths.push(format!("/api/admin/apps/{app}/keys/{key}/budget"));
    }
    let mut out = Vec::new();
    for p in paths {
        let mut v = s.admin_ok(Method::GET, &p, None, 200).await;
        drop_runtime_counters(&mut v);
        out.push((p, v));
    }
    out
}

/// Removes a credential's health counters: each process counts its own calls in memory
/// (the stored state is kept).
fn drop_runtime_counters(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for k in ["recent_calls", "recent_error_rate", "consecutive_failures"] {
                o.remove(k);
            }
            o.values_mut().for_each(drop_runtime_counters);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_runtime_counters),
        _ => {}
    }
}

fn max_id(list: &Value) -> i64 {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_copied_to_postgres_keeps_every_row_and_secret() {
    let secret = format!("sk-stored-{}", random_hex());
    let want = format!("Bearer {secret}");
    let mock = MockUpstream::start(move |req| {
        if req.header("authorization") == Some(want.as_str()) {
            MockReply::json(200, openai_completion("gpt-x", "from upstream", 7, 3))
        } else {
            MockReply::openai_error(401, "Incorrect API key provided.", "invalid_request_error")
        }
    })
    .await;
    let s1 = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(BILLING),
    )
    .await;

    // Everything an operator sets up, through the admin API.
    let (app, key, kid) = s1.create_app_with_key_id("copied").await;
    let pid = s1.stored_provider("mockai", &mock.base_url()).await;
    s1.add_key(pid, "main", &secret, None).await;
    s1.admin_ok(
        Method::PUT,
        "/api/admin/rates/echo/echo-1",
        Some(&json!({"input_per_mtok": 1.0, "output_per_mtok": 2.0})),
        200,
    )
    .await;
    s1.admin_ok(
        Method::PUT,
        "/api/admin/rates/mockai/gpt-x",
        Some(&json!({"input_per_mtok": 3.0, "output_per_mtok": 4.0})),
        200,
    )
    .await;
    s1.admin_ok(
        Method::PUT,
        &format!("/api/admin/apps/{app}/prices/echo/echo-1"),
        Some(&json!({"input_per_mtok": 5.0, "output_per_mtok": 6.0})),
        200,
    )
    .await;
    s1.admin_ok(
        Method::PUT,
        "/api/admin/aliases/smart",
        Some(&json!({"targets": ["mockai/gpt-x", "echo/echo-1"]})),
        200,
    )
    .await;
    for path in [
        format!("/api/admin/apps/{app}/limits"),
        format!("/api/admin/apps/{app}/keys/{kid}/limits"),
    ] {
        s1.admin_ok(Method::PUT, &path, Some(&json!({"rpm": 1000})), 200)
            .await;
    }
    for path in [
        format!("/api/admin/apps/{app}/budget"),
        format!("/api/admin/apps/{app}/keys/{kid}/budget"),
    ] {
        s1.admin_ok(
            Method::PUT,
            &path,
            Some(&json!({"daily_usd": 50, "monthly_usd": 500})),
            200,
        )
        .await;
    }
    let listed = s1.admin_ok(Method::GET, "/api/admin/apps", None, 200).await;
    for a in listed["data"].as_array().unwrap() {
        s1.admin_ok(
            Method::POST,
            &format!("/api/admin/apps/{}/credits", a["id"]),
            Some(&json!({"amount": "5", "note": "start"})),
            201,
        )
        .await;
    }

    // Calls: the echo provider, the stored provider (its key upstream), and the alias.
    let client = http_client_with_key(&key);
    for model in ["echo/echo-1", "mockai/gpt-x", "smart"] {
        let resp = client
            .post(s1.url("/v1/chat/completions"))
            .json(&chat_body(model, "copy me"))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(status, 200, "{model}: {}", resp.text().await.unwrap());
    }
    let resp = client
        .post(s1.url("/v1/responses"))
        .json(&json!({"model": "echo/echo-1", "input": "remember me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let response_id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = s1.post_chat(&chat_body("echo/echo-1", "test app")).await;
    assert_eq!(resp.status(), 200);
    s1.wait_for_calls("", 5, Duration::from_secs(15)).await;
    let calls = s1.all_calls("").await;
    let call = calls
        .iter()
        .find(|c| c["app_id"] == app)
        .and_then(|c| c["id"].as_i64())
        .unwrap();
    s1.admin_ok(
        Method::POST,
        &format!("/api/admin/apps/{app}/credits/refunds"),
        Some(&json!({"call_id": call, "amount": "0.000001", "note": "goodwill"})),
        201,
    )
    .await;
    let apps = vec![(app, kid)];
    let before = api_view(&s1, &apps, pid).await;
    let max_app = max_id(&s1.admin_ok(Method::GET, "/api/admin/apps", None, 200).await);
    let max_call = calls.iter().filter_map(|c| c["id"].as_i64()).max().unwrap();
    let max_ledger = max_id(
        &s1.admin_ok(Method::GET, "/api/admin/ledger?limit=1000", None, 200)
            .await,
    );
    s1.sigterm();
    assert!(s1.wait_exit(Duration::from_secs(15)).await.is_some());

    // The tables no API call above reaches: a paid event, and alerts of which the last was
    // delivered (deleted) — its id must not be handed out again.
    let sqlite = s1.data_dir().join("aihub.db");
    python_sqlite(
        &sqlite,
        &format!(
            "c.execute(\"INSERT INTO payment_events VALUES ('evt_1', {app}, 1, 1)\")
for i in range(3):
    c.execute(\"INSERT INTO alert_outbox (event, data, created_at) VALUES ('low_balance', '{{}}', 1)\")
c.execute('DELETE FROM alert_outbox WHERE id = 3')"
        ),
        &[],
    );
    let source = sqlite_tables(&sqlite);
    let empty: Vec<&String> = source
        .iter()
        .filter(|(_, rows)| rows.is_empty())
        .map(|(t, _)| t)
        .collect();
    assert!(empty.is_empty(), "the test fills every table: {empty:?}");

    let db = TestDb::create().await;
    let target = with_password(db.url());
    let (ok, out, err) = migrate_store(&[
        "--from",
        &format!("sqlite:{}", sqlite.display()),
        "--to",
        &target,
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("  model_calls: 5 rows"), "{out}");
    assert!(out.contains("  credentials: 1 rows"), "{out}");
    let total: usize = source.values().map(Vec::len).sum();
    assert!(
        out.contains(&format!("copied {total} rows in {} tables", source.len())),
        "{out}"
    );
    assert!(out.contains("master.key"), "{out}");

    // Every row, byte for byte (the sealed provider key included).
    let tables: Vec<String> = source.keys().cloned().collect();
    assert_eq!(pg_tables(&db, &tables).await, source);
    let pg = db.client().await;
    let sealed: Vec<u8> = pg
        .query_one("SELECT secret FROM credentials", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!contains_bytes(&sealed, secret.as_bytes()));
    let next_alert: i64 = pg
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('alert_outbox', 'id'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next_alert, 4, "ids AUTOINCREMENT handed out are not reused");

    // Under another master key the provider key does not open: the start is refused.
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(aihub_bin())
        .args(["apps", "create", "wrong-key"])
        .env("AIHUB_STORAGE__DATA_DIR", other.path())
        .env("AIHUB_STORAGE__URL", db.url())
        .env(
            "AIHUB_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not decrypt"),
        "{err}"
    );

    // Served from Postgres with the same master key.
    let master = std::fs::read_to_string(s1.data_dir().join("master.key")).unwrap();
    let s2 = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(BILLING)
            .storage_url(db.url())
            .env("AIHUB_MASTER_KEY", master.trim())
            .without_app(),
    )
    .await;
    let after = api_view(&s2, &apps, pid).await;
    for ((path, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(b, a, "GET {path} differs after the copy");
    }

    // Keys authenticate, the stored provider key reaches the upstream, stored responses
    // are found.
    let upstream_calls = mock.calls();
    let resp = client
        .post(s2.url("/v1/chat/completions"))
        .json(&chat_body("mockai/gpt-x", "after the move"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap());
    assert_eq!(mock.calls(), upstream_calls + 1);
    let resp = http_client_with_key(s1.app_key())
        .post(s2.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", "test app again"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = client
        .get(s2.url(&format!("/v1/responses/{response_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);

    // New rows continue after the copied ids.
    let fresh = s2
        .admin_ok(
            Method::POST,
            "/api/admin/apps",
            Some(&json!({"name": "fresh"})),
            201,
        )
        .await;
    assert_eq!(fresh["id"].as_i64(), Some(max_app + 1), "{fresh}");
    let calls = s2.wait_for_calls("", 7, Duration::from_secs(15)).await;
    let new_ids: Vec<i64> = calls
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .filter(|id| *id > max_call)
        .collect();
    assert_eq!(new_ids.len(), 2, "{calls:?}");
    assert_eq!(new_ids.iter().min(), Some(&(max_call + 1)));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ledger = s2
            .admin_ok(Method::GET, "/api/admin/ledger?limit=1000", None, 200)
            .await;
        if max_id(&ledger) > max_ledger {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new charge: {ledger}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_onto_a_database_that_holds_data_is_refused_and_changes_nothing() {
    // The source is copied while its server runs (a consistent snapshot); a large call log
    // goes in chunks.
    let s = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let resp = s.post_chat(&chat_body("echo/echo-1", "hi")).await;
    assert_eq!(resp.status(), 200);
    s.wait_for_calls("", 1, Duration::from_secs(15)).await;
    python_sqlite(
        &s.data_dir().join("aihub.db"),
        "c.executemany(\"INSERT INTO model_calls (request_id, endpoint, stream, status, http_status, latency_ms, created_at) VALUES (?, 'chat', 0, 'ok', 200, 1, 1)\", [(f'bulk-{i}',) for i in range(2500)])",
        &[],
    );
    let db = TestDb::create().await;
    let from = format!("sqlite:{}", s.data_dir().display());
    let (ok, out, err) = migrate_store(&["--from", &from, "--to", &with_password(db.url())]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("  model_calls: 2501 rows"), "{out}");
    assert_eq!(
        s.get("/readyz").await.status(),
        200,
        "the server is unharmed"
    );

    let tables: Vec<String> = sqlite_tables(&s.data_dir().join("aihub.db"))
        .into_keys()
        .collect();
    let copied = pg_tables(&db, &tables).await;
    let (ok, out, err) = migrate_store(&["--from", &from, "--to", &with_password(db.url())]);
    assert!(!ok, "{out}");
    assert!(err.contains("already holds data"), "{err}");
    assert!(err.contains("apps"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(
        pg_tables(&db, &tables).await,
        copied,
        "the target is unchanged"
    );

    // A database an aihub has served (its first start made the `default` app) is refused
    // too; without --to the configured storage.url is the target.
    let served = TestDb::create().await;
    let p = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .storage_url(served.url())
            .without_app(),
    )
    .await;
    let out = p.cli(&["migrate-store", "--from", &from]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds data"), "{err}");
    let apps = p.admin_ok(Method::GET, "/api/admin/apps", None, 200).await;
    assert_eq!(apps["data"].as_array().unwrap().len(), 1, "{apps}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_unmigrated_sqlite_database_is_a_clear_error_and_writes_nothing() {
    let db = TestDb::create().await;
    let target = with_password(db.url());
    let untouched = || async {
        let c = db.client().await;
        let tables: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(tables, 0, "the target is untouched");
    };

    let missing = tempfile::tempdir().unwrap();
    let path = missing.path().join("aihub.db");
    let (ok, out, err) = migrate_store(&[
        "--from",
        &format!("sqlite:{}", path.display()),
        "--to",
        &target,
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("no SQLite database at {}", path.display())),
        "{err}"
    );
    untouched().await;

    // A row Postgres refuses (a key's limits without the key: SQLite kept it with foreign
    // keys off) rolls the whole copy back, the rows copied before it included.
    let old = tempfile::tempdir().unwrap();
    assert!(run_aihub(old.path(), &["migrate"]).status.success());
    let file = old.path().join("aihub.db");
    python_sqlite(
        &file,
        "c.execute(\"INSERT INTO apps (name, created_at, updated_at) VALUES ('a', 1, 1)\")
c.execute(\"INSERT INTO key_limits VALUES (999, '{}', 1)\")",
        &[],
    );
    let other = TestDb::create().await;
    let (ok, out, err) = migrate_store(&[
        "--from",
        &file.display().to_string(),
        "--to",
        &with_password(other.url()),
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("key_limits") && err.contains("no row was copied"),
        "{err}"
    );
    assert!(
        out.contains("  apps: 1 rows"),
        "apps were copied first: {out}"
    );
    let apps: i64 = other
        .client()
        .await
        .query_one("SELECT count(*) FROM apps", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(apps, 0, "the failed copy left no row");

    // An older schema: migrate it with this aihub first.
    python_sqlite(&file, "c.execute('PRAGMA user_version = 5')", &[]);
    let (ok, _, err) = migrate_store(&[
        "--from",
        &format!("sqlite://{}", file.display()),
        "--to",
        &target,
    ]);
    assert!(!ok);
    assert!(err.contains("schema version 5"), "{err}");
    assert!(err.contains("aihub migrate"), "{err}");
    untouched().await;

    // Neither side may be the wrong kind of database.
    let (ok, _, err) = migrate_store(&["--from", &target, "--to", &target]);
    assert!(!ok && err.contains("is not a SQLite database"), "{err}");
    let (ok, _, err) = migrate_store(&[
        "--from",
        &file.display().to_string(),
        "--to",
        "mysql://root@127.0.0.1/x",
    ]);
    assert!(!ok && err.contains("is not a Postgres URL"), "{err}");
    untouched().await;
}
