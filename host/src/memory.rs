//! Giving freed heap back to the operating system once a burst of traffic is over.
//! glibc keeps what threads free in their arenas for reuse and returns only the top of
//! the main heap; after a burst an idle gateway would keep its busiest moment's
//! footprint. The call-log writer, which sees every call, says when traffic pauses.

/// Calls since the last trim before a pause is worth a trim: a trim walks every arena,
/// and pages it gives back are faulted in again when traffic resumes.
const CALLS_PER_TRIM: u64 = 1_000;

/// Counts calls between pauses and trims at a pause that follows enough of them.
#[derive(Debug, Default)]
pub struct IdleTrim {
    since_trim: u64,
}

impl IdleTrim {
    /// `n` more calls went through.
    pub fn busy(&mut self, n: usize) {
        self.since_trim = self.since_trim.saturating_add(n as u64);
    }

    /// Traffic has paused; whether the heap was trimmed.
    pub fn now_idle(&mut self) -> bool {
        if self.since_trim < CALLS_PER_TRIM {
            return false;
        }
        self.since_trim = 0;
        trim();
        true
    }
}

/// Returns free memory in every arena to the OS (no-op off glibc).
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and madvises the allocator's own free lists, under
    // its arena locks; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_enough_calls() {
        let mut t = IdleTrim::default();
        assert!(!t.now_idle());
        t.busy(999);
        assert!(!t.now_idle());
        t.busy(1);
        assert!(t.now_idle());
        // The count starts again after a trim.
        assert!(!t.now_idle());
        t.busy(usize::MAX);
        t.busy(usize::MAX);
        assert!(t.now_idle());
    }
}
