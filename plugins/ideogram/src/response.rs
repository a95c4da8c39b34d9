//! Ideogram's generate reply (`{"created", "data": [{"url", "prompt", "resolution",
//! "is_image_safe", "seed", ...}]}`, the same for 3.0 and legacy) as OpenAI's images
//! response `{"created", "data": [{"url", "revised_prompt"}]}`.
//!
//! Ideogram withholds an image that fails its safety check (`is_image_safe: false`, no
//! `url`): such images are left out, and a reply with none left is a content-policy
//! error (OpenAI's `content_policy_violation` code), not an empty success.

use crate::errors::CONTENT_POLICY;
use plugin_api::serde_json::{self, json, Value};
use plugin_api::{ProviderError, Reply};

pub fn images(body: &[u8], now_unix_ms: u64) -> Result<Reply, ProviderError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::upstream(format!("unreadable reply from Ideogram: {e}")))?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::upstream("Ideogram's reply has no 'data' list"))?;
    let mut out = Vec::with_capacity(data.len());
    let mut withheld = 0usize;
    for item in data {
        let url = item
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty());
        let safe = item.get("is_image_safe").and_then(Value::as_bool) != Some(false);
        match url {
            Some(url) if safe => {
                let mut image = json!({ "url": url });
                if let Some(p) = item.get("prompt").and_then(Value::as_str) {
                    image["revised_prompt"] = p.into();
                }
                out.push(image);
            }
            _ => withheld += 1,
        }
    }
    if out.is_empty() {
        if withheld > 0 {
            return Err(ProviderError::bad_request(format!(
                "Ideogram withheld the generated image{} as unsafe (is_image_safe: false); \
                 rephrase the prompt",
                if withheld == 1 { "" } else { "s" }
            ))
            .with_code(CONTENT_POLICY));
        }
        return Err(ProviderError::upstream("Ideogram returned no images"));
    }
    let created = v
        .get("created")
        .and_then(|c| match c {
            Value::String(s) => unix_seconds(s),
            other => other.as_u64(),
        })
        .unwrap_or(now_unix_ms / 1000);
    Reply::json(&json!({ "created": created, "data": out }), None)
}

/// Seconds since the epoch of an RFC 3339 time (`2024-12-15T17:32:00.965408+00:00`,
/// `...Z`, any offset), or `None` if it is not one.
pub fn unix_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let seps = s.as_bytes();
    if seps.get(4) != Some(&b'-')
        || seps.get(7) != Some(&b'-')
        || !matches!(seps.get(10), Some(b'T' | b't' | b' '))
        || seps.get(13) != Some(&b':')
        || seps.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let t = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(t).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2024-12-15T17:32:00.965408+00:00"),
            Some(1_734_283_920)
        );
        assert_eq!(
            unix_seconds("2025-08-27T18:23:28.806107195+08:00"),
            Some(1_756_290_208)
        );
        assert_eq!(unix_seconds("2000-02-29T12:00:00-05:30"), Some(951_845_400));
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-12-15",
            "2024-12-15T17:32:00+0",
        ] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }
}
