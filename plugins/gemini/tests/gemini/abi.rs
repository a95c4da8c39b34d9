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
        .map(|d| d.join("libaihub_gemini.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libaihub_gemini.so not found next to {}", exe.display()))
}

#[test]
fn cdylib_loads_and_translates_through_the_abi() {
    let lib = PluginLibrary::load(&library_path()).expect("loads");
    assert_eq!(lib.manifest().name, "gemini");
    assert_eq!(lib.manifest().abi_version, ABI_VERSION);
    assert_eq!(lib.manifest().providers[0].prefix, "gemini");

    let adapter = lib
        .new_adapter(&ProviderConfig {
            prefix: "gemini".into(),
            base_url: aihub_gemini::BASE_URL.into(),
            options: Default::default(),
        })
        .expect("adapter");
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let c = chat(body, true, true);
    let req = upstream(adapter.prepare(&c));
    assert!(req.url.ends_with(":streamGenerateContent?alt=sse"));
    assert_eq!(header(&req, "x-goog-api-key"), Some(KEY));

    let err = adapter
        .parse(&c, &response(429, &[], &fixture("error_429.json")))
        .unwrap_err();
    assert_eq!(
        (err.class, err.retry_after_ms, err.status),
        (ErrorClass::RateLimited, Some(13_000), Some(429))
    );

    let sse = fixture("stream_text.sse");
    let mut d = adapter.stream(&c).expect("decoder");
    let (head, tail) = sse.split_at(sse.len() / 2);
    let mut o = Outcome::default();
    for piece in [head, tail] {
        let (out, err) = d.feed(piece);
        assert_eq!(err, None);
        o.absorb(out);
    }
    let (out, err) = d.finish();
    assert_eq!(err, None);
    o.absorb(out);
    let local = decode(true, &sse);
    assert!(o.done && local.done);
    assert_eq!(o.text(), local.text());
    assert_eq!(o.usage, local.usage);
    assert_eq!(o.chunks.len(), local.chunks.len());
}
