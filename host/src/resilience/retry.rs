//! The retry policy: what a failed attempt says about its key, whether another attempt
//! may follow, and how long to wait before it.

use crate::error::ApiError;
use crate::resilience::credential_health::Outcome;
use plugin_api::ErrorClass;
use std::time::Duration;

/// What an attempt's failure says about the credential used. The message kept (it
/// becomes the credential's `last_error`) is scrubbed and short.
///
/// A success status with an unreadable body is neutral: the key got through and the
/// upstream did the work; ejecting the key would not help, and retrying would re-bill.
pub fn outcome_of(e: &ApiError) -> Outcome {
    let brief =
        |m: &str| -> String { crate::redact::scrub_patterns(m).chars().take(500).collect() };
    match e {
        ApiError::Provider(p) => match p.class {
            ErrorClass::Auth => Outcome::AuthFailed(brief(&p.message)),
            ErrorClass::RateLimited => Outcome::RateLimited {
                retry_after: p.retry_after_ms.map(Duration::from_millis),
                message: brief(&p.message),
            },
            ErrorClass::Upstream | ErrorClass::Timeout => Outcome::Failed(brief(&p.message)),
            ErrorClass::BadRequest | ErrorClass::Internal => Outcome::Neutral,
        },
        ApiError::UpstreamConnect(m) => Outcome::Failed(brief(m)),
        ApiError::UpstreamTimeout(_) | ApiError::StreamStalled(_) => Outcome::Failed(e.to_string()),
        _ => Outcome::Neutral,
    }
}

/// Whether another attempt (next key, next target) may follow this failure.
pub fn retryable(e: &ApiError) -> bool {
    !matches!(outcome_of(e), Outcome::Neutral | Outcome::Success)
}

/// Jittered exponential backoff before attempt `n` (1-based count of failures so far).
pub fn backoff(n: u32, base: Duration, max: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max);
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let frac = u32::from_le_bytes(r) as f64 / u32::MAX as f64;
    // Half fixed, half random: spreads retries without ever retrying instantly.
    exp.mul_f64(0.5 + frac / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::ProviderError;

    #[test]
    fn outcome_messages_are_scrubbed_and_short() {
        let e = ApiError::Provider(ProviderError::auth(format!(
            "bad key Bearer sk-abcdefghijklmnop {}",
            "x".repeat(1000)
        )));
        let Outcome::AuthFailed(m) = outcome_of(&e) else {
            panic!("not an auth failure")
        };
        assert!(m.starts_with("bad key Bearer [redacted] "), "{m}");
        assert_eq!(m.chars().count(), 500);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        for n in 1..40 {
            let w = backoff(n, base, max);
            assert!(w <= max, "{n}: {w:?}");
            assert!(w >= base.mul_f64(0.5).min(max.mul_f64(0.5)), "{n}: {w:?}");
        }
    }
}
