//! The checks as pure functions of [`Samples`] and the thresholds: the sampler gathers
//! the numbers, these decide, and their tests are tables of data.

use super::{Check, HealthConfig, Status};

/// The event-loop probe over the window: its worst lateness and how many ticks stalled.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoopSample {
    pub worst_lag_ms: f64,
    pub stalls: usize,
}

/// A standby's distance behind the primary.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReplicationSample {
    pub entries: u64,
    pub seconds: f64,
}

/// Log fsyncs over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FsyncSample {
    /// None: no fsync in the window.
    pub p99_ms: Option<f64>,
    /// fsyncs in the window that took at least `fsync_p99_failing_ms`.
    pub stalled: usize,
    pub errors: usize,
}

/// Stalled fsyncs in a window before the check fails: one alone may be the whole process
/// paused (SIGSTOP, a VM hiccup) rather than the disk, and is only degraded.
pub const FSYNC_STALLS_FAILING: usize = 3;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiskSample {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MemorySample {
    pub used_bytes: u64,
    /// `maxmemory_bytes`, or the host's memory when that is unset (`of_host`).
    pub limit_bytes: u64,
    pub of_host: bool,
}

/// What this node hears from the peers it should hear from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerSample {
    pub is_leader: bool,
    /// Voters in the membership, this node included.
    pub voters: usize,
    /// (peer, phi): on the primary every other voter; on a standby the primary.
    pub phi: Vec<(u64, f64)>,
}

/// Everything the checks read. `None`: the check does not apply here (standalone, a
/// primary has no replication lag, no fsync policy, an unknown disk).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// The client runtime's event-loop probe.
    pub event_loop: LoopSample,
    /// The replication runtime's (cluster nodes).
    pub replication_loop: Option<LoopSample>,
    /// (commit index, applied index)
    pub apply: Option<(u64, u64)>,
    pub replication: Option<ReplicationSample>,
    pub fsync: Option<FsyncSample>,
    pub disk: Option<DiskSample>,
    pub memory: MemorySample,
    pub peers: Option<PeerSample>,
}

/// Every check that applies, in [`super::CHECKS`] order.
pub fn evaluate(s: &Samples, t: &HealthConfig) -> Vec<Check> {
    let mut out = vec![event_loop(&s.event_loop, s.replication_loop.as_ref(), t)];
    out.extend(s.apply.map(|(c, a)| apply_lag(c, a, t)));
    out.extend(s.replication.map(|r| replication_lag(&r, t)));
    out.extend(s.fsync.map(|f| fsync(&f, t)));
    out.extend(s.disk.map(|d| disk(&d, t)));
    out.push(memory(&s.memory, t));
    out.extend(s.peers.as_ref().map(|p| peers(p, t)));
    out
}

/// Both runtimes' probes: the client runtime's, and on a cluster node the replication
/// runtime's (heartbeats and elections run there); the worse one decides.
pub fn event_loop(client: &LoopSample, replication: Option<&LoopSample>, t: &HealthConfig) -> Check {
    let judge = |s: &LoopSample| match s.stalls as u64 {
        n if n >= t.stalls_failing_count => Status::Failing,
        0 => Status::Ok,
        _ => Status::Degraded,
    };
    let describe = |who: &str, s: &LoopSample| {
        format!(
            "{who}: {} stalls over {} ms in {} s, worst {:.0} ms late",
            s.stalls, t.stall_ms, t.window_s, s.worst_lag_ms
        )
    };
    let mut reason = describe("clients", client);
    let mut status = judge(client);
    if let Some(r) = replication {
        reason = format!("{reason}; replication: {}", describe("", r).trim_start_matches(": "));
        status = status.max(judge(r));
    }
    Check { name: "event_loop", status, reason }
}

pub fn apply_lag(commit: u64, applied: u64, t: &HealthConfig) -> Check {
    const N: &str = "apply_lag";
    let lag = commit.saturating_sub(applied);
    let what = format!("{lag} committed entries not yet applied (commit {commit}, applied {applied})");
    if lag >= t.apply_lag_failing_entries {
        Check::failing(N, what)
    } else if lag >= t.apply_lag_degraded_entries {
        Check::degraded(N, what)
    } else {
        Check::ok(N, what)
    }
}

