//! The shared plugin conformance suite, run on the template. Keep this file when you copy
//! the template: replace the declarations with your provider's fixtures (recorded upstream
//! replies under `tests/fixtures/`, read with `plugin_api::fixture!`).

use hello_plugin::Hello;
use plugin_api::testing::*;
use plugin_api::Usage;

const REQUEST: &[u8] = br#"{"messages":[{"role":"user","content":"world"}]}"#;

/// The greeting names the version the library was built as.
fn greeting() -> String {
    let version = option_env!("HELLO_PLUGIN_VERSION").unwrap_or(env!("CARGO_PKG_VERSION"));
    format!("Hello from hello-plugin v{version}: world")
}

fn usage() -> Usage {
    Usage {
        input_tokens: 1,
        output_tokens: greeting().split_whitespace().count() as u64,
        ..Usage::default()
    }
}

fn spec() -> Conformance {
    Conformance {
        model: "world",
        api_key: None,
        request: REQUEST.to_vec(),
        clock: Clock::Local,
        // The template answers every endpoint with a greeting; a real plugin declares
        // what it refuses here, e.g. (Endpoint::Images, Support::Unsupported("...")).
        endpoints: vec![],
        chat_whole: Support::Yes(WholeChat {
            reply: Body::Local,
            text: greeting(),
            usage: Some(usage()),
        }),
        chat_stream: Support::Yes(StreamCase {
            body: Body::Local,
            text: greeting(),
            usage: Some(usage()),
        }),
        stream_fixtures: vec![],
        cut_stream: Support::Unsupported(
            "the local reply is plain text without framing: any prefix is a whole greeting",
        ),
        errors: Errors::unsupported("offline: answers locally, there is no upstream to fail"),
        cached_tokens: Support::Unsupported("offline: nothing is cached"),
        reasoning_tokens: Support::Unsupported("the template does not reason"),
    }
}

plugin_api::conformance_suite!(plugin: || Hello, spec: spec());
