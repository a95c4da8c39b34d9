//! The ideogram plugin's shorthands over the shared kit (`plugin_api::testing`).

#![allow(dead_code)]

use aihub_ideogram::Ideogram;
use plugin_api::serde_json::Value;
use plugin_api::testing;
use plugin_api::*;

pub use plugin_api::testing::{expect_err, header, json_of, upstream};

pub const KEY: &str = "ideo-test-key-0123456789";

pub fn fixture(name: &str) -> Vec<u8> {
    plugin_api::fixture!(name)
}

pub fn provider_with(base_url: &str, options: Value) -> Result<Ideogram, String> {
    Ideogram::new(ProviderConfig {
        prefix: "ideogram".into(),
        base_url: base_url.into(),
        options,
    })
}

pub fn ideogram() -> Ideogram {
    provider_with(aihub_ideogram::BASE_URL, Value::Null).expect("provider")
}

pub fn images<'a>(model: &'a str, body: &'a [u8]) -> Call<'a> {
    testing::call(Endpoint::Images, model, body, Some(KEY), false, false)
}

/// The text fields of a `multipart/form-data` body, in order, read with the boundary
/// its content type names.
pub fn form_fields(content_type: &str, body: &[u8]) -> Vec<(String, String)> {
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not a form: {content_type}"));
    let text = String::from_utf8(body.to_vec()).expect("utf-8 form");
    let closing = format!("--{boundary}--\r\n");
    assert!(text.ends_with(&closing), "form not closed: {text:?}");
    let text = &text[..text.len() - closing.len()];
    let delimiter = format!("--{boundary}\r\n");
    assert!(text.is_empty() || text.starts_with(&delimiter), "{text:?}");
    text.split(&delimiter)
        .skip(1)
        .map(|part| {
            let (head, value) = part.split_once("\r\n\r\n").expect("part head");
            let name = head
                .strip_prefix("Content-Disposition: form-data; name=\"")
                .and_then(|h| h.strip_suffix('"'))
                .unwrap_or_else(|| panic!("part head {head:?}"));
            let value = value.strip_suffix("\r\n").expect("part end");
            (name.to_string(), value.to_string())
        })
        .collect()
}
