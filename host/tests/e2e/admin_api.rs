//! The admin API end to end: each endpoint's happy path, validation errors naming the
//! field, unknown ids (404), conflicts (409), providers and credentials that take effect
//! without a restart, rates and the cost of a call, the call log's filters and cursor
//! paging, and the CSV export.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// The CSV export's header line.
const CSV_HEADER: &str = "id,request_id,app_id,provider,model,credential_id,endpoint,stream,status,http_status,error_class,error_message,input_tokens,output_tokens,cached_tokens,cost_micros,latency_ms,ttfb_ms,attempts,created_at,credentials_tried,requested_model,format,cache_hit";

const WAIT: Duration = Duration::from_secs(10);

async fn echo_server() -> TestServer {
    TestServer::start(ServerOptions::new().plugin(ECHO).plugin(OPENAI)).await
}

fn id_of(v: &Value) -> i64 {
    v["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no numeric id in {v}"))
}

/// The `data` array of a list reply.
fn data(v: &Value) -> &Vec<Value> {
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array in {v}"))
}

/// Asserts a 400 whose `error.param` names `field`.
async fn expect_invalid(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<&Value>,
    field: &str,
) {
    let resp = server.admin(method.clone(), path, body).await;
    let err = expect_error(resp, 400, "invalid_request_error").await;
    assert_eq!(
        err["param"], field,
        "{method} {path} {body:?}: error.param should name '{field}': {err}"
    );
}

async fn expect_status(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<&Value>,
    status: u16,
) -> Value {
    let resp = server.admin(method.clone(), path, body).await;
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "{method} {path} {body:?}: {text}");
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: error body is not JSON ({e}): {text}"));
    assert_error_shape(&v)
}

async fn chat_ok(server: &TestServer, model: &str, text: &str) -> Value {
    let resp = server.post_chat(&chat_body(model, text)).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "chat {model}: {body}");
    body
}

async fn chat_status(server: &TestServer, model: &str) -> (u16, Value) {
    let resp = server.post_chat(&chat_body(model, "status check")).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn auth_of(r: &Recorded) -> String {
    r.header("authorization").unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------
// Apps and keys
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn apps_and_keys_happy_paths() {
    let server = echo_server().await;

    let app = server
        .admin_ok(
            Method::POST,
            "/api/admin/apps",
            Some(&json!({"name": "crm"})),
            201,
        )
        .await;
    let id = id_of(&app);
    assert_eq!(app["name"], "crm", "{app}");
    assert_eq!(app["enabled"], true, "{app}");

    let list = server
        .admin_ok(Method::GET, "/api/admin/apps", None, 200)
        .await;
    assert!(
        data(&list)
            .iter()
            .any(|a| a["id"] == id && a["name"] == "crm"),
        "{list}"
    );
    assert!(
        data(&list).iter().any(|a| a["name"] == "test"),
        "the app made by the CLI is listed: {list}"
    );
    let one = server
        .admin_ok(Method::GET, &format!("/api/admin/apps/{id}"), None, 200)
        .await;
    assert_eq!(one["name"], "crm", "{one}");

    let renamed = server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/apps/{id}"),
            Some(&json!({"name": "crm-2"})),
            200,
        )
        .await;
    assert_eq!(renamed["name"], "crm-2", "{renamed}");
    assert_eq!(renamed["enabled"], true, "{renamed}");

    // Keys: shown once, listed by prefix only.
    let made = server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/apps/{id}/keys"),
            Some(&json!({"name": "ci"})),
            201,
        )
        .await;
    let key = made["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("ak-"), "{made}");
    // >= 128 bits of randomness: at least 22 base64 characters after the prefix.
    assert!(key.len() >= 3 + 22, "key too short: {key}");
    let info = &made["info"];
    let kid = id_of(info);
    let prefix = info["prefix"].as_str().expect("prefix");
    assert!(
        key.starts_with(prefix) && prefix.len() < key.len(),
        "{made}"
    );
    assert!(
        !info.to_string().contains(&key),
        "info shows the key: {info}"
    );

    let second = server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/apps/{id}/keys"),
            None,
            201,
        )
        .await;
    let second_key = second["key"].as_str().expect("key").to_string();
    assert_ne!(key, second_key);

    let keys = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{id}/keys"),
            None,
            200,
        )
        .await;
    assert_eq!(data(&keys).len(), 2, "{keys}");
    assert!(
        !keys.to_string().contains(&key),
        "a listing shows a key: {keys}"
    );
    assert!(!keys.to_string().contains(&second_key), "{keys}");
    let listed = data(&keys).iter().find(|k| k["id"] == kid).expect("listed");
    assert_eq!(listed["name"], "ci", "{listed}");
    assert!(listed["revoked_at"].is_null(), "{listed}");

    // The key works; after revocation it does not, and the listing says so.
    let client = http_client_with_key(&key);
    let r = client
        .post(server.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked = server
        .admin_ok(
            Method::DELETE,
            &format!("/api/admin/apps/{id}/keys/{kid}"),
            None,
            200,
        )
        .await;
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");
    let r = client
        .post(server.url("/v1/chat/completions"))
        .json(&chat_body("echo/echo-1", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let keys = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{id}/keys"),
            None,
            200,
        )
        .await;
    let listed = data(&keys).iter().find(|k| k["id"] == kid).expect("listed");
    assert!(listed["revoked_at"].is_i64(), "{listed}");

    // Delete.
    let resp = server
        .admin(Method::DELETE, &format!("/api/admin/apps/{id}"), None)
        .await;
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty(), "204 has no body");
    expect_status(
        &server,
        Method::GET,
        &format!("/api/admin/apps/{id}"),
        None,
        404,
    )
    .await;
    let list = server
        .admin_ok(Method::GET, "/api/admin/apps", None, 200)
        .await;
    assert!(!data(&list).iter().any(|a| a["id"] == id), "{list}");
}