pub fn replication_lag(r: &ReplicationSample, t: &HealthConfig) -> Check {
    const N: &str = "replication_lag";
    let what = format!("{} entries, {:.1} s behind the primary", r.entries, r.seconds);
    if r.entries >= t.replication_lag_failing_entries || r.seconds >= t.replication_lag_failing_s as f64 {
        Check::failing(N, what)
    } else if r.entries >= t.replication_lag_degraded_entries || r.seconds >= t.replication_lag_degraded_s as f64 {
        Check::degraded(N, what)
    } else {
        Check::ok(N, what)
    }
}

pub fn fsync(f: &FsyncSample, t: &HealthConfig) -> Check {
    const N: &str = "fsync";
    if f.errors > 0 {
        return Check::failing(N, format!("{} log write errors in {} s", f.errors, t.window_s));
    }
    let Some(p99) = f.p99_ms else {
        return Check::ok(N, format!("no fsync in {} s", t.window_s));
    };
    let what = format!("p99 {p99:.1} ms over {} s", t.window_s);
    if p99 >= t.fsync_p99_failing_ms as f64 && f.stalled >= FSYNC_STALLS_FAILING {
        Check::failing(N, format!("{what}, {} over {} ms", f.stalled, t.fsync_p99_failing_ms))
    } else if p99 >= t.fsync_p99_failing_ms as f64 {
        Check::degraded(N, format!("{what}, {} over {} ms", f.stalled, t.fsync_p99_failing_ms))
    } else if p99 >= t.fsync_p99_degraded_ms as f64 {
        Check::degraded(N, what)
    } else {
        Check::ok(N, what)
    }
}

pub fn disk(d: &DiskSample, t: &HealthConfig) -> Check {
    const N: &str = "disk";
    let mib = |b: u64| b / (1 << 20);
    let what = format!("{} MiB free of {} MiB", mib(d.free_bytes), mib(d.total_bytes));
    if d.free_bytes < t.disk_free_failing_bytes {
        Check::failing(N, what)
    } else if d.free_bytes < t.disk_free_degraded_bytes {
        Check::degraded(N, what)
    } else {
        Check::ok(N, what)
    }
}

pub fn memory(m: &MemorySample, t: &HealthConfig) -> Check {
    const N: &str = "memory";
    if m.limit_bytes == 0 {
        return Check::ok(N, format!("{} MiB used, no limit known", m.used_bytes >> 20));
    }
    let percent = m.used_bytes as f64 * 100.0 / m.limit_bytes as f64;
    let of = if m.of_host { "the host's memory" } else { "maxmemory" };
    let what = format!("{} MiB used, {percent:.1}% of {of} ({} MiB)", m.used_bytes >> 20, m.limit_bytes >> 20);
    if percent >= t.memory_failing_percent as f64 {
        Check::failing(N, what)
    } else if percent >= t.memory_degraded_percent as f64 {
        Check::degraded(N, what)
    } else {
        Check::ok(N, what)
    }
}

/// A primary fails when the peers it still hears from are no quorum; any suspected peer,
/// or a standby that hears no primary, is degraded.
pub fn peers(p: &PeerSample, t: &HealthConfig) -> Check {
    const N: &str = "peers";
    let suspected: Vec<String> = p
        .phi
        .iter()
        .filter(|(_, phi)| *phi > t.phi_threshold)
        .map(|(id, phi)| format!("{id} (phi {phi:.1})"))
        .collect();
    if !p.is_leader && p.phi.is_empty() {
        return Check::degraded(N, "no primary to hear from");
    }
    let heard = p.phi.len() - suspected.len();
    let what = match suspected.is_empty() {
        true => format!("{heard} peers heard from within phi {}", t.phi_threshold),
        false => format!("suspected: {}", suspected.join(", ")),
    };
    let quorum = p.voters / 2 + 1;
    if p.is_leader && p.voters > 1 && heard + 1 < quorum {
        Check::failing(N, format!("no quorum reachable; {what}"))
    } else if !suspected.is_empty() {
        Check::degraded(N, what)
    } else {
        Check::ok(N, what)
    }
}
