//! The shared plugin conformance suite, run on `openai` with recorded OpenAI replies.

use aihub_openai::OpenAi;
use plugin_api::serde_json::Value;
use plugin_api::testing::*;
use plugin_api::{fixture, Endpoint, Plugin, ProviderConfig, Usage};

fn openai() -> OpenAi {
    OpenAi::new(ProviderConfig {
        prefix: "openai".into(),
        base_url: "https://api.openai.com/v1".into(),
        options: Value::Null,
    })
    .unwrap_or_else(|e| panic!("provider: {e}"))
}

/// The text stream, ended before its `data: [DONE]`.
fn cut_stream() -> Vec<u8> {
    let sse = fixture!("chat_stream_text.sse");
    let done = sse
        .windows(12)
        .position(|w| w == b"data: [DONE]")
        .unwrap_or_else(|| panic!("no [DONE] in the fixture"));
    sse[..done].to_vec()
}

fn spec() -> Conformance {
    Conformance {
        model: "gpt-4o",
        api_key: Some("sk-test"),
        request: br#"{"messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
        clock: Clock::Upstream,
        endpoints: vec![
            (
                Endpoint::Embeddings,
                Support::Yes(("text-embedding-3-small", br#"{"input":"hi"}"#.to_vec())),
            ),
            (
                Endpoint::Images,
                Support::Yes(("dall-e-3", br#"{"prompt":"a cat"}"#.to_vec())),
            ),
        ],
        chat_whole: Support::Yes(WholeChat {
            reply: Body::Fixture(fixture!("chat_completion.json")),
            text: "The image shows a wooden boardwalk path running through a lush green field \
                   or meadow."
                .into(),
            usage: Some(Usage {
                input_tokens: 1117,
                output_tokens: 46,
                cached_input_tokens: 1024,
                ..Usage::default()
            }),
        }),
        chat_stream: Support::Yes(StreamCase {
            body: Body::Fixture(fixture!("chat_stream_text.sse")),
            text: "Hello! How can I assist you today? 😊".into(),
            usage: Some(Usage {
                input_tokens: 19,
                output_tokens: 10,
                ..Usage::default()
            }),
        }),
        stream_fixtures: vec![
            ("chat_stream_tools.sse", fixture!("chat_stream_tools.sse")),
            (
                "chat_stream_usage_on_last_choice.sse",
                fixture!("chat_stream_usage_on_last_choice.sse"),
            ),
            ("chat_stream_error.sse", fixture!("chat_stream_error.sse")),
            ("cut", cut_stream()),
        ],
        cut_stream: Support::Yes(Body::Fixture(cut_stream())),
        errors: Errors {
            auth: Support::Yes(ErrorCase::new(401, fixture!("error_401.json"))),
            rate_limited: Support::Yes(ErrorCase {
                headers: vec![("retry-after", "20")],
                retry_after_ms: Some(20_000),
                ..ErrorCase::new(429, fixture!("error_429.json"))
            }),
            bad_request: Support::Yes(ErrorCase::new(400, fixture!("error_400.json"))),
            upstream: Support::Yes(ErrorCase::new(500, fixture!("error_500.json"))),
        },
        cached_tokens: Support::Yes(UsageCase {
            reply: fixture!("chat_completion.json"),
            usage: Usage {
                input_tokens: 1117,
                output_tokens: 46,
                cached_input_tokens: 1024,
                ..Usage::default()
            },
        }),
        reasoning_tokens: Support::Yes(UsageCase {
            reply: fixture!("chat_completion_reasoning.json"),
            usage: Usage {
                input_tokens: 20,
                output_tokens: 500,
                reasoning_tokens: 448,
                ..Usage::default()
            },
        }),
    }
}

plugin_api::conformance_suite!(plugin: openai, spec: spec());
