//! Several aihub processes on one Postgres database (and one Redis), as behind a load
//! balancer: admin changes made on one hold on the other within a second (the change
//! feed), a burst for one app split across both keeps to its credit and its RPM limit,
//! and an instance that loses the database keeps serving the keys it verified and writes
//! the calls it served once the database is back.

use crate::common;

use common::pg::{PgProxy, TestDb};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The same master key for every instance: each must open the secrets another stored.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn instance(db: &TestDb, config: &str) -> ServerOptions {
    ServerOptions::new()
        .plugin(ECHO)
        .plugin(OPENAI)
        .config(config)
        .storage_url(db.url())
        .env("AIHUB_MASTER_KEY", MASTER_KEY)
        .without_app()
}

async fn chat(s: &TestServer, key: &str, model: &str, text: &str) -> (u16, Value) {
    let resp = http_client_with_key(key)
        .post(s.url("/v1/chat/completions"))
        .json(&json!({
            "model": model,
            "max_tokens": 10,
            "messages": [{"role": "user", "content": text}],
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `f` until it is true; how long that took. Fails after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_or_a_provider_added_on_one_instance_holds_on_the_other_within_a_second() {
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(
        TestServer::start(instance(&db, "")),
        TestServer::start(instance(&db, ""))
    );
    for s in [&a, &b] {
        let ready: Value = s.get("/readyz").await.json().await.unwrap();
        assert_eq!(ready["change_feed"], "listening", "{ready}");
    }
    let (app, key, kid) = a.create_app_with_key_id("spread").await;
    // B verifies the key (and caches the answer for 30 s).
    assert_eq!(chat(&b, &key, "echo/echo-1", "hi").await.0, 200);

    // Revoked through A: B refuses it within a second, long before its cache expires.
    a.admin_ok(
        Method::DELETE,
        &format!("/api/admin/apps/{app}/keys/{kid}"),
        None,
        200,
    )
    .await;
    let took = within(
        Duration::from_secs(1),
        "revoked key refused by B",
        || async { chat(&b, &key, "echo/echo-1", "hi").await.0 == 401 },
    )
    .await;
    eprintln!("revocation reached the other instance in {took:?}");

    // A provider with a stored key added through A: routable on B, with that key.
    let (app2, key2) = a.create_app_with_key("spread-2").await;
    let mock = MockUpstream::always(MockReply::json(
        200,
        openai_completion("gpt-x", "from the mock", 3, 2),
    ))
    .await;
    assert_eq!(chat(&b, &key2, "mockai/gpt-x", "hi").await.0, 404);
    let p = a
        .admin_ok(
            Method::POST,
            "/api/admin/providers",
            Some(&json!({"prefix": "mockai", "plugin": "openai", "base_url": mock.base_url()})),
            201,
        )
        .await;
    let secret = format!("sk-shared-{}", random_hex());
    a.admin_ok(
        Method::POST,
        &format!("/api/admin/providers/{}/credentials", p["id"]),
        Some(&json!({"name": "k1", "secret": secret})),
        201,
    )
    .await;
    let took = within(
        Duration::from_secs(1),
        "new provider routable on B",
        || async { chat(&b, &key2, "mockai/gpt-x", "hi").await.0 == 200 },
    )
    .await;
    eprintln!("a new provider reached the other instance in {took:?}");
    let sent = mock.requests();
    assert_eq!(
        sent.last().unwrap().header("authorization"),
        Some(format!("Bearer {secret}").as_str()),
        "B called the upstream with the key stored through A"
    );

    // Limits set through A apply on B.
    a.admin_ok(
        Method::PUT,
        &format!("/api/admin/apps/{app2}/limits"),
        Some(&json!({"rpm": 1})),
        200,
    )
    .await;
    within(Duration::from_secs(1), "rpm set on A limits B", || async {
        chat(&b, &key2, "echo/echo-1", "hi").await.0 == 429
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_split_across_two_instances_keeps_to_the_apps_credit_and_rpm() {
    let db = TestDb::create().await;
    let config = format!(
        "[billing]\nenabled = true\n[shared]\nredis_url = \"redis://127.0.0.1:6379\"\nkey_prefix = \"aihub-t-{}:\"\n",
        random_hex()
    );
    let (a, b) = tokio::join!(
        TestServer::start(instance(&db, &config)),
        TestServer::start(instance(&db, &config))
    );
    for s in [&a, &b] {
        let ready: Value = s.get("/readyz").await.json().await.unwrap();
        assert_eq!(ready["redis"]["status"], "ok", "{ready}");
    }
    // 0.001 credits a token.
    a.admin_ok(
        Method::PUT,
        "/api/admin/rates/echo/echo-1",
        Some(&json!({"input_per_mtok": 1000.0, "output_per_mtok": 1000.0})),
        200,
    )
    .await;

    // Credit binds: enough for a few dozen calls' holds, 200 calls at once.
    let (credit_app, credit_key) = a.create_app_with_key("credit").await;
    a.admin_ok(
        Method::POST,
        &format!("/api/admin/apps/{credit_app}/credits"),
        Some(&json!({"amount": "0.5"})),
        201,
    )
    .await;
    // Both instances see the rate before the burst.
    for s in [&a, &b] {
        within(Duration::from_secs(2), "rate routable", || async {
            let (status, _) = chat(s, &credit_key, "echo/echo-1", "warm").await;
            status == 200
        })
        .await;
    }
    let burst = |key: String| {
        let (a, b) = (&a, &b);
        async move {
            let calls = (0..200).map(|i| {
                let key = key.clone();
                async move {
                    let s = if i % 2 == 0 { a } else { b };
                    chat(s, &key, "echo/echo-1", "one two three").await.0
                }
            });
            futures_util::future::join_all(calls).await
        }
    };
    let statuses = burst(credit_key.clone()).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(ok + refused, 200, "only 200s and 402s: {statuses:?}");
    assert!(ok > 0 && refused > 0, "{ok} ok, {refused} refused");
    // Every charge written, the balance has not gone below zero: no credit was spent
    // twice by the two instances.
    let deadline = Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let s = a
            .admin_ok(
                Method::GET,
                &format!("/api/admin/apps/{credit_app}/credits"),
                None,
                200,
            )
            .await;
        if s["held_nanos"] == 0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(summary["held_nanos"], 0, "every hold settled: {summary}");
    let balance = summary["balance_nanos"].as_i64().unwrap();
    assert!(balance >= 0, "overspent: {summary}");
    let pg = db.client().await;
    let charged: i64 = pg
        .query_one(
            "SELECT count(*) FROM ledger WHERE app_id = $1 AND kind = 'charge'",
            &[&credit_app],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(charged as usize, ok + 2, "one charge per answered call");
    let holds: i64 = pg
        .query_one("SELECT count(*) FROM credit_holds", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(holds, 0, "the charges took their holds with them");
    eprintln!(
        "credit burst: {ok} answered, {refused} refused, balance left {balance} nano-credits"
    );

    // RPM binds: plenty of credit, rpm 60, 200 calls across both instances.
    let (rpm_app, rpm_key) = a.create_app_with_key("rpm").await;
    a.admin_ok(
        Method::POST,
        &format!("/api/admin/apps/{rpm_app}/credits"),
        Some(&json!({"amount": "1000"})),
        201,
    )
    .await;
    a.admin_ok(
        Method::PUT,
        &format!("/api/admin/apps/{rpm_app}/limits"),
        Some(&json!({"rpm": 60})),
        200,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let statuses = burst(rpm_key).await;
    let secs = started.elapsed().as_secs() as usize;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 200, "only 200s and 429s: {statuses:?}");
    // The bucket holds 60 and refills one a second; two instances limiting on their own
    // would have let up to 120 through.
    assert!(
        (60..=61 + secs).contains(&ok),
        "{ok} answered in {secs} s with rpm 60 across two instances"
    );

    // A budget binds on the instance that did not spend: b tracks the app from its first
    // call, a spends up to the cap, and b re-reads the recorded spend within its resync
    // interval instead of counting only its own calls.
    let (cap_app, cap_key) = a.create_app_with_key("capped").await;
    a.admin_ok(
        Method::POST,
        &format!("/api/admin/apps/{cap_app}/credits"),
        Some(&json!({"amount": "1000"})),
        201,
    )
    .await;
    a.admin_ok(
        Method::PUT,
        &format!("/api/admin/apps/{cap_app}/budget"),
        Some(&json!({"daily_usd": "0.2"})),
        200,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chat(&b, &cap_key, "echo/echo-1", "one").await.0, 200);
    let mut spent_on_a = 0;
    loop {
        let (status, body) = chat(&a, &cap_key, "echo/echo-1", "one two three").await;
        if status == 402 {
            assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
            break;
        }
        assert_eq!(status, 200, "{body}");
        spent_on_a += 1;
        assert!(spent_on_a < 200, "a never reached the cap");
    }
    // a's calls recorded, then one resync interval: b refuses at its next call.
    let recorded = |n: i64| {
        let db = &db;
        async move {
            let pg = db.client().await;
            let got: i64 = pg
                .query_one(
                    "SELECT count(*) FROM model_calls WHERE app_id = $1",
                    &[&cap_app],
                )
                .await
                .unwrap()
                .get(0);
            got >= n
        }
    };
    within(Duration::from_secs(10), "a's calls recorded", || {
        recorded(spent_on_a + 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, body) = chat(&b, &cap_key, "echo/echo-1", "one").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (402, Some("budget_exceeded")),
        "b passed a cap a reached ({spent_on_a} calls on a): {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_loses_the_database_serves_verified_keys_and_writes_its_calls_later() {
    let db = TestDb::create().await;
    let proxy = PgProxy::start().await;
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .storage_url(&proxy.url(db.url()))
            .without_app(),
    )
    .await;
    let (_, key) = s.create_app_with_key("outage").await;
    let (_, unverified) = s.create_app_with_key("never-seen").await;
    assert_eq!(chat(&s, &key, "echo/echo-1", "before").await.0, 200);

    proxy.cut();
    let ready = s.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "unreachable", "{ready}");
    assert!(ready["database_outage"]["since_ms"].is_i64(), "{ready}");

    // A key verified before the outage still gets answers; one never seen gets a clear
    // 503 in the caller's format.
    for i in 0..3 {
        let (status, body) = chat(&s, &key, "echo/echo-1", &format!("during {i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = http_client_with_key(&unverified)
        .post(s.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", "hi"))
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 503, "server_error").await;
    assert_eq!(body["code"], "database_unavailable", "{body}");
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("aihub_database_up 0"), "{metrics}");
    // Served by the cache's ordinary 30 s; past that (up to storage.outage_grace_seconds)
    // they would count here (unit-tested in `auth`).
    assert!(
        metrics.contains("aihub_database_outage_cached_auths_total 0"),
        "{metrics}"
    );
    let ready: Value = s.get("/readyz").await.json().await.unwrap();
    assert!(
        ready["call_log"]["queued"].as_i64().unwrap() >= 1,
        "the calls wait in memory: {ready}"
    );
    assert_eq!(ready["call_log"]["dropped"], 0, "{ready}");

    // The database comes back: the calls served meanwhile are written, none lost.
    proxy.restore();
    within(Duration::from_secs(15), "ready again", || async {
        s.get("/readyz").await.status() == 200
    })
    .await;
    let pg = db.client().await;
    within(Duration::from_secs(15), "outage calls written", || async {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM model_calls WHERE status = 'ok'", &[])
            .await
            .unwrap()
            .get(0);
        n == 4
    })
    .await;
    let ready: Value = s.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["database_outage"], Value::Null, "{ready}");
    assert_eq!(ready["call_log"]["dropped"], 0, "{ready}");
}
