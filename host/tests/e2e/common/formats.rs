//! Upstreams for the client-format tests: a Chat Completions-only server (tools, cut
//! streams) behind the openai plugin, Anthropic's Messages API from the anthropic plugin's
//! fixtures, and a gateway routed to both (`compat/...`, `anthropic/...`) plus echo.

use super::*;

pub fn weather_tool_call(model: &str) -> Value {
    json!({
        "id": "chatcmpl-tool-1",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_w1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
            }]},
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27,
                   "prompt_tokens_details": {"cached_tokens": 5}}
    })
}

fn tool_call_chunks(model: &str) -> Vec<Value> {
    let base = |choices: Value| {
        json!({"id": "chatcmpl-tool-s", "object": "chat.completion.chunk",
               "created": 1_700_000_000u64, "model": model, "choices": choices})
    };
    let mut u = base(json!([]));
    u["usage"] = json!({"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27});
    vec![
        base(
            json!([{"index": 0, "delta": {"role": "assistant", "tool_calls": [{
            "index": 0, "id": "call_w1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]),
        ),
        base(json!([{"index": 0, "delta": {"tool_calls": [{
            "index": 0, "function": {"arguments": "{\"city\":"}}]}, "finish_reason": null}])),
        base(json!([{"index": 0, "delta": {"tool_calls": [{
            "index": 0, "function": {"arguments": "\"Paris\"}"}}]}, "finish_reason": null}])),
        base(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
        u,
    ]
}

/// A Chat Completions-only upstream: a tool call when tools are offered and no tool
/// result came back yet, else text; model `cut` cuts its stream.
pub fn chat_only_mock(req: &Recorded) -> MockReply {
    if !req.uri.ends_with("/chat/completions") {
        return MockReply::openai_error(404, "only chat completions here", "not_found");
    }
    let body = req.json();
    let model = body["model"].as_str().unwrap_or("x").to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let last_role = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| m["role"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let offers_tools = body["tools"].is_array();
    if model == "cut" && stream {
        let chunks = openai_stream_chunks(&model, &["partial", " answer"], None);
        return MockReply::sse(chunks[..2].to_vec(), Duration::ZERO, SseEnd::Cut);
    }
    if offers_tools && last_role != "tool" {
        return if stream {
            MockReply::sse(tool_call_chunks(&model), Duration::ZERO, SseEnd::Done)
        } else {
            MockReply::json(200, weather_tool_call(&model))
        };
    }
    let text = if last_role == "tool" {
        "It is sunny in Paris."
    } else {
        "Hello from chat"
    };
    if stream {
        let pieces: Vec<&str> = text.split_inclusive(' ').collect();
        MockReply::sse(
            openai_stream_chunks(&model, &pieces, Some((11, 4))),
            Duration::ZERO,
            SseEnd::Done,
        )
    } else {
        MockReply::json(200, openai_completion(&model, text, 11, 4))
    }
}

pub fn anthropic_fixture(name: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/anthropic/tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Anthropic's Messages API, answering from the anthropic plugin's fixtures.
pub fn anthropic_mock(req: &Recorded) -> MockReply {
    let body = req.json();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let model = body["model"].as_str().unwrap_or_default();
    let raw = |status: u16, ct: &str, name: &str| MockReply::Raw {
        status,
        content_type: ct.into(),
        body: anthropic_fixture(name),
    };
    match (model, stream) {
        ("claude-overloaded", _) => raw(529, "application/json", "error_529.json"),
        ("claude-cut", true) => raw(200, "text/event-stream", "stream_cut.sse"),
        (_, true) => raw(200, "text/event-stream", "stream_text.sse"),
        (_, false) => raw(200, "application/json", "message_text.json"),
    }
}

fn openai_fixture(name: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/openai/tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// OpenAI's own Responses API (the `openai` prefix takes Responses natively), from the
/// openai plugin's fixtures.
pub fn responses_mock(req: &Recorded) -> MockReply {
    if !req.uri.ends_with("/v1/responses") {
        return MockReply::openai_error(404, "only responses here", "not_found");
    }
    let stream = req.json()["stream"].as_bool().unwrap_or(false);
    let (ct, name) = if stream {
        ("text/event-stream", "responses_stream.sse")
    } else {
        ("application/json", "responses.json")
    };
    MockReply::Raw {
        status: 200,
        content_type: ct.into(),
        body: openai_fixture(name),
    }
}

pub fn openai_responses_fixture(stream: bool) -> Vec<u8> {
    openai_fixture(if stream {
        "responses_stream.sse"
    } else {
        "responses.json"
    })
}

pub struct Formats {
    pub server: TestServer,
    pub chat: MockUpstream,
    pub anthropic: MockUpstream,
    /// Behind the `openai` prefix.
    pub responses: MockUpstream,
}

pub async fn start(extra_config: &str) -> Formats {
    let chat = MockUpstream::start(chat_only_mock).await;
    let anthropic = MockUpstream::start(anthropic_mock).await;
    let responses = MockUpstream::start(responses_mock).await;
    let config = format!(
        "{}{}\n[[providers]]\nprefix = \"anthropic\"\nplugin = \"anthropic\"\nbase_url = \"http://{}\"\napi_key_env = \"TEST_ANTHROPIC_KEY\"\nmodels = [\"claude-overloaded\", \"claude-cut\"]\n{extra_config}",
        mock_provider_config("compat", &chat, "TEST_COMPAT_KEY"),
        mock_provider_config("openai", &responses, "TEST_OPENAI_KEY"),
        anthropic.addr()
    );
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .plugin("libaihub_anthropic.so")
            .config(config)
            .env("TEST_COMPAT_KEY", "sk-compat-key-0001")
            .env("TEST_ANTHROPIC_KEY", "sk-ant-test-key-0002")
            .env("TEST_OPENAI_KEY", "sk-openai-key-0003"),
    )
    .await;
    Formats {
        server,
        chat,
        anthropic,
        responses,
    }
}
