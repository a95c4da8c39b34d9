//! Admission of one call against every limit that applies to it: the app's and the key's,
//! app-wide and for the model. All or nothing: a refusal gives back what was taken.

use super::counters::{Counters, Slot, Take};
use super::limits::{LimitTable, Limits, Rates};
use crate::error::ApiError;
use std::sync::Arc;

/// The kind of limit, for messages, metrics and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
    Concurrency,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "rpm",
            Kind::Tokens => "tpm",
            Kind::Concurrency => "max_concurrent",
        }
    }
}

/// One limit that applies to a call.
struct Applied {
    /// "app 'crm'", "key 12 of app 'crm'", with " for model 'x'" when per model.
    who: String,
    key: String,
    kind: Kind,
    limit: u64,
}

/// The tightest request and token limits, for `x-ratelimit-*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// (limit, remaining, reset ms)
    pub requests: Option<(u64, u64, u64)>,
    pub tokens: Option<(u64, u64, u64)>,
}

impl RateHeaders {
    /// `name: value` pairs as OpenAI sends them (`reset` as a duration like `1m2s`).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some((l, r, reset)) = self.requests {
            out.push(("x-ratelimit-limit-requests", l.to_string()));
            out.push(("x-ratelimit-remaining-requests", r.to_string()));
            out.push(("x-ratelimit-reset-requests", duration(reset)));
        }
        if let Some((l, r, reset)) = self.tokens {
            out.push(("x-ratelimit-limit-tokens", l.to_string()));
            out.push(("x-ratelimit-remaining-tokens", r.to_string()));
            out.push(("x-ratelimit-reset-tokens", duration(reset)));
        }
        out
    }

    /// Keeps the limit with less left.
    fn note(slot: &mut Option<(u64, u64, u64)>, limit: u64, remaining: u64, reset: u64) {
        if slot.is_none_or(|(_, r, _)| remaining < r) {
            *slot = Some((limit, remaining, reset));
        }
    }
}