// ---------------------------------------------------------------------------------------
// Providers and credentials
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn providers_and_credentials_crud_take_effect_without_restart() {
    let mock1 = MockUpstream::always(MockReply::json(
        200,
        openai_completion("gpt-x", "one", 3, 1),
    ))
    .await;
    let mock2 = MockUpstream::always(MockReply::json(
        200,
        openai_completion("gpt-x", "two", 3, 1),
    ))
    .await;
    let server = echo_server().await;

    // Not routable before it exists.
    let (status, body) = chat_status(&server, "mockai/gpt-x").await;
    assert_eq!(status, 404, "{body}");

    let p = server
        .admin_ok(
            Method::POST,
            "/api/admin/providers",
            Some(&json!({"prefix": "mockai", "plugin": "openai", "base_url": mock1.base_url()})),
            201,
        )
        .await;
    let pid = id_of(&p);
    assert_eq!(p["prefix"], "mockai", "{p}");
    assert_eq!(p["plugin"], "openai", "{p}");
    assert_eq!(p["base_url"], mock1.base_url(), "{p}");
    assert_eq!(p["enabled"], true, "{p}");

    // Routable at once; without a credential it answers 503.
    let (status, body) = chat_status(&server, "mockai/gpt-x").await;
    assert_eq!(status, 503, "a provider without credentials: {body}");
    assert_error_shape(&body);

    let k1 = format!("sk-one-{}", random_hex());
    let k2 = format!("sk-two-{}", random_hex());
    let c1 = server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{pid}/credentials"),
            Some(&json!({"name": "k1", "secret": k1})),
            201,
        )
        .await;
    let cid1 = id_of(&c1);
    assert_eq!(c1["name"], "k1", "{c1}");
    assert_eq!(c1["weight"], 1, "default weight: {c1}");
    assert_eq!(c1["enabled"], true, "{c1}");
    assert_eq!(c1["provider_id"], pid, "{c1}");
    let c2 = server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{pid}/credentials"),
            Some(&json!({"name": "k2", "secret": k2, "weight": 3, "enabled": false})),
            201,
        )
        .await;
    let cid2 = id_of(&c2);
    assert_eq!(c2["weight"], 3, "{c2}");
    assert_eq!(c2["enabled"], false, "{c2}");

    let reply = chat_ok(&server, "mockai/gpt-x", "hi").await;
    assert_eq!(reply["choices"][0]["message"]["content"], "one");
    assert_eq!(auth_of(&mock1.requests()[0]), format!("Bearer {k1}"));
    assert_eq!(mock1.requests()[0].json()["model"], "gpt-x");

    // Listings.
    let list = server
        .admin_ok(Method::GET, "/api/admin/providers", None, 200)
        .await;
    let entry = data(&list)
        .iter()
        .find(|e| e["prefix"] == "mockai")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(entry["id"], pid, "{entry}");
    assert_eq!(entry["routable"], true, "{entry}");
    let detail = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/providers/{pid}"),
            None,
            200,
        )
        .await;
    assert_eq!(detail["provider"]["prefix"], "mockai", "{detail}");
    assert_eq!(
        detail["credentials"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
    let creds = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/providers/{pid}/credentials"),
            None,
            200,
        )
        .await;
    let names: Vec<&str> = data(&creds)
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["k1", "k2"], "{creds}");
    let one = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/providers/{pid}/credentials/{cid2}"),
            None,
            200,
        )
        .await;
    assert_eq!(one["name"], "k2", "{one}");

    // Enabled/weight changes: k1 out of rotation (weight 0), k2 enabled: k2 serves.
    let changed = server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}/credentials/{cid2}"),
            Some(&json!({"enabled": true, "weight": 5})),
            200,
        )
        .await;
    assert_eq!(changed["enabled"], true, "{changed}");
    assert_eq!(changed["weight"], 5, "{changed}");
    let changed = server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}/credentials/{cid1}"),
            Some(&json!({"weight": 0})),
            200,
        )
        .await;
    assert_eq!(changed["weight"], 0, "{changed}");
    let before = mock1.calls();
    for _ in 0..4 {
        chat_ok(&server, "mockai/gpt-x", "rotate").await;
    }
    let used: HashSet<String> = mock1.requests()[before..].iter().map(auth_of).collect();
    assert_eq!(
        used,
        HashSet::from([format!("Bearer {k2}")]),
        "only k2 may serve"
    );

    // Disabled k2 and weight-0 k1: nothing to serve with.
    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}/credentials/{cid2}"),
            Some(&json!({"enabled": false})),
            200,
        )
        .await;
    let (status, body) = chat_status(&server, "mockai/gpt-x").await;
    assert_eq!(status, 503, "{body}");
    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}/credentials/{cid1}"),
            Some(&json!({"weight": 1})),
            200,
        )
        .await;

    // A new secret for k1 (masked in the reply) is used from the next call.
    let k1b = format!("sk-one-b-{}", random_hex());
    let changed = server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}/credentials/{cid1}"),
            Some(&json!({"secret": k1b})),
            200,
        )
        .await;
    assert!(!changed.to_string().contains(&k1b), "{changed}");
    chat_ok(&server, "mockai/gpt-x", "new secret").await;
    assert_eq!(
        mock1.requests().last().map(auth_of),
        Some(format!("Bearer {k1b}"))
    );

    // PATCH the provider's base URL: the next call goes to the other upstream.
    let patched = server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}"),
            Some(&json!({"base_url": mock2.base_url()})),
            200,
        )
        .await;
    assert_eq!(patched["base_url"], mock2.base_url(), "{patched}");
    assert_eq!(patched["prefix"], "mockai", "{patched}");
    let reply = chat_ok(&server, "mockai/gpt-x", "moved").await;
    assert_eq!(reply["choices"][0]["message"]["content"], "two");
    assert_eq!(mock2.calls(), 1);

    // Disabled provider: not routable; enabled again: routable.
    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}"),
            Some(&json!({"enabled": false})),
            200,
        )
        .await;
    let (status, body) = chat_status(&server, "mockai/gpt-x").await;
    assert_eq!(status, 404, "a disabled provider: {body}");
    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/admin/providers/{pid}"),
            Some(&json!({"enabled": true})),
            200,
        )
        .await;
    chat_ok(&server, "mockai/gpt-x", "back").await;

    // Delete a credential, then the provider.
    let resp = server
        .admin(
            Method::DELETE,
            &format!("/api/admin/providers/{pid}/credentials/{cid2}"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 204);
    expect_status(
        &server,
        Method::GET,
        &format!("/api/admin/providers/{pid}/credentials/{cid2}"),
        None,
        404,
    )
    .await;
    let resp = server
        .admin(Method::DELETE, &format!("/api/admin/providers/{pid}"), None)
        .await;
    assert_eq!(resp.status(), 204);
    expect_status(
        &server,
        Method::GET,
        &format!("/api/admin/providers/{pid}"),
        None,
        404,
    )
    .await;
    let (status, body) = chat_status(&server, "mockai/gpt-x").await;
    assert_eq!(status, 404, "a deleted provider: {body}");
    assert_error_shape(&body);
    let list = server
        .admin_ok(Method::GET, "/api/admin/providers", None, 200)
        .await;
    assert!(
        !data(&list).iter().any(|e| e["prefix"] == "mockai"),
        "{list}"
    );
    // Echo was never disturbed.
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rates_put_get_delete_and_the_cost_of_a_call() {
    // 1000 prompt and 300 completion tokens at $2.50 / $10 per million:
    // 1000 * 2.5 + 300 * 10 = 5500 micro-USD.
    let mock = MockUpstream::always(MockReply::json(
        200,
        openai_completion("gpt-x", "priced", 1000, 300),
    ))
    .await;
    let server = echo_server().await;
    let p = server
        .admin_ok(
            Method::POST,
            "/api/admin/providers",
            Some(&json!({"prefix": "mockai", "plugin": "openai", "base_url": mock.base_url()})),
            201,
        )
        .await;
    server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{}/credentials", id_of(&p)),
            Some(&json!({"name": "k", "secret": "sk-rate-0123456789abcdef"})),
            201,
        )
        .await;

    let rate = server
        .admin_ok(
            Method::PUT,
            "/api/admin/rates/mockai/gpt-x",
            Some(&json!({"input_per_mtok": 2.5, "output_per_mtok": 10})),
            200,
        )
        .await;
    assert_eq!(rate["model"], "mockai/gpt-x", "{rate}");
    let rates = server
        .admin_ok(Method::GET, "/api/admin/rates", None, 200)
        .await;
    assert!(
        data(&rates).iter().any(|r| r["model"] == "mockai/gpt-x"),
        "{rates}"
    );

    let reply = chat_ok(&server, "mockai/gpt-x", "what does it cost").await;
    assert_eq!(reply["usage"]["prompt_tokens"], 1000);
    let rows = server.wait_for_calls("model=mockai%2Fgpt-x", 1, WAIT).await;
    assert_eq!(rows[0]["input_tokens"], 1000, "{}", rows[0]);
    assert_eq!(rows[0]["output_tokens"], 300, "{}", rows[0]);
    assert_eq!(rows[0]["cost_micros"], 5500, "{}", rows[0]);
    let usage = server
        .admin_ok(Method::GET, "/api/admin/usage?group_by=model", None, 200)
        .await;
    let u = data(&usage)
        .iter()
        .find(|u| u["key"] == "mockai/gpt-x")
        .unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(u["cost_micros"], 5500, "{u}");

    // A changed rate applies to the next call.
    server
        .admin_ok(
            Method::PUT,
            "/api/admin/rates/mockai/gpt-x",
            Some(&json!({"input_per_mtok": 1, "output_per_mtok": 2})),
            200,
        )
        .await;
    chat_ok(&server, "mockai/gpt-x", "cheaper now").await;
    let rows = server.wait_for_calls("model=mockai%2Fgpt-x", 2, WAIT).await;
    assert_eq!(rows[0]["cost_micros"], 1000 + 600, "{}", rows[0]);

    let resp = server
        .admin(Method::DELETE, "/api/admin/rates/mockai/gpt-x", None)
        .await;
    assert_eq!(resp.status(), 204);
    let rates = server
        .admin_ok(Method::GET, "/api/admin/rates", None, 200)
        .await;
    assert!(
        !data(&rates).iter().any(|r| r["model"] == "mockai/gpt-x"),
        "{rates}"
    );
    expect_status(
        &server,
        Method::DELETE,
        "/api/admin/rates/mockai/gpt-x",
        None,
        404,
    )
    .await;
    // Without a rate (and no list price for this model) a call costs nothing.
    chat_ok(&server, "mockai/gpt-x", "free now").await;
    let rows = server.wait_for_calls("model=mockai%2Fgpt-x", 3, WAIT).await;
    assert_eq!(rows[0]["cost_micros"], 0, "{}", rows[0]);
}

