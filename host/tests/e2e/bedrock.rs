//! Amazon Bedrock through the real binary, against a mock (`support/bedrock_mock.py`) that
//! verifies the AWS Signature V4 of every request with botocore — an implementation
//! independent of the plugin's — and answers Converse, ConverseStream (binary event-stream
//! frames) and InvokeModel.

use crate::common;

use common::python_sdk::sdk_python;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const ACCESS: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-west-2";

struct Mock {
    child: Child,
    port: u16,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mock() -> Mock {
    let python = sdk_python();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/bedrock_mock.py");
    let mut child = Command::new(python)
        .arg(script)
        .args([ACCESS, SECRET, REGION])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Bedrock mock");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("mock stdout"))
        .read_line(&mut line)
        .expect("the mock prints its port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a port: {line:?}"));
    Mock { child, port }
}

#[tokio::test(flavor = "multi_thread")]
async fn bedrock_requests_are_signed_and_converse_replies_and_streams_translate() {
    let mock = tokio::task::spawn_blocking(start_mock).await.unwrap();
    let base = format!("http://127.0.0.1:{}", mock.port);
    let config = format!(
        "[[providers]]\nprefix = \"bedrock\"\nplugin = \"bedrock\"\nbase_url = \"{base}\"\noptions = {{ region = \"{REGION}\" }}\n"
    );
    let s = TestServer::start(
        ServerOptions::new()
            .plugin("libaihub_bedrock.so")
            .config(config)
            .env("AWS_ACCESS_KEY_ID", ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", SECRET),
    )
    .await;
    let model = "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0";
    let resp = s.post_chat(&chat_body(model, "hello bedrock")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"], "Hello from Bedrock",
        "{v}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);

    let mut body = chat_body(model, "hello bedrock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let sse = collect_sse(s.post_chat(&body).await).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "Hello from Bedrock");
    assert_eq!(sse.usage_chunks().len(), 1, "{sse:?}");

    let resp = s
        .post_json(
            "/v1/embeddings",
            &json!({"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "hi"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"], json!([0.25, -0.5, 1.0]), "{v}");

    // A stored credential with a session token, on a provider of its own.
    let p = s
        .admin_ok(
            Method::POST,
            "/api/admin/providers",
            Some(&json!({"prefix": "bedrock-b", "plugin": "bedrock", "base_url": base, "options": {"region": REGION}})),
            201,
        )
        .await;
    let pid = p["id"].as_i64().unwrap();
    let secret = json!({"access_key_id": ACCESS, "secret_access_key": SECRET, "session_token": "FQoGZXIvYXdzEXAMPLETOKEN"});
    s.add_key(pid, "sts", &secret.to_string(), None).await;
    let resp = s
        .post_chat(&chat_body(
            "bedrock-b/anthropic.claude-3-5-sonnet-20240620-v1:0",
            "x",
        ))
        .await;
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    let checks: Value = reqwest::get(format!("{base}/__checks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let checks = checks.as_array().unwrap();
    assert_eq!(checks.len(), 4, "{checks:?}");
    for c in checks {
        assert_eq!(c["signature"], "ok", "botocore disagrees: {c}");
    }
    assert!(checks[0]["path"]
        .as_str()
        .unwrap()
        .contains("anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"));
    assert!(checks[1]["path"]
        .as_str()
        .unwrap()
        .ends_with("/converse-stream"));
}
