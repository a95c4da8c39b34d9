//! Latency summaries.

use serde_json::{json, Value};

/// Percentiles of a sample, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub count: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Summary {
    /// `samples_ns` is sorted in place.
    pub fn of(samples_ns: &mut [u64]) -> Summary {
        if samples_ns.is_empty() {
            return Summary::default();
        }
        samples_ns.sort_unstable();
        let n = samples_ns.len();
        // Nearest rank.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            samples_ns[rank.clamp(1, n) - 1] as f64 / 1000.0
        };
        let sum: u128 = samples_ns.iter().map(|&v| v as u128).sum();
        Summary {
            count: n,
            mean_us: sum as f64 / n as f64 / 1000.0,
            p50_us: pct(50.0),
            p90_us: pct(90.0),
            p99_us: pct(99.0),
            max_us: samples_ns[n - 1] as f64 / 1000.0,
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "mean_us": round1(self.mean_us),
            "p50_us": round1(self.p50_us),
            "p90_us": round1(self.p90_us),
            "p99_us": round1(self.p99_us),
            "max_us": round1(self.max_us),
        })
    }
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// `812 µs`, `3.41 ms`, `1.20 s`.
pub fn fmt_us(us: f64) -> String {
    let a = us.abs();
    if a < 1000.0 {
        format!("{us:.0} µs")
    } else if a < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// Like [`fmt_us`] with an explicit sign, for differences.
pub fn fmt_diff_us(us: f64) -> String {
    if us >= 0.0 {
        format!("+{}", fmt_us(us))
    } else {
        format!("−{}", fmt_us(-us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let s = Summary::of(&mut v);
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p90_us, 90.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
        assert_eq!(Summary::of(&mut []).count, 0);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_us(812.4), "812 µs");
        assert_eq!(fmt_us(3410.0), "3.41 ms");
        assert_eq!(fmt_diff_us(-20.0), "−20 µs");
    }
}
