//! Secrets never leak: a stored provider key, app keys and the admin token are looked for
//! in every admin response, the server's logs, and the raw bytes of every file in the data
//! dir (the database and its WAL included; `master.key` excepted) — none may be found.
//! Stored provider keys are shown masked; the credential "test" action reports a working
//! and a refused key; a ciphertext swapped between two rows does not decrypt.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A mock OpenAI upstream that answers 401 while `refuse` is set.
async fn switchable_mock(refuse: Arc<AtomicBool>) -> MockUpstream {
    MockUpstream::start(move |_| {
        if refuse.load(Ordering::SeqCst) {
            MockReply::openai_error(401, "Incorrect API key provided.", "invalid_request_error")
        } else {
            MockReply::json(200, openai_completion("gpt-x", "secret-free reply", 12, 3))
        }
    })
    .await
}

async fn create_provider(server: &TestServer, prefix: &str, mock: &MockUpstream) -> i64 {
    let p = server
        .admin_ok(
            Method::POST,
            "/api/admin/providers",
            Some(&json!({"prefix": prefix, "plugin": "openai", "base_url": mock.base_url()})),
            201,
        )
        .await;
    p["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("provider without id: {p}"))
}

/// Adds a credential; returns (its id, the creation response body).
async fn add_credential(
    server: &TestServer,
    provider: i64,
    name: &str,
    secret: &str,
) -> (i64, Value) {
    let c = server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{provider}/credentials"),
            Some(&json!({"name": name, "secret": secret})),
            201,
        )
        .await;
    let id = c["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("credential without id: {c}"));
    (id, c)
}

/// Every string anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Asserts none of `secrets` occurs in `hay`; `what` names the place.
fn assert_clean(what: &str, hay: &[u8], secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        assert!(
            !contains_bytes(hay, secret.as_bytes()),
            "the {name} appears in {what}"
        );
    }
}

