//! Pass-through replies (plugin ABI 2): the openai plugin tells the host to forward the
//! upstream's bytes unchanged, whole bodies and streams, and reports only the usage. The
//! client must get the upstream's exact bytes; the call log still gets the tokens.

use crate::common;

use common::*;
use serde_json::json;
use std::time::Duration;

const KEY_ENV: &str = "MOCK_PASS_KEY";

/// Valid JSON no serializer would write: odd spacing, keys out of the usual order, a
/// field no schema knows, an escaped slash, a float with an exponent.
const ODD_COMPLETION: &str = "{ \"usage\" :{\"completion_tokens\":4 ,  \"prompt_tokens\": 11,\"total_tokens\":15},\n\t\"x_vendor\": {\"route\" : \"a\\/b\", \"score\": 1.50e0},\n  \"choices\":[ {\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi \\u00e9\"},\"finish_reason\":\"stop\"} ],\"object\":\"chat.completion\", \"id\":\"c-1\",\"model\":\"gpt-x\",\"created\":1 }\n";

/// An event stream with the framing variations SSE allows: no space after `data:`, a
/// comment line, and a usage chunk before `[DONE]`.
const ODD_STREAM: &str = concat!(
    ": keep-alive\n\n",
    "data:{\"id\":\"c-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c-2\", \"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"y\"},\"finish_reason\":\"stop\"}] ,\"usage\":null}\n\n",
    "data: {\"id\":\"c-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
    "data: [DONE]\n\n",
);

async fn server_for(mock: &MockUpstream) -> TestServer {
    let config = format!(
        r#"
[[providers]]
prefix = "pass"
plugin = "openai"
base_url = "{}"
api_key_env = "{KEY_ENV}"
options = {{ stream_pass_through = true }}
"#,
        mock.base_url()
    );
    TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(config)
            .env(KEY_ENV, "sk-pass-test"),
    )
    .await
}

fn raw(content_type: &str, body: &str) -> MockReply {
    MockReply::Raw {
        status: 200,
        content_type: content_type.into(),
        body: body.as_bytes().to_vec(),
    }
}

async fn call_row(server: &TestServer) -> serde_json::Value {
    let rows = server
        .wait_for_calls("model=pass%2Fgpt-x", 1, Duration::from_secs(10))
        .await;
    rows.into_iter().next().expect("one call row")
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_reply_reaches_the_client_byte_identical_with_usage_recorded() {
    let mock = MockUpstream::always(raw("application/json; charset=utf-8", ODD_COMPLETION)).await;
    let server = server_for(&mock).await;
    let resp = server.post_chat(&chat_body("pass/gpt-x", "hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(content_type(&resp), "application/json; charset=utf-8");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        ODD_COMPLETION,
        "the upstream's bytes, unchanged"
    );
    let row = call_row(&server).await;
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(row["input_tokens"], 11, "{row}");
    assert_eq!(row["output_tokens"], 4, "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_reaches_the_client_byte_identical_with_usage_recorded() {
    let mock = MockUpstream::always(raw("text/event-stream", ODD_STREAM)).await;
    let server = server_for(&mock).await;
    let mut req = chat_body("pass/gpt-x", "hi");
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = server.post_chat(&req).await;
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), ODD_STREAM);
    let row = call_row(&server).await;
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(row["input_tokens"], 7, "{row}");
    assert_eq!(row["output_tokens"], 2, "{row}");

    // Without include_usage the usage chunk must be hidden: decoded, not passed through.
    let mut req = chat_body("pass/gpt-x", "hi");
    req["stream"] = json!(true);
    let sse = collect_sse(server.post_chat(&req).await).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "Hey");
    assert!(sse.usage_chunks().is_empty(), "{sse:?}");
}
