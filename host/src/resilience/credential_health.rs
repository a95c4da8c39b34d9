//! Health of each credential: what the last calls said about it, and whether it may be
//! used now. States and what moves between them:
//!
//! - `healthy` — in rotation.
//! - `cooling_down` until T — the upstream rate-limited it (429), for `Retry-After` or the
//!   configured default; back in rotation by itself at T.
//! - `ejected` until T — N consecutive 5xx/connect/timeout failures (outlier detection);
//!   after T it is half-open: exactly one call at a time is let through as a probe
//!   (others skip the key, or get a 503 when it is the provider's only one); success
//!   restores it, failure ejects it again for twice as long (capped). A probe that never
//!   reports (its client went away) frees the slot after one cooldown. This is how a
//!   provider with a single key recovers without a restart.
//! - `invalid` — refused by the upstream (401/403). Skipped; a background check retries it
//!   after 5 s, doubling up to a cap, for a configured number of checks; a successful check
//!   restores it.
//!
//! The state is kept per credential across routing-table rebuilds, and written to the
//! store on every transition so it survives a restart.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the health of a credential changes; from `[resilience]`.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    pub rate_limit_cooldown: Duration,
    pub eject_after_failures: u32,
    pub eject_cooldown: Duration,
    pub eject_cooldown_max: Duration,
    pub recheck_initial: Duration,
    pub recheck_max: Duration,
    pub recheck_limit: u32,
}

/// What an attempt with a credential came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    /// 401/403: the key itself is refused.
    AuthFailed(String),
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 5xx, connect error, timeout.
    Failed(String),
    /// The client's own error: says nothing about the key.
    Neutral,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Healthy,
    CoolingDown {
        until: Instant,
    },
    Ejected {
        until: Instant,
        cooldown: Duration,
    },
    Invalid {
        reason: String,
        checks: u32,
        next_check: Instant,
    },
}

const WINDOW: usize = 100;

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    /// The last calls, true = error; for the recent error rate.
    recent: VecDeque<bool>,
    last_error: Option<String>,
    /// A background check is running (never more than one per credential).
    checking: bool,
    /// The upstream model of the call that invalidated it, to check with.
    check_model: Option<String>,
    /// Half-open: a probe of an expired ejection is in flight until it reports (or
    /// until this instant, if it never does).
    probe_until: Option<Instant>,
}

/// The health of one credential.
#[derive(Debug)]
pub struct CredHealth {
    inner: Mutex<Inner>,
}

/// What a transition should persist.
#[derive(Debug, Clone, PartialEq)]
pub struct Persist {
    pub state: &'static str,
    /// The state it left (for alerts: an invalid key recovering).
    pub from: &'static str,
    pub until_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// The admin API's view.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthView {
    pub state: &'static str,
    /// Unix ms when a cooldown or ejection ends.
    pub until: Option<i64>,
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub recent_calls: usize,
    pub recent_error_rate: f64,
    pub consecutive_failures: u32,
}

fn to_unix_ms(t: Instant) -> i64 {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if t >= now {
        wall + (t - now).as_millis() as i64
    } else {
        wall - (now - t).as_millis() as i64
    }
}

fn from_unix_ms(ms: i64) -> Instant {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let now = Instant::now();
    if ms >= wall {
        now + Duration::from_millis((ms - wall) as u64)
    } else {
        now.checked_sub(Duration::from_millis((wall - ms) as u64))
            .unwrap_or(now)
    }
}

impl Default for CredHealth {
    fn default() -> Self {
        CredHealth {
            inner: Mutex::new(Inner {
                state: State::Healthy,
                consecutive_failures: 0,
                recent: VecDeque::with_capacity(WINDOW),
                last_error: None,
                checking: false,
                check_model: None,
                probe_until: None,
            }),
        }
    }
}