/// Scans every file under the data dir except `master.key`.
fn scan_data_dir(dir: &Path, secrets: &[(&str, &str)]) -> Vec<String> {
    let mut scanned = Vec::new();
    for f in files_under(dir) {
        if f.file_name().is_some_and(|n| n == "master.key") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&f) else {
            continue; // removed while we looked (a WAL checkpointed away)
        };
        assert_clean(&f.display().to_string(), &bytes, secrets);
        scanned.push(f.file_name().unwrap().to_string_lossy().into_owned());
    }
    scanned
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_secrets_appear_nowhere() {
    let refuse = Arc::new(AtomicBool::new(false));
    let mock = switchable_mock(refuse.clone()).await;
    let server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(OPENAI)).await;

    let provider_key = format!("sk-test-PLAINTEXT-{}", random_hex());
    let pid = create_provider(&server, "mockai", &mock).await;
    let (cid, created) = add_credential(&server, pid, "k1", &provider_key).await;
    // Every admin response is scanned, the creation's included (the key shown once at the
    // creation of an app key is the one exception: that is its purpose).
    let mut bodies: Vec<(String, Vec<u8>)> =
        vec![("POST credentials".into(), created.to_string().into_bytes())];
    let (app2, app2_key) = server.create_app_with_key("second-app").await;

    // A chat through the stored provider carries the key upstream.
    let resp = server.post_chat(&chat_body("mockai/gpt-x", "hello")).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    bodies.push(("chat reply".into(), text.into_bytes()));
    let up = mock.requests();
    assert_eq!(up.len(), 1, "{up:#?}");
    assert_eq!(
        up[0].header("authorization"),
        Some(format!("Bearer {provider_key}").as_str()),
        "the upstream should receive the stored key"
    );
    let resp = http_client_with_key(&app2_key)
        .post(server.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", "from the second app"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.wait_for_calls("", 2, Duration::from_secs(10)).await;

    // The "test" action: ok against the mock, "invalid" once the mock refuses the key.
    let test_path = format!("/api/admin/providers/{pid}/credentials/{cid}/test");
    let ok = server
        .admin_ok(
            Method::POST,
            &test_path,
            Some(&json!({"model": "gpt-x"})),
            200,
        )
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    bodies.push(("credential test (ok)".into(), ok.to_string().into_bytes()));
    refuse.store(true, Ordering::SeqCst);
    let bad = server
        .admin_ok(
            Method::POST,
            &test_path,
            Some(&json!({"model": "gpt-x"})),
            200,
        )
        .await;
    assert_eq!(bad["ok"], false, "{bad}");
    assert_eq!(bad["state"], "invalid", "{bad}");
    bodies.push(("credential test (401)".into(), bad.to_string().into_bytes()));
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {provider_key}").as_str())),
        "the test action should call the upstream with the stored key"
    );
    // A chat the upstream refuses: its error reply and call row must not carry the key.
    let resp = server
        .post_chat(&chat_body("mockai/gpt-x", "refused"))
        .await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert!(
        status >= 400,
        "a refused key cannot succeed: {status} {text}"
    );
    bodies.push(("refused chat reply".into(), text.into_bytes()));
    server.wait_for_calls("", 3, Duration::from_secs(10)).await;

    // The credential listing shows the masked form only.
    let masked = format!("sk-...{}", &provider_key[provider_key.len() - 4..]);
    let listing = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/providers/{pid}/credentials"),
            None,
            200,
        )
        .await;
    let mut shown = Vec::new();
    strings(&listing, &mut shown);
    assert!(
        shown.contains(&masked),
        "the listing should show the key as {masked}: {listing}"
    );
    let mut shown = Vec::new();
    strings(&created, &mut shown);
    assert!(
        shown.contains(&masked),
        "the creation reply should show the key as {masked}: {created}"
    );

    // Every admin GET.
    let (test_app, _) = {
        let apps = server
            .admin_ok(Method::GET, "/api/admin/apps", None, 200)
            .await;
        let id = apps["data"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "test"))
            .and_then(|x| x["id"].as_i64())
            .unwrap_or_else(|| panic!("no app 'test' in {apps}"));
        (id, apps)
    };
    let gets = [
        "/api/admin/providers".to_string(),
        format!("/api/admin/providers/{pid}"),
        format!("/api/admin/providers/{pid}/credentials"),
        format!("/api/admin/providers/{pid}/credentials/{cid}"),
        "/api/admin/calls".into(),
        "/api/admin/calls?format=csv".into(),
        "/api/admin/usage".into(),
        "/api/admin/usage?group_by=app".into(),
        "/api/admin/usage?group_by=provider".into(),
        "/api/admin/usage?group_by=model".into(),
        "/api/admin/usage?group_by=hour".into(),
        "/api/admin/usage?group_by=day".into(),
        "/api/admin/apps".into(),
        format!("/api/admin/apps/{test_app}"),
        format!("/api/admin/apps/{test_app}/keys"),
        format!("/api/admin/apps/{app2}"),
        format!("/api/admin/apps/{app2}/keys"),
        "/api/admin/plugins".into(),
        "/api/admin/rates".into(),
    ];
    for path in &gets {
        let resp = server.admin(Method::GET, path, None).await;
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap().to_vec();
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        bodies.push((format!("GET {path}"), bytes));
    }
    for path in ["/readyz", "/healthz", "/metrics", "/v1/models"] {
        let resp = server.get(path).await;
        bodies.push((format!("GET {path}"), resp.bytes().await.unwrap().to_vec()));
    }

    let secrets = [
        ("provider key", provider_key.as_str()),
        ("app key of 'test'", server.app_key()),
        ("app key of 'second-app'", app2_key.as_str()),
        ("admin token", server.admin_token()),
    ];
    for (what, body) in &bodies {
        assert_clean(&format!("the response to {what}"), body, &secrets);
    }

    // While running: the database and its WAL as they are on disk.
    let running = scan_data_dir(server.data_dir(), &secrets);
    assert!(
        running.iter().any(|f| f == "aihub.db"),
        "the database was not scanned: {running:?}"
    );

    // After a clean stop (the WAL checkpointed into the database).
    server.sigterm();
    let st = server.wait_exit(Duration::from_secs(20)).await;
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", server.logs());
    scan_data_dir(server.data_dir(), &secrets);
    assert_clean("the server's logs", server.logs().as_bytes(), &secrets);

    // The database does hold the credential (sealed): the scan was not vacuous.
    let db = server.data_dir().join("aihub.db");
    let n = python_sqlite(
        &db,
        "print(c.execute('SELECT length(secret) FROM credentials WHERE id = ?', (int(sys.argv[2]),)).fetchone()[0])",
        &[&cid.to_string()],
    );
    let sealed_len: usize = n.trim().parse().expect("length");
    assert!(
        sealed_len > provider_key.len(),
        "the stored secret should be a sealed blob longer than the key ({sealed_len} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ciphertext_swapped_between_rows_does_not_decrypt() {
    let mock =
        MockUpstream::always(MockReply::json(200, openai_completion("gpt-x", "ok", 2, 1))).await;
    let mut server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(OPENAI)).await;

    // An untouched credential with the lowest id on another provider: the swap below is
    // the only damage.
    let keep = create_provider(&server, "keep", &mock).await;
    let keep_key = format!("sk-keep-{}", random_hex());
    add_credential(&server, keep, "k0", &keep_key).await;
    let swap = create_provider(&server, "swap", &mock).await;
    let key_a = format!("sk-swap-a-{}", random_hex());
    let key_b = format!("sk-swap-b-{}", random_hex());
    let (id_a, _) = add_credential(&server, swap, "ka", &key_a).await;
    let (id_b, _) = add_credential(&server, swap, "kb", &key_b).await;

    // Both work before the swap (round-robin over the two).
    for _ in 0..2 {
        let resp = server.post_chat(&chat_body("swap/gpt-x", "before")).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let auths: Vec<String> = mock
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(String::from))
        .collect();
    assert!(auths.contains(&format!("Bearer {key_a}")), "{auths:?}");
    assert!(auths.contains(&format!("Bearer {key_b}")), "{auths:?}");

    server.sigterm();
    let st = server.wait_exit(Duration::from_secs(20)).await;
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", server.logs());

    let db = server.data_dir().join("aihub.db");
    python_sqlite(
        &db,
        "a, b = int(sys.argv[2]), int(sys.argv[3])\n\
         sa = c.execute('SELECT secret FROM credentials WHERE id = ?', (a,)).fetchone()[0]\n\
         sb = c.execute('SELECT secret FROM credentials WHERE id = ?', (b,)).fetchone()[0]\n\
         assert sa != sb\n\
         c.execute('UPDATE credentials SET secret = ? WHERE id = ?', (sb, a))\n\
         c.execute('UPDATE credentials SET secret = ? WHERE id = ?', (sa, b))",
        &[&id_a.to_string(), &id_b.to_string()],
    );

    server.restart().await;
    let before = mock.calls();
    let resp = server.post_chat(&chat_body("swap/gpt-x", "after")).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        503,
        "neither swapped credential may be served: {body}\n{}",
        server.logs()
    );
    assert_error_shape(&body);
    assert_eq!(
        mock.calls(),
        before,
        "a swapped credential reached the upstream: {:#?}",
        mock.requests().last()
    );
    assert!(
        mock.requests().iter().skip(before).all(|r| {
            let a = r.header("authorization").unwrap_or_default();
            !a.contains(&key_a) && !a.contains(&key_b)
        }),
        "a swapped key was sent upstream"
    );

    // The untouched credential still works.
    let resp = server.post_chat(&chat_body("keep/gpt-x", "after")).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        mock.requests()
            .last()
            .and_then(|r| r.header("authorization").map(String::from)),
        Some(format!("Bearer {keep_key}"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_master_key_keeps_stored_keys_usable() {
    let mock =
        MockUpstream::always(MockReply::json(200, openai_completion("gpt-x", "ok", 2, 1))).await;
    let mut server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(OPENAI)).await;
    let pid = create_provider(&server, "rot", &mock).await;
    let key = format!("sk-rot-{}", random_hex());
    add_credential(&server, pid, "k", &key).await;
    server.sigterm();
    let st = server.wait_exit(Duration::from_secs(20)).await;
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", server.logs());

    let key_file = server.data_dir().join("master.key");
    let old = std::fs::read(&key_file).expect("master.key made on first start");
    let out = server.cli(&["rotate-master-key"]);
    assert!(
        out.status.success(),
        "rotate-master-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = std::fs::read(&key_file).unwrap();
    assert_ne!(old, new, "the master key should change");
    assert!(
        !contains_bytes(&out.stdout, key.as_bytes())
            && !contains_bytes(&out.stderr, key.as_bytes()),
        "rotate-master-key printed a provider key"
    );

    server.restart().await;
    let resp = server
        .post_chat(&chat_body("rot/gpt-x", "after rotation"))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        mock.requests()
            .last()
            .and_then(|r| r.header("authorization").map(String::from)),
        Some(format!("Bearer {key}"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_master_key_fails_the_start_and_leaves_no_new_key() {
    let mock =
        MockUpstream::always(MockReply::json(200, openai_completion("gpt-x", "ok", 2, 1))).await;
    let mut server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(OPENAI)).await;
    let pid = create_provider(&server, "mk", &mock).await;
    let key = format!("sk-mk-{}", random_hex());
    add_credential(&server, pid, "k", &key).await;
    server.sigterm();
    let st = server.wait_exit(Duration::from_secs(20)).await;
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", server.logs());

    let key_file = server.data_dir().join("master.key");
    let saved = std::fs::read(&key_file).expect("master.key made on first start");
    std::fs::remove_file(&key_file).unwrap();

    // The server refuses to start, says why, and writes no key of its own.
    let (status, _out, err) =
        run_aihub_timeout(server.data_dir(), &["serve"], Duration::from_secs(30));
    let status = status.expect("aihub serve should exit, not serve without its master key");
    assert!(!status.success(), "start-up should fail: {err}");
    assert!(
        err.contains("master key") && err.contains("master.key does not exist"),
        "the failure should name the missing key file: {err}"
    );
    assert!(
        err.contains("no new key was written"),
        "the failure should say no key was made: {err}"
    );
    assert!(
        !key_file.exists(),
        "a failed start left a new master.key on disk"
    );
    assert!(
        !files_under(server.data_dir()).iter().any(|f| f
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("master.key"))),
        "no key file of any name may be left: {:?}",
        files_under(server.data_dir())
    );
    // Other commands that open the store refuse the same way.
    let out = server.cli(&["apps", "create", "x"]);
    assert!(!out.status.success());
    assert!(!key_file.exists(), "apps create left a new master.key");
    // A second try still fails: nothing was left to mistake for the key.
    let (status, _, err) =
        run_aihub_timeout(server.data_dir(), &["serve"], Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "{err}");

    // With the key restored, it starts and the stored key works.
    std::fs::write(&key_file, &saved).unwrap();
    server.restart().await;
    let resp = server
        .post_chat(&chat_body("mk/gpt-x", "after restore"))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        mock.requests()
            .last()
            .and_then(|r| r.header("authorization").map(String::from)),
        Some(format!("Bearer {key}"))
    );
}
