//! The `[health]` settings: how often checks run and where each one turns degraded or
//! failing. Documented in the README's configuration section.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often every check runs (and the event-loop probe ticks).
    pub interval_ms: u64,
    /// Sliding window the event-loop stalls, fsync latencies and write errors are judged over.
    pub window_s: u64,
    /// A probe tick this much later than scheduled counts as a stall (degraded).
    pub stall_ms: u64,
    /// This many stalls within the window is failing (fewer is degraded: a stall is
    /// only seen once it is over, so one long pause says little about now).
    pub stalls_failing_count: u64,
    pub apply_lag_degraded_entries: u64,
    pub apply_lag_failing_entries: u64,
    pub replication_lag_degraded_entries: u64,
    pub replication_lag_failing_entries: u64,
    pub replication_lag_degraded_s: u64,
    pub replication_lag_failing_s: u64,
    pub fsync_p99_degraded_ms: u64,
    pub fsync_p99_failing_ms: u64,
    pub disk_free_degraded_bytes: u64,
    pub disk_free_failing_bytes: u64,
    /// Used memory as a percentage of `maxmemory_bytes` (or of the host's memory when unset).
    pub memory_degraded_percent: u64,
    pub memory_failing_percent: u64,
    /// Phi above which a peer is suspected (Cassandra's default is 8: at a steady
    /// heartbeat, about 18 missed intervals).
    pub phi_threshold: f64,
    /// Move leadership off this node, when it is primary, before a check that keeps
    /// failing turns into client errors (`health::policy`).
    pub proactive: bool,
    /// How long a check must stay bad before it moves leadership.
    pub proactive_sustain_ms: u64,
    /// No proactive move within this long of any leadership change.
    pub proactive_cooldown_ms: u64,
    /// At most this many proactive moves in any hour, cluster wide.
    pub proactive_max_per_hour: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: 250,
            window_s: 60,
            stall_ms: 100,
            stalls_failing_count: 10,
            apply_lag_degraded_entries: 1_000,
            apply_lag_failing_entries: 100_000,
            replication_lag_degraded_entries: 1_000,
            replication_lag_failing_entries: 100_000,
            replication_lag_degraded_s: 5,
            replication_lag_failing_s: 60,
            fsync_p99_degraded_ms: 100,
            fsync_p99_failing_ms: 2_000,
            disk_free_degraded_bytes: 1 << 30,
            disk_free_failing_bytes: 64 << 20,
            memory_degraded_percent: 90,
            memory_failing_percent: 100,
            phi_threshold: 8.0,
            proactive: true,
            proactive_sustain_ms: 30_000,
            proactive_cooldown_ms: 300_000,
            proactive_max_per_hour: 3,
        }
    }
}

impl HealthConfig {
    /// Why the settings are unusable, if they are: (field, message).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let pairs = [
            ("health.stalls_failing_count", self.stalls_failing_count > 0),
            ("health.apply_lag_failing_entries", self.apply_lag_degraded_entries <= self.apply_lag_failing_entries),
            (
                "health.replication_lag_failing_entries",
                self.replication_lag_degraded_entries <= self.replication_lag_failing_entries,
            ),
            ("health.replication_lag_failing_s", self.replication_lag_degraded_s <= self.replication_lag_failing_s),
            ("health.fsync_p99_failing_ms", self.fsync_p99_degraded_ms <= self.fsync_p99_failing_ms),
            ("health.disk_free_failing_bytes", self.disk_free_failing_bytes <= self.disk_free_degraded_bytes),
            ("health.memory_failing_percent", self.memory_degraded_percent <= self.memory_failing_percent),
        ];
        if !(10..=60_000).contains(&self.interval_ms) {
            return Some(("health.interval_ms", "must be between 10 and 60000"));
        }
        if self.window_s == 0 || self.window_s > 3_600 {
            return Some(("health.window_s", "must be between 1 and 3600"));
        }
        if self.proactive_sustain_ms == 0 {
            return Some(("health.proactive_sustain_ms", "must be greater than 0"));
        }
        if !(self.phi_threshold > 0.0 && self.phi_threshold.is_finite()) {
            return Some(("health.phi_threshold", "must be a positive number"));
        }
        pairs.iter().find(|(_, ok)| !ok).map(|(f, _)| (*f, "must not be below its degraded threshold"))
    }
}
