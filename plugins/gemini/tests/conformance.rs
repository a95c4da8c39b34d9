//! The shared plugin conformance suite, run on `gemini` with recorded Gemini API replies.

use aihub_gemini::Gemini;
use plugin_api::serde_json::Value;
use plugin_api::testing::*;
use plugin_api::{fixture, Endpoint, Plugin, ProviderConfig, Usage};

fn gemini() -> Gemini {
    Gemini::new(ProviderConfig {
        prefix: "gemini".into(),
        base_url: aihub_gemini::BASE_URL.into(),
        options: Value::Null,
    })
    .unwrap_or_else(|e| panic!("provider: {e}"))
}

fn spec() -> Conformance {
    Conformance {
        model: "gemini-2.5-flash",
        api_key: Some("AIzaSyTEST-key-0123456789"),
        request: br#"{"messages":[{"role":"user","content":"Hi"}]}"#.to_vec(),
        // Response ids come from the upstream, `created` from the decoder's clock.
        clock: Clock::Local,
        endpoints: vec![
            (
                Endpoint::Embeddings,
                Support::Yes(("gemini-embedding-001", br#"{"input":"hello"}"#.to_vec())),
            ),
            (
                Endpoint::Images,
                Support::Unsupported("the Gemini provider does not generate images"),
            ),
        ],
        chat_whole: Support::Yes(WholeChat {
            reply: Body::Fixture(fixture!("generate_text.json")),
            text: "The capital of France is Paris.".into(),
            usage: Some(Usage {
                input_tokens: 14,
                output_tokens: 7,
                ..Usage::default()
            }),
        }),
        chat_stream: Support::Yes(StreamCase {
            body: Body::Fixture(fixture!("stream_text.sse")),
            text:
                "Bonjour ! Comment puis-je vous aider aujourd'hui ? Ça va très bien — merci. 世界"
                    .into(),
            usage: Some(Usage {
                input_tokens: 8,
                output_tokens: 141,
                reasoning_tokens: 120,
                ..Usage::default()
            }),
        }),
        stream_fixtures: vec![
            (
                "stream_function_call.sse",
                fixture!("stream_function_call.sse"),
            ),
            (
                "stream_prompt_blocked.sse",
                fixture!("stream_prompt_blocked.sse"),
            ),
            ("stream_cut.sse", fixture!("stream_cut.sse")),
            ("stream_error.sse", fixture!("stream_error.sse")),
            ("stream_malformed.sse", fixture!("stream_malformed.sse")),
        ],
        cut_stream: Support::Yes(Body::Fixture(fixture!("stream_cut.sse"))),
        errors: Errors {
            auth: Support::Yes(ErrorCase::new(401, fixture!("error_401.json"))),
            // The wait comes from the body's RetryInfo when no header says.
            rate_limited: Support::Yes(ErrorCase {
                retry_after_ms: Some(13_000),
                ..ErrorCase::new(429, fixture!("error_429.json"))
            }),
            bad_request: Support::Yes(ErrorCase::new(400, fixture!("error_400.json"))),
            upstream: Support::Yes(ErrorCase::new(503, fixture!("error_503.json"))),
        },
        cached_tokens: Support::Yes(UsageCase {
            reply: fixture!("generate_thinking_cached.json"),
            usage: Usage {
                input_tokens: 4213,
                output_tokens: 363,
                cached_input_tokens: 4096,
                cache_write_tokens: 0,
                reasoning_tokens: 351,
            },
        }),
        reasoning_tokens: Support::Yes(UsageCase {
            reply: fixture!("generate_thinking_cached.json"),
            usage: Usage {
                input_tokens: 4213,
                output_tokens: 363,
                cached_input_tokens: 4096,
                cache_write_tokens: 0,
                reasoning_tokens: 351,
            },
        }),
    }
}

plugin_api::conformance_suite!(plugin: gemini, spec: spec());
