//! Resilience (issue 5), end to end: the real binary against a scriptable mock upstream
//! (`common::scripted`) — key rotation and weights, refused keys and their background
//! re-check, rate-limit cooldowns, retries, ejection, alias failover, timeouts, and
//! cancellation of the upstream call when the client goes away.
//!
//! No assertion is on raw speed: time bounds are the configured timeouts plus slack.

use crate::common;

use common::scripted::*;
use common::*;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Slack added to configured time bounds (a loaded CI machine, a debug build).
const SLACK: Duration = Duration::from_millis(2500);

async fn server(config: &str, env: &[(&str, &str)]) -> TestServer {
    let mut opts = ServerOptions::new().plugin(OPENAI);
    if !config.trim().is_empty() {
        opts = opts.config(config);
    }
    for (k, v) in env {
        opts = opts.env(k, *v);
    }
    TestServer::start(opts).await
}

fn secret(name: &str) -> String {
    format!("sk-{name}-{}", random_hex())
}

/// The credential `name` of provider `prefix` in `GET /api/admin/providers`.
async fn credential_view(server: &TestServer, prefix: &str, name: &str) -> Value {
    let list = server
        .admin_ok(Method::GET, "/api/admin/providers", None, 200)
        .await;
    let provider = list["data"]
        .as_array()
        .and_then(|d| d.iter().find(|p| p["prefix"] == prefix))
        .unwrap_or_else(|| panic!("no provider {prefix} in {list:#}"));
    provider["credentials"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no credential {name} under {prefix}: {provider:#}"))
        .clone()
}

/// Polls the credential's health until `pred` holds; panics with the last view after
/// `timeout`.
async fn wait_health(
    server: &TestServer,
    prefix: &str,
    name: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let view = credential_view(server, prefix, name).await;
        if pred(&view["health"]) {
            return view;
        }
        if Instant::now() > deadline {
            panic!("credential {prefix}/{name} did not reach the expected health within {timeout:?}: {view:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A chat whose user message is `marker` (how the tests tell their own requests from the
/// gateway's background checks at the mock).
async fn chat(server: &TestServer, model: &str, marker: &str) -> (u16, Value) {
    let resp = server.post_chat(&chat_body(model, marker)).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

async fn chat_ok(server: &TestServer, model: &str, marker: &str) -> Value {
    let (status, body) = chat(server, model, marker).await;
    assert_eq!(status, 200, "{model} ({marker}): {body}");
    body
}

/// Requests with `Authorization: Bearer <secret>` whose message starts with `marker`.
fn client_requests(mock: &ScriptedUpstream, secret: &str, marker: &str) -> Vec<ScriptedRequest> {
    mock.requests_with_key(secret)
        .into_iter()
        .filter(|r| r.last_content().starts_with(marker))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The ids in a call row's `credentials_tried` (a JSON array as text).
fn credentials_tried(row: &Value) -> Vec<i64> {
    let text = row["credentials_tried"]
        .as_str()
        .unwrap_or_else(|| panic!("credentials_tried is not JSON text: {row}"));
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("credentials_tried is not a JSON array of ids ({e}): {row}"))
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------
// Keys: refused, rate limited, failing, weighted
// ---------------------------------------------------------------------------------------

const REFUSAL: &str = "Incorrect API key provided: sk-b****. You can find your API key at https://platform.openai.com/account/api-keys.";

#[tokio::test(flavor = "multi_thread")]
async fn refused_key_gets_no_more_traffic_and_is_restored_by_the_background_check() {
    let (a, b, c) = (secret("a"), secret("b"), secret("c"));
    let accept_b = Arc::new(AtomicBool::new(false));
    let mock = {
        let (b, accept_b) = (b.clone(), accept_b.clone());
        ScriptedUpstream::start(move |r| {
            if r.bearer() == Some(b.as_str()) && !accept_b.load(Ordering::SeqCst) {
                Act::error(401, REFUSAL)
            } else {
                Act::ok("fine")
            }
        })
        .await
    };
    let server = server(
        "[resilience]\nrecheck_initial_ms = 300\nrecheck_max_ms = 1000\n",
        &[],
    )
    .await;
    let pid = server.stored_provider("keys", &mock.base_url()).await;
    let ida = server.add_key(pid, "A", &a, Some(1)).await;
    let idb = server.add_key(pid, "B", &b, Some(1)).await;
    let idc = server.add_key(pid, "C", &c, Some(1)).await;

    // Every client request succeeds: the one that met B's 401 was retried on another key.
    for i in 0..30 {
        let reply = chat_ok(&server, "keys/gpt-x", &format!("before-{i}")).await;
        assert_eq!(reply["choices"][0]["message"]["content"], "fine", "{reply}");
    }
    let to_b = client_requests(&mock, &b, "before-");
    assert_eq!(
        to_b.len(),
        1,
        "after its first 401, B must receive no client traffic; B got {:?}",
        to_b.iter().map(|r| r.last_content()).collect::<Vec<_>>()
    );
    let to_a = client_requests(&mock, &a, "before-").len();
    let to_c = client_requests(&mock, &c, "before-").len();
    assert_eq!(
        to_a + to_c,
        30,
        "A {to_a} + C {to_c}: every request served once"
    );
    assert!(
        to_a > 0 && to_c > 0,
        "rotation over A and C: A {to_a}, C {to_c}"
    );

    // The admin API shows B invalid, with the upstream's message.
    let view = credential_view(&server, "keys", "B").await;
    assert_eq!(view["id"], idb, "{view}");
    assert_eq!(view["health"]["state"], "invalid", "{view:#}");
    let reason = format!(
        "{} {}",
        view["health"]["reason"], view["health"]["last_error"]
    );
    assert!(
        reason.contains("Incorrect API key provided"),
        "the mock's message should be shown: {view:#}"
    );
    for name in ["A", "C"] {
        let v = credential_view(&server, "keys", name).await;
        assert_eq!(v["health"]["state"], "healthy", "{v:#}");
    }

    // The call that met the 401 shows both attempts.
    let rows = server.wait_for_calls("", 30, Duration::from_secs(10)).await;
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:#?}");
    let retried: Vec<&Value> = rows.iter().filter(|r| r["attempts"] != 1).collect();
    assert_eq!(retried.len(), 1, "one call was retried: {retried:#?}");
    assert_eq!(retried[0]["attempts"], 2, "{}", retried[0]);
    let tried = credentials_tried(retried[0]);
    assert_eq!(tried.len(), 2, "{}", retried[0]);
    assert_eq!(tried[0], idb, "B was tried first: {}", retried[0]);
    assert!(tried[1] == ida || tried[1] == idc, "{}", retried[0]);

    // The mock accepts B again: the background check restores it, and it gets traffic.
    accept_b.store(true, Ordering::SeqCst);
    let view = wait_health(&server, "keys", "B", Duration::from_secs(10), |h| {
        h["state"] == "healthy"
    })
    .await;
    assert!(
        view["health"]["reason"].is_null(),
        "a restored key has no reason: {view:#}"
    );
    for i in 0..12 {
        chat_ok(&server, "keys/gpt-x", &format!("after-{i}")).await;
    }
    let to_b = client_requests(&mock, &b, "after-").len();
    assert!(
        to_b >= 2,
        "restored B should be back in rotation (equal weights over 12 requests): got {to_b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_key_stays_invalid_across_a_restart() {
    let (a, b) = (secret("a"), secret("b"));
    let mock = {
        let b = b.clone();
        ScriptedUpstream::start(move |r| {
            if r.bearer() == Some(b.as_str()) {
                Act::error(401, REFUSAL)
            } else {
                Act::ok("fine")
            }
        })
        .await
    };
    // The default first re-check (5 s) does not come within the test.
    let mut server = server("", &[]).await;
    let pid = server.stored_provider("keys", &mock.base_url()).await;
    server.add_key(pid, "A", &a, Some(1)).await;
    server.add_key(pid, "B", &b, Some(1)).await;
    for i in 0..4 {
        chat_ok(&server, "keys/gpt-x", &format!("r-{i}")).await;
    }
    wait_health(&server, "keys", "B", Duration::from_secs(5), |h| {
        h["state"] == "invalid"
    })
    .await;
    // The state is written off the request path: give it a moment to reach the store.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await;
    let view = credential_view(&server, "keys", "B").await;
    assert_eq!(
        view["health"]["state"], "invalid",
        "the state should survive a restart: {view:#}"
    );
    let before = client_requests(&mock, &b, "").len();
    for i in 0..4 {
        chat_ok(&server, "keys/gpt-x", &format!("again-{i}")).await;
    }
    assert_eq!(
        client_requests(&mock, &b, "again-").len(),
        0,
        "an invalid key gets no traffic after a restart (before: {before})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_key_is_skipped_for_retry_after_then_used_again() {
    let (a, b) = (secret("a"), secret("b"));
    let limited_once = Arc::new(AtomicBool::new(false));
    let mock = {
        let (a, limited_once) = (a.clone(), limited_once.clone());
        ScriptedUpstream::start(move |r| {
            if r.bearer() == Some(a.as_str()) && !limited_once.swap(true, Ordering::SeqCst) {
                Act::error(429, "Rate limit reached for requests").header("Retry-After", "2")
            } else {
                Act::ok("fine")
            }
        })
        .await
    };
    let server = server("", &[]).await;
    let pid = server.stored_provider("rl", &mock.base_url()).await;
    server.add_key(pid, "A", &a, Some(1)).await;
    server.add_key(pid, "B", &b, Some(1)).await;

    // Until A has met its 429 (the rotation offers it within two calls).
    let mut n = 0;
    while !limited_once.load(Ordering::SeqCst) {
        assert!(n < 4, "A was never used: {:?}", mock.requests());
        chat_ok(&server, "rl/gpt-x", &format!("c-{n}")).await;
        n += 1;
    }
    let first_a = client_requests(&mock, &a, "c-");
    assert_eq!(first_a.len(), 1, "{first_a:?}");
    let t429 = first_a[0].at;
    let wall_429 = now_ms() - t429.elapsed().as_millis() as i64;

    // Cooling down until ~2 s after the 429.
    let view = credential_view(&server, "rl", "A").await;
    assert_eq!(view["health"]["state"], "cooling_down", "{view:#}");
    let until = view["health"]["until"]
        .as_i64()
        .unwrap_or_else(|| panic!("cooling_down without `until`: {view:#}"));
    let ahead = until - wall_429;
    assert!(
        (1800..=3000).contains(&ahead),
        "`until` should be ~2 s after the 429, is {ahead} ms: {view:#}"
    );

    // Keep calling: A is skipped while it cools down, then used again.
    let deadline = t429 + Duration::from_secs(2) + SLACK;
    let back = loop {
        chat_ok(&server, "rl/gpt-x", &format!("c-{n}")).await;
        n += 1;
        let to_a = client_requests(&mock, &a, "c-");
        if to_a.len() > 1 {
            break to_a[1].at;
        }
        assert!(
            Instant::now() < deadline,
            "A was not used again within 2 s + {SLACK:?} of its 429"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let skipped = back.duration_since(t429);
    eprintln!("A used again {skipped:?} after its 429");
    assert!(
        skipped >= Duration::from_millis(1950),
        "A was used again {skipped:?} after a 429 with Retry-After: 2"
    );
    let view = credential_view(&server, "rl", "A").await;
    assert_eq!(view["health"]["state"], "healthy", "{view:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_is_retried_on_another_key_and_the_call_row_shows_two_attempts() {
    let (a, b) = (secret("a"), secret("b"));
    let failed_once = Arc::new(AtomicBool::new(false));
    let mock = {
        let failed_once = failed_once.clone();
        ScriptedUpstream::start(move |_| {
            if !failed_once.swap(true, Ordering::SeqCst) {
                Act::error(
                    500,
                    "The server had an error while processing your request.",
                )
            } else {
                Act::ok("second time lucky")
            }
        })
        .await
    };
    let server = server("", &[]).await;
    let pid = server.stored_provider("flaky", &mock.base_url()).await;
    let ida = server.add_key(pid, "A", &a, Some(1)).await;
    let idb = server.add_key(pid, "B", &b, Some(1)).await;

    let reply = chat_ok(&server, "flaky/gpt-x", "once").await;
    assert_eq!(
        reply["choices"][0]["message"]["content"], "second time lucky",
        "{reply}"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_ne!(
        reqs[0].bearer(),
        reqs[1].bearer(),
        "the retry goes to the next key"
    );

    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(row["http_status"], 200, "{row}");
    assert_eq!(row["attempts"], 2, "{row}");
    let tried = credentials_tried(row);
    assert_eq!(tried.len(), 2, "{row}");
    let mut sorted = tried.clone();
    sorted.sort_unstable();
    let mut want = vec![ida, idb];
    want.sort_unstable();
    assert_eq!(sorted, want, "both keys tried: {row}");
    assert_eq!(
        row["credential_id"], tried[1],
        "served by the last key tried: {row}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_three_to_one_split_four_hundred_requests() {
    let (heavy, light) = (secret("heavy"), secret("light"));
    let mock = ScriptedUpstream::start(|_| Act::ok("w")).await;
    let server = server("", &[]).await;
    let pid = server.stored_provider("wrr", &mock.base_url()).await;
    server.add_key(pid, "heavy", &heavy, Some(3)).await;
    server.add_key(pid, "light", &light, Some(1)).await;

    let statuses: Vec<u16> = futures_util::stream::iter(0..400)
        .map(|i| {
            let server = &server;
            async move { chat(server, "wrr/gpt-x", &format!("w-{i}")).await.0 }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let h = mock.requests_with_key(&heavy).len();
    let l = mock.requests_with_key(&light).len();
    assert_eq!(h + l, 400, "heavy {h} + light {l}");
    assert!(
        (285..=315).contains(&h) && (95..=105).contains(&l),
        "3:1 weights over 400 requests should split within 5 % of 300:100, got {h}:{l}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consecutive_server_errors_eject_a_key_then_a_probe_restores_it() {
    let (bad, good) = (secret("bad"), secret("good"));
    let heal = Arc::new(AtomicBool::new(false));
    let mock = {
        let (bad, heal) = (bad.clone(), heal.clone());
        ScriptedUpstream::start(move |r| {
            if r.bearer() == Some(bad.as_str()) && !heal.load(Ordering::SeqCst) {
                Act::error(500, "upstream overloaded")
            } else {
                Act::ok("fine")
            }
        })
        .await
    };
    let server = server(
        "[resilience]\neject_after_failures = 5\neject_cooldown_ms = 3000\n",
        &[],
    )
    .await;
    let pid = server.stored_provider("ej", &mock.base_url()).await;
    server.add_key(pid, "bad", &bad, Some(1)).await;
    server.add_key(pid, "good", &good, Some(1)).await;

    let mut n = 0;
    while client_requests(&mock, &bad, "e-").len() < 5 {
        assert!(n < 40, "bad was not tried 5 times in 40 requests");
        chat_ok(&server, "ej/gpt-x", &format!("e-{n}")).await;
        n += 1;
    }
    let view = credential_view(&server, "ej", "bad").await;
    let h = &view["health"];
    assert_eq!(h["state"], "ejected", "{view:#}");
    assert!(h["until"].as_i64().unwrap_or(0) > now_ms(), "{view:#}");
    assert_eq!(h["consecutive_failures"], 5, "{view:#}");
    assert!(
        h["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("upstream overloaded"),
        "{view:#}"
    );
    assert!(
        h["recent_error_rate"].as_f64().unwrap_or(0.0) > 0.99,
        "{view:#}"
    );
    assert_eq!(
        credential_view(&server, "ej", "good").await["health"]["state"],
        "healthy"
    );

    // Ejected: no traffic during the cooldown.
    for i in 0..6 {
        chat_ok(&server, "ej/gpt-x", &format!("x-{i}")).await;
    }
    assert_eq!(client_requests(&mock, &bad, "x-").len(), 0);

    // After the cooldown a probing call that succeeds restores it.
    heal.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(3) + SLACK * 2;
    let mut i = 0;
    while client_requests(&mock, &bad, "p-").is_empty() {
        assert!(
            Instant::now() < deadline,
            "bad was never probed after its ejection"
        );
        chat_ok(&server, "ej/gpt-x", &format!("p-{i}")).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = credential_view(&server, "ej", "bad").await;
    assert_eq!(view["health"]["state"], "healthy", "{view:#}");
    assert_eq!(view["health"]["consecutive_failures"], 0, "{view:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_closed_without_an_answer_is_retried_but_a_client_error_is_not() {
    let closed_once = Arc::new(AtomicBool::new(false));
    let mock = {
        let closed_once = closed_once.clone();
        ScriptedUpstream::start(move |r| {
            if r.last_content() == "bad request" {
                Act::error(400, "Invalid value for 'temperature'")
            } else if !closed_once.swap(true, Ordering::SeqCst) {
                Act::Close
            } else {
                Act::ok("after a closed connection")
            }
        })
        .await
    };
    let config = mock_cfg("drop", &mock.base_url(), "RES_DROP_KEY");
    let server = server(&config, &[("RES_DROP_KEY", "sk-drop")]).await;

    let reply = chat_ok(&server, "drop/gpt-x", "hello").await;
    assert_eq!(
        reply["choices"][0]["message"]["content"], "after a closed connection",
        "{reply}"
    );
    assert_eq!(mock.calls(), 2);
    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    assert_eq!(rows[0]["attempts"], 2, "{}", rows[0]);

    // A 400 is the client's own error: passed back, never retried.
    let (status, body) = chat(&server, "drop/gpt-x", "bad request").await;
    assert_eq!(status, 400, "{body}");
    assert_error_shape(&body);
    assert_eq!(mock.calls(), 3, "a client error must not be retried");
}

// ---------------------------------------------------------------------------------------
// Aliases and failover between providers
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn alias_fails_over_from_a_provider_that_is_down() {
    let mock = ScriptedUpstream::start(|_| Act::ok("from up")).await;
    let down = closed_port();
    let config = format!(
        r#"
[[providers]]
prefix = "down"
plugin = "openai"
base_url = "http://127.0.0.1:{down}/v1"
api_key_env = "RES_DOWN_KEY"
models = ["gpt-x"]

[[providers]]
prefix = "up"
plugin = "openai"
base_url = "{up}"
api_key_env = "RES_UP_KEY"
models = ["gpt-x"]

[[routes]]
model = "smart"
targets = ["down/gpt-x", "up/gpt-x"]
"#,
        up = mock.base_url()
    );
    let server = server(
        &config,
        &[("RES_DOWN_KEY", "sk-down"), ("RES_UP_KEY", "sk-up")],
    )
    .await;

    // The config alias.
    let reply = chat_ok(&server, "smart", "via config alias").await;
    assert_eq!(
        reply["choices"][0]["message"]["content"], "from up",
        "{reply}"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].bearer(), Some("sk-up"));
    assert_eq!(reqs[0].json()["model"], "gpt-x", "{:?}", reqs[0].json());
    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    let row = &rows[0];
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(row["provider"], "up", "{row}");
    assert_eq!(
        row["attempts"], 2,
        "one refused connection to `down`, then `up` at once: {row}"
    );

    // An alias made through the admin API.
    server
        .admin_ok(
            Method::PUT,
            "/api/admin/aliases/smart2",
            Some(&json!({"targets": ["down/gpt-x", "up/gpt-x"]})),
            200,
        )
        .await;
    let reply = chat_ok(&server, "smart2", "via admin alias").await;
    assert_eq!(
        reply["choices"][0]["message"]["content"], "from up",
        "{reply}"
    );
    assert_eq!(mock.calls(), 2);

    // A bare model name listed by both catalogs: served whichever goes first.
    for i in 0..4 {
        chat_ok(&server, "gpt-x", &format!("bare-{i}")).await;
    }
    assert_eq!(mock.calls(), 6);
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn first_byte_timeout_is_a_504_within_the_bound() {
    let mock = ScriptedUpstream::start(|_| Act::Hang).await;
    let config = format!(
        r#"
[resilience]
max_attempts = 1

[[providers]]
prefix = "slow"
plugin = "openai"
base_url = "{}"
api_key_env = "RES_SLOW_KEY"
models = ["gpt-x"]
first_byte_timeout_ms = 500
"#,
        mock.base_url()
    );
    let server = server(&config, &[("RES_SLOW_KEY", "sk-slow")]).await;

    let t = Instant::now();
    let resp = server.post_chat(&chat_body("slow/gpt-x", "hello?")).await;
    let elapsed = t.elapsed();
    let err = expect_error(resp, 504, "timeout_error").await;
    eprintln!("504 after {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed <= Duration::from_millis(500) + SLACK,
        "504 after {elapsed:?}, first_byte_timeout_ms = 500: {err}"
    );
    assert_eq!(mock.calls(), 1, "max_attempts = 1");
    // The gateway gave up on the upstream request: its connection is closed.
    let conn = mock.requests()[0].conn;
    let closed = mock
        .wait_conn_closed(conn, Duration::from_secs(2))
        .await
        .expect("the timed-out upstream connection should be closed");
    assert_eq!(closed.closed_by, Some(Closer::Peer));

    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    assert_eq!(rows[0]["status"], "error", "{}", rows[0]);
    assert_eq!(rows[0]["http_status"], 504, "{}", rows[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_that_stalls_ends_with_an_sse_error_and_no_done() {
    let mock =
        ScriptedUpstream::start(|_| Act::stream(&["Hel", "lo"], Duration::ZERO, StreamEnd::Stall))
            .await;
    let config = format!(
        r#"
[[providers]]
prefix = "stall"
plugin = "openai"
base_url = "{}"
api_key_env = "RES_STALL_KEY"
models = ["gpt-x"]
idle_timeout_ms = 500
"#,
        mock.base_url()
    );
    let server = server(&config, &[("RES_STALL_KEY", "sk-stall")]).await;

    let mut body = chat_body("stall/gpt-x", "stream please");
    body["stream"] = json!(true);
    let t = Instant::now();
    let resp = server.post_chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let out = collect_sse(resp).await;
    let elapsed = t.elapsed();
    eprintln!("stalled stream ended after {elapsed:?}: {:?}", out.events);

    assert_eq!(out.content_pieces(), vec!["Hel", "lo"], "{out:?}");
    assert!(
        !out.done,
        "a stalled stream must not end with [DONE]: {out:?}"
    );
    assert!(
        out.transport_error.is_none(),
        "the stream closes cleanly after the error event: {out:?}"
    );
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{out:?}");
    let last: Value = serde_json::from_str(out.events.last().unwrap()).unwrap();
    assert!(
        last.get("error").is_some(),
        "the error is the last event: {out:?}"
    );
    let err = assert_error_shape(&last);
    assert_eq!(err["type"], "timeout_error", "{last}");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed <= Duration::from_millis(500) + SLACK,
        "stream ended {elapsed:?} after the start, idle_timeout_ms = 500"
    );
    let conn = mock.requests()[0].conn;
    let closed = mock
        .wait_conn_closed(conn, Duration::from_secs(2))
        .await
        .expect("the stalled upstream connection should be closed");
    assert_eq!(closed.closed_by, Some(Closer::Peer));

    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    assert_eq!(rows[0]["status"], "error", "{}", rows[0]);
    assert_eq!(rows[0]["stream"], true, "{}", rows[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_cut_mid_way_ends_with_an_sse_error_and_is_not_retried() {
    let mock =
        ScriptedUpstream::start(|_| Act::stream(&["Hel", "lo"], Duration::ZERO, StreamEnd::Cut))
            .await;
    let config = mock_cfg("cut", &mock.base_url(), "RES_CUT_KEY");
    let server = server(&config, &[("RES_CUT_KEY", "sk-cut")]).await;

    let mut body = chat_body("cut/gpt-x", "stream please");
    body["stream"] = json!(true);
    let resp = server.post_chat(&body).await;
    assert_eq!(resp.status(), 200);
    let out = collect_sse(resp).await;
    assert_eq!(out.content_pieces(), vec!["Hel", "lo"], "{out:?}");
    assert!(!out.done, "a cut stream must not end with [DONE]: {out:?}");
    assert!(out.transport_error.is_none(), "{out:?}");
    let last: Value = serde_json::from_str(out.events.last().unwrap()).unwrap();
    assert_error_shape(&last);
    assert_eq!(out.errors().len(), 1, "{out:?}");
    assert_eq!(mock.calls(), 1, "a stream that has begun is never retried");
    let rows = server.wait_for_calls("", 1, Duration::from_secs(10)).await;
    assert_eq!(rows[0]["status"], "error", "{}", rows[0]);
    assert_eq!(rows[0]["attempts"], 1, "{}", rows[0]);
}

// ---------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_mid_stream_closes_the_upstream_connection_within_a_second() {
    // One chunk, then the upstream goes quiet; only the client's going away ends it.
    let mock =
        ScriptedUpstream::start(|_| Act::stream(&["first"], Duration::ZERO, StreamEnd::Stall))
            .await;
    let config = mock_cfg("cancel", &mock.base_url(), "RES_CANCEL_KEY");
    let server = server(&config, &[("RES_CANCEL_KEY", "sk-cancel")]).await;

    // A raw HTTP/1.1 client, so that closing its socket is exactly what happens.
    let body = json!({
        "model": "cancel/gpt-x",
        "stream": true,
        "messages": [{"role": "user", "content": "go"}]
    })
    .to_string();
    let mut sock = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        server.addr(),
        server.app_key(),
        body.len()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let read_first = async {
        let mut buf = [0u8; 4096];
        while !contains_bytes(&seen, b"first") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "stream ended early: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_first)
        .await
        .expect("the first chunk should arrive");
    assert!(
        contains_bytes(&seen, b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    drop(sock);
    let dropped = Instant::now();

    let conn = mock.requests()[0].conn;
    let closed = mock
        .wait_conn_closed(conn, Duration::from_secs(3))
        .await
        .unwrap_or_else(|| {
            panic!("the upstream connection is still open 3 s after the client went away")
        });
    let after = closed.closed.unwrap().saturating_duration_since(dropped);
    eprintln!("upstream connection closed {after:?} after the client went away");
    assert_eq!(closed.closed_by, Some(Closer::Peer), "{closed:?}");
    assert!(
        after <= Duration::from_secs(1),
        "the upstream connection closed {after:?} after the client went away (bound: 1 s)"
    );

    let rows = server
        .wait_for_calls("status=cancelled", 1, Duration::from_secs(10))
        .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["status"], "cancelled", "{}", rows[0]);
    assert_eq!(rows[0]["stream"], true, "{}", rows[0]);
    assert_eq!(rows[0]["provider"], "cancel", "{}", rows[0]);
}

fn mock_cfg(prefix: &str, base_url: &str, key_env: &str) -> String {
    format!(
        r#"
[[providers]]
prefix = "{prefix}"
plugin = "openai"
base_url = "{base_url}"
api_key_env = "{key_env}"
models = ["gpt-x"]
"#
    )
}
