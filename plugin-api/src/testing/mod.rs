//! The shared test kit of plugins (feature `testing`): building calls and canned upstream
//! replies, reading fixtures, driving a decoder like the host does (at every split point
//! too), and the [`conformance_suite!`](crate::conformance_suite) every plugin runs.
//!
//! A plugin enables it for its tests only:
//!
//! ```toml
//! [dev-dependencies]
//! plugin-api = { workspace = true, features = ["testing"] }
//! ```
//!
//! The kit touches the fields of [`Call`] and [`Response`] in one place each
//! ([`call`], [`response`]): when those types change, only these two functions do.
// Test support: a failed expectation is a panic with a message, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod conformance;
mod stream;

pub use conformance::{
    Body, Conformance, EndpointCall, ErrorCase, Errors, StreamCase, Support, UsageCase, WholeChat,
};
pub use stream::{
    assert_same_at_every_split, decode, decode_pieces, feed_at_every_split, split_at, Clock,
    Outcome, SplitCheck,
};

use crate::{
    Call, Credential, Endpoint, ErrorClass, HttpRequest, Prepared, ProviderError, Response,
};
use serde_json::Value;
use std::path::Path;

/// Builds a [`Call`]; every helper of the kit makes its calls here.
pub fn call<'a>(
    endpoint: Endpoint,
    model: &'a str,
    body: &'a [u8],
    api_key: Option<&'a str>,
    stream: bool,
    include_usage: bool,
) -> Call<'a> {
    Call {
        credential: api_key.map_or(Credential::None, Credential::ApiKey),
        stream,
        include_usage,
        ..Call::new(endpoint, model, body)
    }
}

/// A canned upstream reply, as the host would hand it to `parse`: the plugin-side mock
/// upstream (plugins never open sockets, so a reply value is all a mock needs to be).
pub fn response<'a>(
    status: u16,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
) -> Response<'a> {
    Response {
        status,
        headers,
        body,
    }
}

/// Reads `tests/fixtures/<name>` of the crate under test; panics naming the file.
pub fn read_fixture(manifest_dir: &str, name: &str) -> Vec<u8> {
    let path = Path::new(manifest_dir).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `fixture!("name")`: `tests/fixtures/name` of the crate the macro is used in.
#[macro_export]
macro_rules! fixture {
    ($name:expr) => {
        $crate::testing::read_fixture(env!("CARGO_MANIFEST_DIR"), $name)
    };
}

/// Parses JSON or panics showing the bytes.
pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// The upstream request of a `prepare` result; panics on anything else.
pub fn upstream(p: Result<Prepared, ProviderError>) -> HttpRequest {
    match p {
        Ok(Prepared::Upstream(r)) => r,
        other => panic!("expected an upstream request, got {other:?}"),
    }
}

/// The error of a result; panics showing the success.
pub fn expect_err<T: std::fmt::Debug>(r: Result<T, ProviderError>) -> ProviderError {
    match r {
        Err(e) => e,
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// The one value of a header, case-insensitive; panics if it was sent twice.
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    let mut found = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name));
    let first = found.next().map(|(_, v)| v.as_str());
    assert!(found.next().is_none(), "header {name} sent twice");
    first
}

/// Asserts what the host acts on: the class, the upstream status, and a message a person
/// can read.
pub fn assert_error(e: &ProviderError, class: ErrorClass, status: Option<u16>) {
    assert_eq!(e.class, class, "{e:?}");
    assert_eq!(e.status, status, "{e:?}");
    assert!(
        !e.message.trim().is_empty(),
        "an error says what went wrong: {e:?}"
    );
}