// ---------------------------------------------------------------------------------------
// Validation, 404, 409
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn validation_errors_are_400_naming_the_field() {
    let server = echo_server().await;
    let app = id_of(
        &server
            .admin_ok(
                Method::POST,
                "/api/admin/apps",
                Some(&json!({"name": "v"})),
                201,
            )
            .await,
    );
    let pid = id_of(
        &server
            .admin_ok(
                Method::POST,
                "/api/admin/providers",
                Some(&json!({"prefix": "valid", "plugin": "openai", "base_url": "http://127.0.0.1:9/v1"})),
                201,
            )
            .await,
    );
    let cid = id_of(
        &server
            .admin_ok(
                Method::POST,
                &format!("/api/admin/providers/{pid}/credentials"),
                Some(&json!({"name": "k", "secret": "sk-valid-0123456789"})),
                201,
            )
            .await,
    );

    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, "/api/admin/apps".into(), json!({}), "name"),
        (
            Method::POST,
            "/api/admin/apps".into(),
            json!({"name": "  "}),
            "name",
        ),
        (
            Method::PATCH,
            format!("/api/admin/apps/{app}"),
            json!({"name": ""}),
            "name",
        ),
        (
            Method::POST,
            "/api/admin/providers".into(),
            json!({"prefix": "a/b", "plugin": "openai"}),
            "prefix",
        ),
        (
            Method::POST,
            "/api/admin/providers".into(),
            json!({"plugin": "openai"}),
            "prefix",
        ),
        (
            Method::POST,
            "/api/admin/providers".into(),
            json!({"prefix": "noplugin"}),
            "plugin",
        ),
        (
            Method::POST,
            "/api/admin/providers".into(),
            json!({"prefix": "badurl", "plugin": "openai", "base_url": "ftp://x"}),
            "base_url",
        ),
        (
            Method::PATCH,
            format!("/api/admin/providers/{pid}"),
            json!({"prefix": "x/y"}),
            "prefix",
        ),
        (
            Method::POST,
            format!("/api/admin/providers/{pid}/credentials"),
            json!({"name": "w", "secret": "sk-0123456789abc", "weight": -1}),
            "weight",
        ),
        (
            Method::POST,
            format!("/api/admin/providers/{pid}/credentials"),
            json!({"name": "nosecret"}),
            "secret",
        ),
        (
            Method::POST,
            format!("/api/admin/providers/{pid}/credentials"),
            json!({"secret": "sk-0123456789abc"}),
            "name",
        ),
        (
            Method::PATCH,
            format!("/api/admin/providers/{pid}/credentials/{cid}"),
            json!({"weight": -1}),
            "weight",
        ),
        (
            Method::PUT,
            "/api/admin/rates/valid/m".into(),
            json!({"input_per_mtok": -1, "output_per_mtok": 1}),
            "input_per_mtok",
        ),
    ];
    for (method, path, body, field) in &cases {
        expect_invalid(&server, method.clone(), path, Some(body), field).await;
    }
    // Query parameters.
    for (path, field) in [
        ("/api/admin/calls?limit=0", "limit"),
        ("/api/admin/calls?limit=many", "limit"),
        ("/api/admin/calls?status=great", "status"),
        ("/api/admin/calls?since=yesterday", "since"),
        ("/api/admin/calls?format=xml", "format"),
        ("/api/admin/usage?group_by=colour", "group_by"),
    ] {
        expect_invalid(&server, Method::GET, path, None, field).await;
    }
    // Malformed JSON is a 400 too.
    let resp = server
        .client()
        .post(server.url("/api/admin/apps"))
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_request_error").await;

    // Nothing invalid was stored.
    let one = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/providers/{pid}/credentials/{cid}"),
            None,
            200,
        )
        .await;
    assert_eq!(one["weight"], 1, "{one}");
    let providers = server
        .admin_ok(Method::GET, "/api/admin/providers", None, 200)
        .await;
    assert!(
        !data(&providers)
            .iter()
            .any(|p| p["prefix"] == "badurl" || p["prefix"] == "noplugin"),
        "{providers}"
    );
}

