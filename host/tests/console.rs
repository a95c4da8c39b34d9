//! The web console: the embedded SPA and its headers, console login sessions (cookie,
//! CSRF, logout) next to the unchanged bearer token, the overview aggregate, the
//! playground proxy, public pricing, and the browser test (headless Chromium through
//! `ui/e2e/console.mjs`).

mod common;

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

/// The browser test: `node ui/e2e/console.mjs <base url> <admin token>` drives headless
/// Chromium through every page. Skipped, loudly, only where Chromium or Node is absent
/// (CI installs both).
#[tokio::test(flavor = "multi_thread")]
async fn console_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let have = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !std::path::Path::new(&chromium).exists() || !have("node") {
        eprintln!(
            "\n!!!!! SKIPPED console_in_a_real_browser: no Chromium at {chromium} or no node \
             (apt-get install chromium nodejs; .ci/run does) !!!!!\n"
        );
        return;
    }
    let root = repo_root();
    assert!(
        root.join("ui/node_modules/playwright-core").is_dir(),
        "ui/node_modules is missing: run `make ui-deps` (npm ci in ui/)"
    );
    let s = server().await;
    let mut cmd = std::process::Command::new("node");
    cmd.arg(root.join("ui/e2e/console.mjs"))
        .arg(s.base_url())
        .arg(s.admin_token())
        .env("CHROMIUM", &chromium)
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
        "browser test failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        s.logs()
    );
    println!("{stdout}");
}
