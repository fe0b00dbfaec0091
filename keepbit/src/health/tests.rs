//! Every evaluator as a table of (case, samples, expected status).

use super::evaluate::*;
use super::{overall, HealthConfig, Status, CHECKS};

fn t() -> HealthConfig {
    HealthConfig::default()
}

use Status::{Degraded as D, Failing as F, Ok as O};

#[test]
fn event_loop_cases() {
    let cases = [
        ("quiet", LoopSample { worst_lag_ms: 3.0, stalls: 0 }, O),
        ("one stall", LoopSample { worst_lag_ms: 150.0, stalls: 1 }, D),
        ("one long pause, over now", LoopSample { worst_lag_ms: 30_000.0, stalls: 1 }, D),
        ("stalling again and again", LoopSample { worst_lag_ms: 150.0, stalls: 10 }, F),
    ];
    for (case, s, want) in cases {
        assert_eq!(event_loop(&s, None, &t()).status, want, "{case}");
        let quiet = LoopSample::default();
        let c = event_loop(&quiet, Some(&s), &t());
        assert_eq!(c.status, want, "{case}, on the replication runtime: {}", c.reason);
        assert!(c.reason.contains("replication: "), "{}", c.reason);
    }
}

#[test]
fn apply_lag_cases() {
    for (case, commit, applied, want) in [
        ("caught up", 10, 10, O),
        ("applied ahead of a stale commit reading", 10, 12, O),
        ("999 behind", 1_999, 1_000, O),
        ("1000 behind", 2_000, 1_000, D),
        ("100000 behind", 100_000, 0, F),
    ] {
        assert_eq!(apply_lag(commit, applied, &t()).status, want, "{case}");
    }
}

#[test]
fn replication_lag_cases() {
    for (case, entries, seconds, want) in [
        ("in step", 0, 0.0, O),
        ("a few entries, briefly", 20, 0.5, O),
        ("many entries", 5_000, 1.0, D),
        ("long behind", 1, 6.0, D),
        ("very many entries", 100_000, 0.0, F),
        ("a minute behind", 0, 60.0, F),
    ] {
        assert_eq!(replication_lag(&ReplicationSample { entries, seconds }, &t()).status, want, "{case}");
    }
}

#[test]
fn fsync_cases() {
    for (case, p99_ms, stalled, errors, want) in [
        ("idle", None, 0, 0, O),
        ("fast disk", Some(2.0), 0, 0, O),
        ("slow disk", Some(150.0), 0, 0, D),
        ("stalled disk", Some(2_500.0), 3, 0, F),
        ("one stall (the process paused?)", Some(2_500.0), 1, 0, D),
        ("a write error", Some(1.0), 0, 1, F),
        ("an error while idle", None, 0, 2, F),
    ] {
        let c = fsync(&FsyncSample { p99_ms, stalled, errors }, &t());
        assert_eq!(c.status, want, "{case}: {}", c.reason);
    }
}

#[test]
fn disk_cases() {
    const MIB: u64 = 1 << 20;
    for (case, free, want) in [("roomy", 50_000 * MIB, O), ("under 1 GiB", 900 * MIB, D), ("under 64 MiB", 10 * MIB, F)]
    {
        let c = disk(&DiskSample { free_bytes: free, total_bytes: 100_000 * MIB }, &t());
        assert_eq!(c.status, want, "{case}: {}", c.reason);
    }
}

#[test]
fn memory_cases() {
    for (case, used, limit, of_host, want) in [
        ("no limit known", 1 << 30, 0, false, O),
        ("half of maxmemory", 50, 100, false, O),
        ("90% of maxmemory", 90, 100, false, D),
        ("at maxmemory", 100, 100, false, F),
        ("95% of the host", 95, 100, true, D),
    ] {
        let c = memory(&MemorySample { used_bytes: used, limit_bytes: limit, of_host }, &t());
        assert_eq!(c.status, want, "{case}: {}", c.reason);
    }
}

#[test]
fn peer_cases() {
    let p = |is_leader, voters, phi: &[(u64, f64)]| PeerSample { is_leader, voters, phi: phi.to_vec() };
    for (case, s, want) in [
        ("primary hears both standbys", p(true, 3, &[(2, 0.5), (3, 1.0)]), O),
        ("primary misses one of two", p(true, 3, &[(2, 0.5), (3, 9.0)]), D),
        ("primary misses both: no quorum", p(true, 3, &[(2, 12.0), (3, 9.0)]), F),
        ("five voters, two missed: still a quorum", p(true, 5, &[(2, 1.0), (3, 1.0), (4, 9.0), (5, 9.0)]), D),
        ("single voter", p(true, 1, &[]), O),
        ("standby hears the primary", p(false, 3, &[(1, 0.2)]), O),
        ("standby misses the primary", p(false, 3, &[(1, 8.5)]), D),
        ("standby knows no primary", p(false, 3, &[]), D),
    ] {
        let c = peers(&s, &t());
        assert_eq!(c.status, want, "{case}: {}", c.reason);
    }
}

#[test]
fn evaluate_runs_the_checks_that_apply_and_overall_is_the_worst() {
    let standalone = Samples::default();
    let checks = evaluate(&standalone, &t());
    assert_eq!(checks.iter().map(|c| c.name).collect::<Vec<_>>(), ["event_loop", "memory"]);
    assert_eq!(overall(&checks), O);
    let standby = Samples {
        apply: Some((10, 10)),
        replication: Some(ReplicationSample { entries: 0, seconds: 0.0 }),
        fsync: Some(FsyncSample { p99_ms: Some(1.0), stalled: 0, errors: 0 }),
        disk: Some(DiskSample { free_bytes: 10 << 20, total_bytes: 1 << 40 }),
        peers: Some(PeerSample { is_leader: false, voters: 3, phi: vec![(1, 9.0)] }),
        ..Samples::default()
    };
    let checks = evaluate(&standby, &t());
    assert_eq!(checks.iter().map(|c| c.name).collect::<Vec<_>>(), CHECKS);
    assert_eq!(overall(&checks), F, "the disk is failing: {checks:#?}");
    assert_eq!(overall(&[]), O);
}

#[test]
fn defaults_are_valid_and_inverted_thresholds_are_refused() {
    assert_eq!(t().problem(), None);
    let bad = HealthConfig { fsync_p99_failing_ms: 1, ..t() };
    assert_eq!(bad.problem().map(|p| p.0), Some("health.fsync_p99_failing_ms"));
    let bad = HealthConfig { interval_ms: 0, ..t() };
    assert_eq!(bad.problem().map(|p| p.0), Some("health.interval_ms"));
}
