//! The health sampler: on a fixed cadence (`health.interval_ms`) it gathers this node's
//! samples (event-loop lateness of both runtimes, log positions, fsync latency, disk, memory, peer phi),
//! runs the pure evaluators of [`crate::health`], keeps the report the admin endpoints,
//! `INFO keepbit` and `KEEPBIT HEALTH` show, and refreshes the gauges of `/metrics`.
//! On a cluster node each tick also feeds the proactive switchover (`server::proactive`).
//! Its cost is bounded: a few syscalls and a sort of at most 4096 fsync latencies a tick.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::health::evaluate::{DiskSample, MemorySample, PeerSample, ReplicationSample};
use crate::health::{evaluate, json_escape, overall, Check, HealthConfig, Samples, Status};
use crate::metrics::LoopProbe;
use crate::raft::cluster::Cluster;
use crate::raft::role::RoleView;
use crate::server::proactive::Proactive;
use crate::server::Server;

/// The last evaluation.
#[derive(Clone, Debug, Default)]
pub struct HealthReport {
    pub status: Status,
    pub checks: Vec<Check>,
    /// A standby's distance behind the primary, when it is one.
    pub replication: Option<ReplicationSample>,
    /// Ticks evaluated since start (0: nothing measured yet).
    pub ticks: u64,
}

impl HealthReport {
    /// `{"status": …, "role": …, "checks": [{"name", "status", "reason"}…]}`
    pub fn json(&self, role: &str) -> String {
        let mut out = format!("{{\"status\":\"{}\",\"role\":\"{role}\",\"checks\":[", self.status.as_str());
        for (i, c) in self.checks.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{sep}{{\"name\":\"{}\",\"status\":\"{}\",\"reason\":\"{}\"}}",
                c.name,
                c.status.as_str(),
                json_escape(&c.reason)
            );
        }
        out.push_str("]}");
        out
    }

    /// One line per check, for `KEEPBIT HEALTH`.
    pub fn text(&self) -> String {
        let mut out = format!("status: {}\n", self.status.as_str());
        for c in &self.checks {
            let _ = writeln!(out, "{}: {} ({})", c.name, c.status.as_str(), c.reason);
        }
        out
    }
}

/// "primary", "standby" or "standalone".
pub fn role_name(srv: &Server) -> &'static str {
    match &srv.cluster {
        None => "standalone",
        Some(c) if c.is_primary() => "primary",
        Some(_) => "standby",
    }
}

/// What the sampler remembers between ticks.
struct Sampler {
    cfg: HealthConfig,
    /// The client runtime's event-loop probe (ticking in its own task).
    loop_probe: Arc<LoopProbe>,
    /// When this standby was last caught up with the primary's commit.
    caught_up_at: Instant,
    /// On the primary: when each peer last matched the primary's last log index.
    peer_caught_up: BTreeMap<u64, Instant>,
    /// Peers watched so far in `watched_term`.
    watched: BTreeSet<u64>,
    /// The term `watched` was gathered in.
    watched_term: u64,
    host_memory_bytes: u64,
    data_dir: std::path::PathBuf,
}

/// The host's memory (MemTotal), 0 when unknown.
fn host_memory_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = text.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|r| r.split_whitespace().next());
    kib.and_then(|k| k.parse::<u64>().ok()).map_or(0, |k| k * 1024)
}

fn disk_sample(dir: &std::path::Path) -> Option<DiskSample> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(DiskSample { free_bytes: s.f_bavail * s.f_frsize, total_bytes: s.f_blocks * s.f_frsize })
}

impl Sampler {
    fn window_ms(&self) -> u64 {
        self.cfg.window_s * 1000
    }

    fn replication(&mut self, c: &Cluster, v: &RoleView) -> Option<ReplicationSample> {
        if v.is_primary {
            return None;
        }
        let commit = c.leader_commit.load(std::sync::atomic::Ordering::Relaxed).max(v.committed);
        let entries = commit.saturating_sub(v.last_applied);
        let now = Instant::now();
        if entries == 0 && v.leader.is_some() {
            self.caught_up_at = now;
        }
        Some(ReplicationSample { entries, seconds: (now - self.caught_up_at).as_secs_f64() })
    }

