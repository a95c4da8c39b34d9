//! Console sessions: a random id in an HttpOnly cookie, of which only the SHA-256 is
//! kept, in this instance's memory (a restart or another instance does not know it: the
//! operator logs in again). Each session has a CSRF token the SPA sends back on mutations.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "aihub_session";
/// Most sessions kept; past it the one closest to expiry goes.
const MAX_SESSIONS: usize = 1000;
/// Failed logins allowed per client per window before that client's logins are refused
/// for the rest of it. Per client, so someone guessing tokens cannot lock the operator out.
const MAX_FAILURES: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Most clients whose failures are remembered; past it the one whose last failure is
/// oldest is forgotten (it gets a fresh allowance, at the 400 ms a failure costs).
const MAX_TRACKED_CLIENTS: usize = 4096;

/// Who a failure is counted against: an IPv4 address, or an IPv6 /64 (one host usually
/// holds a whole /64, so counting single IPv6 addresses would be no limit at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(u128);

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Client(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(u128::from(u32::from(v4))),
                None => Client((u128::from(v6) & (u128::MAX << 64)) | 1 << 32),
            },
        }
    }
}

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
    /// Recent failed logins per client (each list at most `MAX_FAILURES + 1` long).
    failures: Mutex<HashMap<Client, Vec<Instant>>>,
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
            failures: Mutex::new(HashMap::new()),
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

    /// Records a failed login from `client`; false when it failed too often in the last
    /// window.
    pub fn note_failure(&self, client: Client) -> bool {
        let Ok(mut all) = self.failures.lock() else {
            return false;
        };
        let now = Instant::now();
        if !all.contains_key(&client) && all.len() >= MAX_TRACKED_CLIENTS {
            all.retain(|_, f| {
                f.last()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
            if all.len() >= MAX_TRACKED_CLIENTS {
                let oldest = all
                    .iter()
                    .min_by_key(|(_, f)| f.last().copied())
                    .map(|(c, _)| *c);
                if let Some(c) = oldest {
                    all.remove(&c);
                }
            }
        }
        let f = all.entry(client).or_default();
        f.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
        f.push(now);
        if f.len() > MAX_FAILURES + 1 {
            f.remove(0);
        }
        f.len() <= MAX_FAILURES
    }

    /// Whether `client`'s logins are refused right now (too many recent failures), and
    /// for how long.
    pub fn locked_for(&self, client: Client) -> Option<Duration> {
        let all = self.failures.lock().ok()?;
        let now = Instant::now();
        let recent: Vec<_> = all
            .get(&client)?
            .iter()
            .filter(|t| now.duration_since(**t) < FAILURE_WINDOW)
            .collect();
        if recent.len() < MAX_FAILURES {
            return None;
        }
        // Refused until the oldest of the last MAX_FAILURES leaves the window.
        recent
            .get(recent.len() - MAX_FAILURES)
            .map(|t| FAILURE_WINDOW.saturating_sub(now.duration_since(**t)))
    }

    /// How many clients have failures remembered (bounded by `MAX_TRACKED_CLIENTS`).
    pub fn tracked_clients(&self) -> usize {
        self.failures.lock().map(|m| m.len()).unwrap_or(0)
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

    fn v4(last: u8) -> Client {
        IpAddr::from([192, 0, 2, last]).into()
    }

    #[test]
    fn failures_lock_only_the_client_that_failed() {
        let s = Sessions::new(Duration::from_secs(60));
        for _ in 0..MAX_FAILURES {
            assert!(s.note_failure(v4(1)));
        }
        let wait = s.locked_for(v4(1)).expect("locked");
        assert!(wait <= FAILURE_WINDOW && wait > Duration::from_secs(50));
        assert!(!s.note_failure(v4(1)));
        assert!(
            s.locked_for(v4(2)).is_none(),
            "another client is not locked"
        );
        assert!(s.note_failure(v4(2)));
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::from(a), Client::from(b));
        assert_ne!(Client::from(a), Client::from(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Client::from(mapped), v4(1));
        assert_ne!(
            Client::from("::".parse::<IpAddr>().unwrap()),
            Client::from(IpAddr::from([0, 0, 0, 0]))
        );
    }

    #[test]
    fn memory_is_bounded_and_the_stalest_client_goes() {
        let s = Sessions::new(Duration::from_secs(60));
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            s.note_failure(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()).into());
        }
        assert_eq!(s.tracked_clients(), MAX_TRACKED_CLIENTS);
        // Per client, at most one more failure than the limit is kept.
        for _ in 0..(MAX_FAILURES * 3) {
            s.note_failure(v4(7));
        }
        let kept = s.failures.lock().unwrap().get(&v4(7)).unwrap().len();
        assert_eq!(kept, MAX_FAILURES + 1);
        assert!(s.locked_for(v4(7)).is_some());
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
