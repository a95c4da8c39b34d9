//! The shared plugin conformance suite, run on `ideogram`: an images-only provider, so
//! chat and its streams are declared unsupported (and the suite checks they are
//! refused), while every error class is checked on Ideogram's error bodies.

use aihub_ideogram::Ideogram;
use plugin_api::serde_json::Value;
use plugin_api::testing::*;
use plugin_api::{fixture, Endpoint, Plugin, ProviderConfig};

fn ideogram() -> Ideogram {
    Ideogram::new(ProviderConfig {
        prefix: "ideogram".into(),
        base_url: aihub_ideogram::BASE_URL.into(),
        options: Value::Null,
    })
    .unwrap_or_else(|e| panic!("provider: {e}"))
}

const NO_CHAT: &str = "Ideogram only generates images";

fn spec() -> Conformance {
    Conformance {
        model: "ideogram-v3",
        api_key: Some("ideo-test-key-0123456789"),
        request: br#"{"messages":[{"role":"user","content":"Hi"}]}"#.to_vec(),
        clock: Clock::Local,
        endpoints: vec![
            (
                Endpoint::Images,
                Support::Yes((
                    "ideogram-v3",
                    br#"{"prompt":"a white cat","n":2,"size":"1024x1024"}"#.to_vec(),
                )),
            ),
            (Endpoint::Embeddings, Support::Unsupported(NO_CHAT)),
        ],
        chat_whole: Support::Unsupported(NO_CHAT),
        chat_stream: Support::Unsupported(NO_CHAT),
        stream_fixtures: vec![],
        cut_stream: Support::Unsupported(NO_CHAT),
        errors: Errors {
            auth: Support::Yes(ErrorCase::new(401, fixture!("error_401.json"))),
            rate_limited: Support::Yes(ErrorCase {
                headers: vec![("retry-after", "12")],
                retry_after_ms: Some(12_000),
                ..ErrorCase::new(429, fixture!("error_429.json"))
            }),
            bad_request: Support::Yes(ErrorCase::new(400, fixture!("error_400.json"))),
            upstream: Support::Yes(ErrorCase::new(503, fixture!("error_503.json"))),
        },
        cached_tokens: Support::Unsupported("images are not billed in tokens"),
        reasoning_tokens: Support::Unsupported("images are not billed in tokens"),
    }
}

plugin_api::conformance_suite!(plugin: ideogram, spec: spec());
