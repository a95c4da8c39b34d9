//! Mock upstreams for every shipped provider, replaying the plugins' own fixtures, and a
//! gateway routed to them (shared by the provider and OpenAI SDK tests).

use super::*;
use std::path::PathBuf;

fn fixture(plugin: &str, name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(plugin)
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}

fn raw(status: u16, content_type: &str, body: Vec<u8>) -> MockReply {
    MockReply::Raw {
        status,
        content_type: content_type.into(),
        body,
    }
}

/// Which fixture answers: chosen by the model the client asked for.
fn anthropic_mock_reply(req: &Recorded) -> MockReply {
    let body = req.json();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let model = body["model"].as_str().unwrap_or_default();
    let fx = |n: &str| fixture("anthropic", n);
    match (model, stream) {
        ("claude-cut", true) => raw(200, "text/event-stream", fx("stream_cut.sse")),
        ("claude-busy", _) => raw(429, "application/json", fx("error_429.json")),
        (_, true) => raw(200, "text/event-stream", fx("stream_text.sse")),
        (_, false) => raw(200, "application/json", fx("message_text.json")),
    }
}

fn gemini_mock_reply(req: &Recorded) -> MockReply {
    let fx = |n: &str| fixture("gemini", n);
    let path = req.uri.as_str();
    let streaming = path.contains(":streamGenerateContent");
    if path.contains("gemini-cut") && streaming {
        return raw(200, "text/event-stream", fx("stream_cut.sse"));
    }
    if path.contains("gemini-busy") {
        return raw(429, "application/json", fx("error_429.json"));
    }
    if streaming {
        raw(200, "text/event-stream", fx("stream_text.sse"))
    } else {
        raw(200, "application/json", fx("generate_text.json"))
    }
}

pub struct Providers {
    pub server: TestServer,
    pub anthropic: MockUpstream,
    pub gemini: MockUpstream,
    pub openai: MockUpstream,
}

pub async fn start_all() -> Providers {
    let anthropic = MockUpstream::start(anthropic_mock_reply).await;
    let gemini = MockUpstream::start(gemini_mock_reply).await;
    let openai = MockUpstream::start(|req| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("gpt-x").to_string();
        if body["stream"].as_bool().unwrap_or(false) {
            MockReply::sse(
                openai_stream_chunks(&model, &["Hello", " from", " OpenAI"], Some((9, 3))),
                std::time::Duration::ZERO,
                SseEnd::Done,
            )
        } else {
            MockReply::json(200, openai_completion(&model, "Hello from OpenAI", 9, 4))
        }
    })
    .await;
    let config = format!(
        r#"
[[providers]]
prefix = "anthropic"
plugin = "anthropic"
base_url = "http://{a}"
api_key_env = "TEST_ANTHROPIC_KEY"

[[providers]]
prefix = "gemini"
plugin = "gemini"
base_url = "http://{g}/v1beta"
api_key_env = "TEST_GEMINI_KEY"

[[providers]]
prefix = "openai"
plugin = "openai"
base_url = "http://{o}/v1"
api_key_env = "TEST_OPENAI_KEY"
"#,
        a = anthropic.addr(),
        g = gemini.addr(),
        o = openai.addr()
    );
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .plugin("libaihub_anthropic.so")
            .plugin("libaihub_gemini.so")
            .config(config)
            .env("TEST_ANTHROPIC_KEY", "sk-ant-test-key-0001")
            .env("TEST_GEMINI_KEY", "AIza-test-key-0002")
            .env("TEST_OPENAI_KEY", "sk-test-key-0003"),
    )
    .await;
    Providers {
        server,
        anthropic,
        gemini,
        openai,
    }
}
