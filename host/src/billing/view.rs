//! Billing's JSON shapes and the admin API's input parsing.

use super::amount_fields;
use crate::store::credits::{Grant, LedgerEntry};
use serde_json::{json, Map, Value};

pub fn grant(g: &Grant) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), g.id.into());
    o.insert("app_id".into(), g.app_id.into());
    amount_fields(&mut o, "amount", g.amount);
    amount_fields(&mut o, "remaining", g.remaining);
    o.insert("expires_at".into(), json!(g.expires_at));
    o.insert("note".into(), json!(g.note));
    o.insert("created_at".into(), g.created_at.into());
    Value::Object(o)
}

pub fn entry(e: &LedgerEntry) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), e.id.into());
    o.insert("app_id".into(), e.app_id.into());
    o.insert("kind".into(), e.kind.clone().into());
    amount_fields(&mut o, "amount", e.amount);
    amount_fields(&mut o, "balance_after", e.balance_after);
    for (k, v) in [("call_id", e.call_id), ("grant_id", e.grant_id)] {
        if let Some(v) = v {
            o.insert(k.into(), v.into());
        }
    }
    if let Some(n) = &e.note {
        o.insert("note".into(), n.clone().into());
    }
    o.insert("created_at".into(), e.created_at.into());
    Value::Object(o)
}

/// `{balance, held, available}` with their `_nanos` integers.
pub fn balances(balance: i64, held: i64) -> Map<String, Value> {
    let mut o = Map::new();
    amount_fields(&mut o, "balance", balance);
    amount_fields(&mut o, "held", held);
    amount_fields(&mut o, "available", balance.saturating_sub(held));
    o
}

/// A time as Unix seconds (a JSON number) or RFC 3339 text, as Unix ms.
pub fn parse_time(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| format!("{n} is not a Unix time in seconds")),
        Value::String(s) => parse_rfc3339(s)
            .ok_or_else(|| format!("'{s}' is not an RFC 3339 time (like 2030-01-31T12:00:00Z)")),
        _ => Err("must be Unix seconds or an RFC 3339 time".into()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` as Unix ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        ms = format!("{frac:0<3}").parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2030-01-31T12:00:00Z"),
            Some(1_896_091_200_000)
        );
        assert_eq!(
            parse_rfc3339("2030-01-31T13:00:00.5+01:00"),
            Some(1_896_091_200_500)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for bad in [
            "2030-01-31",
            "2030-13-01T00:00:00Z",
            "2030-01-31T12:00:00",
            "x030-01-31T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_time(&json!(100)), Ok(100_000));
        assert!(parse_time(&json!(true)).is_err());
    }

    #[test]
    fn amounts_show_as_decimals_and_integers() {
        let o = balances(12_500_000_000, 500_000_000);
        assert_eq!(o["balance"], "12.500000000");
        assert_eq!(o["balance_nanos"], 12_500_000_000i64);
        assert_eq!(o["available"], "12.000000000");
    }
}