/// `1m2s`, `2s`, `250ms`: the duration format of OpenAI's reset headers.
fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms.div_ceil(1000);
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// What a call holds while it runs: token estimates to correct and slots to free.
pub struct Admission {
    counters: Arc<dyn Counters>,
    /// (bucket key, capacity) of each token limit, and the estimate taken from each.
    tokens: Vec<(String, u64)>,
    estimate: u64,
    slots: Vec<(String, Slot)>,
    pub headers: RateHeaders,
    settled: bool,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("estimate", &self.estimate)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Admission {
    /// Corrects the token buckets by the call's real usage (input + output).
    pub fn settle(&mut self, used_tokens: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let delta = i64::try_from(used_tokens)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(self.estimate).unwrap_or(i64::MAX));
        if delta != 0 {
            let now = now_ns();
            for (key, capacity) in &self.tokens {
                self.counters.adjust(key, *capacity, delta, now);
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        for (key, slot) in &self.slots {
            self.counters.leave(key, *slot);
        }
    }
}

pub(super) fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The call being admitted.
pub struct Ask<'a> {
    pub app_id: i64,
    pub app_name: &'a str,
    pub key_id: i64,
    /// The model as the client named it, and as it will be served first (`prefix/model`).
    pub requested: &'a str,
    pub served: &'a str,
    /// Tokens the call is expected to use (input estimate + output allowance).
    pub estimate: u64,
}

fn applied(limits: &Limits, scope: &str, who: &str, ask: &Ask<'_>, out: &mut Vec<Applied>) {
    let mut add = |rates: &Rates, model: Option<&str>| {
        let (suffix, key_suffix) = match model {
            Some(m) => (format!(" for model '{m}'"), format!(":{m}")),
            None => (String::new(), String::new()),
        };
        for (kind, v) in [
            (Kind::Requests, rates.rpm),
            (Kind::Tokens, rates.tpm),
            (Kind::Concurrency, rates.max_concurrent),
        ] {
            if let Some(limit) = v {
                out.push(Applied {
                    who: format!("{who}{suffix}"),
                    key: format!("{scope}:{}{key_suffix}", kind.as_str()),
                    kind,
                    limit,
                });
            }
        }
    };
    add(&limits.all, None);
    for m in [ask.requested, ask.served] {
        if let Some(rates) = limits.models.get(m) {
            add(rates, Some(m));
        }
        if ask.requested == ask.served {
            break;
        }
    }
}

/// A refused call: the 429, and the headers to send with it.
#[derive(Debug)]
pub struct Refused {
    pub error: ApiError,
    pub headers: RateHeaders,
}

/// Admits the call against every limit in `table`, or refuses it with a 429 naming the
/// limit. `None` when no limit applies.
pub async fn admit(
    table: &LimitTable,
    counters: &Arc<dyn Counters>,
    ask: &Ask<'_>,
) -> Result<Option<Admission>, Box<Refused>> {
    let mut limits = Vec::new();
    let app = table.app(ask.app_id);
    let app_who = format!("app '{}'", ask.app_name);
    applied(
        &app,
        &format!("app:{}", ask.app_id),
        &app_who,
        ask,
        &mut limits,
    );
    if let Some(key) = table.keys.get(&ask.key_id) {
        let who = format!("key {} of app '{}'", ask.key_id, ask.app_name);
        applied(key, &format!("key:{}", ask.key_id), &who, ask, &mut limits);
    }
    if limits.is_empty() {
        return Ok(None);
    }
    let now = now_ns();
    let mut adm = Admission {
        counters: counters.clone(),
        tokens: Vec::new(),
        estimate: ask.estimate,
        slots: Vec::new(),
        headers: RateHeaders::default(),
        settled: false,
    };
    // Taken so far, given back if a later limit refuses.
    let mut taken: Vec<(String, u64, u64)> = Vec::new();
    let mut refusal = None;
    for l in &limits {
        let cost = match l.kind {
            Kind::Concurrency => {
                if let Some(slot) = counters.enter(&l.key, l.limit).await {
                    adm.slots.push((l.key.clone(), slot));
                    continue;
                }
                refusal = Some(ApiError::RateLimited {
                    kind: l.kind.as_str(),
                    message: format!(
                        "{} allows {} calls in flight at once; wait for one to finish",
                        l.who, l.limit
                    ),
                    retry_after_ms: 1000,
                });
                break;
            }
            Kind::Requests => 1,
            Kind::Tokens => ask.estimate,
        };
        match counters.take(&l.key, l.limit, cost, now).await {
            Take::Admitted {
                remaining,
                reset_ms,
            } => {
                taken.push((l.key.clone(), l.limit, cost));
                match l.kind {
                    Kind::Requests => {
                        RateHeaders::note(&mut adm.headers.requests, l.limit, remaining, reset_ms)
                    }
                    _ => {
                        adm.tokens.push((l.key.clone(), l.limit));
                        RateHeaders::note(&mut adm.headers.tokens, l.limit, remaining, reset_ms)
                    }
                }
            }
            Take::Refused {
                retry_after_ms,
                reset_ms,
            } => {
                let (unit, per) = match l.kind {
                    Kind::Requests => ("requests", "requests per minute"),
                    _ => ("tokens", "tokens per minute"),
                };
                let message = match retry_after_ms {
                    Some(ms) => format!(
                        "rate limit exceeded: {} allows {} {per}; retry in {}",
                        l.who,
                        l.limit,
                        duration(ms)
                    ),
                    None => format!(
                        "this request is estimated at {} {unit}, more than the {} {per} {} allows; send a smaller request (or a lower max_tokens)",
                        ask.estimate, l.limit, l.who
                    ),
                };
                let slot = match l.kind {
                    Kind::Requests => &mut adm.headers.requests,
                    _ => &mut adm.headers.tokens,
                };
                *slot = Some((l.limit, 0, reset_ms));
                refusal = Some(ApiError::RateLimited {
                    kind: l.kind.as_str(),
                    message,
                    retry_after_ms: retry_after_ms.unwrap_or(reset_ms.max(1000)),
                });
                break;
            }
        }
    }
    if let Some(e) = refusal {
        for (key, capacity, cost) in taken {
            counters.adjust(
                &key,
                capacity,
                -i64::try_from(cost).unwrap_or(i64::MAX),
                now,
            );
        }
        // Dropping `adm` frees the slots it took.
        return Err(Box::new(Refused {
            error: e,
            headers: adm.headers.clone(),
        }));
    }
    Ok(Some(adm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::counters::LocalCounters;

    fn ask<'a>(estimate: u64) -> Ask<'a> {
        Ask {
            app_id: 1,
            app_name: "crm",
            key_id: 7,
            requested: "smart",
            served: "openai/gpt-4o",
            estimate,
        }
    }

    #[tokio::test]
    async fn the_tightest_limit_refuses_and_what_was_taken_is_given_back() {
        let counters: Arc<dyn Counters> = Arc::new(LocalCounters::default());
        let mut t = LimitTable::default();
        t.defaults.all.rpm = Some(100);
        let key: Limits = serde_json::from_value(serde_json::json!({"rpm": 2})).unwrap();
        t.keys.insert(7, key);
        let a = admit(&t, &counters, &ask(10)).await.unwrap().unwrap();
        assert_eq!(a.headers.requests, Some((2, 1, 30_000)));
        let _b = admit(&t, &counters, &ask(10)).await.unwrap().unwrap();
        let e = admit(&t, &counters, &ask(10)).await.unwrap_err().error;
        let msg = e.to_string();
        assert!(
            msg.contains("key 7 of app 'crm' allows 2 requests per minute"),
            "{msg}"
        );
        assert_eq!(e.status(), 429);
        assert_eq!(e.retry_after_secs(), Some(30));
        // The app's bucket got its request back: 98 left, not 97.
        t.keys.clear();
        let c = admit(&t, &counters, &ask(10)).await.unwrap().unwrap();
        assert_eq!(c.headers.requests.unwrap().1, 97);
    }

    #[tokio::test]
    async fn model_limits_apply_by_requested_and_served_name_and_slots_are_freed() {
        let counters: Arc<dyn Counters> = Arc::new(LocalCounters::default());
        let mut t = LimitTable::default();
        t.apps.insert(
            1,
            serde_json::from_value(serde_json::json!({
                "models": {"openai/gpt-4o": {"max_concurrent": 1}, "smart": {"tpm": 100}}
            }))
            .unwrap(),
        );
        let a = admit(&t, &counters, &ask(60)).await.unwrap().unwrap();
        let e = admit(&t, &counters, &ask(1)).await.unwrap_err().error;
        assert!(e.to_string().contains("for model 'openai/gpt-4o'"), "{e}");
        drop(a);
        let mut b = admit(&t, &counters, &ask(30)).await.unwrap().unwrap();
        assert_eq!(b.headers.tokens.unwrap().1, 10);
        b.settle(5); // used 5 of its 30: 25 come back
        drop(b);
        let c = admit(&t, &counters, &ask(30)).await.unwrap().unwrap();
        assert_eq!(c.headers.tokens.unwrap().1, 5);
        let big = admit(&t, &counters, &ask(1000)).await;
        let msg = big.unwrap_err().error.to_string();
        assert!(msg.contains("estimated at 1000 tokens"), "{msg}");
    }

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(2000), "2s");
        assert_eq!(duration(60_000), "1m");
        assert_eq!(duration(62_500), "1m3s");
    }
}
