//! Memory use, and the `maxmemory` admission check (Redis's `noeviction` policy): writes
//! that may grow the dataset are refused once the node uses more than `maxmemory`, before
//! anything is proposed, so every replica stays within the limit together.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Resident memory of this process (0 where /proc is missing).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// The limit and what counts against it: memory measured at the last sample plus what
/// was admitted since, so a burst of large writes between two samples cannot overshoot.
#[derive(Debug, Default)]
pub struct MemoryLimit {
    max: AtomicU64,
    sampled: AtomicU64,
    admitted_since_sample: AtomicU64,
}

impl MemoryLimit {
    /// `max` bytes; 0 means no limit. Measures at once, so the first write is checked
    /// against a real figure, not against 0.
    pub fn new(max: u64) -> MemoryLimit {
        let limit = MemoryLimit { max: AtomicU64::new(max), ..MemoryLimit::default() };
        limit.sample(rss_bytes());
        limit
    }

    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }

    pub fn set_max(&self, max: u64) {
        self.max.store(max, Relaxed);
    }

    /// Records a fresh measurement of used memory.
    pub fn sample(&self, used: u64) {
        self.sampled.store(used, Relaxed);
        self.admitted_since_sample.store(0, Relaxed);
    }

    /// Used memory as the limit counts it.
    pub fn used(&self) -> u64 {
        self.sampled.load(Relaxed).saturating_add(self.admitted_since_sample.load(Relaxed))
    }

    /// Whether adding `cost` bytes would go over the limit (nothing is counted).
    pub fn would_exceed(&self, cost: u64) -> bool {
        let max = self.max();
        max != 0 && self.used().saturating_add(cost) > max
    }

    /// Whether a write that may add `cost` bytes is allowed; counts it if so.
    pub fn admit(&self, cost: u64) -> bool {
        if self.would_exceed(cost) {
            return false;
        }
        self.admitted_since_sample.fetch_add(cost, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_writes_between_samples() {
        let m = MemoryLimit::new(1000);
        m.sample(600);
        assert!(m.admit(300), "600 + 300 fits");
        assert!(!m.admit(200), "600 + 300 + 200 does not");
        m.sample(500);
        assert!(m.admit(200), "a new sample replaces the estimate");
        let unlimited = MemoryLimit::new(0);
        unlimited.sample(u64::MAX);
        assert!(unlimited.admit(u64::MAX), "0: no limit");
        assert!(rss_bytes() > 0, "this process has resident memory");
    }
}