    /// Phi of the peers this node should hear from. A peer first watched in this term starts
    /// afresh (a new primary has not been hearing from the other standbys); one watched
    /// again within the same term does not, so a lease blip cannot make a dead peer look
    /// alive.
    fn peers(&mut self, c: &Cluster, v: &RoleView) -> PeerSample {
        let voters = v.members.iter().filter(|m| m.2).count();
        let watch: BTreeSet<u64> = match (&v.leader, v.is_primary) {
            (_, true) => v.members.iter().filter(|m| m.2 && m.0 != c.id).map(|m| m.0).collect(),
            (Some((leader, _)), false) => BTreeSet::from([*leader]),
            (None, false) => BTreeSet::new(),
        };
        if v.term != self.watched_term {
            self.watched.clear();
            self.watched_term = v.term;
        }
        for id in watch.difference(&self.watched) {
            c.arrivals.reset(*id);
        }
        let phi = watch.iter().map(|id| (*id, c.arrivals.phi(*id).unwrap_or(0.0))).collect();
        self.watched.extend(watch);
        PeerSample { is_leader: v.is_primary, voters, phi }
    }

    /// Per-peer lag gauges on the primary.
    fn peer_lag_metrics(&mut self, srv: &Server, v: &RoleView) {
        if !v.is_primary {
            self.peer_caught_up.clear();
            srv.metrics.peer_lag_entries.clear();
            srv.metrics.peer_lag_seconds.clear();
            return;
        }
        let now = Instant::now();
        let me = srv.cluster.as_ref().map_or(0, |c| c.id);
        for (id, matched) in v.matched.iter().filter(|(id, _)| **id != me) {
            let entries = v.last_log_index.saturating_sub(*matched);
            let since = *self.peer_caught_up.entry(*id).or_insert(now);
            if entries == 0 {
                self.peer_caught_up.insert(*id, now);
            }
            let label = [("peer", id.to_string())];
            srv.metrics.peer_lag_entries.get_or_create(&label).set(entries as i64);
            let seconds = if entries == 0 { 0.0 } else { (now - since).as_secs_f64() };
            srv.metrics.peer_lag_seconds.get_or_create(&label).set(seconds);
        }
    }

    fn samples(&mut self, srv: &Server) -> Samples {
        let memory = srv.node.memory.max();
        let mut s = Samples {
            event_loop: self.loop_probe.sample(self.window_ms()),
            memory: MemorySample {
                used_bytes: srv.node.memory.used(),
                limit_bytes: if memory > 0 { memory } else { self.host_memory_bytes },
                of_host: memory == 0,
            },
            disk: disk_sample(&self.data_dir),
            ..Samples::default()
        };
        if let Some(c) = &srv.cluster {
            let v = c.role();
            s.apply = Some((v.committed, v.last_applied));
            s.replication = self.replication(c, &v);
            s.replication_loop = Some(c.loop_probe.sample(self.window_ms()));
            s.fsync = c.fsync_probe.as_ref().map(|p| p.sample(self.window_ms(), self.cfg.fsync_p99_failing_ms));
            s.peers = Some(self.peers(c, &v));
            let m = &srv.metrics;
            m.term.set(v.term as i64);
            m.commit_index.set(v.committed as i64);
            m.applied_index.set(v.last_applied as i64);
            self.peer_lag_metrics(srv, &v);
        }
        s
    }
}

/// Runs the checks every `health.interval_ms` until the server is dropped.
pub fn spawn_sampler(server: &Arc<Server>) {
    let config = server.config();
    let cfg = config.health;
    let interval = Duration::from_millis(cfg.interval_ms);
    let loop_probe = Arc::new(LoopProbe::new(
        server.metrics.stall_seconds.clone(),
        cfg.stall_ms,
        cfg.interval_ms,
        cfg.window_s * 1000,
    ));
    tokio::spawn(LoopProbe::run(Arc::downgrade(&loop_probe), interval));
    let mut sampler = Sampler {
        cfg,
        loop_probe,
        caught_up_at: Instant::now(),
        peer_caught_up: BTreeMap::new(),
        watched: BTreeSet::new(),
        watched_term: 0,
        host_memory_bytes: host_memory_bytes(),
        data_dir: config.data_dir,
    };
    let mut proactive = Proactive::new(&sampler.cfg);
    let weak = Arc::downgrade(server);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(srv) = weak.upgrade() else { return };
            let samples = sampler.samples(&srv);
            let checks = evaluate(&samples, &sampler.cfg);
            for c in &checks {
                srv.metrics.set_health(c.name, c.status);
            }
            srv.metrics.connections.set(srv.clients.len() as i64);
            if let Some(c) = &srv.cluster {
                proactive.tick(c, &checks).await;
            }
            let mut report = srv.health.lock().unwrap_or_else(|e| e.into_inner());
            report.status = overall(&checks);
            report.checks = checks;
            report.replication = samples.replication;
            report.ticks += 1;
        }
    });
}
