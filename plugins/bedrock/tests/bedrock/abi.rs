//! The built `cdylib`, loaded the way the host loads it, answers through the ABI.

use crate::common::*;
use plugin_api::host::PluginLibrary;
use plugin_api::testing::response;
use plugin_api::*;
use std::path::PathBuf;

fn library_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    [deps, deps.parent().unwrap_or(deps)]
        .iter()
        .map(|d| d.join("libaihub_bedrock.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libaihub_bedrock.so not found next to {}", exe.display()))
}

#[test]
fn cdylib_loads_and_translates_through_the_abi() {
    let lib = PluginLibrary::load(&library_path()).expect("loads");
    let m = lib.manifest();
    assert_eq!(m.name, "bedrock");
    assert_eq!(m.abi_version, ABI_VERSION);
    assert_eq!(m.providers[0].prefix, "bedrock");
    assert_eq!(m.providers[0].auth, AuthScheme::None);
    assert_eq!(
        m.providers[0].api_key_env.as_deref(),
        Some("AWS_BEARER_TOKEN_BEDROCK")
    );
    assert!(
        !m.providers[0].base_url.contains('{'),
        "the host skips template defaults"
    );

    let adapter = lib
        .new_adapter(&ProviderConfig {
            prefix: "bedrock".into(),
            base_url: String::new(),
            options: plugin_api::serde_json::json!({"region": "eu-west-3"}),
        })
        .expect("adapter");
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let secret = format!("{AKID}:{SECRET}:{TOKEN}");
    let c = call_with(
        Endpoint::Chat,
        MODEL,
        body,
        Credential::ApiKey(&secret),
        true,
        true,
    );
    let req = upstream(adapter.prepare(&c));
    assert_eq!(
        req.url,
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    let local = upstream(bedrock_eu().prepare(&c));
    assert_eq!(
        req, local,
        "the ABI carries the call (credential and clock) unchanged"
    );

    let err = adapter
        .parse(
            &c,
            &response(
                429,
                &[("x-amzn-errortype", "ThrottlingException")],
                br#"{"message":"slow"}"#,
            ),
        )
        .unwrap_err();
    assert_eq!(
        (err.class, err.status),
        (ErrorClass::RateLimited, Some(429))
    );

    // Binary frames cross the ABI unchanged, split anywhere.
    let bytes = stream_fixture("stream_tool_use.bin");
    let mut d = adapter.stream(&c).expect("decoder");
    let mut o = Outcome::default();
    for piece in bytes.chunks(97) {
        let (out, err) = d.feed(piece);
        assert_eq!(err, None);
        o.absorb(out);
    }
    let (out, err) = d.finish();
    assert_eq!(err, None);
    o.absorb(out);
    let here = decode(true, &bytes);
    assert!(o.done && here.done);
    assert_eq!(o.usage, here.usage);
    assert_eq!(o.chunks.len(), here.chunks.len());
    assert_eq!(o.finish_reasons(), vec!["tool_calls"]);
}

fn bedrock_eu() -> aihub_bedrock::Bedrock {
    provider_with("", plugin_api::serde_json::json!({"region": "eu-west-3"})).unwrap()
}
