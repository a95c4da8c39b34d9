//! Console sessions: a random id in an HttpOnly cookie, of which only the SHA-256 is
//! kept, in this instance's memory (a restart or another instance does not know it: the
//! operator logs in again). Each session has a CSRF token the SPA sends back on mutations.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "aihub_session";
/// Most sessions kept; past it the one closest to expiry goes.
const MAX_SESSIONS: usize = 1000;
/// Failed logins allowed per window before logins are refused for the rest of it.
const MAX_FAILURES: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    pub expires: Instant,
    /// Unix ms of expiry, for the SPA.
    pub expires_at_ms: i64,
}

pub struct Sessions {
    ttl: Duration,
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<Vec<Instant>>,
}

fn random_hex(n: usize) -> Option<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            by_hash: Mutex::new(HashMap::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session: its cookie value (shown to the browser only) and the session.
    pub fn create(&self) -> Option<(String, Session)> {
        let id = random_hex(32)?;
        let session = Session {
            csrf: random_hex(24)?,
            expires: Instant::now() + self.ttl,
            expires_at_ms: crate::store::now_ms()
                .saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)),
        };
        let mut map = self.by_hash.lock().ok()?;
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(k) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                map.remove(&k);
            }
        }
        map.insert(hash(&id), session.clone());
        Some((id, session))
    }

    /// The live session with this cookie value.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.by_hash.lock().ok()?;
        let h = hash(id);
        match map.get(&h) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&h);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.by_hash.lock() {
            map.remove(&hash(id));
        }
    }

    /// Records a failed login; false when too many failed in the last window.
    pub fn note_failure(&self) -> bool {
        let Ok(mut f) = self.failures.lock() else {
            return false;
        };
        let now = Instant::now();
        f.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
        f.push(now);
        f.len() <= MAX_FAILURES
    }

    /// Whether logins are refused right now (too many recent failures), and for how long.
    pub fn locked_for(&self) -> Option<Duration> {
        let f = self.failures.lock().ok()?;
        let now = Instant::now();
        let recent: Vec<_> = f
            .iter()
            .filter(|t| now.duration_since(**t) < FAILURE_WINDOW)
            .collect();
        if recent.len() < MAX_FAILURES {
            return None;
        }
        recent
            .first()
            .map(|t| FAILURE_WINDOW.saturating_sub(now.duration_since(**t)))
    }
}

/// The value of cookie `name` in the request's `cookie` headers.
pub fn cookie<'a>(headers: &'a hyper::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Constant-time string equality (CSRF tokens).
pub fn same(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(&hash(a)[..], &hash(b)[..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_live_until_removed_or_expired() {
        let s = Sessions::new(Duration::from_secs(60));
        let (id, sess) = s.create().unwrap();
        assert_eq!(s.get(&id).unwrap().csrf, sess.csrf);
        assert!(s.get("nope").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        let short = Sessions::new(Duration::from_millis(0));
        let (id, _) = short.create().unwrap();
        assert!(short.get(&id).is_none());
    }

    #[test]
    fn failures_lock_after_the_limit() {
        let s = Sessions::new(Duration::from_secs(60));
        for _ in 0..MAX_FAILURES {
            assert!(s.note_failure());
        }
        assert!(s.locked_for().is_some());
        assert!(!s.note_failure());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            hyper::header::COOKIE,
            "a=1; aihub_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
