//! An allocator (the system's unless told otherwise), counting allocations when switched on. `make bench` starts aihub
//! and the floor with `COUNT_HEAP_ALLOCS=1` for a separate pass and reads the counts
//! before and after a fixed number of requests: heap allocations per request.
//!
//! Off (the default), each allocation costs one relaxed load of a flag more; on, a
//! relaxed atomic add per allocation, which is why the throughput scenarios run without
//! it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Install with `#[global_allocator] static A: Counting = Counting(System);` (or any
/// other `GlobalAlloc` in place of `System`).
pub struct Counting<A = System>(pub A);

#[inline]
fn count(size: usize) {
    if ON.load(Relaxed) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator; counting touches
// only atomics and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        self.0.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        self.0.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growth is an allocation as far as cost goes (it may move the block).
        count(new_size);
        self.0.realloc(ptr, layout, new_size)
    }
}

/// Switches counting on when `COUNT_HEAP_ALLOCS=1`. Call once, first thing in `main`.
pub fn enable_from_env() {
    if std::env::var_os("COUNT_HEAP_ALLOCS").is_some_and(|v| v == "1") {
        ON.store(true, Relaxed);
    }
}

pub fn enabled() -> bool {
    ON.load(Relaxed)
}

/// Allocations (and reallocations) counted so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Relaxed)
}

/// Bytes requested by them.
pub fn bytes() -> u64 {
    BYTES.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_when_on() {
        let before = allocations();
        let v: Vec<u8> = Vec::with_capacity(10);
        drop(v);
        // Not the global allocator in this test binary: the count does not move.
        assert_eq!(allocations(), before);
        count(8);
        assert_eq!(allocations(), before, "off");
        ON.store(true, Relaxed);
        count(8);
        assert_eq!(allocations(), before + 1);
        assert!(enabled());
    }
}
