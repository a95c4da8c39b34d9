//! The web console: the embedded SPA and its headers, console login sessions (cookie,
//! CSRF, logout) next to the unchanged bearer token, the overview aggregate, the
//! playground proxy, public pricing, and the browser test (headless Chromium through
//! `ui/e2e/console.mjs`).

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

async fn server() -> TestServer {
    TestServer::start(ServerOptions::new().plugin(ECHO)).await
}

/// A logged-in console: the cookie header to send and the session's CSRF token.
struct Console {
    cookie: String,
    csrf: String,
    set_cookie: String,
}

async fn login(s: &TestServer) -> Console {
    let resp = http_client()
        .post(s.url("/api/console/login"))
        .json(&json!({"token": s.admin_token()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .expect("login sets a cookie")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    Console {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        set_cookie,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spa_is_served_with_strict_headers_and_falls_back_for_non_api_paths() {
    let s = server().await;
    let c = http_client();
    let resp = c.get(s.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let html = resp.text().await.unwrap();
    let asset = html
        .split("src=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("index.html names its script")
        .to_string();
    assert!(asset.starts_with("/assets/"), "{asset}");

    // A client route gets index.html too.
    let spa = c.get(s.url("/calls")).send().await.unwrap();
    assert_eq!(spa.status(), 200);
    assert_eq!(spa.text().await.unwrap(), html);

    // Hashed assets: a year, immutable; precompressed when accepted.
    let plain = c.get(s.url(&asset)).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(plain.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(plain.headers().get("content-encoding").is_none());
    let raw_len = plain.bytes().await.unwrap().len();
    for (accept, coding) in [("gzip", "gzip"), ("br, gzip", "br")] {
        let r = c
            .get(s.url(&asset))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-encoding"], coding);
        assert_eq!(r.headers()["vary"], "accept-encoding");
        assert!(r.bytes().await.unwrap().len() < raw_len);
    }
    // A missing asset is a 404, not the page.
    let missing = c.get(s.url("/assets/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    // API paths never fall back to the SPA.
    for p in ["/v1/nope", "/api/nope", "/api/console/nope"] {
        let r = c.get(s.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{p}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
    // Billing is off: no public pricing.
    let pricing = c.get(s.url("/api/public/pricing")).send().await.unwrap();
    assert_eq!(pricing.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sessions_cookie_csrf_logout_and_bearer() {
    let s = server().await;
    let c = http_client();

    let bad = c
        .post(s.url("/api/console/login"))
        .json(&json!({"token": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
    assert!(
        !s.logs().contains("\"wrong\""),
        "the token must not be logged"
    );

    let anon: Value = c
        .get(s.url("/api/console/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anon["logged_in"], false);

    let con = login(&s).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(con.set_cookie.contains(attr), "{}", con.set_cookie);
    }
    assert!(!con.set_cookie.contains("Secure"), "plain HTTP by default");
    assert!(con.cookie.starts_with("aihub_session=") && con.cookie.len() > 40);
    assert!(
        !s.logs().contains(&con.cookie["aihub_session=".len()..]),
        "session ids are not logged"
    );

    let session: Value = c
        .get(s.url("/api/console/session"))
        .header("cookie", &con.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["logged_in"], true);
    assert_eq!(session["csrf_token"], con.csrf.as_str());

    // Reads with the cookie alone.
    let apps = c
        .get(s.url("/api/admin/apps"))
        .header("cookie", &con.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), 200);

    // Mutations need the CSRF token, and a same-origin Origin when one is sent.
    let post = |csrf: Option<&str>, origin: Option<&str>| {
        let mut r = c
            .post(s.url("/api/admin/apps"))
            .header("cookie", &con.cookie)
            .json(&json!({"name": format!("console-{}", random_hex())}));
        if let Some(t) = csrf {
            r = r.header("x-aihub-csrf", t);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(post(None, None).await.unwrap().status(), 403);
    assert_eq!(post(Some("not-it"), None).await.unwrap().status(), 403);
    assert_eq!(
        post(Some(&con.csrf), Some("https://evil.example"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(post(Some(&con.csrf), None).await.unwrap().status(), 201);
    let origin = s.base_url();
    assert_eq!(
        post(Some(&con.csrf), Some(&origin)).await.unwrap().status(),
        201
    );

    // The bearer token keeps working, with no CSRF token.
    let bearer = c
        .post(s.url("/api/admin/apps"))
        .bearer_auth(s.admin_token())
        .json(&json!({"name": "by-bearer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 201);

    // Logout ends the session and clears the cookie.
    let out = c
        .post(s.url("/api/console/logout"))
        .header("cookie", &con.cookie)
        .header("x-aihub-csrf", &con.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = c
        .get(s.url("/api/admin/apps"))
        .header("cookie", &con.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert_eq!(s.admin_get("/api/admin/apps").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn playground_streams_as_the_playground_app_and_the_overview_counts_it() {
    let s = server().await;
    let con = login(&s).await;
    let c = http_client();
    let body = json!({"model": "echo/echo-1", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi from the console"}]});
    let no_csrf = c
        .post(s.url("/api/console/playground"))
        .header("cookie", &con.cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let resp = c
        .post(s.url("/api/console/playground"))
        .header("cookie", &con.cookie)
        .header("x-aihub-csrf", &con.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out = collect_sse(resp).await;
    assert_eq!(out.content(), "hi from the console");

    let apps: Value = s.admin_get("/api/admin/apps").await.json().await.unwrap();
    let playground = apps["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "playground")
        .expect("the playground app was made")["id"]
        .as_i64()
        .unwrap();
    let calls = s
        .calls_matching_at_least(&format!("app={playground}"), 1)
        .await;
    assert_eq!(calls[0]["model"], "echo/echo-1");

    let o: Value = s
        .admin_get("/api/admin/overview")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o["bucket"], "hour");
    assert!(o["totals"]["calls"].as_i64().unwrap() >= 1, "{o}");
    assert!(o["totals"]["latency_p50_ms"].is_i64(), "{o}");
    assert!(!o["series"].as_array().unwrap().is_empty(), "{o}");
    assert_eq!(o["top_models"][0]["key"], "echo/echo-1", "{o}");
    assert!(o["providers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["prefix"] == "echo"));
    let bad = s.admin_get("/api/admin/overview?bucket=week").await;
    assert_eq!(bad.status(), 400);
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Whether the browser tests can run: Chromium and Node present. Where they are not,
/// says so loudly (CI installs both).
fn browser_available(test: &str) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let have = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !std::path::Path::new(&chromium).exists() || !have("node") {
        eprintln!(
            "\n!!!!! SKIPPED {test}: no Chromium at {chromium} or no node \
             (apt-get install chromium nodejs; .ci/run does) !!!!!\n"
        );
        return None;
    }
    assert!(
        repo_root().join("ui/node_modules/playwright-core").is_dir(),
        "ui/node_modules is missing: run `make ui-deps` (npm ci in ui/)"
    );
    Some(chromium)
}

/// Runs `node ui/e2e/<script> <args>` against `s`, failing with its output and the
/// server's log.
async fn run_browser(s: &TestServer, chromium: &str, script: &str, args: &[&str]) {
    let root = repo_root();
    let mut cmd = std::process::Command::new("node");
    cmd.arg(root.join("ui/e2e").join(script))
        .args(args)
        .env("CHROMIUM", chromium)
        .env("SCREENSHOTS", root.join("target/ui-screenshots"))
        .current_dir(&root);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test {script} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        s.logs()
    );
    println!("{stdout}");
}

/// The browser test: `node ui/e2e/console.mjs <base url> <admin token>` drives headless
/// Chromium through every page.
#[tokio::test(flavor = "multi_thread")]
async fn console_in_a_real_browser() {
    let Some(chromium) = browser_available("console_in_a_real_browser") else {
        return;
    };
    let s = server().await;
    let base = s.base_url();
    run_browser(&s, &chromium, "console.mjs", &[&base, s.admin_token()]).await;
}

/// `/pricing` with billing on (50% margin): the priced models listed with their prices,
/// filter and sort, in `ui/e2e/pricing.mjs`.
#[tokio::test(flavor = "multi_thread")]
async fn public_pricing_with_billing_on_in_a_real_browser() {
    let Some(chromium) = browser_available("public_pricing_with_billing_on_in_a_real_browser")
    else {
        return;
    };
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .config("[billing]\nenabled = true\nmargin_percent = 50\n"),
    )
    .await;
    for (model, input, output) in [
        ("echo/echo-1", 2.0, 4.0),
        ("echo/cheap", 0.1, 0.2),
        ("echo/pricey", 10.0, 3.0),
    ] {
        s.admin_ok(
            reqwest::Method::PUT,
            &format!("/api/admin/rates/{model}"),
            Some(&json!({"input_per_mtok": input, "output_per_mtok": output})),
            200,
        )
        .await;
    }
    let listed: Value = http_client()
        .get(s.url("/api/public/pricing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 3, "{listed}");
    let base = s.base_url();
    run_browser(&s, &chromium, "pricing.mjs", &[&base]).await;
}

/// LiteLLM-shaped entries: `gpt-4o` is served here (a stored `openai` provider over the
/// echo plugin lists it), `gpt-other` and the Anthropic one are mappable but not served,
/// `mystery` is a provider aihub does not serve.
fn litellm(gpt4o_input: Value) -> String {
    json!({
        "sample_spec": {"litellm_provider": "one of ...", "input_cost_per_token": 0},
        "gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": gpt4o_input,
                   "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06},
        "gpt-other": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
        "claude-x": {"litellm_provider": "anthropic", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05},
        "mystery": {"litellm_provider": "mystery", "input_cost_per_token": 1e-06},
    })
    .to_string()
}

async fn import(s: &TestServer, query: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = http_client()
        .post(s.url(&format!("/api/admin/rates/import?{query}")))
        .bearer_auth(s.admin_token())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn rate_of(s: &TestServer, model: &str) -> Option<Value> {
    let rates = s
        .admin_ok(reqwest::Method::GET, "/api/admin/rates", None, 200)
        .await;
    rates["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn rates_import_previews_applies_rebuilds_routing_and_refuses_bad_entries() {
    let s = server().await;
    s.admin_ok(
        reqwest::Method::POST,
        "/api/admin/providers",
        Some(&json!({"prefix": "openai", "plugin": "echo", "models": ["gpt-4o"]})),
        201,
    )
    .await;
    let chat = || async {
        let r = http_client_with_key(s.app_key())
            .post(s.url("/v1/chat/completions"))
            .json(&chat_body("openai/gpt-4o", "price me"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap_or_default().to_string()
    };
    chat().await;
    let before = s.calls_matching_at_least("model=openai/gpt-4o", 1).await;
    assert_eq!(
        before[0]["cost_micros"].as_i64().unwrap_or(0),
        0,
        "no rate yet"
    );

    // Dry run with a 10% margin: field by field, counts, nothing written.
    let (st, plan) = import(&s, "dry_run=true&margin=10", litellm(json!(2.5e-06))).await;
    assert_eq!(st, 200, "{plan}");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["written"], 0);
    let c = &plan["counts"];
    assert_eq!(
        (c["new"].as_i64(), c["changed"].as_i64()),
        (Some(1), Some(0)),
        "{plan}"
    );
    assert_eq!(c["not_in_catalog"], 2, "{plan}");
    assert_eq!(c["not_served"], 1, "{plan}");
    let change = &plan["changes"][0];
    assert_eq!(change["model"], "openai/gpt-4o");
    assert_eq!(change["entry"], "gpt-4o");
    assert_eq!(change["kind"], "new");
    assert_eq!(
        change["fields"],
        json!([
            {"field": "input", "before_micros": null, "after_micros": 2_750_000},
            {"field": "output", "before_micros": null, "after_micros": 11_000_000},
            {"field": "cached", "before_micros": null, "after_micros": 1_375_000},
        ])
    );
    assert!(
        rate_of(&s, "openai/gpt-4o").await.is_none(),
        "dry run wrote"
    );

    // `all=true` would also take the mappable models nobody serves.
    let (_, all) = import(&s, "dry_run=true&all=true", litellm(json!(2.5e-06))).await;
    assert_eq!(all["counts"]["new"], 3, "{all}");

    // Apply: written, in the history, and charged from the next call on (table rebuilt).
    let (st, done) = import(&s, "dry_run=false&margin=10", litellm(json!(2.5e-06))).await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["written"], 1);
    let rate = rate_of(&s, "openai/gpt-4o").await.expect("imported");
    assert_eq!(rate["input_per_mtok_micros"], 2_750_000);
    let history = s
        .admin_ok(
            reqwest::Method::GET,
            "/api/admin/rates/history?model=openai/gpt-4o",
            None,
            200,
        )
        .await;
    assert_eq!(
        history["data"][0]["input_per_mtok_micros"], 2_750_000,
        "{history}"
    );
    chat().await;
    let after = s.calls_matching_at_least("model=openai/gpt-4o", 2).await;
    let newest = &after[0];
    let tokens_cost = newest["input_tokens"].as_i64().unwrap() * 2_750_000
        + newest["output_tokens"].as_i64().unwrap() * 11_000_000;
    assert!(newest["cost_micros"].as_i64().unwrap() > 0, "{newest}");
    assert_eq!(
        newest["cost_micros"].as_i64().unwrap(),
        tokens_cost / 1_000_000,
        "{newest}"
    );

    // The same file again changes nothing.
    let (_, again) = import(&s, "margin=10", litellm(json!(2.5e-06))).await;
    assert_eq!(again["counts"]["unchanged"], 1, "{again}");
    assert_eq!(again["written"], 0);

    // A bad entry: 400 naming entry and field, and nothing written (not even the good
    // change to gpt-4o in the same file).
    let mut bad: Value = serde_json::from_str(&litellm(json!(9e-06))).unwrap();
    bad["gpt-other"]["output_cost_per_token"] = json!("cheap");
    let (st, err) = import(&s, "dry_run=false&all=true", bad.to_string()).await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["error"]["param"], "output_cost_per_token", "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'gpt-other'") && msg.contains("nothing was written"),
        "{msg}"
    );
    assert_eq!(
        rate_of(&s, "openai/gpt-4o").await.unwrap()["input_per_mtok_micros"],
        2_750_000
    );
    let (st, err) = import(&s, "dry_run=true", "[1, 2]").await;
    assert_eq!(
        (st, err["error"]["param"].as_str()),
        (400, Some("body")),
        "{err}"
    );
    let (st, err) = import(&s, "margin=abc", litellm(json!(1e-06))).await;
    assert_eq!(
        (st, err["error"]["param"].as_str()),
        (400, Some("margin")),
        "{err}"
    );
    let (st, _) = import(&s, "dry_run=maybe", litellm(json!(1e-06))).await;
    assert_eq!(st, 400);

    // Bodies: a list the size of LiteLLM's (1-2 MB) fits (here 3 MB of unmapped entries), 16 MiB+ does not.
    let mut big = serde_json::Map::new();
    for i in 0..30_000 {
        big.insert(
            format!("some-vendor/model-{i:06}-with-a-long-name"),
            json!({"litellm_provider": "mystery", "input_cost_per_token": 1e-06, "max_tokens": 8192}),
        );
    }
    let big = Value::Object(big).to_string();
    assert!(big.len() > 2 * 1024 * 1024, "{}", big.len());
    let (st, v) = import(&s, "dry_run=true", big).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["counts"]["not_served"], 30_000);
    // Over the bound: refused from the declared length, before any body is read (sent by
    // hand, headers only, so the early answer cannot race the upload).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "POST /api/admin/rates/import?dry_run=true HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        s.addr(),
        s.admin_token(),
        16 * 1024 * 1024 + 1
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("an answer before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Ten wrong tokens in a minute lock logins from that address only: the operator, from
/// another, still gets in.
#[tokio::test(flavor = "multi_thread")]
async fn login_lockout_is_per_client_address() {
    let s = server().await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let attacker = from([127, 0, 0, 2]);
    let attempts = (0..10).map(|_| {
        attacker
            .post(s.url("/api/console/login"))
            .json(&json!({"token": "guess"}))
            .send()
    });
    for r in futures_util::future::join_all(attempts).await {
        assert_eq!(r.unwrap().status(), 401);
    }
    let locked = attacker
        .post(s.url("/api/console/login"))
        .json(&json!({"token": s.admin_token()}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        locked.status(),
        429,
        "even the right token, from the locked address"
    );
    assert!(locked.headers().contains_key("retry-after"));
    let operator = from([127, 0, 0, 1])
        .post(s.url("/api/console/login"))
        .json(&json!({"token": s.admin_token()}))
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), 200, "another address is not locked out");
}
