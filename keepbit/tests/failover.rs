//! Fast and planned failover on real clusters: a crashed primary is replaced without
//! waiting for the election timeout (its connections reset and its port refuses a
//! reconnect), a paused one is not; and `FAILOVER` hands leadership over on purpose (to
//! any caught-up standby or a named one), can be aborted, and falls back to another voter
//! when its target dies mid-transfer.
//!
//! The crash tests use a long election timeout so the fast path is told apart from the
//! normal one by a wide margin; they assert bounds only where the mechanism guarantees them.

mod support;

use std::time::{Duration, Instant};

use support::cluster::{ClusterOptions, TestCluster};
use support::wait_for;

/// Slow elections: the normal path cannot replace a primary within 2 s.
const SLOW_ELECTIONS: &str = "heartbeat_ms = 100\nelection_timeout_min_ms = 2000\nelection_timeout_max_ms = 3000\n";
const ELECTION_MIN: Duration = Duration::from_millis(2000);
/// Votes are refused for the lease plus a quarter after start (raft::contact::VoteGate).
const QUIET: Duration = Duration::from_millis(3750 + 250);
const SETTLE: Duration = Duration::from_secs(20);

/// A primary other than `old`, and when it was first seen.
fn wait_new_primary(c: &TestCluster, old: u64, deadline: Duration) -> (u64, Instant) {
    let end = Instant::now() + deadline;
    loop {
        if let Some(p) = c.primary().filter(|&p| p != old) {
            return (p, Instant::now());
        }
        assert!(Instant::now() < end, "no new primary within {deadline:?}; logs under {}", c.dir.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A settled slow-election cluster whose nodes are past their start-up quiet period.
fn slow_cluster() -> TestCluster {
    let started = Instant::now();
    let c = TestCluster::start(ClusterOptions { extra: SLOW_ELECTIONS, ..Default::default() });
    c.wait_settled(SETTLE);
    wait_for("the start-up quiet period to pass", QUIET + SETTLE, || started.elapsed() >= QUIET);
    c
}

fn crash_noted(c: &TestCluster) -> bool {
    c.ids().iter().any(|&id| c.log(id).contains("reconnect refused"))
}

/// kill -9 of the primary: a standby sees the leader's connection close, its reconnect
/// refused, and starts an election at once. A new primary serves well before the
/// election timeout (2 s minimum here) could have fired.
#[test]
fn kill_of_the_primary_elects_a_new_one_before_the_election_timeout() {
    let mut c = slow_cluster();
    let old = c.wait_primary(SETTLE);
    let killed = Instant::now();
    c.kill(old);
    let (new, seen) = wait_new_primary(&c, old, SETTLE);
    let gap = seen - killed;
    eprintln!("new primary {new} {gap:?} after kill -9 of {old}");
    assert!(gap < ELECTION_MIN, "new primary {new} after {gap:?}: the fast path did not fire");
    assert!(crash_noted(&c), "no node logged the crash detection");
    let mut con = c.conn(new).expect("connect to the new primary");
    redis::cmd("SET").arg("after-crash").arg("1").query::<()>(&mut con).expect("the new primary takes writes");
}

/// SIGSTOP of the primary is a pause, not a crash: its connections stay open and its port
/// still accepts, so nobody takes the fast path and no election starts before the
/// standbys' election timeout.
#[test]
fn a_paused_primary_is_replaced_only_after_the_election_timeout() {
    let c = slow_cluster();
    let old = c.wait_primary(SETTLE);
    let paused = Instant::now();
    c.signal(old, "-STOP");
    let (new, seen) = wait_new_primary(&c, old, SETTLE);
    let gap = seen - paused;
    c.signal(old, "-CONT");
    // The last heartbeat may precede the pause by up to one interval.
    assert!(
        gap >= ELECTION_MIN - Duration::from_millis(100),
        "primary {new} elected after {gap:?}: too soon for a pause"
    );
    assert!(!crash_noted(&c), "a pause was taken for a crash");
}