impl CredHealth {
    /// Restores a persisted state (at start).
    pub fn restored(
        state: &str,
        until_ms: Option<i64>,
        last_error: Option<String>,
        policy: &HealthPolicy,
    ) -> Self {
        let h = CredHealth::default();
        if let Ok(mut i) = h.inner.lock() {
            i.last_error = last_error.clone();
            i.state = match (state, until_ms) {
                ("invalid", _) => State::Invalid {
                    reason: last_error.unwrap_or_else(|| "refused by the upstream".into()),
                    checks: 0,
                    next_check: Instant::now() + policy.recheck_initial,
                },
                ("cooling_down", Some(ms)) => State::CoolingDown {
                    until: from_unix_ms(ms),
                },
                ("ejected", Some(ms)) => State::Ejected {
                    until: from_unix_ms(ms),
                    cooldown: policy.eject_cooldown,
                },
                _ => State::Healthy,
            };
        }
        h
    }

    /// May this credential take a call now? Expired cooldowns let calls through again; an
    /// expired ejection only when no probe is in flight.
    pub fn available(&self, now: Instant) -> bool {
        let Ok(i) = self.inner.lock() else {
            return true;
        };
        match &i.state {
            State::Healthy => true,
            State::CoolingDown { until } => now >= *until,
            State::Ejected { until, .. } => {
                now >= *until && !matches!(i.probe_until, Some(p) if now < p)
            }
            State::Invalid { .. } => false,
        }
    }

    /// Takes the credential for a call: [`CredHealth::available`], and for an expired
    /// ejection also claims the one probe slot (half-open), so concurrent calls do not
    /// all hit an upstream that may still be failing.
    pub fn try_take(&self, now: Instant) -> bool {
        let Ok(mut i) = self.inner.lock() else {
            return true;
        };
        match i.state {
            State::Healthy => true,
            State::CoolingDown { until } => now >= until,
            State::Ejected { until, cooldown } => {
                if now < until || i.probe_until.is_some_and(|p| now < p) {
                    return false;
                }
                i.probe_until = Some(now + cooldown);
                true
            }
            State::Invalid { .. } => false,
        }
    }

    /// Records an attempt's outcome; returns what to persist when the state changed.
    pub fn record(&self, outcome: &Outcome, model: &str, policy: &HealthPolicy) -> Option<Persist> {
        let Ok(mut i) = self.inner.lock() else {
            return None;
        };
        let now = Instant::now();
        // Whatever the probe came to, its slot is free again.
        i.probe_until = None;
        if *outcome == Outcome::Neutral {
            return None;
        }
        let failed = *outcome != Outcome::Success;
        if i.recent.len() == WINDOW {
            i.recent.pop_front();
        }
        i.recent.push_back(failed);
        let before = i.state.clone();
        match outcome {
            Outcome::Success => {
                i.consecutive_failures = 0;
                i.state = State::Healthy;
            }
            Outcome::AuthFailed(msg) => {
                i.last_error = Some(msg.clone());
                i.check_model = Some(model.to_string());
                if !matches!(i.state, State::Invalid { .. }) {
                    i.state = State::Invalid {
                        reason: msg.clone(),
                        checks: 0,
                        next_check: now + policy.recheck_initial,
                    };
                }
            }
            Outcome::RateLimited {
                retry_after,
                message,
            } => {
                i.last_error = Some(message.clone());
                let wait = retry_after.unwrap_or(policy.rate_limit_cooldown);
                i.state = State::CoolingDown { until: now + wait };
            }
            Outcome::Failed(msg) => {
                i.last_error = Some(msg.clone());
                i.consecutive_failures += 1;
                let probation_failed =
                    matches!(i.state, State::Ejected { until, .. } if now >= until);
                if probation_failed {
                    let cooldown = match i.state {
                        State::Ejected { cooldown, .. } => {
                            (cooldown * 2).min(policy.eject_cooldown_max)
                        }
                        _ => policy.eject_cooldown,
                    };
                    i.state = State::Ejected {
                        until: now + cooldown,
                        cooldown,
                    };
                } else if i.consecutive_failures >= policy.eject_after_failures.max(1)
                    && !matches!(i.state, State::Ejected { .. } | State::Invalid { .. })
                {
                    i.state = State::Ejected {
                        until: now + policy.eject_cooldown,
                        cooldown: policy.eject_cooldown,
                    };
                }
            }
            Outcome::Neutral => {}
        }
        let changed = std::mem::discriminant(&before) != std::mem::discriminant(&i.state)
            || matches!((&before, &i.state), (State::Ejected { until: a, .. }, State::Ejected { until: b, .. }) if a != b)
            || matches!((&before, &i.state), (State::CoolingDown { until: a }, State::CoolingDown { until: b }) if a != b);
        changed.then(|| persist_of(&i, &before))
    }

