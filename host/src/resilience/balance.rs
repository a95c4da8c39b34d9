//! Smooth weighted round-robin (nginx's), precomputed into a schedule so that picking is
//! one atomic increment: no lock on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

/// Longest schedule kept; larger weight sums are scaled down (ratios kept to ~0.1 %).
const MAX_LEN: u64 = 1000;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The order in which SWRR serves `weights` over one cycle (indices into `weights`).
pub fn swrr_schedule(weights: &[u32]) -> Vec<usize> {
    let mut w: Vec<u64> = weights.iter().map(|&x| x as u64).collect();
    let g = w.iter().copied().filter(|x| *x > 0).fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    w.iter_mut().for_each(|x| *x /= g);
    let sum: u64 = w.iter().sum();
    if sum > MAX_LEN {
        for x in w.iter_mut().filter(|x| **x > 0) {
            *x = (*x * MAX_LEN / sum).max(1);
        }
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i] as i64;
            if current[i] > current[best] || (w[best] == 0 && w[i] > 0) {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best);
    }
    out
}

/// A rotation over weighted members.
#[derive(Debug)]
pub struct Rotation {
    schedule: Vec<usize>,
    next: AtomicU64,
}

impl Rotation {
    pub fn new(weights: &[u32]) -> Self {
        Rotation {
            schedule: swrr_schedule(weights),
            next: AtomicU64::new(0),
        }
    }

    /// Members in the order to try for one call: the scheduled one first, then the rest of
    /// the cycle, each once. Lazy, and without allocating for up to 64 members.
    pub fn order(&self, members: usize) -> Order<'_> {
        let len = self.schedule.len();
        let start = if len == 0 {
            0
        } else {
            (self.next.fetch_add(1, Ordering::Relaxed) % len as u64) as usize
        };
        Order {
            schedule: &self.schedule,
            start,
            k: 0,
            members,
            left: members,
            seen: if members <= 64 {
                Seen::Bits(0)
            } else {
                Seen::Many(vec![false; members])
            },
        }
    }
}

/// The members one call tries, in order (see [`Rotation::order`]).
#[derive(Clone)]
pub struct Order<'a> {
    schedule: &'a [usize],
    start: usize,
    k: usize,
    members: usize,
    left: usize,
    seen: Seen,
}

#[derive(Clone)]
enum Seen {
    Bits(u64),
    Many(Vec<bool>),
}

impl Seen {
    /// Marks `i` seen; false when it was already.
    fn mark(&mut self, i: usize) -> bool {
        match self {
            Seen::Bits(b) => {
                let bit = 1u64 << i;
                let fresh = *b & bit == 0;
                *b |= bit;
                fresh
            }
            Seen::Many(v) => !std::mem::replace(&mut v[i], true),
        }
    }
}

impl Iterator for Order<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let len = self.schedule.len();
        while self.left > 0 && self.k < len {
            let i = self.schedule[(self.start + self.k) % len];
            self.k += 1;
            if i < self.members && self.seen.mark(i) {
                self.left -= 1;
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_and_proportional() {
        assert_eq!(swrr_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(swrr_schedule(&[3, 1]), vec![0, 0, 1, 0]);
        assert_eq!(swrr_schedule(&[0, 2]), vec![1]);
        assert!(swrr_schedule(&[0, 0]).is_empty());
        let big = swrr_schedule(&[700, 300, 1]);
        assert!(big.len() <= 1001);
        let ones = big.iter().filter(|i| **i == 1).count() as f64 / big.len() as f64;
        assert!((ones - 0.3).abs() < 0.01);
    }

    #[test]
    fn rotation_splits_by_weight() {
        let r = Rotation::new(&[3, 1]);
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[r.order(2).next().unwrap()] += 1;
        }
        assert_eq!(counts, [300, 100]);
        assert_eq!(r.order(2).count(), 2, "every member is offered once");
        let wide = Rotation::new(&[1; 70]);
        let mut all: Vec<usize> = wide.order(70).collect();
        all.sort_unstable();
        assert_eq!(all, (0..70).collect::<Vec<_>>(), "more than 64 members");
    }
}
