//! The Prometheus metrics of one node (`prometheus-client`): one struct of metric
//! handles, created once and shared by the layers that count. Command counters are
//! registered per command family up front, so counting a command never allocates.
//! [`FsyncProbe`] is what the log writer reports each fsync to (the histogram here and
//! the window the health check reads).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::health::evaluate::{FsyncSample, LoopSample};
use crate::health::window::Window;
use crate::health::{Status, CHECKS};

/// The command table's families (`Spec::group`); anything else counts as "other".
pub const FAMILIES: [&str; 13] = [
    "connection",
    "generic",
    "hash",
    "list",
    "pubsub",
    "server",
    "set",
    "sorted-set",
    "string",
    "transactions",
    "cluster",
    "sentinel",
    "other",
];

/// The index of `group` in [`FAMILIES`] (a dozen comparisons, no allocation).
pub fn family_index(group: &str) -> usize {
    FAMILIES.iter().position(|f| *f == group).unwrap_or(FAMILIES.len() - 1)
}

type Label = [(&'static str, &'static str); 1];
type OwnedLabel = [(&'static str, String); 1];
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    failovers: Family<OwnedLabel, Counter>,
    failover_seconds: Histogram,
    pub leader_changes: Counter,
    pub term: Gauge,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub peer_lag_entries: Family<OwnedLabel, Gauge>,
    pub peer_lag_seconds: Family<OwnedLabel, FloatGauge>,
    health: Vec<Gauge>,
    pub fsync_seconds: Histogram,
    pub stall_seconds: Histogram,
    pub connections: Gauge,
    commands: Vec<Counter>,
    errors: Vec<Counter>,
    latency: Vec<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("keepbit");
        let failovers = Family::<OwnedLabel, Counter>::default();
        r.register("failovers", "Failovers, by cause", failovers.clone());
        let failover_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        r.register(
            "failover_duration_seconds",
            "Time from losing a primary to having one (MTTR)",
            failover_seconds.clone(),
        );
        let leader_changes = Counter::default();
        r.register("leader_changes", "Changes of the leader this node sees", leader_changes.clone());
        let (term, commit_index, applied_index) = (Gauge::default(), Gauge::default(), Gauge::default());
        r.register("term", "Current Raft term", term.clone());
        r.register("commit_index", "Highest log index known committed", commit_index.clone());
        r.register("applied_index", "Highest log index applied here", applied_index.clone());
        let peer_lag_entries = Family::<OwnedLabel, Gauge>::default();
        r.register("replication_lag_entries", "Entries each peer is behind (primary only)", peer_lag_entries.clone());
        let peer_lag_seconds = Family::<OwnedLabel, FloatGauge>::default();
        r.register(
            "replication_lag_seconds",
            "Seconds since each peer was caught up (primary only)",
            peer_lag_seconds.clone(),
        );
        let health_family = Family::<Label, Gauge>::default();
        r.register("health_check_status", "Health check state: 0 ok, 1 degraded, 2 failing", health_family.clone());
        let health = CHECKS.iter().map(|c| health_family.get_or_create(&[("check", *c)]).clone()).collect();
        let fsync_seconds = latency_histogram();
        r.register("log_fsync_duration_seconds", "Raft log fsync latency", fsync_seconds.clone());
        let stall_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 10));
        r.register("event_loop_stall_seconds", "Event-loop stalls: how late a probe tick ran", stall_seconds.clone());
        let connections = Gauge::default();
        r.register("client_connections", "Connected clients", connections.clone());
        let commands_family = Family::<Label, Counter>::default();
        r.register("commands", "Commands processed, by command family", commands_family.clone());
        let errors_family = Family::<Label, Counter>::default();
        r.register("command_errors", "Commands answered with an error, by command family", errors_family.clone());
        let latency_family = Family::<Label, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        r.register("command_duration_seconds", "Command latency, by command family", latency_family.clone());
        let (mut commands, mut errors, mut latency) = (Vec::new(), Vec::new(), Vec::new());
        for fam in FAMILIES {
            commands.push(commands_family.get_or_create(&[("family", fam)]).clone());
            errors.push(errors_family.get_or_create(&[("family", fam)]).clone());
            latency.push(latency_family.get_or_create(&[("family", fam)]).clone());
        }
        Metrics {
            registry: r,
            failovers,
            failover_seconds,
            leader_changes,
            term,
            commit_index,
            applied_index,
            peer_lag_entries,
            peer_lag_seconds,
            health,
            fsync_seconds,
            stall_seconds,
            connections,
            commands,
            errors,
            latency,
        }
    }

    /// Counts one failover and how long the cluster was without a primary.
    pub fn failover(&self, cause: &str, seconds: f64) {
        self.failovers.get_or_create(&[("cause", cause.to_string())]).inc();
        self.failover_seconds.observe(seconds);
    }

    /// Counts one command of family `family` (an index from [`family_index`]).
    pub fn command(&self, family: usize, took: Duration, error: bool) {
        let i = family.min(FAMILIES.len() - 1);
        self.commands[i].inc();
        if error {
            self.errors[i].inc();
        }
        self.latency[i].observe(took.as_secs_f64());
    }

    pub fn set_health(&self, check: &str, status: Status) {
        if let Some(i) = CHECKS.iter().position(|c| *c == check) {
            self.health[i].set(status.level());
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Where the log writer reports fsyncs: the latency histogram and the windows the
/// fsync health check reads (bounded: the newest 4096 fsyncs, the newest 256 errors).
pub struct FsyncProbe {
    start: Instant,
    histogram: Histogram,
    latencies: Mutex<Window>,
    errors: Mutex<Window>,
}

impl FsyncProbe {
    pub fn new(histogram: Histogram) -> FsyncProbe {
        FsyncProbe {
            start: Instant::now(),
            histogram,
            latencies: Mutex::new(Window::new(4096)),
            errors: Mutex::new(Window::new(256)),
        }
    }

    /// One fsync (or failed write/sync) that took `took`.
    pub fn record(&self, took: Duration, ok: bool) {
        let at = self.start.elapsed().as_millis() as u64;
        self.histogram.observe(took.as_secs_f64());
        let window = if ok { &self.latencies } else { &self.errors };
        window.lock().unwrap_or_else(|e| e.into_inner()).push(at, took.as_secs_f64() * 1000.0);
    }

    /// p99 latency, fsyncs of at least `stalled_ms`, and errors over the last `window_ms`.
    pub fn sample(&self, window_ms: u64, stalled_ms: u64) -> FsyncSample {
        let now = self.start.elapsed().as_millis() as u64;
        let latencies = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        let p99_ms = latencies.quantile(now, window_ms, 0.99);
        let stalled = latencies.count_over(now, window_ms, stalled_ms as f64);
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner()).count(now, window_ms);
        FsyncSample { p99_ms, stalled, errors }
    }
}

impl Default for FsyncProbe {
    fn default() -> Self {
        FsyncProbe::new(latency_histogram())
    }
}

/// How late a periodic task runs on one runtime: its ticks' lateness over a window,
/// and each stall (a tick later than `stall_ms`) in the stall histogram.
pub struct LoopProbe {
    start: Instant,
    stall_ms: u64,
    histogram: Histogram,
    lags: Mutex<Window>,
}

impl LoopProbe {
    /// A probe ticking every `interval_ms` and judged over `window_ms`.
    pub fn new(histogram: Histogram, stall_ms: u64, interval_ms: u64, window_ms: u64) -> LoopProbe {
        let capacity = (window_ms / interval_ms.max(1) + 1).min(4096) as usize;
        LoopProbe { start: Instant::now(), stall_ms, histogram, lags: Mutex::new(Window::new(capacity)) }
    }

    pub fn record(&self, lag: Duration) {
        if lag.as_millis() as u64 > self.stall_ms {
            self.histogram.observe(lag.as_secs_f64());
        }
        let at = self.start.elapsed().as_millis() as u64;
        self.lags.lock().unwrap_or_else(|e| e.into_inner()).push(at, lag.as_secs_f64() * 1000.0);
    }

    /// Worst lateness and stalls over the last `window_ms`.
    pub fn sample(&self, window_ms: u64) -> LoopSample {
        let now = self.start.elapsed().as_millis() as u64;
        let lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        LoopSample {
            worst_lag_ms: lags.max(now, window_ms).unwrap_or(0.0),
            stalls: lags.count_over(now, window_ms, self.stall_ms as f64),
        }
    }

    /// Ticks every `interval` on the runtime it is spawned on, recording how late each
    /// tick ran, until the probe is dropped.
    pub async fn run(probe: std::sync::Weak<LoopProbe>, interval: Duration) {
        let mut due = Instant::now() + interval;
        loop {
            tokio::time::sleep_until(due.into()).await;
            let lag = Instant::now().saturating_duration_since(due);
            due = Instant::now() + interval;
            let Some(p) = probe.upgrade() else { return };
            p.record(lag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_the_command_table_have_their_own_counters() {
        for spec in crate::cmd::all() {
            assert_ne!(family_index(spec.group), FAMILIES.len() - 1, "{} ({}) counts as other", spec.name, spec.group);
        }
        let m = Metrics::new();
        m.command(family_index("string"), Duration::from_micros(80), false);
        m.command(family_index("string"), Duration::from_micros(80), true);
        m.failover("leader_lost", 0.25);
        m.set_health("fsync", Status::Degraded);
        let text = m.encode();
        for line in [
            "keepbit_commands_total{family=\"string\"} 2",
            "keepbit_command_errors_total{family=\"string\"} 1",
            "keepbit_failovers_total{cause=\"leader_lost\"} 1",
            "keepbit_failover_duration_seconds_count 1",
            "keepbit_health_check_status{check=\"fsync\"} 1",
            "keepbit_leader_changes_total 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_loop_probe_counts_stalls_in_its_window() {
        let p = LoopProbe::new(latency_histogram(), 100, 250, 60_000);
        for ms in [1, 3, 150, 2, 400] {
            p.record(Duration::from_millis(ms));
        }
        assert_eq!(p.sample(60_000), LoopSample { worst_lag_ms: 400.0, stalls: 2 });
    }

    #[test]
    fn the_fsync_probe_reports_p99_and_errors_in_its_window() {
        let p = FsyncProbe::default();
        assert_eq!(p.sample(60_000, 2_000), FsyncSample { p99_ms: None, stalled: 0, errors: 0 });
        for _ in 0..99 {
            p.record(Duration::from_millis(1), true);
        }
        p.record(Duration::from_millis(500), true);
        p.record(Duration::from_millis(3), false);
        let s = p.sample(60_000, 400);
        assert_eq!((s.errors, s.stalled), (1, 1));
        assert!(s.p99_ms.is_some_and(|ms| (ms - 1.0).abs() < 0.01), "{s:?}");
    }
}
