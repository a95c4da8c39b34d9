//! Hot-add and replacement of plugin libraries while the server runs: the watcher, the
//! admin reload endpoint and SIGHUP.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn hello_request() -> Value {
    chat_body("hello/world", "Ada")
}

fn content(reply: &Value) -> String {
    reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_add_then_replace_with_a_new_version() {
    // Start with an empty plugin dir.
    let server = TestServer::start(ServerOptions::new()).await;
    let resp = server.post_chat(&hello_request()).await;
    let err = expect_error(resp, 404, "invalid_request_error").await;
    assert_eq!(err["code"], "model_not_found", "{err}");

    // Copy hello-plugin in: it becomes routable without a restart.
    server.install_plugin(HELLO);
    let reply = server
        .wait_routable(&hello_request(), HOT_ADD_TIMEOUT)
        .await;
    assert_eq!(content(&reply), "Hello from hello-plugin v0.1.0: Ada");

    let models: Value = server.get("/v1/models").await.json().await.unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "hello/world"),
        "hello/world in /v1/models: {models}"
    );
    let entry = server
        .wait_for_plugin_entry(HELLO, HOT_ADD_TIMEOUT, |e| e["status"] == "loaded")
        .await;
    assert_eq!(entry["name"], "hello", "{entry}");
    assert_eq!(entry["version"], "0.1.0", "{entry}");
    assert_eq!(entry["prefixes"], json!(["hello"]), "{entry}");
    assert!(entry["error"].is_null(), "{entry}");

    // Replace it (temp name + rename) with the build that reports 2.0.0.
    server.replace_plugin(&hello_v2_lib(), HELLO);
    let deadline = std::time::Instant::now() + HOT_ADD_TIMEOUT;
    loop {
        let resp = server.post_chat(&hello_request()).await;
        assert_eq!(resp.status(), 200, "hello stays routable during the swap");
        let reply: Value = resp.json().await.unwrap();
        let text = content(&reply);
        if text == "Hello from hello-plugin v2.0.0: Ada" {
            break;
        }
        assert_eq!(
            text, "Hello from hello-plugin v0.1.0: Ada",
            "unexpected reply"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "requests did not switch to v2.0.0 within {HOT_ADD_TIMEOUT:?}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every later request goes to the new version.
    for _ in 0..5 {
        let reply: Value = server
            .post_chat(&hello_request())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(content(&reply), "Hello from hello-plugin v2.0.0: Ada");
    }
    // Streams too.
    let mut req = hello_request();
    req["stream"] = json!(true);
    let sse = collect_sse(server.post_chat(&req).await).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "Hello from hello-plugin v2.0.0: Ada");

    // The listing shows the new version for that file, once, and no hidden temp file.
    let entry = server
        .wait_for_plugin_entry(HELLO, HOT_ADD_TIMEOUT, |e| e["version"] == "2.0.0")
        .await;
    assert_eq!(entry["status"], "loaded", "{entry}");
    let listing = server.plugin_listing().await;
    let data = listing["data"].as_array().unwrap();
    let hello_entries = data
        .iter()
        .filter(|e| e["file"].as_str().is_some_and(|f| f.ends_with(HELLO)))
        .count();
    assert_eq!(hello_entries, 1, "{listing:#}");
    assert!(
        data.iter().all(|e| {
            let f = e["file"].as_str().unwrap_or("");
            !std::path::Path::new(f)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .starts_with('.')
        }),
        "hidden files must be ignored: {listing:#}"
    );
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_add_does_not_disturb_requests_in_flight() {
    let server = Arc::new(TestServer::start(ServerOptions::new().plugin(ECHO)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));

    let mut workers = Vec::new();
    for w in 0..2 {
        let (server, stop, ok) = (server.clone(), stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let text = format!("worker {w} request {i}");
                let mut req = chat_body("echo/echo-1", &text);
                req["stream"] = json!(i % 2 == 0);
                let resp = server.post_chat(&req).await;
                assert_eq!(resp.status(), 200, "echo request failed during hot-add");
                if i % 2 == 0 {
                    let sse = collect_sse(resp).await;
                    assert!(sse.done, "{sse:?}");
                    assert_eq!(sse.content(), text);
                } else {
                    let reply: Value = resp.json().await.unwrap();
                    assert_eq!(content(&reply), text);
                }
                ok.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    server.install_plugin(HELLO);
    server
        .wait_routable(&hello_request(), HOT_ADD_TIMEOUT)
        .await;
    server.replace_plugin(&hello_v2_lib(), HELLO);
    let deadline = std::time::Instant::now() + HOT_ADD_TIMEOUT;
    loop {
        let reply: Value = server
            .post_chat(&hello_request())
            .await
            .json()
            .await
            .unwrap();
        if content(&reply).contains("v2.0.0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "v2 never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker saw a failed request");
    }
    assert!(ok.load(Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_reload_rescans_immediately() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    server.install_plugin(HELLO);
    // The reload answers with the rescanned listing: hello is in it at once.
    let resp = server.admin_post("/api/admin/plugins/reload").await;
    assert_eq!(resp.status(), 200);
    let listing: Value = resp.json().await.unwrap();
    assert_eq!(listing["object"], "list", "{listing}");
    let hello = plugin_entry(&listing, HELLO)
        .unwrap_or_else(|| panic!("hello missing after reload: {listing:#}"));
    assert_eq!(hello["status"], "loaded", "{hello}");
    assert_eq!(hello["version"], "0.1.0", "{hello}");
    let echo = plugin_entry(&listing, ECHO).expect("echo still listed");
    assert_eq!(echo["status"], "loaded", "{echo}");

    let resp = server.post_chat(&hello_request()).await;
    assert_eq!(resp.status(), 200);
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(content(&reply), "Hello from hello-plugin v0.1.0: Ada");

    // Reloading again with nothing changed keeps everything as it is.
    let resp = server.admin_post("/api/admin/plugins/reload").await;
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(
        again["data"].as_array().map(Vec::len),
        listing["data"].as_array().map(Vec::len),
        "{again:#}"
    );
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_rescans_and_does_not_stop_the_server() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    server.sighup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.is_running(),
        "SIGHUP must not stop the server\n{}",
        server.logs()
    );
    server.assert_echo_still_works().await;

    server.install_plugin(HELLO);
    server.sighup();
    let reply = server
        .wait_routable(&hello_request(), HOT_ADD_TIMEOUT)
        .await;
    assert_eq!(content(&reply), "Hello from hello-plugin v0.1.0: Ada");
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_redrop_is_a_no_op() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(HELLO)).await;
    let before = server.plugin_listing().await;
    // Same content written again under the same name.
    server.replace_plugin(&plugin_lib(HELLO), HELLO);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = server.admin_post("/api/admin/plugins/reload").await;
    assert_eq!(resp.status(), 200);
    let after: Value = resp.json().await.unwrap();
    let (b, a) = (
        plugin_entry(&before, HELLO).unwrap(),
        plugin_entry(&after, HELLO).unwrap(),
    );
    assert_eq!(a["status"], "loaded", "{a}");
    assert_eq!(a["version"], "0.1.0", "{a}");
    assert_eq!(
        a["loaded_from"], b["loaded_from"],
        "identical content should not load a second copy"
    );
    let reply: Value = server
        .post_chat(&hello_request())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(content(&reply), "Hello from hello-plugin v0.1.0: Ada");
}
