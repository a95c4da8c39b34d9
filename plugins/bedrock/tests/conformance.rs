//! The shared plugin conformance suite, run on `bedrock` with Converse replies and
//! converse-stream bodies from `tests/fixtures/`.

use aihub_bedrock::Bedrock;
use plugin_api::serde_json::Value;
use plugin_api::testing::*;
use plugin_api::{fixture, Endpoint, ProviderConfig, Usage};

fn bedrock() -> Bedrock {
    // No environment: the conformance calls carry their own credential.
    Bedrock::with_env(
        ProviderConfig {
            prefix: "bedrock".into(),
            base_url: String::new(),
            options: Value::Null,
        },
        |_| None,
    )
    .unwrap_or_else(|e| panic!("provider: {e}"))
}

fn error(status: u16, kind: &'static str, file: &str) -> ErrorCase {
    ErrorCase {
        headers: vec![("x-amzn-errortype", kind)],
        ..ErrorCase::new(status, fixture!(file))
    }
}

fn spec() -> Conformance {
    Conformance {
        model: "anthropic.claude-3-5-haiku-20241022-v1:0",
        api_key: Some("ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlOmV4YW1wbGU="),
        request: br#"{"messages":[{"role":"user","content":"Hi"}]}"#.to_vec(),
        // Converse has no response ids: the decoder makes one, and reads the clock.
        clock: Clock::LocalWithIds,
        endpoints: vec![
            (
                Endpoint::Embeddings,
                Support::Yes(("amazon.titan-embed-text-v2:0", br#"{"input":"hello"}"#.to_vec())),
            ),
            (
                Endpoint::Images,
                Support::Unsupported("image generation is not offered by the bedrock provider"),
            ),
        ],
        chat_whole: Support::Yes(WholeChat {
            reply: Body::Fixture(fixture!("converse_text.json")),
            text: "The capital of France is Paris.".into(),
            usage: Some(Usage {
                input_tokens: 14,
                output_tokens: 8,
                ..Usage::default()
            }),
        }),
        chat_stream: Support::Yes(StreamCase {
            body: Body::Fixture(fixture!("streams/stream_text.bin")),
            text: "Bonjour ! Ça va très bien — merci. 世界".into(),
            usage: Some(Usage {
                input_tokens: 12,
                output_tokens: 9,
                ..Usage::default()
            }),
        }),
        stream_fixtures: [
            "stream_tool_use.bin",
            "stream_reasoning.bin",
            "stream_cut.bin",
            "stream_no_metadata.bin",
            "stream_throttling.bin",
            "stream_validation.bin",
            "stream_model_error.bin",
        ]
        .into_iter()
        .map(|n| (n, fixture!(&format!("streams/{n}"))))
        .collect(),
        cut_stream: Support::Yes(Body::Fixture(fixture!("streams/stream_cut.bin"))),
        errors: Errors {
            auth: Support::Yes(error(
                403,
                "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/",
                "error_403_unrecognized_client.json",
            )),
            // Bedrock sends no Retry-After: the host's own cool-down applies.
            rate_limited: Support::Yes(error(
                429,
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                "error_429_throttling.json",
            )),
            bad_request: Support::Yes(error(
                400,
                "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                "error_400_validation.json",
            )),
            upstream: Support::Yes(error(
                503,
                "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                "error_503_service_unavailable.json",
            )),
        },
        cached_tokens: Support::Yes(UsageCase {
            reply: fixture!("converse_cached.json"),
            usage: Usage {
                input_tokens: 4625,
                output_tokens: 64,
                cached_input_tokens: 4096,
                cache_write_tokens: 512,
                reasoning_tokens: 0,
            },
        }),
        reasoning_tokens: Support::Unsupported(
            "Converse reports no reasoning token count (reasoning is billed inside outputTokens)",
        ),
    }
}

plugin_api::conformance_suite!(plugin: bedrock, spec: spec());
