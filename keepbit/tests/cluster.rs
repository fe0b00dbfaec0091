//! Multi-process cluster tests: real `keepbit server` processes on loopback, faults by
//! PID (kill -9, SIGSTOP/SIGCONT), and a client history checked for lost or duplicated
//! writes. Every wait is on a condition with a deadline; nothing here measures time.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::cluster::{ClusterOptions, TestCluster};
use support::wait_for;
use support::workload::{History, Workload};

/// Long enough for an election on a loaded 2-core machine; failures report the logs.
const ELECTION: Duration = Duration::from_secs(15);
/// A restarted or lagging node reaching the primary's applied index.
const CATCH_UP: Duration = Duration::from_secs(30);
/// The writer making progress.
const PROGRESS: Duration = Duration::from_secs(15);

fn parse_list(items: Vec<String>) -> Vec<u64> {
    items.iter().map(|v| v.parse().expect("list holds integers")).collect()
}

/// The workload's list and counter as the primary serves them (a linearizable read),
/// retried through elections.
fn final_state(c: &TestCluster, w_list: &str, w_counter: &str) -> (Vec<u64>, u64) {
    let end = Instant::now() + ELECTION;
    loop {
        let p = c.wait_primary(ELECTION);
        let read = c.conn(p).and_then(|mut con| {
            let list: Vec<String> = redis::cmd("LRANGE").arg(w_list).arg(0).arg(-1).query(&mut con)?;
            let counter: Option<u64> = redis::cmd("GET").arg(w_counter).query(&mut con)?;
            Ok((list, counter.unwrap_or(0)))
        });
        match read {
            Ok((list, counter)) => return (parse_list(list), counter),
            Err(e) => assert!(Instant::now() < end, "cannot read the final state from node {p}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every node, once caught up with the primary, holds exactly the primary's list: one
/// history, not one per node.
fn assert_one_history(c: &TestCluster, key: &str) {
    let p = c.wait_primary(ELECTION);
    let target = c.applied(p).expect("primary answers INFO");
    let mut con = c.conn(p).expect("connect to the primary");
    let expected: Vec<String> = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(&mut con).expect("LRANGE");
    for id in c.live() {
        c.wait_applied(id, target, CATCH_UP);
        let mut con = c.readonly_conn(id).expect("connect");
        let list: Vec<String> = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(&mut con).expect("LRANGE");
        assert_eq!(list, expected, "node {id} holds another history than primary {p}");
    }
}

fn check(c: &TestCluster, w: Workload) -> History {
    let (list_key, counter_key) = (w.list_key.clone(), w.counter_key.clone());
    let h = w.stop();
    eprintln!(
        "history: {} acknowledged, {} unknown, {} errors; first errors: {:?}",
        h.acked.len(),
        h.unknown.len(),
        h.error_count,
        h.errors.iter().take(5).collect::<Vec<_>>()
    );
    let (list, counter) = final_state(c, &list_key, &counter_key);
    h.check(&list, counter);
    assert_one_history(c, &list_key);
    h
}

fn wait_role(c: &TestCluster, id: u64, role: &str) {
    wait_for(&format!("node {id} to report ROLE {role}"), ELECTION, || c.role(id).as_deref() == Some(role));
}

/// A primary other than `old`, once one is elected.
fn wait_new_primary(c: &TestCluster, old: u64) -> u64 {
    let end = Instant::now() + ELECTION;
    loop {
        if let Some(p) = c.primary().filter(|&p| p != old) {
            return p;
        }
        assert!(Instant::now() < end, "no new primary within {ELECTION:?}; logs under {}", c.dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// kill -9 of the primary under writes loses no acknowledged write, three times over: each
/// time a new primary serves writes, and the killed node restarts, catches up and rejoins
/// as a standby. The list holds every acknowledged value exactly once (values of unknown
/// outcome at most once), the counter every acknowledged increment, and every node the
/// same list. Snapshots every 50 entries keep snapshotting and purging in play while
/// nodes fail and catch up.
#[test]
fn kill_of_the_primary_under_writes_loses_no_acknowledged_write() {
    let mut c = TestCluster::start(ClusterOptions {
        extra: "snapshot_entries = 50\nlog_keep_entries = 10",
        ..Default::default()
    });
    c.wait_settled(ELECTION);
    let w = Workload::start(c.client_addrs(), "failover");
    w.wait_acked(20, PROGRESS);
    for round in 1..=3 {
        let old = c.wait_primary(ELECTION);
        c.kill(old);
        let new = wait_new_primary(&c, old);
        let addr = c.node(new).client_addr();
        w.wait_acked_by(&addr, w.acked_by(&addr) + 20, PROGRESS);
        c.start_node(old);
        let target = c.applied(new).unwrap_or_else(|| panic!("round {round}: primary {new} does not answer"));
        c.wait_applied(old, target, CATCH_UP);
        wait_role(&c, old, "slave");
    }
    let h = check(&c, w);
    assert!(h.acked.len() >= 80, "too few writes to prove anything: {h:?}");
}

/// kill -9 of a standby under writes fails no write at all: the primary keeps its quorum.
/// The standby then restarts and catches up from the log.
#[test]
fn kill_of_a_standby_under_writes_fails_no_write() {
    let mut c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let w = Workload::start(c.client_addrs(), "standby");
    w.wait_acked(20, PROGRESS);
    let standby = c.ids().into_iter().find(|&id| id != p).expect("a standby");
    c.kill(standby);
    let at_kill = w.acked();
    w.wait_acked(at_kill + 100, PROGRESS);
    c.start_node(standby);
    c.wait_applied(standby, c.applied(p).expect("primary answers"), CATCH_UP);
    w.wait_acked(w.acked() + 20, PROGRESS);
    let h = check(&c, w);
    assert_eq!(h.error_count, 0, "writes failed while only a standby was down: {:?}", h.errors);
    assert!(h.unknown.is_empty() && h.incr_unknown == 0, "{h:?}");
    assert_eq!(c.primary(), Some(p), "the primary changed although only a standby failed");
}

/// kill -9 of every node at once, under writes, then a restart of all: every acknowledged
/// write is back (fsync = batch, the default), and no node forms a new cluster over its
/// existing data. Snapshots every 50 entries make each node recover from a snapshot plus
/// the log after it.
#[test]
fn full_cluster_kill_and_restart_keeps_every_acknowledged_write() {
    let mut c = TestCluster::start(ClusterOptions {
        extra: "snapshot_entries = 50\nlog_keep_entries = 10",
        ..Default::default()
    });
    c.wait_settled(ELECTION);
    let w = Workload::start(c.client_addrs(), "full");
    w.wait_acked(150, PROGRESS);
    for id in c.ids() {
        c.kill(id);
    }
    let (list_key, counter_key) = (w.list_key.clone(), w.counter_key.clone());
    let h = w.stop();
    for id in c.ids() {
        c.start_node(id);
    }
    c.wait_primary(ELECTION);
    let (list, counter) = final_state(&c, &list_key, &counter_key);
    h.check(&list, counter);
    assert!(h.acked.len() >= 150);
    assert_one_history(&c, &list_key);
    for id in c.ids() {
        let log = c.log_since_start(id);
        assert!(!log.contains("formed cluster"), "node {id} re-initialized over its data:\n{log}");
    }
}

/// After kill -9 of every node, the old primary does not resume leadership in its old
/// term: the cluster elects a primary in a new term before serving, and reads see the
/// last acknowledged write.
/// Regression: openraft's leader restore let the restarted primary lead on in its old
/// term with the commit index it reloaded, which is persisted lazily and can be behind
/// what it had acknowledged; linearizable reads were served at that index and missed
/// acknowledged writes (seen as "acknowledged values lost" after a full restart).
#[test]
fn a_restarted_primary_holds_a_new_election_before_serving() {
    let mut c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let term = c.info_field(p, "keepbit_term").expect("term");
    let mut con = c.conn(p).expect("connect");
    redis::cmd("SET").arg("last").arg("acked").query::<()>(&mut con).expect("SET");
    for id in c.ids() {
        c.kill(id);
    }
    for id in c.ids() {
        c.start_node(id);
    }
    let p2 = c.wait_primary(ELECTION);
    let term2 = c.info_field(p2, "keepbit_term").expect("term");
    assert!(term2 > term, "node {p2} serves as primary in term {term2}, the term before the crash ({term})");
    let mut con = c.conn(p2).expect("connect");
    let v: Option<String> = redis::cmd("GET").arg("last").query(&mut con).expect("GET");
    assert_eq!(v.as_deref(), Some("acked"));
}

/// A node far behind catches up by snapshot: with snapshots every 50 entries and 10
/// entries kept behind them, a standby that missed a few hundred writes gets the
/// primary's snapshot (its log says so), reaches the primary's applied index, and
/// serves every key.
#[test]
fn a_node_far_behind_catches_up_by_snapshot() {
    let mut c = TestCluster::start(ClusterOptions {
        extra: "snapshot_entries = 50\nlog_keep_entries = 10",
        ..Default::default()
    });
    let p = c.wait_settled(ELECTION);
    let standby = c.ids().into_iter().find(|&id| id != p).expect("a standby");
    c.kill(standby);
    let mut con = c.conn(p).expect("connect to the primary");
    const KEYS: usize = 300;
    for i in 0..KEYS {
        redis::cmd("SET").arg(format!("snap:{i}")).arg(i).query::<()>(&mut con).expect("SET on the primary");
    }
    let target = c.applied(p).expect("primary answers");
    // Snapshots and purges run in the background: make sure the primary's log no longer
    // holds what the standby is missing before it comes back.
    let standby_had = c.info_field(p, "keepbit_commit_index").unwrap_or(0).saturating_sub(KEYS as u64);
    support::wait_for("the primary to purge past the standby's log", CATCH_UP, || {
        c.info_field(p, "keepbit_purged_index").is_some_and(|purged| purged > standby_had + 1)
    });
    c.start_node(standby);
    c.wait_applied(standby, target, CATCH_UP);
    let log = c.log_since_start(standby);
    assert!(log.contains("installed snapshot"), "node {standby} caught up without a snapshot:\n{log}");
    let mut ro = c.readonly_conn(standby).expect("connect to the standby");
    for i in 0..KEYS {
        let v: Option<usize> = redis::cmd("GET").arg(format!("snap:{i}")).query(&mut ro).expect("GET");
        assert_eq!(v, Some(i), "key snap:{i} on node {standby}");
    }
    let size: usize = redis::cmd("DBSIZE").query(&mut ro).expect("DBSIZE");
    assert_eq!(size, KEYS);
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// A raw connection that has been served once (so the node has accepted it).
fn raw_conn(c: &TestCluster, id: u64) -> TcpStream {
    let mut s = TcpStream::connect(c.node(id).client_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(&resp(&["PING"])).expect("write");
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).expect("PONG");
    assert_eq!(&buf, b"+PONG\r\n");
    s
}

/// The first reply line on `s`, or `None` if the node closed the connection. A node that
/// neither answers nor closes within the read timeout fails the test.
fn reply_line(s: &mut TcpStream) -> Option<String> {
    let mut line = String::new();
    match BufReader::new(s).read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(line.trim_end().to_string()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            panic!("no answer and no close within the read timeout")
        }
        Err(_) => None,
    }
}

/// SIGSTOP of the primary for 3 s under writes, then SIGCONT: a new primary is elected
/// meanwhile; the old primary acknowledges no write as a stale primary (a write queued
/// while it was paused, and one sent right after SIGCONT, get READONLY/TRYAGAIN or a
/// closed connection, never OK, unless it has been elected again); it serves no stale
/// read (a read it answers sees every write acknowledged before it); its idle clients are
/// disconnected so pools reconnect; and there is one history with every acknowledged
/// write.
#[test]
fn a_paused_primary_acknowledges_no_write_after_it_resumes() {
    let c = TestCluster::start(ClusterOptions::default());
    let old = c.wait_settled(ELECTION);
    let w = Workload::start(c.client_addrs(), "pause");
    w.wait_acked(20, PROGRESS);
    let mut queued = raw_conn(&c, old);
    let mut after = raw_conn(&c, old);
    let mut idle = raw_conn(&c, old);
    let (mut queued_read, mut after_read) = (raw_conn(&c, old), raw_conn(&c, old));
    let paused_at = Instant::now();
    c.signal(old, "-STOP");
    queued.write_all(&resp(&["RPUSH", "stale", "queued"])).expect("write");
    let new = wait_new_primary(&c, old);
    let addr = c.node(new).client_addr();
    w.wait_acked_by(&addr, w.acked_by(&addr) + 20, PROGRESS);
    // Reads sent after writes the old primary never saw were acknowledged.
    let len = resp(&["LLEN", &w.list_key]);
    let acked_before_queued_read = w.acked();
    queued_read.write_all(&len).expect("write");
    // The fault lasts 3 s (the scenario), whatever the election took.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(paused_at.elapsed()));
    c.signal(old, "-CONT");
    after.write_all(&resp(&["RPUSH", "stale", "after"])).expect("write");
    let acked_before_read = w.acked();
    after_read.write_all(&len).expect("write");
    for (what, s) in [("queued while paused", &mut queued), ("sent after SIGCONT", &mut after)] {
        match reply_line(s) {
            None => {}
            Some(r) if r.starts_with("-READONLY") || r.starts_with("-TRYAGAIN") => {}
            Some(r) if r.starts_with(':') => {
                assert_eq!(
                    c.role(old).as_deref(),
                    Some("master"),
                    "stale primary {old} acknowledged the write {what}: {r}"
                );
            }
            Some(r) => panic!("unexpected reply from the old primary to the write {what}: {r}"),
        }
    }
    let reads = [
        ("queued while paused", &mut queued_read, acked_before_queued_read),
        ("sent after SIGCONT", &mut after_read, acked_before_read),
    ];
    for (what, s, acked) in reads {
        match reply_line(s) {
            None => {}
            Some(r) if r.starts_with("-READONLY") || r.starts_with("-TRYAGAIN") => {}
            Some(r) => {
                let n: u64 =
                    r.strip_prefix(':').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("LLEN {what}: {r}"));
                assert!(n >= acked, "the old primary served a stale read {what}: LLEN {n} < {acked} acknowledged");
            }
        }
    }
    if c.primary() != Some(old) {
        wait_role(&c, old, "slave");
        assert!(support::closed(&mut idle), "a client of the demoted primary was left connected");
    }
    w.wait_acked(w.acked() + 20, PROGRESS);
    check(&c, w);
}

/// A primary that loses its quorum (both standbys paused) stops acting as one: a write
/// it had already proposed is answered (TRYAGAIN, outcome unknown) or its connection
/// closed while the quorum is still gone; ROLE no longer says master; Sentinel discovery
/// on it no longer names it; and new writes get TRYAGAIN. Once the standbys resume, the
/// cluster has a primary again.
/// Regressions: the role view trusted openraft's `current_leader`, which a leader keeps
/// naming itself after its lease has expired; and a write proposed just before the
/// quorum went away waited, with no deadline, for the quorum to come back.
#[test]
fn a_primary_without_quorum_stops_reporting_itself_primary() {
    let c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let standbys: Vec<u64> = c.ids().into_iter().filter(|&id| id != p).collect();
    let mut pending = raw_conn(&c, p);
    for &s in &standbys {
        c.signal(s, "-STOP");
    }
    pending.write_all(&resp(&["SET", "pending", "v"])).expect("write");
    match reply_line(&mut pending) {
        None => {}
        Some(r) if r.starts_with("-TRYAGAIN") => {}
        Some(r) => panic!("a primary without quorum answered a write with {r}"),
    }
    let me = c.node(p).client_addr();
    wait_for("the isolated primary to stop saying master", ELECTION, || c.role(p).as_deref() == Some("slave"));
    wait_for("discovery to stop naming the isolated primary", ELECTION, || {
        c.sentinel_primary(p).as_deref() != Some(&me)
    });
    let mut con = c.conn(p).expect("connect");
    let err = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).expect_err("a write without quorum");
    assert!(matches!(err.code(), Some("TRYAGAIN") | Some("READONLY")), "{err}");
    for &s in &standbys {
        c.signal(s, "-CONT");
    }
    let p2 = c.wait_settled(ELECTION);
    let mut con = c.conn(p2).expect("connect");
    redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).expect("a write once the quorum is back");
}

/// Kills `child` (and reaps it) when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// redis-py's `Sentinel` discovery follows a failover: the script (tests/py/
/// sentinel_failover.py) writes through `master_for("keepbit")`, the primary is killed
/// with -9, and the script's next write succeeds on the new primary through
/// rediscovery, with every acknowledged value present.
#[test]
fn redis_py_sentinel_discovery_follows_a_failover() {
    if !support::tool_works("python3", &["-c", "import redis.sentinel"], "python3 with redis-py") {
        return;
    }
    let mut c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/sentinel_failover.py");
    let stderr = std::fs::File::create(c.dir.join("python.stderr")).expect("stderr file");
    let mut py = ChildGuard(
        Command::new("python3")
            .arg(script)
            .args(c.client_addrs())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("run python3"),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = py.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let errors = |c: &TestCluster| std::fs::read_to_string(c.dir.join("python.stderr")).unwrap_or_default();
    let ready = rx.recv_timeout(PROGRESS).unwrap_or_else(|_| panic!("script not ready:\n{}", errors(&c)));
    assert_eq!(ready, format!("READY {}", c.node(p).client_addr()), "redis-py discovered another primary");
    c.kill(p);
    py.0.stdin.as_mut().expect("stdin").write_all(b"go\n").expect("signal the script");
    let done =
        rx.recv_timeout(ELECTION + PROGRESS).unwrap_or_else(|_| panic!("script did not finish:\n{}", errors(&c)));
    let new = c.wait_primary(ELECTION);
    assert_eq!(done, format!("OK {}", c.node(new).client_addr()), "script failed:\n{}", errors(&c));
    let end = Instant::now() + PROGRESS;
    let status = loop {
        if let Some(s) = py.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < end, "script did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "script failed:\n{}", errors(&c));
}

/// Reads RESP from `s` until `expected` has arrived (or 10 s passed) and compares.
fn expect_bytes(s: &mut TcpStream, expected: &[u8], what: &str) {
    let got = support::read_some(s, expected.len());
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected), "{what}");
}

/// Active-active mode: a write sent to a standby is forwarded to the primary,
/// acknowledged, and readable on every node; PUBLISH on one node reaches a subscriber on
/// another; a BLPOP waiting on a standby is woken by an RPUSH on the primary.
#[test]
fn active_active_forwards_writes_and_spreads_pubsub_and_wakeups() {
    let c = TestCluster::start(ClusterOptions { mode: "active-active", ..Default::default() });
    let p = c.wait_settled(ELECTION);
    let standbys: Vec<u64> = c.ids().into_iter().filter(|&id| id != p).collect();
    let (s1, s2) = (standbys[0], standbys[1]);

    let mut con = c.conn(s1).expect("connect to a standby");
    redis::cmd("SET").arg("aa:k").arg("forwarded").query::<()>(&mut con).expect("SET on a standby");
    assert_eq!(redis::cmd("INCR").arg("aa:n").query::<i64>(&mut con).expect("INCR on a standby"), 1);
    for id in c.ids() {
        let mut con = c.conn(id).expect("connect");
        let v: Option<String> = redis::cmd("GET").arg("aa:k").query(&mut con).expect("GET");
        assert_eq!(v.as_deref(), Some("forwarded"), "node {id}");
    }

    let mut sub = raw_conn(&c, s2);
    sub.write_all(&resp(&["SUBSCRIBE", "aa:ch"])).expect("write");
    expect_bytes(&mut sub, b"*3\r\n$9\r\nsubscribe\r\n$5\r\naa:ch\r\n:1\r\n", "SUBSCRIBE");
    let mut con = c.conn(s1).expect("connect");
    redis::cmd("PUBLISH").arg("aa:ch").arg("hello").query::<i64>(&mut con).expect("PUBLISH on a standby");
    expect_bytes(&mut sub, b"*3\r\n$7\r\nmessage\r\n$5\r\naa:ch\r\n$5\r\nhello\r\n", "message on another node");

    let mut blocked = raw_conn(&c, s1);
    blocked.write_all(&resp(&["BLPOP", "aa:q", "20"])).expect("write");
    let mut info = c.conn(s1).expect("connect");
    wait_for("BLPOP to block on the standby", ELECTION, || {
        let text: String = redis::cmd("INFO").arg("clients").query(&mut info).unwrap_or_default();
        text.contains("blocked_clients:1")
    });
    let mut con = c.conn(p).expect("connect to the primary");
    redis::cmd("RPUSH").arg("aa:q").arg("x").query::<i64>(&mut con).expect("RPUSH on the primary");
    expect_bytes(&mut blocked, b"*2\r\n$4\r\naa:q\r\n$1\r\nx\r\n", "BLPOP woken on the standby");
    assert_eq!(redis::cmd("LLEN").arg("aa:q").query::<i64>(&mut con).expect("LLEN"), 0);
}

/// Runs a command line to completion within `deadline`, killing it otherwise.
fn run(cmd: &mut Command, deadline: Duration) -> std::process::Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
    }
}

fn keepbit_cli(args: &[&str]) -> std::process::Output {
    run(Command::new(env!("CARGO_BIN_EXE_keepbit")).args(args), CATCH_UP)
}

/// `keepbit cluster add` grows a running cluster: a 4th process, configured with every
/// peer plus itself and `join = true`, does not form a cluster of its own; once added it
/// is a voter (STATUS lists it as a standby) with all the data; `keepbit cluster remove`
/// takes it out again.
#[test]
fn cluster_add_makes_a_new_node_a_voter_with_the_data() {
    let mut c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let mut con = c.conn(p).expect("connect");
    for i in 0..50 {
        redis::cmd("SET").arg(format!("add:{i}")).arg(i).query::<()>(&mut con).expect("SET");
    }
    let id = c.add_joining_node("127.0.0.1");
    c.start_node(id);
    wait_for("the joining node to listen", ELECTION, || c.conn(id).is_ok());
    let (peer, client, any) = (c.node(id).peer_addr(), c.node(id).client_addr(), c.node(1).client_addr());
    let add = ["cluster", "add", &id.to_string(), &peer, "--client-addr", &client, "--node", &any];
    let out = keepbit_cli(&add);
    assert!(!out.status.success(), "cluster add without the admin password succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOPERM"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = keepbit_cli(&[&add[..], &["--admin-password", support::ADMIN_PASSWORD]].concat());
    assert!(
        out.status.success(),
        "cluster add failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = format!("  {id} standby peer={peer} clients={client}");
    wait_for("the new node to be listed as a standby", ELECTION, || {
        c.primary().and_then(|p| c.status(p)).is_some_and(|s| s.contains(&line))
    });
    let p = c.wait_primary(ELECTION);
    c.wait_applied(id, c.applied(p).expect("primary answers"), CATCH_UP);
    assert_eq!(c.role(id).as_deref(), Some("slave"));
    let mut ro = c.readonly_conn(id).expect("connect");
    for i in 0..50 {
        let v: Option<usize> = redis::cmd("GET").arg(format!("add:{i}")).query(&mut ro).expect("GET");
        assert_eq!(v, Some(i), "key add:{i} on the new node");
    }
    assert!(!c.log(id).contains("formed cluster"), "the joining node formed a cluster of its own");

    let out = keepbit_cli(&[
        "cluster",
        "remove",
        &id.to_string(),
        "--node",
        &any,
        "--admin-password",
        support::ADMIN_PASSWORD,
    ]);
    assert!(out.status.success(), "cluster remove failed: {}", String::from_utf8_lossy(&out.stderr));
    wait_for("the removed node to leave STATUS", ELECTION, || {
        c.primary().and_then(|p| c.status(p)).is_some_and(|s| !s.contains(&format!("  {id} ")))
    });
    let mut con = c.conn(c.wait_primary(ELECTION)).expect("connect");
    redis::cmd("SET").arg("after-remove").arg(1).query::<()>(&mut con).expect("the cluster still writes");
}

/// A node whose data directory is wiped, restarted with the same config (`join = false`),
/// does not form a cluster again: it says why, takes the running cluster's log, and
/// serves every key.
#[test]
fn a_wiped_node_rejoins_by_catching_up_never_by_forming() {
    let mut c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let mut con = c.conn(p).expect("connect");
    for i in 0..50 {
        redis::cmd("SET").arg(format!("wiped:{i}")).arg(i).query::<()>(&mut con).expect("SET");
    }
    let victim = c.ids().into_iter().find(|&id| id != p).expect("a standby");
    c.kill(victim);
    std::fs::remove_dir_all(c.node(victim).config.with_file_name("raft")).expect("wipe the data");
    c.start_node(victim);
    wait_for("the wiped node to notice the running cluster", ELECTION, || {
        c.log_since_start(victim).contains("starts with an empty data directory")
    });
    let p = c.wait_primary(ELECTION);
    c.wait_applied(victim, c.applied(p).expect("primary answers"), CATCH_UP);
    let mut ro = c.readonly_conn(victim).expect("connect");
    for i in 0..50 {
        let v: Option<usize> = redis::cmd("GET").arg(format!("wiped:{i}")).query(&mut ro).expect("GET");
        assert_eq!(v, Some(i), "key wiped:{i} on the wiped node");
    }
    assert!(!c.log_since_start(victim).contains("formed cluster"), "the wiped node formed a cluster again");
}

/// A follower that was down while 57 MiB of 1–8 MiB values were written (and the log
/// compacted past it) catches up from a snapshot and the log, and serves every value. The
/// peer frame limit here is 10 MiB (`max_entry_bytes` 9 MiB + 1 MiB), so the snapshot, far
/// larger than a frame, can only arrive in chunks; large entries go in byte-bounded
/// batches with time to move their bytes.
#[test]
fn a_far_behind_follower_catches_up_with_large_values() {
    const FRAME_BYTES: usize = 10 << 20;
    let mut c = TestCluster::start(ClusterOptions {
        extra: "snapshot_entries = 8\nlog_keep_entries = 2\nmax_entry_bytes = 9437184",
        ..ClusterOptions::default()
    });
    let p = c.wait_settled(ELECTION);
    let lagging = c.ids().into_iter().find(|&id| id != p).expect("a standby");
    c.kill(lagging);
    let mut con = c.conn(p).expect("connect");
    let sizes: Vec<usize> = (0..14).map(|i| (1 + i % 8) << 20).collect();
    assert!(sizes.iter().sum::<usize>() >= 48 << 20);
    for (i, &size) in sizes.iter().enumerate() {
        let value = vec![b'a' + (i % 26) as u8; size];
        redis::cmd("SET").arg(format!("large:{i}")).arg(value).query::<()>(&mut con).expect("SET");
    }
    let had = c.info_field(p, "keepbit_commit_index").unwrap_or(0).saturating_sub(sizes.len() as u64);
    support::wait_for("the primary to purge past the follower's log", CATCH_UP, || {
        c.info_field(p, "keepbit_purged_index").is_some_and(|purged| purged > had + 1)
    });
    c.start_node(lagging);
    let p = c.wait_primary(ELECTION);
    c.wait_applied(lagging, c.applied(p).expect("primary answers"), CATCH_UP);
    let log = c.log_since_start(lagging);
    let installed: Vec<usize> = log
        .lines()
        .filter_map(|l| l.split("installed snapshot up to log index ").nth(1)?.split(['(', ' ']).nth(2)?.parse().ok())
        .collect();
    assert!(installed.iter().any(|&b| b > FRAME_BYTES), "no snapshot over one frame installed: {installed:?}\n{log}");
    let mut ro = c.readonly_conn(lagging).expect("connect");
    for (i, &size) in sizes.iter().enumerate() {
        let value: Vec<u8> = redis::cmd("GET").arg(format!("large:{i}")).query(&mut ro).expect("GET");
        assert_eq!(value.len(), size, "large:{i} on the caught-up node");
        assert!(value.iter().all(|&b| b == b'a' + (i % 26) as u8), "large:{i} holds the wrong bytes");
    }
}

/// A node that never answers is never promoted: adding an address nobody listens on fails
/// after `add_node_timeout_ms` saying so, the node is no member afterwards, and the
/// cluster keeps writing with its three voters.
#[test]
fn cluster_add_of_a_node_that_never_answers_fails_and_leaves_it_out() {
    let c = TestCluster::start(ClusterOptions { extra: "add_node_timeout_ms = 1500", ..ClusterOptions::default() });
    let p = c.wait_settled(ELECTION);
    let any = c.node(p).client_addr();
    let add = ["cluster", "add", "9", "127.0.0.1:1", "--client-addr", "127.0.0.1:2", "--node", &any];
    let out = keepbit_cli(&[&add[..], &["--admin-password", support::ADMIN_PASSWORD]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "adding a dead node succeeded");
    assert!(stderr.contains("node 9 did not catch up") && stderr.contains("never answered"), "{stderr}");
    let p = c.wait_primary(ELECTION);
    let status = c.status(p).expect("status");
    assert!(!status.contains("  9 "), "node 9 is still listed:\n{status}");
    let mut con = c.conn(p).expect("connect");
    redis::cmd("SET").arg("after-failed-add").arg(1).query::<()>(&mut con).expect("the cluster still writes");
}

/// Sentinel state records (SENTINEL MASTERS / MASTER / REPLICAS) are maps on a RESP3
/// connection, as Redis answers them, and flat field/value arrays under RESP2.
/// Regression: they were flat arrays under RESP3 too, which redis-py 8 (RESP3 by
/// default) cannot parse, so its `Sentinel` failed to discover any primary.
#[test]
fn sentinel_records_are_maps_under_resp3() {
    let c = TestCluster::start(ClusterOptions { nodes: 1, ..Default::default() });
    c.wait_primary(ELECTION);
    for (hello, header) in [("2", &b"*1\r\n*18\r\n$4\r\nname\r\n"[..]), ("3", &b"*1\r\n%9\r\n$4\r\nname\r\n"[..])] {
        let mut s = raw_conn(&c, 1);
        s.write_all(&resp(&["HELLO", hello])).expect("write");
        s.write_all(&resp(&["SENTINEL", "MASTERS"])).expect("write");
        let mut got = Vec::new();
        wait_for("the SENTINEL MASTERS reply", ELECTION, || {
            got.extend(support::read_some(&mut s, 1));
            got.windows(header.len()).any(|w| w == header)
        });
    }
}

fn stat(c: &TestCluster, id: u64, field: &str) -> u64 {
    let mut con = c.conn(id).expect("connect");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).expect("INFO");
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok()).expect("field")
}

/// Keys expire on every node, and only the primary expires them: its deletions reach the
/// standbys through the log (a standby's DBSIZE, which counts expired keys not yet
/// deleted, drops without anyone touching the keys), and no standby runs expiry itself.
#[test]
fn only_the_primary_expires_keys_and_standbys_follow_its_log() {
    let c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let mut con = c.conn(p).expect("connect");
    redis::cmd("SET").arg("kept").arg(1).query::<()>(&mut con).expect("SET");
    for i in 0..10 {
        redis::cmd("SET").arg(format!("exp:{i}")).arg(i).arg("PX").arg(200).query::<()>(&mut con).expect("SET PX");
    }
    for id in c.ids() {
        let mut ro = c.readonly_conn(id).expect("connect");
        wait_for(&format!("expired keys to be deleted on node {id}"), ELECTION, || {
            redis::cmd("DBSIZE").query::<u64>(&mut ro).expect("DBSIZE") == 1
        });
    }
    assert_eq!(stat(&c, p, "expired_keys"), 10);
    for id in c.ids().into_iter().filter(|&id| id != p) {
        assert_eq!(stat(&c, id, "expired_keys"), 0, "standby {id} ran expiry");
    }
}

/// A blocking write (BLPOP, BLMOVE …) sent to an active-passive standby is refused with
/// READONLY at once, as Redis replicas do, instead of waiting out its timeout.
/// Regression: the standby blocked first and only refused when data arrived (or answered
/// nil at the timeout), so the client never learned it was talking to a standby.
#[test]
fn blocking_writes_on_a_standby_are_refused_at_once() {
    let c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let standby = c.ids().into_iter().find(|&id| id != p).expect("a standby");
    let mut s = raw_conn(&c, standby);
    for cmd in [&["BLPOP", "q", "0"][..], &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"], &["BZPOPMIN", "z", "0"]] {
        s.write_all(&resp(cmd)).expect("write");
        let r = reply_line(&mut s).expect("an answer");
        assert!(r.starts_with("-READONLY"), "{cmd:?} on a standby: {r}");
    }
}

/// The index of the first snapshot a node's log says it built.
fn first_built_snapshot(log: &str) -> Option<u64> {
    log.lines().find_map(|l| l.split("built snapshot up to log index ").nth(1)?.split(' ').next()?.parse().ok())
}

/// Nodes build snapshots at different log indexes: each scales `snapshot_entries` by
/// 1 + (id % 5) / 10 (110, 120, 130 entries for nodes 1–3 here), so their snapshot memory
/// spikes do not coincide. Regression: with openraft's count policy every node built at
/// the same index.
#[test]
fn nodes_build_snapshots_at_staggered_indexes() {
    let c = TestCluster::start(ClusterOptions { extra: "snapshot_entries = 100", ..ClusterOptions::default() });
    let p = c.wait_settled(ELECTION);
    let mut con = c.conn(p).expect("connect");
    for i in 0..160 {
        redis::cmd("SET").arg(format!("stagger:{i}")).arg(i).query::<()>(&mut con).expect("SET");
    }
    let mut built = std::collections::BTreeSet::new();
    for id in c.ids() {
        wait_for(&format!("node {id} to build a snapshot"), CATCH_UP, || first_built_snapshot(&c.log(id)).is_some());
        let index = first_built_snapshot(&c.log(id)).expect("built");
        let threshold = 100 * (10 + id % 5) / 10;
        assert!(index >= threshold, "node {id} built a snapshot at {index}, before its threshold {threshold}");
        built.insert(index);
    }
    assert_eq!(built.len(), c.ids().len(), "two nodes built their first snapshot at the same index: {built:?}");
}
