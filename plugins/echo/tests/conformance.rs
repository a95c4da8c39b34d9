//! The shared plugin conformance suite, run on `echo`: an offline provider, so its
//! "upstream" bodies are its own local replies and it has no upstream errors.

use aihub_echo::Echo;
use plugin_api::testing::*;
use plugin_api::{Endpoint, Usage};

const REQUEST: &[u8] = br#"{"model":"echo/echo-1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello big world"}]}"#;

/// One token per word: 2 + 3 in, 3 out.
const USAGE: Usage = Usage {
    input_tokens: 5,
    output_tokens: 3,
    cached_input_tokens: 0,
    cache_write_tokens: 0,
    reasoning_tokens: 0,
};

fn spec() -> Conformance {
    Conformance {
        model: "echo-1",
        api_key: None,
        request: REQUEST.to_vec(),
        clock: Clock::LocalWithIds,
        endpoints: vec![
            (
                Endpoint::Embeddings,
                Support::Unsupported("echo only serves chat completions"),
            ),
            (
                Endpoint::Images,
                Support::Unsupported("echo only serves chat completions"),
            ),
        ],
        chat_whole: Support::Yes(WholeChat {
            reply: Body::Local,
            text: "hello big world".into(),
            usage: Some(USAGE),
        }),
        chat_stream: Support::Yes(StreamCase {
            body: Body::Local,
            text: "hello big world".into(),
            usage: Some(USAGE),
        }),
        stream_fixtures: vec![],
        // Half a local reply is unreadable JSON: the decoder fails at the end.
        cut_stream: Support::Yes(Body::Local),
        errors: Errors::unsupported("offline: answers locally, there is no upstream to fail"),
        cached_tokens: Support::Unsupported("offline: nothing is cached"),
        reasoning_tokens: Support::Unsupported("echo does not reason"),
    }
}

plugin_api::conformance_suite!(plugin: || Echo, spec: spec());
