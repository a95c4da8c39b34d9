//! App-key authentication on the consumer API and the admin token on the admin API: each
//! case's status and OpenAI-shaped error, on `POST /v1/chat/completions` and
//! `GET /v1/models`; revocation and disabling take effect on the very next request.

use crate::common;

use common::*;
use reqwest::{Method, RequestBuilder};
use serde_json::json;

/// How a request presents its credential.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Bearer(&'a str),
    XApiKey(&'a str),
}

fn with(req: RequestBuilder, cred: Cred<'_>) -> RequestBuilder {
    match cred {
        Cred::None => req,
        Cred::Bearer(k) => req.bearer_auth(k),
        Cred::XApiKey(k) => req.header("x-api-key", k),
    }
}

/// The two consumer endpoints, with a credential: their responses.
async fn consumer(server: &TestServer, cred: Cred<'_>) -> [(String, reqwest::Response); 2] {
    let client = http_client();
    let chat = with(client.post(server.url("/v1/chat/completions")), cred)
        .json(&chat_body("echo/echo-1", "auth check"))
        .send()
        .await
        .expect("POST /v1/chat/completions");
    let models = with(client.get(server.url("/v1/models")), cred)
        .send()
        .await
        .expect("GET /v1/models");
    [
        ("POST /v1/chat/completions".into(), chat),
        ("GET /v1/models".into(), models),
    ]
}

