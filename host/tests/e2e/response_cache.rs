//! The exact response cache against the real binary: a miss then a hit (whole and
//! streamed) with the upstream called once, `no-store`, per-request TTLs, per-app scope,
//! and memory that stays under its bound.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn counting_mock() -> impl Fn(&Recorded) -> MockReply + Send + Sync + 'static {
    |req| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("m").to_string();
        if body["stream"].as_bool().unwrap_or(false) {
            MockReply::sse(
                openai_stream_chunks(&model, &["cached", " words"], Some((5, 2))),
                Duration::ZERO,
                SseEnd::Done,
            )
        } else {
            MockReply::json(200, openai_completion(&model, "cached answer", 5, 2))
        }
    }
}

async fn start(extra: &str) -> (TestServer, MockUpstream, MockUpstream) {
    let cached = MockUpstream::start(counting_mock()).await;
    let plain = MockUpstream::start(counting_mock()).await;
    let config = format!(
        "{}cache_ttl_seconds = 600\n{}{extra}",
        mock_provider_config("cached", &cached, "CACHED_KEY"),
        mock_provider_config("plain", &plain, "PLAIN_KEY"),
    );
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(config)
            .env("CACHED_KEY", "sk-cached-0001")
            .env("PLAIN_KEY", "sk-plain-0002"),
    )
    .await;
    (s, cached, plain)
}

fn cache_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-aihub-cache")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

async fn send(
    client: &reqwest::Client,
    s: &TestServer,
    body: &Value,
    header: Option<&str>,
) -> reqwest::Response {
    let mut req = client.post(s.url("/v1/chat/completions")).json(body);
    if let Some(h) = header {
        req = req.header("x-aihub-cache", h);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_miss_then_a_hit_whole_and_streamed_with_the_upstream_called_once() {
    let (s, cached, _) = start("").await;
    let body = chat_body("cached/gpt-x", "what is cached?");
    let first = send(s.client(), &s, &body, None).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let first: Value = first.json().await.unwrap();
    // Field order and `user` do not change the answer, so they do not change the key.
    let mut again =
        json!({"user": "someone", "messages": body["messages"], "model": "cached/gpt-x"});
    again["stream"] = json!(false);
    let second = send(s.client(), &s, &again, None).await;
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    assert_eq!(cached.calls(), 1);

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let a = send(s.client(), &s, &stream, None).await;
    assert_eq!(cache_header(&a).as_deref(), Some("miss"));
    let a = a.bytes().await.unwrap();
    let b = send(s.client(), &s, &stream, None).await;
    assert_eq!(cache_header(&b).as_deref(), Some("hit"));
    assert!(content_type(&b).starts_with("text/event-stream"));
    assert_eq!(b.bytes().await.unwrap(), a, "the same stream, replayed");
    assert_eq!(cached.calls(), 2);
    assert!(String::from_utf8_lossy(&a).ends_with("data: [DONE]\n\n"));

    // `no-store` goes to the upstream and keeps nothing.
    let r = send(s.client(), &s, &body, Some("no-store")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(cache_header(&r), None);
    assert_eq!(cached.calls(), 3);

    // Another app does not see this app's answers.
    let (_, key) = s.create_app_with_key("other").await;
    let r = send(&http_client_with_key(&key), &s, &body, None).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    assert_eq!(cached.calls(), 4);

    // Hits are recorded as calls, with no upstream cost.
    let calls = s.calls_at_least(7).await;
    let hits: Vec<&Value> = calls.iter().filter(|c| c["cache_hit"] == true).collect();
    assert_eq!(hits.len(), 2, "{calls:?}");
    assert!(hits
        .iter()
        .all(|c| c["cost_micros"] == 0 && c["attempts"] == 0));
    assert!(hits.iter().all(|c| c["provider"] == "cached"));
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("aihub_cache_lookups_total{result=\"hit\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_can_ask_for_caching_and_bad_directives_are_refused() {
    let (s, _, plain) = start("").await;
    let body = chat_body("plain/gpt-x", "not cached by default");
    for _ in 0..2 {
        let r = send(s.client(), &s, &body, None).await;
        assert_eq!(cache_header(&r), None);
    }
    assert_eq!(plain.calls(), 2);
    let r = send(s.client(), &s, &body, Some("ttl=60")).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let r = send(s.client(), &s, &body, Some("ttl=60")).await;
    assert_eq!(cache_header(&r).as_deref(), Some("hit"));
    assert_eq!(plain.calls(), 3);
    let e = expect_error(
        send(s.client(), &s, &body, Some("forever")).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "x-aihub-cache");
}

#[tokio::test]
async fn cache_memory_stays_under_its_bound_with_many_distinct_entries() {
    let (s, _, _) = start("\n[cache]\nenabled = true\nmax_bytes = 100000\n").await;
    let filler = "x".repeat(1000);
    for i in 0..300 {
        let r = send(
            s.client(),
            &s,
            &chat_body("echo/echo-1", &format!("{i} {filler}")),
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    }
    let metrics = s.get("/metrics").await.text().await.unwrap();
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aihub_cache_bytes "))
        .unwrap_or_else(|| panic!("no cache gauge in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(bytes > 0 && bytes <= 100_000, "{bytes} bytes held");
    // The most recent answer is still there.
    let r = send(
        s.client(),
        &s,
        &chat_body("echo/echo-1", &format!("299 {filler}")),
        None,
    )
    .await;
    assert_eq!(cache_header(&r).as_deref(), Some("hit"));
}
