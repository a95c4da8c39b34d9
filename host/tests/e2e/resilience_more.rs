//! More resilience, end to end (issue 10): a 2xx whose body cannot be read is not retried
//! (the upstream did the work and billed it), and a provider with a single key recovers
//! from an ejection through a half-open probe, without a restart.

use crate::common;

use common::scripted::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn server(config: &str) -> TestServer {
    TestServer::start(ServerOptions::new().plugin(OPENAI).config(config)).await
}

async fn chat(server: &TestServer, model: &str, marker: &str) -> (u16, Value) {
    let resp = server.post_chat(&chat_body(model, marker)).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

async fn health(server: &TestServer, prefix: &str) -> Value {
    let list = server
        .admin_ok(Method::GET, "/api/admin/providers", None, 200)
        .await;
    list["data"]
        .as_array()
        .and_then(|d| d.iter().find(|p| p["prefix"] == prefix))
        .map(|p| p["credentials"][0]["health"].clone())
        .unwrap_or_else(|| panic!("no provider {prefix}: {list:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_whose_body_is_not_json_is_answered_502_once_without_a_retry() {
    let mock = MockUpstream::always(MockReply::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: b"not json".to_vec(),
    })
    .await;
    let server = server("").await;
    let pid = server.stored_provider("nj", &mock.base_url()).await;
    server
        .add_key(pid, "a", &format!("sk-a-{}", random_hex()), None)
        .await;
    server
        .add_key(pid, "b", &format!("sk-b-{}", random_hex()), None)
        .await;

    let resp = server.post_chat(&chat_body("nj/gpt-x", "hi")).await;
    let body = expect_error(resp, 502, "upstream_error").await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("not retried"), "{body:#}");
    assert_eq!(body["code"], "upstream_bad_response", "{body:#}");
    assert_eq!(
        mock.calls(),
        1,
        "the upstream answered 200: it must be called once"
    );

    let rows = server
        .wait_for_calls("provider=nj", 1, Duration::from_secs(5))
        .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["attempts"], 1, "{}", rows[0]);
    assert_eq!(rows[0]["http_status"], 502, "{}", rows[0]);
    // The key answered: it is not penalised.
    let h = health(&server, "nj").await;
    assert_eq!(h["state"], "healthy", "{h:#}");
    assert_eq!(h["consecutive_failures"], 0, "{h:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_key_ejected_after_five_failures_recovers_through_a_half_open_probe() {
    let heal = Arc::new(AtomicBool::new(false));
    let mock = {
        let heal = heal.clone();
        ScriptedUpstream::start(move |_| {
            if heal.load(Ordering::SeqCst) {
                Act::ok("fine")
            } else {
                Act::error(500, "upstream overloaded")
            }
        })
        .await
    };
    let server = server(
        "[resilience]\neject_after_failures = 5\neject_cooldown_ms = 200\nbackoff_base_ms = 1\nbackoff_max_ms = 5\n",
    )
    .await;
    let pid = server.stored_provider("lone", &mock.base_url()).await;
    server
        .add_key(pid, "only", &format!("sk-only-{}", random_hex()), None)
        .await;

    let mut n = 0;
    while mock.calls() < 5 {
        assert!(n < 10, "the key was not tried 5 times in 10 requests");
        let (status, body) = chat(&server, "lone/gpt-x", &format!("f-{n}")).await;
        assert_eq!(status, 502, "{body}");
        n += 1;
    }
    let h = health(&server, "lone").await;
    assert_eq!(h["state"], "ejected", "{h:#}");

    // A probe after the cooldown that fails ejects it again, for twice as long.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Half-open: of four concurrent calls exactly one reaches the upstream.
    let before = mock.calls();
    let results = futures_util::future::join_all(
        ["probe-a", "probe-b", "probe-c", "probe-d"].map(|m| chat(&server, "lone/gpt-x", m)),
    )
    .await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        mock.calls(),
        before + 1,
        "half-open: exactly one probing call; {results:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        1,
        "{results:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 502 || *s == 503),
        "{results:?}"
    );
    let h = health(&server, "lone").await;
    assert_eq!(h["state"], "ejected", "{h:#}");

    // The upstream recovers: after the (doubled) cooldown calls succeed again.
    heal.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = chat(&server, "lone/gpt-x", "after").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "the lone key never recovered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = health(&server, "lone").await;
    assert_eq!(h["state"], "healthy", "{h:#}");
    for i in 0..3 {
        let (status, body) = chat(&server, "lone/gpt-x", &format!("ok-{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_call_record_keeps_every_attempts_error() {
    let mock = MockUpstream::always(MockReply::openai_error(
        500,
        "the model is overloaded",
        "server_error",
    ))
    .await;
    let server =
        server("[resilience]\nmax_attempts = 3\nbackoff_base_ms = 1\nbackoff_max_ms = 5\n").await;
    let pid = server.stored_provider("many", &mock.base_url()).await;
    server
        .add_key(pid, "a", &format!("sk-a-{}", random_hex()), None)
        .await;
    server
        .add_key(pid, "b", &format!("sk-b-{}", random_hex()), None)
        .await;
    let (status, _) = chat(&server, "many/gpt-x", "fail").await;
    assert_eq!(status, 502);
    let rows = server
        .wait_for_calls("?provider=many", 1, Duration::from_secs(10))
        .await;
    let message = rows[0]["error_message"].as_str().unwrap_or_default();
    for n in 1..=rows[0]["attempts"].as_i64().unwrap() {
        assert!(
            message.contains(&format!("attempt {n}: ")),
            "attempt {n} missing: {message}"
        );
    }
    assert!(rows[0]["attempts"].as_i64().unwrap() >= 2, "{:#}", rows[0]);
    assert!(message.contains("overloaded"), "{message}");
}

/// An upstream that answers 200 and then sends an error as its first event has failed
/// before the client saw anything: the call fails over to the next key like any failed
/// attempt, and the client gets a clean stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_whose_first_event_is_an_error_fails_over() {
    let a = format!("sk-a-{}", random_hex());
    let b = format!("sk-b-{}", random_hex());
    let mock = {
        let a = a.clone();
        ScriptedUpstream::start(move |r| {
            if r.bearer() == Some(a.as_str()) {
                Act::Stream {
                    events: vec![
                        r#"{"error":{"message":"upstream overloaded","type":"server_error","code":"502"}}"#
                            .to_string(),
                    ],
                    delay: Duration::from_millis(1),
                    end: StreamEnd::Done,
                }
            } else {
                Act::stream(&["fine"], Duration::from_millis(1), StreamEnd::Done)
            }
        })
        .await
    };
    let server = server("[resilience]\nbackoff_base_ms = 1\nbackoff_max_ms = 5\n").await;
    let pid = server.stored_provider("fs", &mock.base_url()).await;
    server.add_key(pid, "a", &a, None).await;
    server.add_key(pid, "b", &b, None).await;
    for i in 0..4 {
        let mut body = chat_body("fs/gpt-x", &format!("stream {i}"));
        body["stream"] = json!(true);
        let resp = server.post_chat(&body).await;
        assert_eq!(resp.status(), 200);
        let out = collect_sse(resp).await;
        assert!(out.errors().is_empty(), "call {i}: {:?}", out.events);
        assert!(out.done, "call {i}: {:?}", out.events);
        assert_eq!(out.content(), "fine", "call {i}");
    }
    // Key a was tried (and failed over from) at least once.
    assert!(!mock.requests_with_key(&a).is_empty());
    let rows = server
        .wait_for_calls("?provider=fs", 4, Duration::from_secs(10))
        .await;
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:#?}");
    assert!(rows.iter().any(|r| r["attempts"] == 2), "{rows:#?}");
}
