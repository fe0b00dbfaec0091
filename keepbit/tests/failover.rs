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

// ------------------------------------------------------------------ planned switchover

/// A connection to node `id` authenticated as the admin user.
fn admin_conn(c: &TestCluster, id: u64) -> redis::Connection {
    let mut con = c.conn(id).expect("connect");
    redis::cmd("AUTH").arg("admin").arg(support::ADMIN_PASSWORD).query::<()>(&mut con).expect("AUTH admin");
    con
}

fn failover(con: &mut redis::Connection, args: &[&str]) -> Result<String, String> {
    redis::cmd("FAILOVER").arg(args).query::<String>(con).map_err(|e| e.to_string())
}

fn failover_state(c: &TestCluster, id: u64) -> String {
    let mut con = c.conn(id).expect("connect");
    let info: String = redis::cmd("INFO").arg("replication").query(&mut con).expect("INFO");
    info.lines().find_map(|l| l.strip_prefix("master_failover_state:")).unwrap_or("").trim().to_string()
}

/// The list and counter the workload wrote, read from the primary.
fn final_state(c: &TestCluster, list: &str, counter: &str) -> (Vec<u64>, u64) {
    let p = c.wait_primary(SETTLE);
    let mut con = c.conn(p).expect("connect to the primary");
    let items: Vec<String> = redis::cmd("LRANGE").arg(list).arg(0).arg(-1).query(&mut con).expect("LRANGE");
    let n: Option<u64> = redis::cmd("GET").arg(counter).query(&mut con).expect("GET");
    (items.iter().map(|v| v.parse().expect("integer")).collect(), n.unwrap_or(0))
}

/// FAILOVER under writes, three times: each hands the primary role to a caught-up standby
/// and answers only once the new primary serves, so Sentinel discovery on the old primary
/// names the new one as soon as the reply arrives; the old primary's clients are closed
/// (the caller's is kept) and no acknowledged write is lost.
#[test]
fn failover_hands_over_to_a_caught_up_standby_and_loses_no_write() {
    let c = TestCluster::start(ClusterOptions::default());
    c.wait_settled(SETTLE);
    let w = support::workload::Workload::start(c.client_addrs(), "switch");
    w.wait_acked(20, SETTLE);
    for round in 1..=3 {
        let old = c.wait_settled(SETTLE);
        let mut bystander = c.conn(old).expect("connect");
        let mut con = admin_conn(&c, old);
        assert_eq!(failover_state(&c, old), "no-failover");
        assert_eq!(failover(&mut con, &[]), Ok("OK".into()), "round {round}");
        let named = c.sentinel_primary(old).expect("discovery names a primary right after FAILOVER");
        let new = c.id_of(&named).expect("a member");
        assert_ne!(new, old, "round {round}: discovery still names the old primary");
        assert_eq!(c.role(new).as_deref(), Some("master"));
        assert_eq!(c.role(old).as_deref(), Some("slave"));
        let ping: redis::RedisResult<String> = redis::cmd("PING").query(&mut bystander);
        assert!(ping.is_err(), "round {round}: the old primary kept a client connection open");
        let ping: String = redis::cmd("PING").query(&mut con).expect("the caller's connection stays");
        assert_eq!(ping, "PONG");
        let addr = c.node(new).client_addr();
        w.wait_acked_by(&addr, w.acked_by(&addr) + 10, SETTLE);
    }
    let (list_key, counter_key) = (w.list_key.clone(), w.counter_key.clone());
    let h = w.stop();
    let (list, counter) = final_state(&c, &list_key, &counter_key);
    h.check(&list, counter);
}