    /// A background check of an invalid credential is due: returns the model to check
    /// with and marks the check as running. `None`: not due, already running, or done
    /// trying.
    pub fn claim_check(&self, now: Instant, policy: &HealthPolicy) -> Option<String> {
        let Ok(mut i) = self.inner.lock() else {
            return None;
        };
        let due = matches!(&i.state, State::Invalid { checks, next_check, .. }
            if now >= *next_check && *checks < policy.recheck_limit);
        if !due || i.checking {
            return None;
        }
        i.checking = true;
        Some(i.check_model.clone().unwrap_or_default())
    }

    /// The result of a background check.
    pub fn check_done(
        &self,
        ok: bool,
        error: Option<String>,
        policy: &HealthPolicy,
    ) -> Option<Persist> {
        let Ok(mut i) = self.inner.lock() else {
            return None;
        };
        i.checking = false;
        if ok {
            let before = std::mem::replace(&mut i.state, State::Healthy);
            i.consecutive_failures = 0;
            i.last_error = None;
            return Some(persist_of(&i, &before));
        }
        if let State::Invalid {
            checks, next_check, ..
        } = &mut i.state
        {
            *checks += 1;
            let backoff = policy
                .recheck_initial
                .saturating_mul(1u32 << (*checks).min(16))
                .min(policy.recheck_max);
            *next_check = Instant::now() + backoff;
        }
        if let Some(e) = error {
            i.last_error = Some(e);
        }
        None
    }

    pub fn view(&self) -> HealthView {
        let Ok(i) = self.inner.lock() else {
            return HealthView {
                state: "unknown",
                until: None,
                reason: None,
                last_error: None,
                recent_calls: 0,
                recent_error_rate: 0.0,
                consecutive_failures: 0,
            };
        };
        let now = Instant::now();
        let errors = i.recent.iter().filter(|e| **e).count();
        let (state, until, reason) = match &i.state {
            State::Healthy => ("healthy", None, None),
            State::CoolingDown { until } if now < *until => {
                ("cooling_down", Some(to_unix_ms(*until)), None)
            }
            State::Ejected { until, .. } if now < *until => {
                ("ejected", Some(to_unix_ms(*until)), None)
            }
            State::CoolingDown { .. } | State::Ejected { .. } => ("healthy", None, None),
            State::Invalid { reason, .. } => ("invalid", None, Some(reason.clone())),
        };
        HealthView {
            state,
            until,
            reason,
            last_error: i.last_error.clone(),
            recent_calls: i.recent.len(),
            recent_error_rate: if i.recent.is_empty() {
                0.0
            } else {
                errors as f64 / i.recent.len() as f64
            },
            consecutive_failures: i.consecutive_failures,
        }
    }
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Healthy => "healthy",
        State::CoolingDown { .. } => "cooling_down",
        State::Ejected { .. } => "ejected",
        State::Invalid { .. } => "invalid",
    }
}

fn persist_of(i: &Inner, from: &State) -> Persist {
    let (state, until_ms) = match &i.state {
        State::Healthy => ("healthy", None),
        State::CoolingDown { until } => ("cooling_down", Some(to_unix_ms(*until))),
        State::Ejected { until, .. } => ("ejected", Some(to_unix_ms(*until))),
        State::Invalid { .. } => ("invalid", None),
    };
    Persist {
        state,
        from: state_name(from),
        until_ms,
        last_error: i.last_error.clone(),
    }
}

/// Key of a credential's health: the store id, or the provider prefix for a key from the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HealthKey {
    Stored(i64),
    Env(String),
}

/// Every credential's health, shared by successive routing tables.
#[derive(Default)]
pub struct HealthRegistry {
    map: Mutex<HashMap<HealthKey, Arc<CredHealth>>>,
}

