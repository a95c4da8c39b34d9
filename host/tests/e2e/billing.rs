//! Credit billing against the real binary: holds refuse with 402 before a grant, real
//! prices are charged once per call record (in the call log's transaction), the ledger
//! sums to the balance, a burst cannot overspend beyond the documented bound, streams
//! are charged from their usage, failures are not charged, grants expire, and with
//! billing off nothing is refused.

use crate::common;

use common::scripted::{Act, ScriptedUpstream, StreamEnd};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const BILLING: &str = "[billing]\nenabled = true\ntop_up_url = \"https://pay.example/top-up\"\n";

/// $1 per Mtok of input and $2 per Mtok of output: 1000 and 2000 nano-credits a token.
const IN_NANOS: i64 = 1000;
const OUT_NANOS: i64 = 2000;

/// A mock answering with `usage` (prompt, completion): `fail` in the prompt gets a 500,
/// `stream: true` a stream with a usage chunk.
async fn mock(prompt: u64, completion: u64) -> ScriptedUpstream {
    ScriptedUpstream::start(move |r| {
        let body = r.json();
        if body.to_string().contains("fail") {
            return Act::error(500, "upstream broke");
        }
        if body.to_string().contains("cancel") {
            return Act::stream(&["a", "b"], Duration::from_millis(10), StreamEnd::Stall);
        }
        if body["stream"] == true {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                .to_string()
            };
            let usage = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
                "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}});
            return Act::Stream {
                events: vec![
                    chunk(json!({"content": "hel"}), Value::Null),
                    chunk(json!({"content": "lo"}), Value::Null),
                    chunk(json!({}), json!("stop")),
                    usage.to_string(),
                ],
                delay: Duration::from_millis(5),
                end: StreamEnd::Done,
            };
        }
        Act::json(200, openai_completion("gpt-x", "fine", prompt, completion))
    })
    .await
}

/// A server (billing per `config`) with provider `bill` on `mock`, priced by a rate.
async fn server(config: &str, mock: &ScriptedUpstream) -> TestServer {
    let mut opts = ServerOptions::new().plugin(OPENAI);
    if !config.is_empty() {
        opts = opts.config(config);
    }
    let s = TestServer::start(opts).await;
    let pid = s.stored_provider("bill", &mock.base_url()).await;
    s.add_key(pid, "k", "sk-bill-test-key", None).await;
    s.admin_ok(
        Method::PUT,
        "/api/admin/rates/bill/gpt-x",
        Some(&json!({"input_per_mtok": 1.0, "output_per_mtok": 2.0})),
        200,
    )
    .await;
    s
}

