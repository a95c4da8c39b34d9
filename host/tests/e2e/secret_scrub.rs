//! Issue 10, finding 6: an upstream error body that echoes the key must not leak it. The
//! key (and any 12-byte fragment of it) is scrubbed from the client's error, the
//! credential's `last_error` (admin API and store), the call log's `error_message`, the
//! credential test's answer and the server's log, while the message stays useful.

use crate::common;

use common::scripted::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The first 12-byte window of `secret` that `text` contains, if any.
fn leak<'a>(text: &str, secret: &'a str) -> Option<&'a str> {
    (0..=secret.len().saturating_sub(12))
        .map(|i| &secret[i..i + 12])
        .find(|w| text.contains(w))
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        if let Some(w) = leak(text, s) {
            panic!("{what} leaks the secret (fragment {w:?}): {text}");
        }
    }
}

async fn provider(server: &TestServer, prefix: &str, base_url: &str, secret: &str) -> (i64, i64) {
    let pid = server.stored_provider(prefix, base_url).await;
    (pid, server.add_key(pid, "k", secret, None).await)
}

async fn chat(server: &TestServer, model: &str, stream: bool) -> (u16, String) {
    let mut body = chat_body(model, "hello");
    body["stream"] = json!(stream);
    let resp = server.post_chat(&body).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn message_of(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_echoes_the_key_leaks_it_nowhere() {
    // An OpenAI-style key, echoed whole after `Bearer` in a 401.
    let openai_key = format!("sk-test-SECRETVALUE123{}", random_hex());
    // A key with no recognisable shape: only the known-secret pass can catch it.
    let opaque_key = format!("zq{}{}", random_hex(), "Xy7Wv6Ut5");
    let auth = ScriptedUpstream::start(|r| {
        let sent = r.header("authorization").unwrap_or_default().to_string();
        Act::json(
            401,
            json!({"error": {
                "message": format!("Incorrect API key provided: {sent}. You can find your API key at https://platform.example/account/api-keys."),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        )
    })
    .await;
    let boom = ScriptedUpstream::start(|r| {
        let key = r.bearer().unwrap_or_default().to_string();
        Act::error(
            500,
            &format!("internal error while using credential {key} (retry later)"),
        )
    })
    .await;
    let slow = ScriptedUpstream::start(|r| {
        let key = r.bearer().unwrap_or_default();
        let fragment = &key[..key.len().min(20)];
        Act::error(429, &format!("quota exceeded for {fragment}... slow down"))
            .header("retry-after", "1")
    })
    .await;
    let server = TestServer::start(ServerOptions::new().plugin(OPENAI)).await;
    let (auth_pid, auth_cid) = provider(&server, "auth", &auth.base_url(), &openai_key).await;
    provider(&server, "boom", &boom.base_url(), &opaque_key).await;
    provider(&server, "slow", &slow.base_url(), &opaque_key).await;
    let secrets = [openai_key.as_str(), opaque_key.as_str()];

    // The client's error: scrubbed, still saying what happened.
    let (status, text) = chat(&server, "auth/gpt-x", false).await;
    assert_eq!(status, 502, "{text}");
    assert_clean("the 401 error body", &text, &secrets);
    let m = message_of(&text);
    assert!(
        m.contains("Incorrect API key provided: Bearer [redacted]"),
        "{m}"
    );
    assert!(
        m.contains("platform.example/account/api-keys"),
        "the rest is kept: {m}"
    );
    assert!(
        auth.requests_with_key(&openai_key).len() == 1,
        "the refused key is not retried"
    );

    let (status, text) = chat(&server, "boom/gpt-x", false).await;
    assert_eq!(status, 502, "{text}");
    assert_clean("the 500 error body", &text, &secrets);
    assert!(
        message_of(&text).contains("while using credential [redacted] (retry later)"),
        "{text}"
    );

    let (status, text) = chat(&server, "slow/gpt-x", true).await;
    assert_eq!(status, 429, "{text}");
    assert_clean("the 429 error body (stream request)", &text, &secrets);
    assert!(message_of(&text).contains("quota exceeded for"), "{text}");

    // The credential test's answer.
    let test = server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{auth_pid}/credentials/{auth_cid}/test"),
            Some(&json!({})),
            200,
        )
        .await;
    assert_eq!(test["ok"], false, "{test:#}");
    let t = test.to_string();
    assert_clean("the credential test", &t, &secrets);
    assert!(t.contains("Bearer [redacted]"), "{t}");

    // The credentials' health in the admin API.
    let list = server
        .admin_ok(Method::GET, "/api/admin/providers", None, 200)
        .await;
    let l = list.to_string();
    assert_clean("GET /api/admin/providers", &l, &secrets);
    let auth_view = list["data"]
        .as_array()
        .and_then(|d| d.iter().find(|p| p["prefix"] == "auth"))
        .map(|p| p["credentials"][0].clone())
        .unwrap_or(Value::Null);
    assert!(
        auth_view
            .to_string()
            .contains("Incorrect API key provided: Bearer [redacted]"),
        "{auth_view:#}"
    );

    // The call log.
    let rows = server.wait_for_calls("", 3, Duration::from_secs(10)).await;
    assert!(rows.len() >= 3, "{rows:#?}");
    for row in &rows {
        assert_clean("a call row", &row.to_string(), &secrets);
    }
    assert!(
        rows.iter().any(|r| r["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("Bearer [redacted]"))),
        "{rows:#?}"
    );

    // Let the state writes land, then: nothing on disk (store, WAL) and nothing in the log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for f in files_under(server.data_dir()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for s in secrets {
            for i in 0..=s.len() - 12 {
                assert!(
                    !contains_bytes(&bytes, &s.as_bytes()[i..i + 12]),
                    "{} holds a fragment of a secret",
                    f.display()
                );
            }
        }
    }
    assert_clean("the server log", &server.logs(), &secrets);

    // And after a restart the persisted `last_error` is still clean.
    let mut server = server;
    server.restart().await;
    let list = server
        .admin_ok(Method::GET, "/api/admin/providers", None, 200)
        .await;
    assert_clean(
        "GET /api/admin/providers after a restart",
        &list.to_string(),
        &secrets,
    );
}

/// An error that arrives after the stream began (the 200 is out) is scrubbed of the key
/// too: in the client's error event, the call record and the log.
#[tokio::test(flavor = "multi_thread")]
async fn a_mid_stream_error_that_echoes_the_key_leaks_it_nowhere() {
    let opaque_key = format!("zq{}{}", random_hex(), "Mn4Lk3Jh2");
    let mock = ScriptedUpstream::start(|r| {
        let key = r.bearer().unwrap_or_default().to_string();
        Act::Stream {
            events: vec![
                json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-x",
                       "choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]})
                .to_string(),
                json!({"error": {"message": format!("stream broke for credential {key}"),
                                 "type": "server_error", "code": "500"}})
                .to_string(),
            ],
            delay: Duration::from_millis(1),
            end: StreamEnd::Done,
        }
    })
    .await;
    let server = TestServer::start(ServerOptions::new().plugin(OPENAI)).await;
    provider(&server, "mid", &mock.base_url(), &opaque_key).await;
    let (status, text) = chat(&server, "mid/gpt-x", true).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("par"),
        "the chunk before the error arrives: {text}"
    );
    assert!(
        text.contains("[redacted]"),
        "the error event says what broke: {text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    assert_clean("the mid-stream error event", &text, &[&opaque_key]);
    let rows = server
        .wait_for_calls("?provider=mid", 1, Duration::from_secs(10))
        .await;
    assert_clean("the call record", &rows[0].to_string(), &[&opaque_key]);
    assert_clean("the log", &server.logs(), &[&opaque_key]);
}