/// `keepbit failover --to ID` through a standby: the CLI finds the primary and names the
/// target by its client address; the named standby becomes primary.
#[test]
fn keepbit_failover_to_a_named_standby_through_any_node() {
    let c = TestCluster::start(ClusterOptions::default());
    let old = c.wait_settled(SETTLE);
    let standbys: Vec<u64> = c.ids().into_iter().filter(|&id| id != old).collect();
    let (via, to) = (standbys[0], standbys[1]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keepbit"))
        .args(["failover", "--node", &c.node(via).client_addr(), "--to", &to.to_string()])
        .args(["--timeout", "5000", "--admin-password", support::ADMIN_PASSWORD])
        .output()
        .expect("run keepbit failover");
    assert!(out.status.success(), "keepbit failover failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.sentinel_primary(old), Some(c.node(to).client_addr()), "the named standby is primary");
}

/// Bad FAILOVERs get Redis's error texts and change nothing: without admin rights, wrong
/// arguments, a target that is no member, a negative timeout, FORCE without a target and
/// timeout, ABORT with nothing in progress, and FAILOVER on a replica.
#[test]
fn bad_failovers_get_redis_errors() {
    let c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(SETTLE);
    let mut plain = c.conn(p).expect("connect");
    let denied = failover(&mut plain, &[]).expect_err("needs admin");
    assert!(denied.contains("no permissions to run the 'failover' command"), "{denied}");
    let mut con = admin_conn(&c, p);
    let cases: &[(&[&str], &str)] = &[
        (&["TIMEOUT", "-1"], "FAILOVER timeout must be greater than 0"),
        (&["TIMEOUT", "soon"], "value is not an integer or out of range"),
        (&["TO", "127.0.0.1"], "syntax error"),
        (&["NOW"], "syntax error"),
        (&["TO", "10.9.9.9", "1"], "FAILOVER target HOST and PORT is not a replica."),
        (&["FORCE", "TIMEOUT", "100"], "FAILOVER with force option requires both a timeout and target HOST and IP."),
        (&["ABORT"], "No failover in progress."),
    ];
    let own = c.node(p);
    let own_port = own.client_port.to_string();
    let to_self: &[&str] = &["TO", &own.ip, &own_port];
    for (args, want) in cases.iter().copied().chain([(to_self, "FAILOVER target HOST and PORT is not a replica.")]) {
        let got = failover(&mut con, args).expect_err("refused");
        assert!(got.contains(want), "FAILOVER {args:?}: {got}");
    }
    let standby = c.ids().into_iter().find(|&id| id != p).expect("a standby");
    let got = failover(&mut admin_conn(&c, standby), &[]).expect_err("refused on a replica");
    assert!(got.contains("FAILOVER is not valid when server is a replica."), "{got}");
    assert_eq!(c.primary(), Some(p), "nothing changed");
}

/// A target that cannot catch up (SIGSTOPped after missing a write) keeps FAILOVER
/// waiting for sync with writes held; ABORT ends it at once and writes resume on the same
/// primary. With a TIMEOUT it gives up by itself the same way.
#[test]
fn failover_waiting_for_a_stuck_target_can_be_aborted_or_times_out() {
    let c = TestCluster::start(ClusterOptions { extra: SLOW_ELECTIONS, ..Default::default() });
    let p = c.wait_settled(SETTLE);
    let target = c.ids().into_iter().find(|&id| id != p).expect("a standby");
    c.signal(target, "-STOP");
    let mut con = c.conn(p).expect("connect");
    redis::cmd("SET").arg("missed").arg("1").query::<()>(&mut con).expect("SET commits without the target");
    let (ip, port) = (c.node(target).ip.clone(), c.node(target).client_port.to_string());
    let waiting = {
        let mut admin = admin_conn(&c, p);
        let (ip, port) = (ip.clone(), port.clone());
        std::thread::spawn(move || failover(&mut admin, &["TO", &ip, &port, "TIMEOUT", "20000"]))
    };
    wait_for("FAILOVER to wait for sync", SETTLE, || failover_state(&c, p) == "waiting-for-sync");
    assert_eq!(failover(&mut admin_conn(&c, p), &["ABORT"]), Ok("OK".into()));
    let got = waiting.join().expect("thread");
    assert!(got.as_ref().is_err_and(|e| e.contains("Failover manually aborted")), "{got:?}");
    assert_eq!(failover_state(&c, p), "no-failover");
    redis::cmd("SET").arg("after-abort").arg("1").query::<()>(&mut con).expect("writes resume");
    let timed_out = failover(&mut admin_conn(&c, p), &["TO", &ip, &port, "TIMEOUT", "200"]).expect_err("times out");
    assert!(timed_out.contains("timed out"), "{timed_out}");
    redis::cmd("SET").arg("after-timeout").arg("1").query::<()>(&mut con).expect("writes resume");
    assert_eq!(c.role(p).as_deref(), Some("master"));
    c.signal(target, "-CONT");
}

/// The target dies (kill -9) just as FAILOVER picks it: the transfer goes nowhere, and
/// after the fallback deadline another caught-up voter campaigns, so FAILOVER still ends
/// with a new primary, the third node.
#[test]
fn failover_falls_back_to_another_voter_when_the_target_dies_mid_transfer() {
    let mut c = slow_cluster();
    let p = c.wait_primary(SETTLE);
    // Any entry still to come (the journal's) would leave the killed target behind.
    c.wait_log_quiet(p, Duration::from_millis(500), SETTLE);
    let mut standbys = c.ids().into_iter().filter(|&id| id != p);
    let (target, other) = (standbys.next().expect("standby"), standbys.next().expect("standby"));
    let (ip, port) = (c.node(target).ip.clone(), c.node(target).client_port.to_string());
    let mut admin = admin_conn(&c, p);
    c.kill(target);
    // Within the lease the leader still counts the target online and caught up.
    assert_eq!(failover(&mut admin, &["TO", &ip, &port, "TIMEOUT", "1000"]), Ok("OK".into()));
    assert_eq!(c.sentinel_primary(p), Some(c.node(other).client_addr()), "the other standby took over");
    let mut con = c.conn(other).expect("connect");
    redis::cmd("SET").arg("after-fallback").arg("1").query::<()>(&mut con).expect("the new primary takes writes");
}
