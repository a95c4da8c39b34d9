//! Rate limits against the real binary: requests, tokens and concurrency per app and per
//! key, set live through the admin API, refused with 429 and `Retry-After`, and counted
//! down in OpenAI's `x-ratelimit-*` headers.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

async fn limits(s: &TestServer, path: &str, body: Value) -> Value {
    s.admin_ok(Method::PUT, path, Some(&body), 200).await
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

async fn chat(client: &reqwest::Client, s: &TestServer, text: &str) -> reqwest::Response {
    client
        .post(s.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", text))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_app_with_rpm_30_gets_30_answers_then_429s_with_headers_counting_down() {
    let s = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let (app, key) = s.create_app_with_key("limited").await;
    let set = limits(
        &s,
        &format!("/api/admin/apps/{app}/limits"),
        json!({"rpm": 30}),
    )
    .await;
    assert_eq!(set["rpm"], 30);
    assert_eq!(set["effective"]["rpm"], 30);
    let client = http_client_with_key(&key);
    for i in 0..30u64 {
        let resp = chat(&client, &s, "hi").await;
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(
            header(&resp, "x-ratelimit-limit-requests").as_deref(),
            Some("30")
        );
        assert_eq!(
            header(&resp, "x-ratelimit-remaining-requests"),
            Some((29 - i).to_string()),
            "request {i}"
        );
        assert!(header(&resp, "x-ratelimit-reset-requests").is_some());
    }
    let resp = chat(&client, &s, "hi").await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    assert_eq!(
        header(&resp, "x-ratelimit-remaining-requests").as_deref(),
        Some("0")
    );
    let err = expect_error(resp, 429, "rate_limit_error").await;
    assert_eq!(err["code"], "rate_limit_exceeded");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("app 'limited' allows 30 requests per minute") && msg.contains("retry in"),
        "{msg}"
    );
    // Anthropic's shape on the Messages path.
    let resp = client
        .post(s.url("/v1/messages"))
        .json(&json!({"model": "echo/echo-1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    // Another app is not affected; the limited call was recorded.
    assert_eq!(chat(s.client(), &s, "hi").await.status(), 200);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("aihub_rate_limited_total{kind=\"rpm\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_tpm_limit_refuses_a_large_request_and_admits_small_ones() {
    let s = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let (app, key) = s.create_app_with_key("tokens").await;
    limits(
        &s,
        &format!("/api/admin/apps/{app}/limits"),
        json!({"tpm": 500}),
    )
    .await;
    let client = http_client_with_key(&key);
    let big = "word ".repeat(1000);
    let e = expect_error(chat(&client, &s, &big).await, 429, "rate_limit_error").await;
    assert!(
        e["message"].as_str().unwrap().contains("estimated at"),
        "{e}"
    );
    for _ in 0..3 {
        let resp = chat(&client, &s, "small").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "x-ratelimit-limit-tokens").as_deref(),
            Some("500")
        );
        let left: u64 = header(&resp, "x-ratelimit-remaining-tokens")
            .unwrap()
            .parse()
            .unwrap();
        assert!(left < 500, "{left}");
    }
    // A max_tokens that cannot fit is refused up front too.
    let mut body = chat_body("echo/echo-1", "x");
    body["max_tokens"] = json!(100_000);
    let resp = client
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 429, "rate_limit_error").await;
}

#[tokio::test]
async fn a_concurrency_cap_of_2_holds_while_slow_streams_run() {
    let slow = MockUpstream::start(|req| {
        let model = req.json()["model"].as_str().unwrap_or("m").to_string();
        MockReply::sse(
            openai_stream_chunks(&model, &["a", "b", "c"], None),
            Duration::from_millis(300),
            SseEnd::Done,
        )
    })
    .await;
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(OPENAI)
            .config(mock_provider_config("slow", &slow, "SLOW_KEY"))
            .env("SLOW_KEY", "sk-slow-0001"),
    )
    .await;
    let (app, key) = s.create_app_with_key("parallel").await;
    limits(
        &s,
        &format!("/api/admin/apps/{app}/limits"),
        json!({"max_concurrent": 2}),
    )
    .await;
    let client = http_client_with_key(&key);
    let mut body = chat_body("slow/gpt-x", "x");
    body["stream"] = json!(true);
    let start = |c: reqwest::Client, url: String, b: Value| async move {
        let resp = c.post(url).json(&b).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        collect_sse(resp).await
    };
    let url = s.url("/v1/chat/completions");
    let a = tokio::spawn(start(client.clone(), url.clone(), body.clone()));
    let b = tokio::spawn(start(client.clone(), url.clone(), body.clone()));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let resp = client.post(&url).json(&body).send().await.unwrap();
    let e = expect_error(resp, 429, "rate_limit_error").await;
    assert!(
        e["message"].as_str().unwrap().contains("2 calls in flight"),
        "{e}"
    );
    assert!(a.await.unwrap().done);
    assert!(b.await.unwrap().done);
    // Both finished: their slots are free again.
    let resp = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(collect_sse(resp).await.done);
}

#[tokio::test]
async fn a_key_limit_tighter_than_its_apps_and_live_changes() {
    let s = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let (app, key, kid) = s.create_app_with_key_id("keyed").await;
    limits(
        &s,
        &format!("/api/admin/apps/{app}/limits"),
        json!({"rpm": 100}),
    )
    .await;
    let set = limits(
        &s,
        &format!("/api/admin/apps/{app}/keys/{kid}/limits"),
        json!({"rpm": 2, "models": {"echo/echo-1": {"tpm": 100000}}}),
    )
    .await;
    assert_eq!(set["models"]["echo/echo-1"]["tpm"], 100000);
    let client = http_client_with_key(&key);
    for _ in 0..2 {
        let resp = chat(&client, &s, "x").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "x-ratelimit-limit-requests").as_deref(),
            Some("2"),
            "the tightest limit is shown"
        );
    }
    let e = expect_error(chat(&client, &s, "x").await, 429, "rate_limit_error").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("key {kid} of app 'keyed'")),
        "{e}"
    );
    // Cleared live: the next call is admitted at once.
    limits(
        &s,
        &format!("/api/admin/apps/{app}/keys/{kid}/limits"),
        json!({"rpm": null}),
    )
    .await;
    let resp = chat(&client, &s, "x").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "x-ratelimit-limit-requests").as_deref(),
        Some("100")
    );
    // Tightened live: refused at once.
    limits(
        &s,
        &format!("/api/admin/apps/{app}/limits"),
        json!({"rpm": 1}),
    )
    .await;
    assert_eq!(chat(&client, &s, "x").await.status(), 429);
    // Bad bodies name the field; unknown apps and keys are 404.
    let resp = s
        .admin(
            Method::PUT,
            &format!("/api/admin/apps/{app}/limits"),
            Some(&json!({"rpm": -1})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "rpm", "{v}");
    let resp = s
        .admin(
            Method::PUT,
            "/api/admin/apps/9999/limits",
            Some(&json!({"rpm": 1})),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let resp = s
        .admin(
            Method::GET,
            &format!("/api/admin/apps/{app}/keys/9999/limits"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn config_defaults_apply_to_every_app_without_limits_of_its_own() {
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .config("[limits]\nrpm = 2\n"),
    )
    .await;
    let (app, key) = s.create_app_with_key("defaulted").await;
    let v = s
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{app}/limits"),
            None,
            200,
        )
        .await;
    assert_eq!(v["effective"]["rpm"], 2, "{v}");
    assert!(v.get("rpm").is_none(), "no limit of its own: {v}");
    let client = http_client_with_key(&key);
    assert_eq!(chat(&client, &s, "x").await.status(), 200);
    assert_eq!(chat(&client, &s, "x").await.status(), 200);
    assert_eq!(chat(&client, &s, "x").await.status(), 429);
}
