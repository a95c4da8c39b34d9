//! Credit amounts: decimal text (at most 9 decimals) to exact nano-credits and back.

use serde::{Deserialize, Serialize};

pub const NANOS_PER_CREDIT: i64 = 1_000_000_000;

/// Parses a non-negative decimal number of credits (`"12.5"`, `"3"`, `"0.000000001"`)
/// into nano-credits. No exponents, signs or more than 9 decimals: amounts are exact.
pub fn parse_credits(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(format!(
            "'{t}' is not a decimal number of credits (digits, an optional '.' and at most 9 decimals)"
        ));
    }
    if frac.len() > 9 {
        return Err(format!("'{t}' has more than 9 decimals"));
    }
    let too_large = || format!("'{t}' is too large");
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| too_large())?
    };
    w.checked_mul(NANOS_PER_CREDIT)
        .and_then(|n| n.checked_add(f))
        .ok_or_else(too_large)
}

/// Nano-credits as a decimal string with 9 decimals (`-1.500000000`).
pub fn format_nanos(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let a = n.unsigned_abs();
    let per = NANOS_PER_CREDIT as u64;
    format!("{sign}{}.{:09}", a / per, a % per)
}

/// An amount of credits as JSON or TOML writes it: a number or a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditAmount(pub i64);

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(u64),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for CreditAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            // The shortest text that reads back as this float: `0.1`, not 0.1000000000000000055.
            Raw::Float(f) if f.is_finite() => format!("{f}"),
            Raw::Float(f) => f.to_string(),
            Raw::Text(s) => s,
        };
        parse_credits(&text)
            .map(CreditAmount)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for CreditAmount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_nanos(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_credits("12.5"), Ok(12_500_000_000));
        assert_eq!(parse_credits("3"), Ok(3 * NANOS_PER_CREDIT));
        assert_eq!(parse_credits("0.000000001"), Ok(1));
        assert_eq!(parse_credits(".5"), Ok(500_000_000));
        assert_eq!(parse_credits("7."), Ok(7 * NANOS_PER_CREDIT));
        assert_eq!(parse_credits("0"), Ok(0));
        for bad in [
            "",
            ".",
            "-1",
            "+1",
            "1e3",
            "1.0000000001",
            "abc",
            "1.2.3",
            " 1 2",
        ] {
            assert!(parse_credits(bad).is_err(), "{bad}");
        }
        assert!(parse_credits("99999999999").is_err());
    }

    #[test]
    fn nanos_format_with_nine_decimals() {
        assert_eq!(format_nanos(12_500_000_000), "12.500000000");
        assert_eq!(format_nanos(1), "0.000000001");
        assert_eq!(format_nanos(-1_500_000_000), "-1.500000000");
        assert_eq!(format_nanos(0), "0.000000000");
        assert_eq!(format_nanos(i64::MIN), "-9223372036.854775808");
        for n in [0, 1, 999, 12_345_678_901] {
            assert_eq!(parse_credits(&format_nanos(n)), Ok(n));
        }
    }

    #[test]
    fn amounts_read_numbers_and_strings() {
        let a: CreditAmount = serde_json::from_str("0.1").unwrap();
        assert_eq!(a.0, 100_000_000);
        let a: CreditAmount = serde_json::from_str("\"2.25\"").unwrap();
        assert_eq!(a.0, 2_250_000_000);
        let a: CreditAmount = serde_json::from_str("5").unwrap();
        assert_eq!(a.0, 5 * NANOS_PER_CREDIT);
        assert!(serde_json::from_str::<CreditAmount>("-1").is_err());
        assert!(serde_json::from_str::<CreditAmount>("1e-12").is_err());
    }
}
