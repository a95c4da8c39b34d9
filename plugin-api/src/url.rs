//! Pieces of upstream URLs built from client input (model or deployment names), escaped
//! so they cannot change the URL's meaning.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` as one path segment: `/`, `?`, `#`, `%`, spaces and non-ASCII are percent-encoded
/// (UTF-8), so `a/b?x` stays one segment instead of becoming a path and a query.
pub fn path_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_pass() {
        assert_eq!(path_segment("gpt-4o_mini.v2~x"), "gpt-4o_mini.v2~x");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(path_segment("../%2e#frag"), "..%2F%252e%23frag");
        assert_eq!(path_segment("é"), "%C3%A9");
        assert_eq!(path_segment(""), "");
    }
}
