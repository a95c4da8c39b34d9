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
        .map(|d| d.join("libaihub_ideogram.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libaihub_ideogram.so not found next to {}", exe.display()))
}

#[test]
fn cdylib_loads_and_translates_through_the_abi() {
    let lib = PluginLibrary::load(&library_path()).expect("loads");
    assert_eq!(lib.manifest().name, "ideogram");
    assert_eq!(lib.manifest().abi_version, ABI_VERSION);
    assert_eq!(lib.manifest().providers[0].prefix, "ideogram");

    let adapter = lib
        .new_adapter(&ProviderConfig {
            prefix: "ideogram".into(),
            base_url: aihub_ideogram::BASE_URL.into(),
            options: Default::default(),
        })
        .expect("adapter");
    let body = br#"{"prompt":"a lighthouse","n":2,"size":"1792x1024"}"#;
    let c = images("ideogram-v3", body);
    let req = upstream(adapter.prepare(&c));
    assert_eq!(req.url, "https://api.ideogram.ai/v1/ideogram-v3/generate");
    assert_eq!(header(&req, "Api-Key"), Some(KEY));
    let ct = header(&req, "content-type").unwrap();
    assert_eq!(
        form_fields(ct, &req.body)[2],
        ("aspect_ratio".to_string(), "16x9".to_string())
    );

    let reply = adapter
        .parse(&c, &response(200, &[], &fixture("generate_v3.json")))
        .expect("reply");
    assert_eq!(json_of(&reply.body)["data"].as_array().unwrap().len(), 2);

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
    let err = adapter
        .prepare(&images(
            "ideogram-v3",
            br#"{"prompt":"x","response_format":"b64_json"}"#,
        ))
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::BadRequest);
}