/// A misspelt or unsupported field is refused rather than ignored, and the error names it.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_body_fields_are_400_naming_the_field() {
    let server = echo_server().await;
    let pid = id_of(
        &server
            .admin_ok(
                Method::POST,
                "/api/admin/providers",
                Some(&json!({"prefix": "valid", "plugin": "openai", "base_url": "http://127.0.0.1:9/v1"})),
                201,
            )
            .await,
    );
    let cid = id_of(
        &server
            .admin_ok(
                Method::POST,
                &format!("/api/admin/providers/{pid}/credentials"),
                Some(&json!({"name": "k", "secret": "sk-valid-0123456789"})),
                201,
            )
            .await,
    );
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/admin/apps".into(),
            json!({"name": "x", "colour": "red"}),
            "colour",
        ),
        (
            Method::POST,
            "/api/admin/providers".into(),
            json!({"prefix": "u", "plugin": "openai", "api_key": "sk-nope"}),
            "api_key",
        ),
        (
            Method::PATCH,
            format!("/api/admin/providers/{pid}/credentials/{cid}"),
            json!({"wieght": 2}),
            "wieght",
        ),
    ];
    for (method, path, body, field) in &cases {
        expect_invalid(&server, method.clone(), path, Some(body), field).await;
    }
    let apps = server
        .admin_ok(Method::GET, "/api/admin/apps", None, 200)
        .await;
    assert!(!data(&apps).iter().any(|a| a["name"] == "x"), "{apps}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_are_404() {
    let server = echo_server().await;
    let app = id_of(
        &server
            .admin_ok(
                Method::POST,
                "/api/admin/apps",
                Some(&json!({"name": "exists"})),
                201,
            )
            .await,
    );
    let pid = id_of(
        &server
            .admin_ok(
                Method::POST,
                "/api/admin/providers",
                Some(&json!({"prefix": "exists", "plugin": "openai", "base_url": "http://127.0.0.1:9/v1"})),
                201,
            )
            .await,
    );
    let none = 987_654;
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/admin/apps/{none}"), None),
        (
            Method::PATCH,
            format!("/api/admin/apps/{none}"),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("/api/admin/apps/{none}"), None),
        (Method::GET, format!("/api/admin/apps/{none}/keys"), None),
        (
            Method::POST,
            format!("/api/admin/apps/{none}/keys"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/api/admin/apps/{app}/keys/{none}"),
            None,
        ),
        (Method::GET, format!("/api/admin/providers/{none}"), None),
        (
            Method::PATCH,
            format!("/api/admin/providers/{none}"),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("/api/admin/providers/{none}"), None),
        (
            Method::GET,
            format!("/api/admin/providers/{none}/credentials"),
            None,
        ),
        (
            Method::POST,
            format!("/api/admin/providers/{none}/credentials"),
            Some(json!({"name": "k", "secret": "sk-0123456789abcdef"})),
        ),
        (
            Method::GET,
            format!("/api/admin/providers/{pid}/credentials/{none}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/admin/providers/{pid}/credentials/{none}"),
            Some(json!({"weight": 2})),
        ),
        (
            Method::DELETE,
            format!("/api/admin/providers/{pid}/credentials/{none}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/admin/providers/{pid}/credentials/{none}/test"),
            Some(json!({})),
        ),
        (Method::DELETE, "/api/admin/rates/nope/none".into(), None),
        (Method::GET, "/api/admin/no-such-thing".into(), None),
    ];
    for (method, path, body) in &cases {
        expect_status(&server, method.clone(), path, body.as_ref(), 404).await;
    }
    // A key of one app cannot be revoked through another app.
    let (other, _) = server.create_app_with_key("other").await;
    let keys = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/apps/{other}/keys"),
            None,
            200,
        )
        .await;
    let kid = id_of(&data(&keys)[0]);
    expect_status(
        &server,
        Method::DELETE,
        &format!("/api/admin/apps/{app}/keys/{kid}"),
        None,
        404,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_are_409() {
    let mock = MockUpstream::always(MockReply::json(200, openai_completion("m", "x", 1, 1))).await;
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(mock_provider_config("cfg", &mock, "CFG_KEY"))
            .env("CFG_KEY", "sk-cfg-0123456789"),
    )
    .await;

    server
        .admin_ok(
            Method::POST,
            "/api/admin/apps",
            Some(&json!({"name": "dup"})),
            201,
        )
        .await;
    let other = id_of(
        &server
            .admin_ok(
                Method::POST,
                "/api/admin/apps",
                Some(&json!({"name": "other"})),
                201,
            )
            .await,
    );
    let conflict = |path: &str| path.to_string();
    expect_status(
        &server,
        Method::POST,
        &conflict("/api/admin/apps"),
        Some(&json!({"name": "dup"})),
        409,
    )
    .await;
    expect_status(
        &server,
        Method::POST,
        "/api/admin/apps",
        Some(&json!({"name": "test"})),
        409,
    )
    .await;
    expect_status(
        &server,
        Method::PATCH,
        &format!("/api/admin/apps/{other}"),
        Some(&json!({"name": "dup"})),
        409,
    )
    .await;

    let body = json!({"prefix": "mine", "plugin": "openai", "base_url": mock.base_url()});
    let pid = id_of(
        &server
            .admin_ok(Method::POST, "/api/admin/providers", Some(&body), 201)
            .await,
    );
    expect_status(
        &server,
        Method::POST,
        "/api/admin/providers",
        Some(&body),
        409,
    )
    .await;
    // Declared in the config file: the admin API may not take the prefix.
    expect_status(
        &server,
        Method::POST,
        "/api/admin/providers",
        Some(&json!({"prefix": "cfg", "plugin": "openai", "base_url": mock.base_url()})),
        409,
    )
    .await;
    // Renaming onto an existing prefix.
    let pid2 = id_of(
        &server
            .admin_ok(
                Method::POST,
                "/api/admin/providers",
                Some(&json!({"prefix": "mine2", "plugin": "openai", "base_url": mock.base_url()})),
                201,
            )
            .await,
    );
    expect_status(
        &server,
        Method::PATCH,
        &format!("/api/admin/providers/{pid2}"),
        Some(&json!({"prefix": "mine"})),
        409,
    )
    .await;
    // Credential names are unique per provider.
    let cred = json!({"name": "k", "secret": "sk-dup-0123456789"});
    let path = format!("/api/admin/providers/{pid}/credentials");
    server.admin_ok(Method::POST, &path, Some(&cred), 201).await;
    expect_status(&server, Method::POST, &path, Some(&cred), 409).await;
    // ... but the same name on another provider is fine.
    server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{pid2}/credentials"),
            Some(&cred),
            201,
        )
        .await;
    // The config provider still serves.
    chat_ok(&server, "cfg/m", "still mine").await;
}

