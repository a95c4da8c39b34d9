//! How many client connections may be open at once, in all and per client IP.
//!
//! A permit is taken when a connection is accepted and given back when it closes, so the
//! per-peer map is touched twice per connection, never per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Descriptors kept back for upstream sockets, the database, plugins and logs when the
/// connection cap is derived from the open-file limit.
const FD_RESERVE: u64 = 128;
/// The derived cap never exceeds this.
const AUTO_MAX: u64 = 10_000;
/// Nor goes below this, however low the open-file limit.
const AUTO_MIN: u64 = 16;

pub struct ConnLimits {
    max: usize,
    per_peer: usize,
    open: AtomicUsize,
    peers: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total(usize),
    PerPeer(usize),
}

/// One admitted connection; dropping it frees the slot.
pub struct Permit {
    limits: Arc<ConnLimits>,
    peer: Option<IpAddr>,
}

impl ConnLimits {
    /// `per_peer` 0 turns the per-IP cap off.
    pub fn new(max: usize, per_peer: usize) -> Arc<Self> {
        Arc::new(ConnLimits {
            max: max.max(1),
            per_peer,
            open: AtomicUsize::new(0),
            peers: Mutex::new(HashMap::new()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn try_admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refusal> {
        let prev = self.open.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total(self.max));
        }
        if self.per_peer == 0 {
            return Ok(Permit {
                limits: self.clone(),
                peer: None,
            });
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let n = peers.entry(peer).or_insert(0);
        if *n >= self.per_peer {
            drop(peers);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::PerPeer(self.per_peer));
        }
        *n += 1;
        Ok(Permit {
            limits: self.clone(),
            peer: Some(peer),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            let mut peers = self.limits.peers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = peers.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    peers.remove(&peer);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises the soft open-file limit to the hard one (a server wants all it may have) and
/// returns the soft limit in force, or `None` when it cannot be read.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    Some(lim.rlim_cur as u64)
}

/// The connection cap when `server.max_connections` is 0: half of what the open-file limit
/// leaves after a reserve (each proxied request also holds an upstream socket), at most
/// 10,000.
pub fn auto_max_connections(nofile: Option<u64>) -> usize {
    let Some(n) = nofile else {
        return 1024;
    };
    (n.saturating_sub(FD_RESERVE) / 2).clamp(AUTO_MIN, AUTO_MAX) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_per_peer_caps() {
        let l = ConnLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.try_admit(a).unwrap();
        let _p2 = l.try_admit(a).unwrap();
        assert_eq!(l.try_admit(a).err(), Some(Refusal::PerPeer(2)));
        let _p3 = l.try_admit(b).unwrap();
        assert_eq!(l.try_admit(b).err(), Some(Refusal::Total(3)));
        assert_eq!(l.open(), 3);
        drop(p1);
        assert_eq!(l.open(), 2);
        let _p4 = l.try_admit(a).unwrap();
        assert!(l.peers.lock().unwrap().len() == 2);
    }

    #[test]
    fn per_peer_zero_is_off() {
        let l = ConnLimits::new(100, 0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let permits: Vec<_> = (0..100).map(|_| l.try_admit(a).unwrap()).collect();
        assert_eq!(l.try_admit(a).err(), Some(Refusal::Total(100)));
        drop(permits);
        assert_eq!(l.open(), 0);
        assert!(l.peers.lock().unwrap().is_empty());
    }

    #[test]
    fn auto_cap_follows_the_fd_limit() {
        assert_eq!(auto_max_connections(Some(1024)), 448);
        assert_eq!(auto_max_connections(Some(1 << 20)), 10_000);
        assert_eq!(auto_max_connections(Some(100)), 16);
        assert_eq!(auto_max_connections(None), 1024);
    }
}
