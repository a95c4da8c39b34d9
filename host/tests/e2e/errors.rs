//! Every client error returns its status and OpenAI's error shape.

use crate::common;

use common::*;
use serde_json::{json, Value};

async fn echo_server() -> TestServer {
    TestServer::start(ServerOptions::new().plugin(ECHO)).await
}

fn mentions(err: &Value, word: &str) -> bool {
    err["message"].as_str().unwrap_or("").contains(word)
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_400_invalid_json() {
    let server = echo_server().await;
    for path in ["/v1/chat/completions", "/api/v2/chat/completions"] {
        for body in [
            &b"{\"model\": \"echo/echo-1\", \"messages\": ["[..],
            b"not json",
            b"",
        ] {
            let resp = server.post_raw(path, body.to_vec()).await;
            let err = expect_error(resp, 400, "invalid_request_error").await;
            assert_eq!(err["code"], "invalid_json", "{path} {body:?}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_mistyped_fields_are_400() {
    let server = echo_server().await;

    let resp = server
        .post_chat(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let err = expect_error(resp, 400, "invalid_request_error").await;
    assert_eq!(err["code"], "missing_required_parameter", "{err}");
    assert!(mentions(&err, "model"), "{err}");

    let resp = server.post_chat(&json!({"model": "echo/echo-1"})).await;
    let err = expect_error(resp, 400, "invalid_request_error").await;
    assert_eq!(err["code"], "missing_required_parameter", "{err}");
    assert!(mentions(&err, "messages"), "{err}");

    let resp = server
        .post_chat(&json!({"model": 42, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let err = expect_error(resp, 400, "invalid_request_error").await;
    assert_eq!(err["code"], "invalid_type", "{err}");
    assert!(mentions(&err, "model"), "{err}");

    // A JSON value that is not an object.
    let resp = server.post_chat(&json!(["model", "echo/echo-1"])).await;
    expect_error(resp, 400, "invalid_request_error").await;

    // `messages` of the wrong type: refused as the client's error, never a 5xx.
    let resp = server
        .post_chat(&json!({"model": "echo/echo-1", "messages": "hello"}))
        .await;
    expect_error(resp, 400, "invalid_request_error").await;

    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_prefix_is_404_listing_known_prefixes() {
    let server = echo_server().await;
    for (model, stream) in [("nope/some-model", false), ("nope/some-model", true)] {
        let mut req = chat_body(model, "hi");
        req["stream"] = json!(stream);
        let resp = server.post_chat(&req).await;
        let err = expect_error(resp, 404, "invalid_request_error").await;
        assert_eq!(err["code"], "model_not_found", "{err}");
        assert!(mentions(&err, "echo"), "known prefixes listed: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn model_without_prefix_is_404_unless_a_catalog_lists_it() {
    let server = echo_server().await;
    for model in ["echo", "no-such-model"] {
        let resp = server.post_chat(&chat_body(model, "hi")).await;
        let err = expect_error(resp, 404, "invalid_request_error").await;
        assert_eq!(err["code"], "model_not_found", "model {model:?}: {err}");
    }
    // A bare model id that a provider's catalog lists is served by that provider.
    let resp = server.post_chat(&chat_body("echo-1", "hi")).await;
    assert_eq!(resp.status(), 200);
}

fn big_request(bytes: usize) -> Value {
    chat_body("echo/echo-1", &"x".repeat(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_the_limit_is_413_via_env() {
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .env("AIHUB_SERVER__MAX_BODY_BYTES", "1024"),
    )
    .await;
    // Under the limit: fine.
    let resp = server.post_chat(&big_request(500)).await;
    assert_eq!(resp.status(), 200);

    // Over it, with a Content-Length.
    let resp = server.post_chat(&big_request(4096)).await;
    let err = expect_error(resp, 413, "invalid_request_error").await;
    assert_eq!(err["code"], "request_too_large", "{err}");

    // Over it, chunked (no Content-Length): counted as it arrives.
    let body = serde_json::to_vec(&big_request(8192)).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(512).map(|c| Ok(c.to_vec())).collect();
    let stream = futures_util::stream::iter(chunks);
    let resp = server
        .post_raw("/v1/chat/completions", reqwest::Body::wrap_stream(stream))
        .await;
    let err = expect_error(resp, 413, "invalid_request_error").await;
    assert_eq!(err["code"], "request_too_large", "{err}");

    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_the_limit_is_413_via_config_file() {
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .config("[server]\nmax_body_bytes = 2048\n"),
    )
    .await;
    let resp = server.post_chat(&big_request(1500)).await;
    assert_eq!(resp.status(), 200);
    let resp = server.post_chat(&big_request(3000)).await;
    let err = expect_error(resp, 413, "invalid_request_error").await;
    assert_eq!(err["code"], "request_too_large", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn default_limit_accepts_a_large_body() {
    // 16 MiB by default: a 2 MiB prompt passes.
    let server = echo_server().await;
    let resp = server.post_chat(&big_request(2 * 1024 * 1024)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let server = echo_server().await;
    // (`/` and other non-API paths are the web console: see tests/console.rs.)
    for path in ["/v1/nope", "/api/nope", "/v1/chat/completions/extra"] {
        let resp = server.get(path).await;
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(got, 404, "GET {path}: {text}");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: error body is not JSON ({e}): {text}"));
        assert_error_shape(&body);
    }
    let resp = server.post_json("/v1/nope", &json!({})).await;
    assert_eq!(resp.status(), 404);

    for path in ["/v1/chat/completions", "/api/v2/chat/completions"] {
        let resp = server.get(path).await;
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(got, 405, "GET {path}: {text}");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: error body is not JSON ({e}): {text}"));
        assert_error_shape(&body);
    }
    let resp = server.post_json("/v1/models", &json!({})).await;
    assert_eq!(resp.status(), 405);
    let resp = server
        .client()
        .delete(server.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_require_the_admin_token() {
    let server = echo_server().await;
    let url = server.url("/api/admin/plugins");

    let resp = server.client().get(&url).send().await.unwrap();
    expect_error(resp, 401, "authentication_error").await;

    let resp = server
        .client()
        .get(&url)
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "authentication_error").await;

    // A prefix of the real token is not the token.
    let prefix = &server.admin_token()[..server.admin_token().len() - 1];
    let resp = server
        .client()
        .get(&url)
        .bearer_auth(prefix)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "authentication_error").await;

    let resp = server
        .client()
        .post(server.url("/api/admin/plugins/reload"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "authentication_error").await;

    let resp = server.admin_get("/api/admin/plugins").await;
    assert_eq!(resp.status(), 200);
    let listing: Value = resp.json().await.unwrap();
    assert_eq!(listing["object"], "list");
    let echo = plugin_entry(&listing, ECHO).expect("echo listed");
    assert_eq!(echo["status"], "loaded", "{echo}");
    assert_eq!(echo["name"], "echo", "{echo}");
    assert_eq!(echo["version"], "0.1.0", "{echo}");
    assert_eq!(echo["prefixes"], json!(["echo"]), "{echo}");
    assert!(echo["abi_version"].is_number(), "{echo}");
    assert!(echo["error"].is_null(), "{echo}");
    assert!(echo["loaded_from"].is_string(), "{echo}");

    let resp = server.admin_post("/api/admin/plugins/reload").await;
    assert_eq!(resp.status(), 200);
    let listing: Value = resp.json().await.unwrap();
    assert_eq!(listing["object"], "list");
    assert!(plugin_entry(&listing, ECHO).is_some(), "{listing}");
}