/// Both consumer endpoints answer `status` with an OpenAI error of `typ`.
async fn expect_consumer_error(server: &TestServer, cred: Cred<'_>, status: u16, typ: &str) {
    for (what, resp) in consumer(server, cred).await {
        let got = resp.status().as_u16();
        if got != status {
            panic!(
                "{what}: expected {status}, got {got}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        let err = expect_error(resp, status, typ).await;
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {err}"
        );
    }
}

async fn expect_consumer_ok(server: &TestServer, cred: Cred<'_>) {
    for (what, resp) in consumer(server, cred).await {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{what}: {text}");
    }
}

async fn echo_server() -> TestServer {
    TestServer::start(ServerOptions::new().plugin(ECHO)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_unknown_keys_are_401() {
    let server = echo_server().await;
    expect_consumer_error(&server, Cred::None, 401, "authentication_error").await;
    expect_consumer_error(
        &server,
        Cred::Bearer("ak-not-a-real-key-0000000000000000000000000000"),
        401,
        "authentication_error",
    )
    .await;
    expect_consumer_error(
        &server,
        Cred::XApiKey("ak-not-a-real-key-0000000000000000000000000000"),
        401,
        "authentication_error",
    )
    .await;
    // A key that differs from a real one in its last character.
    let mut near = server.app_key().to_string();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    expect_consumer_error(&server, Cred::Bearer(&near), 401, "authentication_error").await;
    // The right key works, as Bearer and as x-api-key.
    expect_consumer_ok(&server, Cred::Bearer(server.app_key())).await;
    expect_consumer_ok(&server, Cred::XApiKey(server.app_key())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_key_is_refused_on_the_very_next_request() {
    let server = echo_server().await;
    let (app, key) = server.create_app_with_key("revokee").await;
    let (_, other_key) = {
        let made = server
            .admin_ok(
                Method::POST,
                &format!("/api/admin/apps/{app}/keys"),
                Some(&json!({"name": "second"})),
                201,
            )
            .await;
        (
            made["info"]["id"].as_i64(),
            made["key"].as_str().unwrap().to_string(),
        )
    };
    // Used (and so cached) right before the revocation.
    expect_consumer_ok(&server, Cred::Bearer(&key)).await;
    expect_consumer_ok(&server, Cred::XApiKey(&key)).await;

    let keys = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{app}/keys"),
            None,
            200,
        )
        .await;
    let kid = keys["data"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|k| {
                k["prefix"].as_str().is_some_and(|p| key.starts_with(p)) && k["name"] != "second"
            })
        })
        .and_then(|k| k["id"].as_i64())
        .unwrap_or_else(|| panic!("key not in the listing: {keys}"));
    server
        .admin_ok(
            Method::DELETE,
            &format!("/api/admin/apps/{app}/keys/{kid}"),
            None,
            200,
        )
        .await;

    expect_consumer_error(&server, Cred::Bearer(&key), 401, "authentication_error").await;
    expect_consumer_error(&server, Cred::XApiKey(&key), 401, "authentication_error").await;
    // The app's other key is not affected.
    expect_consumer_ok(&server, Cred::Bearer(&other_key)).await;
    let keys = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{app}/keys"),
            None,
            200,
        )
        .await;
    let row = keys["data"]
        .as_array()
        .and_then(|a| a.iter().find(|k| k["id"] == kid))
        .unwrap_or_else(|| panic!("{keys}"));
    assert!(row["revoked_at"].is_i64(), "revoked_at set: {row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_app_is_403_and_reenabled_app_works_at_once() {
    let server = echo_server().await;
    let (app, key) = server.create_app_with_key("switchable").await;
    expect_consumer_ok(&server, Cred::Bearer(&key)).await;

    let patched = server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/apps/{app}"),
            Some(&json!({"enabled": false})),
            200,
        )
        .await;
    assert_eq!(patched["enabled"], false, "{patched}");
    expect_consumer_error(&server, Cred::Bearer(&key), 403, "permission_error").await;
    expect_consumer_error(&server, Cred::XApiKey(&key), 403, "permission_error").await;
    // Other apps are unaffected.
    expect_consumer_ok(&server, Cred::Bearer(server.app_key())).await;

    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/apps/{app}"),
            Some(&json!({"enabled": true})),
            200,
        )
        .await;
    expect_consumer_ok(&server, Cred::Bearer(&key)).await;

    // A deleted app's keys stop working too.
    server
        .admin_ok(Method::DELETE, &format!("/api/admin/apps/{app}"), None, 204)
        .await;
    expect_consumer_error(&server, Cred::Bearer(&key), 401, "authentication_error").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn app_keys_never_open_the_admin_api_and_the_admin_token_never_the_consumer_api() {
    let server = echo_server().await;
    let client = http_client();
    let admin_paths = [
        (Method::GET, "/api/admin/plugins"),
        (Method::GET, "/api/admin/apps"),
        (Method::GET, "/api/admin/providers"),
        (Method::GET, "/api/admin/calls"),
        (Method::POST, "/api/admin/apps"),
    ];
    for (method, path) in &admin_paths {
        for cred in [
            Cred::Bearer(server.app_key()),
            Cred::XApiKey(server.app_key()),
            Cred::None,
            Cred::Bearer("test-admin-wrong"),
        ] {
            let mut req = with(client.request(method.clone(), server.url(path)), cred);
            if *method == Method::POST {
                req = req.json(&json!({"name": "intruder"}));
            }
            let resp = req.send().await.expect("admin request");
            expect_error(resp, 401, "authentication_error").await;
        }
    }
    // Nothing was created by the refused POSTs.
    let apps = server
        .admin_ok(Method::GET, "/api/admin/apps", None, 200)
        .await;
    assert!(
        !apps.to_string().contains("intruder"),
        "a refused request created an app: {apps}"
    );

    // The admin token is not an app key.
    expect_consumer_error(
        &server,
        Cred::Bearer(server.admin_token()),
        401,
        "authentication_error",
    )
    .await;
    expect_consumer_error(
        &server,
        Cred::XApiKey(server.admin_token()),
        401,
        "authentication_error",
    )
    .await;
    // And the admin token does open the admin API.
    let resp = with(
        client.get(server.url("/api/admin/plugins")),
        Cred::Bearer(server.admin_token()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_are_not_billed_to_an_app() {
    let server = echo_server().await;
    let (app, key) = server.create_app_with_key("billing").await;
    expect_consumer_error(&server, Cred::None, 401, "authentication_error").await;
    expect_consumer_ok(&server, Cred::Bearer(&key)).await;
    let rows = server
        .wait_for_calls(&format!("app={app}"), 1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["app_id"], app);
}