impl HealthRegistry {
    /// The health of `key`, made from `init` the first time it is seen.
    pub fn get_or(&self, key: HealthKey, init: impl FnOnce() -> CredHealth) -> Arc<CredHealth> {
        let Ok(mut map) = self.map.lock() else {
            return Arc::new(init());
        };
        map.entry(key).or_insert_with(|| Arc::new(init())).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            rate_limit_cooldown: Duration::from_secs(30),
            eject_after_failures: 3,
            eject_cooldown: Duration::from_millis(50),
            eject_cooldown_max: Duration::from_secs(1),
            recheck_initial: Duration::from_millis(10),
            recheck_max: Duration::from_millis(40),
            recheck_limit: 3,
        }
    }

    #[test]
    fn auth_failure_invalidates_until_a_check_succeeds() {
        let p = policy();
        let h = CredHealth::default();
        assert!(h
            .record(&Outcome::AuthFailed("bad key".into()), "m", &p)
            .is_some());
        assert!(!h.available(Instant::now()));
        assert_eq!(h.view().state, "invalid");
        assert_eq!(h.claim_check(Instant::now(), &p), None, "not due yet");
        let later = Instant::now() + Duration::from_millis(20);
        assert_eq!(h.claim_check(later, &p).as_deref(), Some("m"));
        assert_eq!(h.claim_check(later, &p), None, "one check at a time");
        assert!(h.check_done(false, Some("still bad".into()), &p).is_none());
        assert!(
            h.claim_check(Instant::now() + Duration::from_millis(15), &p)
                .is_none(),
            "backoff doubled"
        );
        assert!(h
            .claim_check(Instant::now() + Duration::from_millis(25), &p)
            .is_some());
        assert!(h.check_done(true, None, &p).is_some());
        assert!(h.available(Instant::now()));
    }

    #[test]
    fn rate_limit_cools_down_for_retry_after() {
        let p = policy();
        let h = CredHealth::default();
        let o = Outcome::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            message: "slow down".into(),
        };
        let persisted = h.record(&o, "m", &p).unwrap();
        assert_eq!(persisted.state, "cooling_down");
        assert!(!h.available(Instant::now()));
        assert!(h.available(Instant::now() + Duration::from_millis(2100)));
    }

    #[test]
    fn consecutive_failures_eject_then_probe() {
        let p = policy();
        let h = CredHealth::default();
        let fail = Outcome::Failed("500".into());
        h.record(&fail, "m", &p);
        h.record(&fail, "m", &p);
        assert!(h.available(Instant::now()));
        assert_eq!(h.record(&fail, "m", &p).unwrap().state, "ejected");
        assert!(!h.available(Instant::now()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(h.available(Instant::now()), "probation");
        h.record(&fail, "m", &p);
        assert!(!h.available(Instant::now()), "a failed probe ejects again");
        std::thread::sleep(Duration::from_millis(110));
        h.record(&Outcome::Success, "m", &p);
        assert_eq!(h.view().state, "healthy");
        assert!(h.view().recent_error_rate > 0.5);
    }

    #[test]
    fn an_expired_ejection_lets_one_probe_through_at_a_time() {
        let p = policy();
        let h = CredHealth::default();
        let fail = Outcome::Failed("500".into());
        for _ in 0..3 {
            h.record(&fail, "m", &p);
        }
        assert!(!h.try_take(Instant::now()), "ejected");
        let later = Instant::now() + Duration::from_millis(60);
        assert!(h.try_take(later), "half-open: the probe");
        assert!(!h.try_take(later), "a second call waits for the probe");
        assert!(!h.available(later));
        // A probe that never reports frees the slot after one cooldown.
        assert!(h.try_take(later + Duration::from_millis(60)));
        // A neutral outcome (the client's own error) frees it at once.
        h.record(&Outcome::Neutral, "m", &p);
        assert!(h.try_take(later + Duration::from_millis(60)));
        // Success closes the circuit: every call again.
        h.record(&Outcome::Success, "m", &p);
        assert!(h.try_take(Instant::now()) && h.try_take(Instant::now()));
        assert_eq!(h.view().state, "healthy");
    }

    #[test]
    fn restored_states() {
        let p = policy();
        let h = CredHealth::restored("invalid", None, Some("revoked".into()), &p);
        assert_eq!(h.view().state, "invalid");
        assert_eq!(h.view().reason.as_deref(), Some("revoked"));
        let future = to_unix_ms(Instant::now() + Duration::from_secs(60));
        let h = CredHealth::restored("cooling_down", Some(future), None, &p);
        assert!(!h.available(Instant::now()));
    }
}