// ---------------------------------------------------------------------------------------
// Call log: paging, filters, CSV; usage
// ---------------------------------------------------------------------------------------

async fn echo_calls(client: &reqwest::Client, server: &TestServer, model: &str, n: usize) {
    for i in 0..n {
        let resp = client
            .post(server.url("/v1/chat/completions"))
            .json(&chat_body(model, &format!("call number {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(id_of).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_paging_is_stable_while_calls_arrive() {
    let server = echo_server().await;
    echo_calls(server.client(), &server, "echo/echo-1", 25).await;
    let snapshot = server.wait_for_calls("", 25, WAIT).await;
    assert_eq!(snapshot.len(), 25);
    let snap_ids = ids(&snapshot);
    let mut sorted = snap_ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(snap_ids, sorted, "newest first");

    let page1 = server
        .admin_ok(Method::GET, "/api/admin/calls?limit=10", None, 200)
        .await;
    assert_eq!(data(&page1).len(), 10, "{page1}");
    let mut cursor = page1["next_cursor"]
        .as_i64()
        .unwrap_or_else(|| panic!("a first page of 10 of 25 has a next_cursor: {page1}"));
    let mut seen = ids(data(&page1));

    // More calls arrive between pages.
    echo_calls(server.client(), &server, "echo/echo-1", 5).await;
    server.wait_for_calls("", 30, WAIT).await;

    loop {
        let page = server
            .admin_ok(
                Method::GET,
                &format!("/api/admin/calls?limit=10&cursor={cursor}"),
                None,
                200,
            )
            .await;
        seen.extend(ids(data(&page)));
        match page["next_cursor"].as_i64() {
            Some(c) => {
                cursor = c;
                // And more while paging.
                echo_calls(server.client(), &server, "echo/echo-1", 2).await;
            }
            None => break,
        }
    }
    assert_eq!(
        seen, snap_ids,
        "pages after the first continue exactly where it ended: no duplicates, no gaps"
    );
    // A fresh first page starts with the newest.
    let fresh = server
        .admin_ok(Method::GET, "/api/admin/calls?limit=5", None, 200)
        .await;
    assert!(
        ids(data(&fresh))[0] > snap_ids[0],
        "the newest calls come first: {fresh}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_filters_select_what_they_say() {
    let failing = MockUpstream::always(MockReply::openai_error(
        400,
        "bad input",
        "invalid_request_error",
    ))
    .await;
    let server = echo_server().await;
    let p = server
        .admin_ok(
            Method::POST,
            "/api/admin/providers",
            Some(&json!({"prefix": "bad", "plugin": "openai", "base_url": failing.base_url()})),
            201,
        )
        .await;
    server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{}/credentials", id_of(&p)),
            Some(&json!({"name": "k", "secret": "sk-bad-0123456789"})),
            201,
        )
        .await;
    let (a, key_a) = server.create_app_with_key("filter-a").await;
    let (b, key_b) = server.create_app_with_key("filter-b").await;
    let (ca, cb) = (http_client_with_key(&key_a), http_client_with_key(&key_b));

    echo_calls(&ca, &server, "echo/echo-1", 3).await;
    echo_calls(&cb, &server, "echo/echo-2", 2).await;
    server.wait_for_calls("", 5, WAIT).await;
    // A gap, so a time boundary falls between the two groups.
    tokio::time::sleep(Duration::from_millis(30)).await;
    echo_calls(&ca, &server, "echo/echo-2", 4).await;
    for _ in 0..2 {
        let resp = cb
            .post(server.url("/v1/chat/completions"))
            .json(&chat_body("bad/gpt-x", "fail"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }
    let all = server.wait_for_calls("", 11, WAIT).await;
    assert_eq!(all.len(), 11);

    let check = |query: String, pred: &dyn Fn(&Value) -> bool, rows: Vec<Value>| {
        let want: Vec<i64> = all.iter().filter(|r| pred(r)).map(id_of).collect();
        assert!(!want.is_empty(), "{query}: the fixture selects nothing");
        assert_eq!(ids(&rows), want, "filter {query}");
    };
    check(
        format!("app={a}"),
        &|r| r["app_id"] == a,
        server.all_calls(&format!("app={a}")).await,
    );
    check(
        format!("app={b}"),
        &|r| r["app_id"] == b,
        server.all_calls(&format!("app={b}")).await,
    );
    check(
        "model=echo/echo-2".into(),
        &|r| r["model"] == "echo/echo-2",
        server.all_calls("model=echo%2Fecho-2").await,
    );
    check(
        "provider=bad".into(),
        &|r| r["provider"] == "bad",
        server.all_calls("provider=bad").await,
    );
    check(
        "status=error".into(),
        &|r| r["status"] == "error",
        server.all_calls("status=error").await,
    );
    check(
        "status=ok".into(),
        &|r| r["status"] == "ok",
        server.all_calls("status=ok").await,
    );
    check(
        format!("app={a}&model=echo/echo-2"),
        &|r| r["app_id"] == a && r["model"] == "echo/echo-2",
        server
            .all_calls(&format!("app={a}&model=echo%2Fecho-2"))
            .await,
    );
    for r in server.all_calls("status=error").await {
        assert_eq!(r["http_status"], 400, "{r}");
        assert!(r["error_class"].is_string(), "{r}");
        assert!(r["error_message"].is_string(), "{r}");
    }

    // since (inclusive) and until (exclusive), in Unix ms.
    let mut times: Vec<i64> = all
        .iter()
        .map(|r| r["created_at"].as_i64().expect("created_at"))
        .collect();
    times.sort_unstable();
    let boundary = times[5];
    check(
        format!("since={boundary}"),
        &|r| r["created_at"].as_i64().unwrap() >= boundary,
        server.all_calls(&format!("since={boundary}")).await,
    );
    check(
        format!("until={boundary}"),
        &|r| r["created_at"].as_i64().unwrap() < boundary,
        server.all_calls(&format!("until={boundary}")).await,
    );
    let (lo, hi) = (times[2], times[8]);
    check(
        format!("since={lo}&until={hi}"),
        &|r| {
            let t = r["created_at"].as_i64().unwrap();
            t >= lo && t < hi
        },
        server.all_calls(&format!("since={lo}&until={hi}")).await,
    );
    assert!(
        server
            .all_calls(&format!("since={}", times[10] + 1))
            .await
            .is_empty(),
        "nothing after the last call"
    );
}

/// Splits one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_export_has_the_columns_and_one_line_per_call() {
    let failing = MockUpstream::always(MockReply::openai_error(
        400,
        "bad input, with a comma and \"quotes\"",
        "invalid_request_error",
    ))
    .await;
    let server = echo_server().await;
    let p = server
        .admin_ok(
            Method::POST,
            "/api/admin/providers",
            Some(&json!({"prefix": "bad", "plugin": "openai", "base_url": failing.base_url()})),
            201,
        )
        .await;
    server
        .admin_ok(
            Method::POST,
            &format!("/api/admin/providers/{}/credentials", id_of(&p)),
            Some(&json!({"name": "k", "secret": "sk-bad-0123456789"})),
            201,
        )
        .await;
    echo_calls(server.client(), &server, "echo/echo-1", 6).await;
    let resp = server.post_chat(&chat_body("bad/gpt-x", "fail")).await;
    assert_eq!(resp.status(), 400);
    let rows = server.wait_for_calls("", 7, WAIT).await;

    let resp = server
        .admin(Method::GET, "/api/admin/calls?format=csv", None)
        .await;
    assert_eq!(resp.status(), 200);
    let ctype = content_type(&resp);
    assert!(ctype.starts_with("text/csv"), "content-type {ctype}");
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], CSV_HEADER, "CSV header");
    let columns: Vec<&str> = CSV_HEADER.split(',').collect();
    assert_eq!(lines.len(), 1 + rows.len(), "one line per call:\n{text}");
    for (line, row) in lines[1..].iter().zip(&rows) {
        let fields = csv_fields(line);
        assert_eq!(fields.len(), columns.len(), "{line}");
        for (col, field) in columns.iter().zip(&fields) {
            let want = match &row[*col] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(field, &want, "column {col} of {line} vs {row}");
        }
    }
    // The filters apply to the export too.
    let resp = server
        .admin(
            Method::GET,
            "/api/admin/calls?format=csv&status=error",
            None,
        )
        .await;
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().contains("bad/gpt-x"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_groups_sum_the_call_log() {
    let server = echo_server().await;
    let (a, key_a) = server.create_app_with_key("usage-a").await;
    let ca = http_client_with_key(&key_a);
    echo_calls(&ca, &server, "echo/echo-1", 3).await;
    echo_calls(server.client(), &server, "echo/echo-2", 2).await;
    let rows = server.wait_for_calls("", 5, WAIT).await;
    let total = |f: &dyn Fn(&Value) -> bool, col: &str| -> i64 {
        rows.iter()
            .filter(|r| f(r))
            .map(|r| r[col].as_i64().unwrap())
            .sum()
    };
    for group in ["app", "provider", "model", "hour", "day"] {
        let u = server
            .admin_ok(
                Method::GET,
                &format!("/api/admin/usage?group_by={group}"),
                None,
                200,
            )
            .await;
        for col in ["input_tokens", "output_tokens"] {
            let sum: i64 = data(&u).iter().map(|x| x[col].as_i64().unwrap()).sum();
            assert_eq!(sum, total(&|_| true, col), "group_by={group} {col}: {u}");
        }
        let calls: i64 = data(&u).iter().map(|x| x["calls"].as_i64().unwrap()).sum();
        assert_eq!(calls, 5, "group_by={group}: {u}");
    }
    let by_model = server
        .admin_ok(Method::GET, "/api/admin/usage?group_by=model", None, 200)
        .await;
    let m1 = data(&by_model)
        .iter()
        .find(|x| x["key"] == "echo/echo-1")
        .unwrap_or_else(|| panic!("{by_model}"));
    assert_eq!(m1["calls"], 3);
    assert_eq!(
        m1["input_tokens"],
        total(&|r| r["model"] == "echo/echo-1", "input_tokens")
    );
    let for_a = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/usage?group_by=model&app={a}"),
            None,
            200,
        )
        .await;
    assert_eq!(data(&for_a).len(), 1, "{for_a}");
    assert_eq!(data(&for_a)[0]["calls"], 3, "{for_a}");
    // A range in the future holds nothing.
    let future = 4_000_000_000_000i64;
    let none = server
        .admin_ok(
            Method::GET,
            &format!("/api/admin/usage?group_by=app&since={future}"),
            None,
            200,
        )
        .await;
    assert!(data(&none).is_empty(), "{none}");
}