fn chat(text: &str, max_tokens: u64) -> Value {
    json!({"model": "bill/gpt-x", "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]})
}

async fn send(client: &reqwest::Client, s: &TestServer, body: &Value) -> reqwest::Response {
    client
        .post(s.url("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn credits(s: &TestServer, app: i64) -> Value {
    s.admin_ok(
        Method::GET,
        &format!("/api/admin/apps/{app}/credits"),
        None,
        200,
    )
    .await
}

async fn grant(s: &TestServer, app: i64, body: Value) -> Value {
    s.admin_ok(
        Method::POST,
        &format!("/api/admin/apps/{app}/credits"),
        Some(&body),
        201,
    )
    .await
}

/// Every ledger entry of `app`, newest first, following the cursor.
async fn ledger(s: &TestServer, app: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .admin_ok(
                Method::GET,
                &format!("/api/admin/ledger?app={app}&limit=7{cursor}"),
                None,
                200,
            )
            .await;
        assert_eq!(page["object"], "list");
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

fn nanos(v: &Value, field: &str) -> i64 {
    v[format!("{field}_nanos")]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field}_nanos in {v}"))
}

/// The ledger sums to the balance, and there is exactly one charge per charged call record
/// (of the ok records: those are the ones with a price).
async fn assert_books_balance(s: &TestServer, app: i64) -> (Vec<Value>, Vec<Value>) {
    let entries = ledger(s, app).await;
    let sum: i64 = entries.iter().map(|e| nanos(e, "amount")).sum();
    let balance = nanos(&credits(s, app).await, "balance");
    assert_eq!(sum, balance, "{entries:?}");
    if let Some(newest) = entries.first() {
        assert_eq!(nanos(newest, "balance_after"), balance);
    }
    let calls = s.all_calls(&format!("app={app}")).await;
    let charges: Vec<_> = entries.iter().filter(|e| e["kind"] == "charge").collect();
    let ok: Vec<_> = calls.iter().filter(|c| c["status"] == "ok").collect();
    assert_eq!(charges.len(), ok.len(), "one charge per ok call");
    let mut ids: Vec<i64> = charges
        .iter()
        .map(|e| e["call_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), charges.len(), "no call charged twice");
    for c in &ok {
        assert!(ids.contains(&c["id"].as_i64().unwrap()), "{c} not charged");
    }
    (entries, calls)
}

/// Waits until `n` calls of `app` are in the log (the call log writes in batches).
async fn app_calls(s: &TestServer, app: i64, n: usize) -> Vec<Value> {
    s.calls_matching_at_least(&format!("app={app}"), n).await
}

#[tokio::test]
async fn no_credit_is_402_a_grant_admits_and_each_call_is_charged_once() {
    let m = mock(5, 2).await;
    let s = server(BILLING, &m).await;
    let (app, key) = s.create_app_with_key("payer").await;
    let client = http_client_with_key(&key);

    let resp = send(&client, &s, &chat("hello", 10)).await;
    let err = expect_error(resp, 402, "insufficient_credits").await;
    assert_eq!(err["code"], "insufficient_credits");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("balance is 0.000000000") && msg.contains("https://pay.example/top-up"),
        "{msg}"
    );
    // Anthropic's shape names it a billing error.
    let resp = client
        .post(s.url("/v1/messages"))
        .json(&json!({"model": "bill/gpt-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 402);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "billing_error", "{v}");
    assert_eq!(m.calls(), 0, "nothing reached the upstream");

    // Bad grants name their field; an unknown app is 404.
    for (body, field) in [
        (json!({"amount": 0}), "amount"),
        (json!({"amount": "1.0000000001"}), "amount"),
        (json!({"amount": -3}), "amount"),
        (json!({"amount": 1, "expires_at": 1}), "expires_at"),
        (json!({"amount": 1, "expires_at": "tomorrow"}), "expires_at"),
        (json!({"amount": 1, "bogus": 1}), "bogus"),
    ] {
        let resp = s
            .admin(
                Method::POST,
                &format!("/api/admin/apps/{app}/credits"),
                Some(&body),
            )
            .await;
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], field, "{body}: {v}");
    }
    let resp = s
        .admin(
            Method::POST,
            "/api/admin/apps/9999/credits",
            Some(&json!({"amount": 1})),
        )
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        s.admin_get("/api/admin/apps/9999/credits").await.status(),
        404
    );

    let g = grant(&s, app, json!({"amount": "2.5", "note": "first top-up"})).await;
    assert_eq!(g["amount"], "2.500000000");
    assert_eq!(g["amount_nanos"], 2_500_000_000i64);
    assert_eq!(g["note"], "first top-up");
    grant(
        &s,
        app,
        json!({"amount": 0.5, "expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;

    for i in 0..3 {
        let resp = send(&client, &s, &chat(&format!("hello {i}"), 10)).await;
        assert_eq!(resp.status(), 200);
    }
    // A failed upstream call (500 on every attempt) is not charged.
    let resp = send(&client, &s, &chat("fail please", 10)).await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let calls = app_calls(&s, app, 6).await;
    assert_eq!(calls.len(), 6, "2 refused, 3 ok, 1 failed: {calls:?}");

    let (entries, _) = assert_books_balance(&s, app).await;
    let per_call = 5 * IN_NANOS + 2 * OUT_NANOS;
    let charges: Vec<_> = entries.iter().filter(|e| e["kind"] == "charge").collect();
    assert_eq!(charges.len(), 3);
    for c in &charges {
        assert_eq!(nanos(c, "amount"), -per_call, "{c}");
    }
    let view = credits(&s, app).await;
    assert_eq!(nanos(&view, "balance"), 3_000_000_000 - 3 * per_call);
    assert_eq!(nanos(&view, "held"), 0);
    assert_eq!(view["grants"].as_array().unwrap().len(), 2);
    // The expiring grant was consumed first.
    let soon = view["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| !g["expires_at"].is_null())
        .unwrap()
        .clone();
    assert_eq!(nanos(&soon, "remaining"), 500_000_000 - 3 * per_call);

    // The consumer view, on both paths.
    for path in ["/v1/credits", "/api/v2/credits"] {
        let v: Value = client
            .get(s.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["currency"], "credits", "{v}");
        assert_eq!(nanos(&v, "balance"), 3_000_000_000 - 3 * per_call);
        assert_eq!(v["available"], v["balance"]);
    }
    assert_eq!(
        http_client()
            .get(s.url("/v1/credits"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn a_burst_of_200_against_credit_for_about_10_calls_stays_within_the_bound() {
    // Each call is held for its request (~bytes/4 input tokens) plus max_tokens = 2, and
    // really uses 5 input and 20 output tokens: more than its hold.
    let m = mock(5, 20).await;
    let s = server(BILLING, &m).await;
    let (app, key) = s.create_app_with_key("burst").await;
    let body = chat("burst", 2);
    let bytes = serde_json::to_vec(&body).unwrap().len() as i64;
    let hold = (bytes + 3) / 4 * IN_NANOS + 2 * OUT_NANOS;
    let price = 5 * IN_NANOS + 20 * OUT_NANOS;
    let granted = 10 * hold;
    grant(&s, app, json!({"amount": format!("0.{granted:09}")})).await;

    let client = http_client_with_key(&key);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (client, url, body) = (client.clone(), s.url("/v1/chat/completions"), body.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0i64;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            402 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok + refused, 200);
    // Each admitted call needs `hold` of available credit (balance − held) and settles
    // for more than that, so admissions can never total more than granted / hold.
    assert!(
        (1..=10).contains(&ok),
        "{ok} admitted against credit for 10 holds"
    );
    app_calls(&s, app, 200).await;
    assert_books_balance(&s, app).await;
    let view = credits(&s, app).await;
    let balance = nanos(&view, "balance");
    assert_eq!(balance, granted - ok * price);
    assert_eq!(nanos(&view, "held"), 0, "every hold released");
    // The bound: below zero by at most what admitted calls used beyond their holds,
    // which is less than one call's price per call in flight.
    assert!(balance >= -(ok * (price - hold)), "balance {balance}");
    assert!(balance >= -(price * 200), "balance {balance}");
}

#[tokio::test]
async fn a_stream_is_charged_from_its_usage() {
    let m = mock(5, 2).await;
    let s = server(BILLING, &m).await;
    let (app, key) = s.create_app_with_key("streamer").await;
    grant(&s, app, json!({"amount": 1})).await;
    let client = http_client_with_key(&key);
    let mut body = chat("stream me", 10);
    body["stream"] = json!(true);
    let out = collect_sse(send(&client, &s, &body).await).await;
    assert_eq!(out.content(), "hello");
    let calls = app_calls(&s, app, 1).await;
    assert_eq!(calls[0]["input_tokens"], 7, "{calls:?}");
    let (entries, _) = assert_books_balance(&s, app).await;
    let charge = entries.iter().find(|e| e["kind"] == "charge").unwrap();
    assert_eq!(nanos(charge, "amount"), -(7 * IN_NANOS + 3 * OUT_NANOS));
    assert_eq!(charge["call_id"], calls[0]["id"]);
}

#[tokio::test]
async fn a_stream_cancelled_before_its_usage_is_charged_its_hold() {
    let m = mock(5, 2).await;
    let s = server(BILLING, &m).await;
    let (app, key) = s.create_app_with_key("canceller").await;
    grant(&s, app, json!({"amount": 1})).await;
    let client = http_client_with_key(&key);
    let mut body = chat("cancel me", 10);
    body["stream"] = json!(true);
    let bytes = serde_json::to_vec(&body).unwrap().len() as i64;
    let hold = (bytes + 3) / 4 * IN_NANOS + 10 * OUT_NANOS;
    let mut resp = send(&client, &s, &body).await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap();
    assert!(first.is_some());
    drop(resp);
    let calls = app_calls(&s, app, 1).await;
    assert_eq!(calls[0]["status"], "cancelled", "{calls:?}");
    let entries = ledger(&s, app).await;
    let charge = entries
        .iter()
        .find(|e| e["kind"] == "charge")
        .expect("the cancelled stream is charged");
    assert_eq!(nanos(charge, "amount"), -hold);
    assert_eq!(nanos(&credits(&s, app).await, "held"), 0);
}

#[tokio::test]
async fn an_expired_grant_leaves_with_an_expiry_entry() {
    let m = mock(5, 2).await;
    let s = server(BILLING, &m).await;
    let (app, key) = s.create_app_with_key("expiring").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    grant(&s, app, json!({"amount": 1, "expires_at": now + 2})).await;
    let client = http_client_with_key(&key);
    assert_eq!(send(&client, &s, &chat("before", 10)).await.status(), 200);
    app_calls(&s, app, 1).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    // Admission notices the expiry (the cached balance is good only until it).
    let resp = send(&client, &s, &chat("after", 10)).await;
    expect_error(resp, 402, "insufficient_credits").await;
    let view = credits(&s, app).await;
    assert_eq!(nanos(&view, "balance"), 0);
    let (entries, _) = assert_books_balance(&s, app).await;
    let expiry = entries
        .iter()
        .find(|e| e["kind"] == "expiry")
        .expect("an expiry entry");
    assert_eq!(
        nanos(expiry, "amount"),
        -(1_000_000_000 - 5 * IN_NANOS - 2 * OUT_NANOS)
    );
    assert_eq!(nanos(expiry, "balance_after"), 0);
    assert!(expiry["grant_id"].is_i64());
}

#[tokio::test]
async fn new_apps_get_the_configured_grant() {
    let m = mock(5, 2).await;
    let config = format!("{BILLING}new_app_grant = \"0.25\"\nnew_app_grant_days = 30\n");
    let s = server(&config, &m).await;
    let (app, key) = s.create_app_with_key("newcomer").await;
    let view = credits(&s, app).await;
    assert_eq!(view["balance"], "0.250000000");
    assert!(view["grants"][0]["expires_at"].is_i64(), "{view}");
    // The default app made at first start got it too.
    let default = credits(&s, 1).await;
    assert_eq!(default["balance"], "0.250000000", "{default}");
    let client = http_client_with_key(&key);
    assert_eq!(send(&client, &s, &chat("hi", 10)).await.status(), 200);
}

#[tokio::test]
async fn with_billing_off_nothing_is_refused_and_nothing_is_charged() {
    let m = mock(5, 2).await;
    let s = server("", &m).await;
    let (app, key) = s.create_app_with_key("free").await;
    let client = http_client_with_key(&key);
    for i in 0..3 {
        assert_eq!(
            send(&client, &s, &chat(&format!("hi {i}"), 10))
                .await
                .status(),
            200
        );
    }
    let calls = app_calls(&s, app, 3).await;
    assert_eq!(calls.len(), 3);
    // The cost is still recorded.
    assert!(calls.iter().all(|c| c["cost_micros"] == 9), "{calls:?}");
    assert!(ledger(&s, app).await.is_empty());
    let v: Value = client
        .get(s.url("/v1/credits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["balance"], "0.000000000");
}

#[tokio::test]
async fn a_cache_hit_is_charged_its_cache_hit_percent() {
    let m = mock(100, 50).await;
    let s = server(&format!("{BILLING}cache_hit_percent = 25\n"), &m).await;
    let (app, key) = s.create_app_with_key("cached").await;
    grant(&s, app, json!({"amount": 10})).await;
    let client = http_client_with_key(&key);
    let body = chat("the same question", 100);
    for expect in ["miss", "hit"] {
        let resp = client
            .post(s.url("/v1/chat/completions"))
            .header("x-aihub-cache", "ttl=60")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-aihub-cache"], expect);
    }
    assert_eq!(m.calls(), 1, "the hit did not reach the upstream");
    app_calls(&s, app, 2).await;
    let (entries, _) = assert_books_balance(&s, app).await;
    let mut charges: Vec<i64> = entries
        .iter()
        .filter(|e| e["kind"] == "charge")
        .map(|e| -nanos(e, "amount"))
        .collect();
    charges.sort();
    let full = 100 * IN_NANOS + 50 * OUT_NANOS;
    assert_eq!(charges, [full / 4, full], "{entries:?}");
}

/// A `Stripe-Signature` header for `payload`, made by the official `stripe` package (and
/// accepted by its own `construct_event`).
const STRIPE_SIGN: &str = r#"
import json, sys, time, stripe
payload, secret, skew = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = int(time.time()) - skew
sig = stripe.WebhookSignature._compute_signature("%d.%s" % (t, payload), secret)
header = "t=%d,v1=%s" % (t, sig)
if skew == 0:
    stripe.Webhook.construct_event(payload, header, secret)
print(json.dumps({"header": header}))
"#;

async fn stripe_header(payload: &str, secret: &str, skew: i64) -> String {
    let python = tokio::task::spawn_blocking(common::python_sdk::sdk_python)
        .await
        .unwrap();
    let args = vec![payload.to_string(), secret.to_string(), skew.to_string()];
    let out = tokio::task::spawn_blocking(move || {
        common::python_sdk::run_script(&python, STRIPE_SIGN, &args)
    })
    .await
    .unwrap();
    out["header"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_stripe_checkout_grants_its_credits_once() {
    const SECRET: &str = "whsec_test_0123456789abcdef";
    let m = mock(1, 1).await;
    let s = server(
        &format!("{BILLING}stripe_webhook_secret = \"{SECRET}\"\n"),
        &m,
    )
    .await;
    let (app, _) = s.create_app_with_key("buyer").await;
    let event = |id: &str, status: &str| {
        json!({"id": id, "object": "event", "type": "checkout.session.completed",
               "data": {"object": {"object": "checkout.session", "payment_status": status,
                                    "metadata": {"aihub_app_id": app.to_string(), "credits": "12.5"}}}})
        .to_string()
    };
    let post = |payload: String, header: String| {
        let s = &s;
        async move {
            s.client()
                .post(s.url("/api/billing/stripe"))
                .header("stripe-signature", header)
                .header("content-type", "application/json")
                .body(payload)
                .send()
                .await
                .unwrap()
        }
    };
    let paid = event("evt_paid_1", "paid");
    let header = stripe_header(&paid, SECRET, 0).await;
    let r = post(paid.clone(), header.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["granted"], true);
    assert_eq!(nanos(&credits(&s, app).await, "balance"), 12_500_000_000);
    // Stripe retries deliveries: the same event grants nothing more.
    let r = post(paid.clone(), header).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["granted"], false);
    assert_eq!(nanos(&credits(&s, app).await, "balance"), 12_500_000_000);
    // A wrong secret, a tampered body, an old timestamp: refused, nothing granted.
    let other = event("evt_paid_2", "paid");
    let wrong = stripe_header(&other, "whsec_wrong", 0).await;
    let e = expect_error(
        post(other.clone(), wrong).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "stripe-signature");
    let header = stripe_header(&other, SECRET, 0).await;
    let tampered = other.replace("12.5", "125");
    expect_error(post(tampered, header).await, 400, "invalid_request_error").await;
    let old = stripe_header(&other, SECRET, 600).await;
    expect_error(post(other.clone(), old).await, 400, "invalid_request_error").await;
    // An unpaid session is acknowledged, not granted.
    let unpaid = event("evt_unpaid", "unpaid");
    let r = post(unpaid.clone(), stripe_header(&unpaid, SECRET, 0).await).await;
    assert_eq!(r.json::<Value>().await.unwrap()["granted"], false);
    let (entries, _) = assert_books_balance(&s, app).await;
    let grants: Vec<_> = entries.iter().filter(|e| e["kind"] == "grant").collect();
    assert_eq!(grants.len(), 1, "{entries:?}");
    assert_eq!(grants[0]["note"], "stripe evt_paid_1");
}

async fn budget(s: &TestServer, path: &str, body: Value) -> Value {
    s.admin_ok(Method::PUT, path, Some(&body), 200).await
}

/// $0.003 a call (1000 input at $1/Mtok, 1000 output at $2/Mtok), far above its estimate.
const CALL_MICROS: i64 = 3000;

#[tokio::test]
async fn budgets_per_app_and_key_refuse_with_402_in_both_modes_and_survive_a_restart() {
    for config in ["", BILLING] {
        let m = mock(1000, 1000).await;
        let mut s = server(config, &m).await;
        let (app, key) = s.create_app_with_key("capped").await;
        if !config.is_empty() {
            grant(&s, app, json!({"amount": 100})).await;
        }
        let path = format!("/api/admin/apps/{app}/budget");
        let b = budget(&s, &path, json!({"daily_usd": "0.01", "monthly_usd": 50})).await;
        assert_eq!(
            (b["daily_usd"].as_str(), b["monthly_usd"].as_str()),
            (Some("0.010000"), Some("50.000000")),
            "{b}"
        );
        let client = http_client_with_key(&key);
        // 0, 3000, 6000 and 9000 µUSD spent are under $0.01 with the estimate: admitted.
        for i in 0..4 {
            let resp = send(&client, &s, &chat(&format!("spend {i}"), 10)).await;
            assert_eq!(resp.status(), 200, "call {i} ({config:?})");
        }
        let resp = send(&client, &s, &chat("one more", 10)).await;
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0 && retry <= 86_400, "{retry}");
        let err = expect_error(resp, 402, "insufficient_credits").await;
        assert_eq!(err["code"], "budget_exceeded", "{err}");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains("daily budget of $0.010000")
                && msg.contains("spent $0.012000")
                && msg.contains("resets at 20"),
            "{msg}"
        );
        let view = s.admin_ok(Method::GET, &path, None, 200).await;
        assert_eq!(view["spent"]["daily_usd"], "0.012000", "{view}");
        assert!(
            view["resets"]["daily"]
                .as_str()
                .unwrap()
                .ends_with("T00:00:00Z"),
            "{view}"
        );
        assert_eq!(m.calls(), 4, "the refused call reached no upstream");
        let metrics = s.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("aihub_payment_required_total{reason=\"budget_exceeded\"} 1"),
            "{metrics}"
        );

        // The spend is read back from the store after a restart.
        app_calls(&s, app, 5).await;
        s.restart().await;
        let resp = send(&client, &s, &chat("after restart", 10)).await;
        let err = expect_error(resp, 402, "insufficient_credits").await;
        assert_eq!(err["code"], "budget_exceeded");
        // Raising the cap admits again at once.
        budget(&s, &path, json!({"daily_usd": 1})).await;
        assert_eq!(send(&client, &s, &chat("raised", 10)).await.status(), 200);
        // `{}` removes the budget.
        let b = budget(&s, &path, json!({})).await;
        assert!(
            b["daily_usd"].is_null() && b["monthly_usd"].is_null(),
            "{b}"
        );

        // A key's cap binds that key only.
        let k2 = s
            .admin_ok(
                Method::POST,
                &format!("/api/admin/apps/{app}/keys"),
                Some(&json!({"name": "second"})),
                201,
            )
            .await;
        let (k2_id, k2_secret) = (
            k2["info"]["id"].as_i64().unwrap(),
            k2["key"].as_str().unwrap().to_string(),
        );
        budget(
            &s,
            &format!("/api/admin/apps/{app}/keys/{k2_id}/budget"),
            json!({"monthly_usd": "0.005"}),
        )
        .await;
        let second = http_client_with_key(&k2_secret);
        for i in 0..2 {
            assert_eq!(
                send(&second, &s, &chat(&format!("key {i}"), 10))
                    .await
                    .status(),
                200
            );
        }
        let err = expect_error(
            send(&second, &s, &chat("key over", 10)).await,
            402,
            "insufficient_credits",
        )
        .await;
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("key {k2_id} of app {app}")) && msg.contains("monthly budget"),
            "{msg}"
        );
        assert_eq!(
            send(&client, &s, &chat("first key still fine", 10))
                .await
                .status(),
            200
        );

        // Bad budgets name their field; unknown scopes are 404.
        for (body, field) in [
            (json!({"daily_usd": -1}), "daily_usd"),
            (json!({"daily_usd": "0.0000001"}), "daily_usd"),
            (json!({"monthly_usd": "lots"}), "monthly_usd"),
            (json!({"weekly_usd": 1}), "weekly_usd"),
        ] {
            let resp = s.admin(Method::PUT, &path, Some(&body)).await;
            assert_eq!(resp.status(), 400, "{body}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["param"], field, "{body}: {v}");
        }
        for p in [
            "/api/admin/apps/9999/budget".to_string(),
            format!("/api/admin/apps/{}/keys/{k2_id}/budget", app + 1000),
        ] {
            let resp = s
                .admin(Method::PUT, &p, Some(&json!({"daily_usd": 1})))
                .await;
            assert_eq!(resp.status(), 404, "{p}");
        }
        // Budgets count the recorded cost in both modes; with billing off nothing is charged.
        // 8 calls got a 200: 4 before the restart, then "raised", two on the second key
        // and one more on the first. Their records (and charges) are written in batches.
        s.calls_matching_at_least(&format!("app={app}&status=ok"), 8)
            .await;
        if config.is_empty() {
            assert!(ledger(&s, app).await.is_empty());
        } else {
            assert_books_balance(&s, app).await;
        }
    }
}

#[tokio::test]
async fn a_parallel_burst_cannot_pass_a_budget_beyond_the_bound() {
    let m = mock(1000, 1000).await;
    let s = server("", &m).await;
    let (app, key) = s.create_app_with_key("burst-cap").await;
    // Each call's estimate covers its real cost (max_tokens above the real output), so
    // the documented bound (real cost beyond the estimate, per call in flight) is zero:
    // the spend may not pass the cap at all, however many calls arrive at once.
    let body = json!({"model": "bill/gpt-x", "max_tokens": 3000, "messages": [{"role": "user", "content": "x"}]});
    let bytes = serde_json::to_vec(&body).unwrap().len() as i64;
    // µUSD: ~bytes/4 input tokens at $1/Mtok, 3000 output at $2/Mtok.
    let est = (bytes + 3) / 4 + 3000 * 2;
    let cap = 10 * est;
    budget(
        &s,
        &format!("/api/admin/apps/{app}/budget"),
        json!({"daily_usd": format!("0.{cap:06}")}),
    )
    .await;
    let client = http_client_with_key(&key);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, url, body) = (client.clone(), s.url("/v1/chat/completions"), body.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            402 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!((10..64).contains(&ok), "{ok} admitted");
    let calls = app_calls(&s, app, 64).await;
    let spent: i64 = calls
        .iter()
        .map(|c| c["cost_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(spent, ok * CALL_MICROS);
    assert!(spent <= cap, "spent {spent} > cap {cap}");
}

#[tokio::test]
async fn ledger_exports_csv_and_takes_refunds_and_adjustments() {
    let m = mock(1000, 1000).await;
    let s = server(BILLING, &m).await;
    let (app, key) = s.create_app_with_key("books").await;
    grant(&s, app, json!({"amount": 1, "note": "=cmd|' /C calc'!A0"})).await;
    let client = http_client_with_key(&key);
    assert_eq!(
        send(&client, &s, &chat("charge me", 10)).await.status(),
        200
    );
    let call = app_calls(&s, app, 1).await[0]["id"].as_i64().unwrap();
    let refunds = format!("/api/admin/apps/{app}/credits/refunds");
    let r = s
        .admin_ok(
            Method::POST,
            &refunds,
            Some(&json!({"call_id": call, "amount": "0.001", "note": "slow"})),
            201,
        )
        .await;
    assert_eq!(
        (
            r["kind"].as_str(),
            r["amount"].as_str(),
            r["call_id"].as_i64()
        ),
        (Some("refund"), Some("0.001000000"), Some(call)),
        "{r}"
    );
    // More than is left of the charge (0.002) is refused; the rest can be refunded once.
    for (body, status, field) in [
        (
            json!({"call_id": call, "amount": "0.0021"}),
            400,
            Some("amount"),
        ),
        (json!({"call_id": 987654}), 404, None),
        (json!({"amount": 1}), 400, Some("call_id")),
    ] {
        let resp = s.admin(Method::POST, &refunds, Some(&body)).await;
        assert_eq!(resp.status(), status, "{body}");
        if let Some(f) = field {
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["param"], f, "{body}: {v}");
        }
    }
    let r = s
        .admin_ok(Method::POST, &refunds, Some(&json!({"call_id": call})), 201)
        .await;
    assert_eq!(r["amount"], "0.002000000");
    assert_eq!(
        s.admin(Method::POST, &refunds, Some(&json!({"call_id": call})))
            .await
            .status(),
        400
    );

    let adjust = format!("/api/admin/apps/{app}/credits/adjustments");
    let a = s
        .admin_ok(
            Method::POST,
            &adjust,
            Some(&json!({"amount": "-0.25", "note": "manual correction"})),
            201,
        )
        .await;
    assert_eq!(
        (a["kind"].as_str(), a["amount"].as_str()),
        (Some("adjustment"), Some("-0.250000000")),
        "{a}"
    );
    s.admin_ok(
        Method::POST,
        &adjust,
        Some(&json!({"amount": 0.5, "note": "goodwill"})),
        201,
    )
    .await;
    for (body, field) in [
        (json!({"amount": "-1"}), "note"),
        (json!({"amount": "-1", "note": " "}), "note"),
        (json!({"amount": 0, "note": "x"}), "amount"),
        (json!({"amount": "1.0000000001", "note": "x"}), "amount"),
    ] {
        let resp = s.admin(Method::POST, &adjust, Some(&body)).await;
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], field, "{body}: {v}");
    }
    let (entries, _) = assert_books_balance(&s, app).await;
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "adjustment",
            "adjustment",
            "refund",
            "refund",
            "charge",
            "grant"
        ]
    );
    assert_eq!(nanos(&credits(&s, app).await, "balance"), 1_250_000_000);

    // The same entries as CSV, newest first; amounts keep their sign, notes are defused.
    let resp = s
        .admin_get(&format!("/api/admin/ledger?app={app}&format=csv"))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[..4], ["id", "app_id", "kind", "amount"]);
    let records: Vec<csv::StringRecord> = rows.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 6, "{text}");
    let sum: i64 = records.iter().map(|r| r[4].parse::<i64>().unwrap()).sum();
    assert_eq!(sum, 1_250_000_000);
    assert_eq!(&records[0][3], "0.500000000");
    assert_eq!(&records[1][3], "-0.250000000");
    assert!(records[5][9].starts_with("'="), "formula defused: {text}");
    // Paged exports: limit caps the rows.
    let text = s
        .admin_get(&format!("/api/admin/ledger?app={app}&format=csv&limit=2"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    for bad in ["format=xml", "format=csv&limit=0"] {
        let resp = s.admin_get(&format!("/api/admin/ledger?{bad}")).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

/// Checks `x-aihub-signature: t=..,v1=..` over `"{t}.{body}"`.
fn signed_by(r: &common::scripted::ScriptedRequest, secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(sig) = r.header("x-aihub-signature") else {
        return false;
    };
    let mut t = "";
    let mut v1 = "";
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v,
            Some(("v1", v)) => v1 = v,
            _ => {}
        }
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

#[tokio::test]
async fn alerts_are_signed_retried_and_delivered_at_least_once() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    const SECRET: &str = "whsec-test-alerts-0123456789";
    let seen = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let seen = seen.clone();
        // The first delivery fails: it must come again.
        ScriptedUpstream::start(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Act::error(500, "receiver hiccup")
            } else {
                Act::json(200, json!({"ok": true}))
            }
        })
        .await
    };
    let accept = Arc::new(AtomicBool::new(false));
    let flaky = {
        let accept = accept.clone();
        ScriptedUpstream::start(move |_| {
            if accept.load(Ordering::SeqCst) {
                Act::json(200, openai_completion("gpt-x", "fine", 1, 1))
            } else {
                Act::error(401, "Incorrect API key provided")
            }
        })
        .await
    };
    let m = mock(1000, 1000).await;
    let config = format!(
        "{BILLING}low_balance_credits = \"0.01\"\nwebhook_url = \"http://{}/hooks\"\nwebhook_secret = \"{SECRET}\"\n\
         [resilience]\nrecheck_initial_ms = 300\nrecheck_max_ms = 1000\n",
        receiver.addr()
    );
    let s = server(&config, &m).await;
    // 0.012 credits: 0.003 a call, low after the first, exhausted after the fourth.
    let (app, key) = s.create_app_with_key("alerted").await;
    grant(&s, app, json!({"amount": "0.012"})).await;
    let client = http_client_with_key(&key);
    for i in 0..4 {
        assert_eq!(
            send(&client, &s, &chat(&format!("a{i}"), 10))
                .await
                .status(),
            200
        );
    }
    // A budget reached by a call's cost.
    let (app2, key2) = s.create_app_with_key("budgeted").await;
    grant(&s, app2, json!({"amount": 1})).await;
    budget(
        &s,
        &format!("/api/admin/apps/{app2}/budget"),
        json!({"daily_usd": "0.003"}),
    )
    .await;
    assert_eq!(
        send(&http_client_with_key(&key2), &s, &chat("b", 10))
            .await
            .status(),
        200
    );
    // A key its upstream refuses, then accepts again (the background check).
    let pid = s.stored_provider("flaky", &flaky.base_url()).await;
    s.add_key(pid, "refused", "sk-flaky-test-key-123", None)
        .await;
    let resp = client
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model": "flaky/gpt-x", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert!(!resp.status().is_success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    accept.store(true, Ordering::SeqCst);

    let want = [
        "credits.low",
        "credits.exhausted",
        "budget.reached",
        "credential.invalid",
        "credential.recovered",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let reqs = receiver.requests();
        // Accepted deliveries: every request but the first (which got the 500).
        let ok: Vec<Value> = reqs.iter().skip(1).map(|r| r.json()).collect();
        let first_retried = reqs
            .first()
            .is_some_and(|f| ok.iter().any(|e| e["id"] == f.json()["id"]));
        if first_retried && want.iter().all(|w| ok.iter().any(|e| e["type"] == *w)) {
            break reqs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alerts missing; got {:#?}",
            reqs.iter().map(|r| r.json()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for r in &delivered {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hooks"));
        assert!(signed_by(r, SECRET), "bad signature on {:?}", r.headers);
        assert!(!signed_by(r, "another-secret-0123456789"));
        let e = r.json();
        assert_eq!(r.header("x-aihub-event"), e["type"].as_str());
        assert_eq!(r.header("x-aihub-delivery"), e["id"].as_str());
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("sk-flaky-test-key-123") && !body.contains(SECRET),
            "{body}"
        );
    }
    // The refused first delivery came again, with the same id.
    let first = delivered[0].json();
    assert!(
        delivered
            .iter()
            .skip(1)
            .any(|r| r.json()["id"] == first["id"]),
        "{first} not retried"
    );
    let by_type = |t: &str| {
        delivered
            .iter()
            .skip(1)
            .map(|r| r.json())
            .find(|e| e["type"] == t)
            .unwrap()
    };
    assert_eq!(by_type("credits.low")["data"]["app_id"], app);
    assert_eq!(by_type("credits.exhausted")["data"]["balance_nanos"], 0);
    let b = by_type("budget.reached");
    assert_eq!(
        (b["data"]["app_id"].as_i64(), b["data"]["period"].as_str()),
        (Some(app2), Some("daily")),
        "{b}"
    );
    let inv = by_type("credential.invalid");
    assert_eq!(
        (
            inv["data"]["provider"].as_str(),
            inv["data"]["credential"].as_str()
        ),
        (Some("flaky"), Some("refused")),
        "{inv}"
    );
    // Each event once (besides the retried one): no duplicates from the outbox.
    let mut ids: Vec<String> = delivered
        .iter()
        .skip(1)
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(
        ids.len(),
        n,
        "an accepted event was delivered twice: {:#?}",
        delivered.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("aihub_alerts_delivered_total"),
        "{metrics}"
    );
}
