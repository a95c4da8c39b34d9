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
        .map(|d| d.join("libaihub_anthropic.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libaihub_anthropic.so not found next to {}", exe.display()))
}

#[test]
fn cdylib_loads_and_translates_through_the_abi() {
    let lib = PluginLibrary::load(&library_path()).expect("loads");
    assert_eq!(lib.manifest().name, "anthropic");
    assert_eq!(lib.manifest().abi_version, ABI_VERSION);
    assert_eq!(lib.manifest().providers[0].prefix, "anthropic");

    let err = lib
        .new_adapter(&ProviderConfig {
            prefix: "anthropic".into(),
            base_url: "https://api.anthropic.com".into(),
            options: plugin_api::serde_json::json!({"max_tokens_default": 0}),
        })
        .unwrap_err();
    assert!(err.contains("max_tokens_default"), "{err}");

    let adapter = lib
        .new_adapter(&ProviderConfig {
            prefix: "anthropic".into(),
            base_url: "https://api.anthropic.com/".into(),
            options: Default::default(),
        })
        .expect("adapter");
    let body = fixture("request_tools.json");
    let c = chat(&body, true, true);
    let req = upstream(adapter.prepare(&c));
    assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(header(&req, "x-api-key"), Some("sk-ant-test"));
    assert_eq!(json_of(&req.body)["stream"], true);

    let err = adapter
        .parse(
            &c,
            &response(429, &[("retry-after", "3")], &fixture("error_429.json")),
        )
        .unwrap_err();
    assert_eq!(
        (err.class, err.retry_after_ms, err.status),
        (ErrorClass::RateLimited, Some(3_000), Some(429))
    );
    assert_eq!(err.code.as_deref(), Some("rate_limit_error"));

    let sse = fixture("stream_tools.sse");
    let mut d = adapter.stream(&c).expect("decoder");
    let (head, tail) = sse.split_at(sse.len() / 2);
    let mut got = Outcome::default();
    for piece in [head, tail] {
        let (out, error) = d.feed(piece);
        assert_eq!(error, None);
        got.absorb(out);
    }
    let (end, error) = d.finish();
    assert_eq!(error, None);
    assert!(end.chunks.is_empty());
    got.absorb(end);
    assert!(got.done);
    assert_eq!(got.normalized(), decode(true, &sse).normalized());

    // An error event crosses the ABI with its class.
    let mut d = adapter.stream(&c).expect("decoder");
    let (out, error) = d.feed(&fixture("stream_error.sse"));
    assert!(!out.done && !out.chunks.is_empty());
    assert_eq!(error.map(|e| e.class), Some(ErrorClass::Upstream));
}

#[test]
fn messages_format_calls_cross_the_abi_with_format_headers_and_status() {
    let lib = PluginLibrary::load(&library_path()).expect("loads");
    let adapter = lib
        .new_adapter(&ProviderConfig {
            prefix: "anthropic".into(),
            base_url: "https://api.anthropic.com".into(),
            options: Default::default(),
        })
        .expect("adapter");
    let body = fixture("native_request.json");
    let headers = [("anthropic-beta", "extended-cache-ttl-2025-04-11")];
    let c = Call {
        format: Format::AnthropicMessages,
        headers: &headers,
        ..chat(&body, true, false)
    };
    let req = upstream(adapter.prepare(&c));
    assert_eq!(
        String::from_utf8(req.body.clone()).unwrap(),
        String::from_utf8(body.clone()).unwrap().replacen(
            "anthropic/claude-sonnet-4-5",
            "claude-sonnet-4-5",
            1
        )
    );
    assert_eq!(
        header(&req, "anthropic-beta"),
        Some("extended-cache-ttl-2025-04-11")
    );

    let reply = adapter
        .parse(&c, &response(200, &[], &fixture("message_cache.json")))
        .expect("reply");
    assert!(reply.pass_through && reply.body.is_empty());
    assert_eq!(reply.usage.map(|u| u.input_tokens), Some(10449));

    // An overload keeps its 529 across the boundary, as a reply and mid-stream.
    let err = adapter
        .parse(&c, &response(529, &[], &fixture("error_529.json")))
        .unwrap_err();
    assert_eq!((err.class, err.status), (ErrorClass::Upstream, Some(529)));
    let mut d = adapter.stream(&c).expect("decoder");
    assert!(d.pass_through());
    let (out, error) = d.feed(&fixture("stream_error.sse"));
    assert!(out.chunks.is_empty() && !out.done);
    assert_eq!(out.usage.map(|u| u.input_tokens), Some(312));
    let error = error.expect("error");
    assert_eq!(
        (error.class, error.status),
        (ErrorClass::Upstream, Some(529))
    );
}
