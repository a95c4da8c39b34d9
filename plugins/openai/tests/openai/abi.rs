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
        .map(|d| d.join("libaihub_openai.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libaihub_openai.so not found next to {}", exe.display()))
}

#[test]
fn cdylib_loads_and_translates_through_the_abi() {
    let lib = PluginLibrary::load(&library_path()).expect("loads");
    assert_eq!(lib.manifest().name, "openai");
    assert_eq!(lib.manifest().abi_version, ABI_VERSION);
    assert_eq!(lib.manifest().providers.len(), 11);

    let err = lib
        .new_adapter(&ProviderConfig {
            prefix: "azure".into(),
            base_url: aihub_openai::AZURE_BASE_URL.into(),
            options: Default::default(),
        })
        .unwrap_err();
    assert!(err.contains("placeholder"), "{err}");

    let adapter = lib
        .new_adapter(&ProviderConfig {
            prefix: "openai".into(),
            base_url: "https://api.openai.com/v1".into(),
            options: Default::default(),
        })
        .expect("adapter");
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let c = chat(body, true, false);
    let req = upstream(adapter.prepare(&c));
    assert_eq!(req.url, "https://api.openai.com/v1/chat/completions");
    assert_eq!(json_of(&req.body)["stream_options"]["include_usage"], true);

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
    assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));

    let sse = fixture("chat_stream_text.sse");
    let mut d = adapter.stream(&c).expect("decoder");
    let (head, tail) = sse.split_at(sse.len() / 2);
    let (mut got, err) = d.feed(head);
    assert!(err.is_none(), "{err:?}");
    let (rest, err) = d.feed(tail);
    assert!(err.is_none(), "{err:?}");
    got.chunks.extend(rest.chunks);
    got.usage = rest.usage.or(got.usage);
    got.done |= rest.done;
    let (end, err) = d.finish();
    assert!(err.is_none(), "{err:?}");
    assert!(end.chunks.is_empty());
    assert_eq!(got, decode(&openai(), false, &sse).into_output());
}
