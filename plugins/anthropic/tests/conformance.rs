//! The shared plugin conformance suite, run on `anthropic` with recorded Messages API
//! replies.

use aihub_anthropic::Anthropic;
use plugin_api::serde_json::Value;
use plugin_api::testing::*;
use plugin_api::{fixture, Endpoint, Plugin, ProviderConfig, Usage};

fn anthropic() -> Anthropic {
    Anthropic::new(ProviderConfig {
        prefix: "anthropic".into(),
        base_url: "https://api.anthropic.com".into(),
        options: Value::Null,
    })
    .unwrap_or_else(|e| panic!("provider: {e}"))
}

const CHAT_ONLY: &str = "the Messages API serves chat only";

fn spec() -> Conformance {
    Conformance {
        model: "claude-sonnet-4-5",
        api_key: Some("sk-ant-test"),
        request: br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#.to_vec(),
        // Chunk ids come from the upstream, `created` from the decoder's clock.
        clock: Clock::Local,
        endpoints: vec![
            (Endpoint::Embeddings, Support::Unsupported(CHAT_ONLY)),
            (Endpoint::Images, Support::Unsupported(CHAT_ONLY)),
        ],
        chat_whole: Support::Yes(WholeChat {
            reply: Body::Fixture(fixture!("message_text.json")),
            text: "The capital of Italy is Rome.".into(),
            usage: Some(Usage {
                input_tokens: 41,
                output_tokens: 10,
                ..Usage::default()
            }),
        }),
        chat_stream: Support::Yes(StreamCase {
            body: Body::Fixture(fixture!("stream_text.sse")),
            text: "Héllo, 世界! 👋 How can I help?".into(),
            usage: Some(Usage {
                input_tokens: 25 + 12 + 2048,
                output_tokens: 15,
                cached_input_tokens: 2048,
                cache_write_tokens: 12,
                reasoning_tokens: 0,
            }),
        }),
        stream_fixtures: vec![
            ("stream_tools.sse", fixture!("stream_tools.sse")),
            ("stream_thinking.sse", fixture!("stream_thinking.sse")),
            ("stream_error.sse", fixture!("stream_error.sse")),
            ("stream_cut.sse", fixture!("stream_cut.sse")),
        ],
        cut_stream: Support::Yes(Body::Fixture(fixture!("stream_cut.sse"))),
        errors: Errors {
            auth: Support::Yes(ErrorCase::new(401, fixture!("error_401.json"))),
            rate_limited: Support::Yes(ErrorCase {
                headers: vec![
                    ("retry-after", "20"),
                    ("anthropic-ratelimit-requests-remaining", "0"),
                ],
                retry_after_ms: Some(20_000),
                ..ErrorCase::new(429, fixture!("error_429.json"))
            }),
            bad_request: Support::Yes(ErrorCase::new(400, fixture!("error_400.json"))),
            upstream: Support::Yes(ErrorCase::new(529, fixture!("error_529.json"))),
        },
        cached_tokens: Support::Yes(UsageCase {
            reply: fixture!("message_cache.json"),
            usage: Usage {
                input_tokens: 10449,
                output_tokens: 16,
                cached_input_tokens: 10240,
                cache_write_tokens: 188,
                reasoning_tokens: 0,
            },
        }),
        reasoning_tokens: Support::Unsupported(
            "the Messages API counts thinking inside output_tokens, with no separate count",
        ),
    }
}

plugin_api::conformance_suite!(plugin: anthropic, spec: spec());
