//! Caps on strings that are stored or returned. Clients and upstreams choose these
//! strings, so each has a ceiling: one hostile call must not grow the database or an
//! admin listing without bound.

/// Longest model name accepted from a client (Bedrock ARNs, the longest real names,
/// are about 120 bytes).
pub const MAX_MODEL_NAME: usize = 256;
/// Longest error message kept in a call record or credential state.
pub const MAX_ERROR_MESSAGE: usize = 2048;
/// Longest provider prefix, request id or similar short label kept in a record.
pub const MAX_LABEL: usize = 128;

/// `s` cut to at most `max` bytes, on a character boundary, marked with `…` when cut.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..cut]))
}

/// Cuts `s` in place (see [`truncate`]).
pub fn truncate_owned(s: &mut String, max: usize) {
    if s.len() > max {
        *s = truncate(s, max).into_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_char_boundaries_within_the_cap() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(100);
        for max in 3..50 {
            let t = truncate(&long, max);
            assert!(t.len() <= max, "{max}: {}", t.len());
            assert!(t.ends_with('…'));
        }
        let mut s = "x".repeat(5000);
        truncate_owned(&mut s, MAX_ERROR_MESSAGE);
        assert!(s.len() <= MAX_ERROR_MESSAGE);
    }
}
