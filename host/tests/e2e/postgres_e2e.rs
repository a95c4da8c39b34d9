//! The real binary on Postgres (`AIHUB_STORAGE__URL`), each test on a throwaway database
//! (see `common::pg`; Postgres must be running, the tests fail otherwise): the admin API,
//! a recorded and charged chat call, a restart that keeps the state, and two instances
//! starting at once on one fresh database.

use crate::common;

use common::pg::TestDb;
use common::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const BILLING: &str = "[billing]\nenabled = true\n";

#[tokio::test(flavor = "multi_thread")]
async fn postgres_serves_records_charges_and_survives_a_restart() {
    let db = TestDb::create().await;
    let mut s = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .config(BILLING)
            .storage_url(db.url()),
    )
    .await;
    assert!(
        !s.data_dir().join("aihub.db").exists(),
        "no SQLite database is made when storage.url is Postgres"
    );

    // Admin: an app, its key, credit and a price.
    let app = s
        .admin_ok(
            Method::POST,
            "/api/admin/apps",
            Some(&json!({"name": "pg-app"})),
            201,
        )
        .await;
    let app_id = app["id"].as_i64().unwrap();
    let made = s
        .admin_ok(
            Method::POST,
            &format!("/api/admin/apps/{app_id}/keys"),
            Some(&json!({"name": "k"})),
            201,
        )
        .await;
    let key = made["key"].as_str().unwrap().to_string();
    s.admin_ok(
        Method::POST,
        &format!("/api/admin/apps/{app_id}/credits"),
        Some(&json!({"amount": "5"})),
        201,
    )
    .await;
    s.admin_ok(
        Method::PUT,
        "/api/admin/rates/echo/echo-1",
        Some(&json!({"input_per_mtok": 1.0, "output_per_mtok": 2.0})),
        200,
    )
    .await;

    // A chat call through the echo provider, recorded and charged.
    let client = http_client_with_key(&key);
    let resp = client
        .post(s.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", "hello postgres"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let calls = s
        .wait_for_calls(&format!("app={app_id}"), 1, Duration::from_secs(15))
        .await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["status"], "ok", "{calls:?}");
    let charge = wait_for_charge(&s, app_id).await;
    assert!(charge["amount_nanos"].as_i64().unwrap() < 0, "{charge}");
    let pg = db.client().await;
    let rows: i64 = pg
        .query_one(
            "SELECT count(*) FROM model_calls WHERE app_id = $1",
            &[&app_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "the call is in the Postgres database");
    let charges: i64 = pg
        .query_one(
            "SELECT count(*) FROM ledger WHERE kind = 'charge' AND app_id = $1",
            &[&app_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(charges, 1);
    let before = s
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{app_id}/credits"),
            None,
            200,
        )
        .await;

    // A restart keeps everything.
    s.restart().await;
    let apps = s.admin_ok(Method::GET, "/api/admin/apps", None, 200).await;
    assert!(
        apps["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "pg-app"),
        "{apps}"
    );
    let after = s
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{app_id}/credits"),
            None,
            200,
        )
        .await;
    assert_eq!(
        before["balance_nanos"], after["balance_nanos"],
        "{before} {after}"
    );
    assert_eq!(s.all_calls(&format!("app={app_id}")).await.len(), 1);
    let resp = client
        .post(s.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", "again"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.wait_for_calls(&format!("app={app_id}"), 2, Duration::from_secs(15))
        .await;
    let ready: serde_json::Value = s.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["database"], "ok", "{ready}");
    s.sigterm();
    assert!(s.wait_exit(Duration::from_secs(15)).await.is_some());
}

/// The app's charge entry, once the writer has committed it.
async fn wait_for_charge(s: &TestServer, app: i64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = s
            .admin_ok(
                Method::GET,
                &format!("/api/admin/ledger?app={app}"),
                None,
                200,
            )
            .await;
        if let Some(c) = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "charge")
        {
            return c.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no charge in {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_starting_at_once_migrate_a_fresh_database_once() {
    let db = TestDb::create().await;
    let opts = || {
        ServerOptions::new()
            .plugin(ECHO)
            .storage_url(db.url())
            .without_app()
    };
    let (a, b) = tokio::join!(TestServer::start(opts()), TestServer::start(opts()));
    for s in [&a, &b] {
        let r = s.get("/readyz").await;
        assert_eq!(r.status(), 200);
    }
    let pg = db.client().await;
    let versions: Vec<i64> = pg
        .query(
            "SELECT version FROM aihub_schema_version ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2], "each migration applied exactly once");
    let defaults: i64 = pg
        .query_one("SELECT count(*) FROM apps WHERE name = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(defaults, 1, "one default app");
    // Both serve the same data: an app made through one is listed by the other.
    a.admin_ok(
        Method::POST,
        "/api/admin/apps",
        Some(&json!({"name": "shared"})),
        201,
    )
    .await;
    let listed = b.admin_ok(Method::GET, "/api/admin/apps", None, 200).await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "shared"),
        "{listed}"
    );
    // A CLI migrate on the same database is a no-op.
    let out = a.cli(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("up to date (schema version 2)"), "{text}");
    assert!(text.contains("postgres database"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_fails_the_start_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(aihub_bin())
        .arg("migrate")
        .env("AIHUB_STORAGE__DATA_DIR", dir.path())
        .env(
            "AIHUB_STORAGE__URL",
            "postgres://aihub:hunter2-secret@127.0.0.1:1/nowhere",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("aihub:***@127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}
