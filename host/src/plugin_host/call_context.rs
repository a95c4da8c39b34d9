//! What a plugin call carries besides the body (plugin ABI 2): the client's headers
//! without its credentials, and the time.

use hyper::HeaderMap;

/// Headers that identify the client to the gateway; a plugin never sees them.
const WITHHELD: [&str; 4] = [
    "authorization",
    "x-api-key",
    "cookie",
    "proxy-authorization",
];

/// The client's request headers for [`plugin_api::Call::headers`]: names lower-case (as
/// hyper keeps them), values that are not text skipped, credentials removed.
pub fn client_headers(headers: &HeaderMap) -> crate::upstream::HeaderPairs<'_> {
    headers
        .iter()
        .filter(|(name, _)| !WITHHELD.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect()
}

/// [`plugin_api::Call::now_unix_ms`]: the host's clock, so a plugin that signs requests
/// stays pure.
pub fn now_unix_ms() -> u64 {
    u64::try_from(crate::store::now_ms()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_withheld() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer ak-1"),
            ("x-api-key", "ak-2"),
            ("cookie", "s=1"),
            ("proxy-authorization", "Basic x"),
            ("anthropic-version", "2023-06-01"),
            ("x-request-id", "r1"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let got = client_headers(&h);
        assert_eq!(
            got.as_slice(),
            [("anthropic-version", "2023-06-01"), ("x-request-id", "r1")]
        );
        assert!(now_unix_ms() > 1_600_000_000_000);
    }
}
