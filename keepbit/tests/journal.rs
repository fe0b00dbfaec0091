//! The failover journal end to end: kill -9, SIGSTOP and isolate the primary of a real
//! three-node cluster, and check that every node's `KEEPBIT EVENTS` shows the same newest
//! record, with the cause the fault calls for, the old and new primary, timestamps in
//! order (last contact ≤ detection ≤ elected ≤ first commit) and a plausible MTTR; and
//! that the journal survives restarts; and that the new primary counts the failover in
//! `/metrics` (`keepbit_failovers_total{cause}` and the duration histogram).

mod support;

use std::time::Duration;

use redis::Value;
use support::cluster::{ClusterOptions, TestCluster};
use support::netns::{ns as netns, Partition};

/// Generous: the machine may be shared; only the order of timestamps is asserted exactly.
const DEADLINE: Duration = Duration::from_secs(30);
/// An MTTR above this is no failover Keepbit should ever record on loopback.
const MTTR_MAX_MS: u64 = 10_000;

/// One `KEEPBIT EVENTS` record.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    term: u64,
    old_primary: Option<u64>,
    new_primary: u64,
    cause: String,
    last_contact_ms: Option<u64>,
    detected_ms: Option<u64>,
    elected_ms: u64,
    first_commit_ms: Option<u64>,
    mttr_ms: Option<u64>,
}

fn field<'a>(pairs: &'a [(String, &'a Value)], name: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

fn int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

fn record(v: &Value) -> Option<Record> {
    let pairs: Vec<(String, &Value)> = match v {
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|kv| match kv {
                [Value::BulkString(k), v] => Some((String::from_utf8_lossy(k).into_owned(), v)),
                _ => None,
            })
            .collect(),
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| match k {
                Value::BulkString(k) => Some((String::from_utf8_lossy(k).into_owned(), v)),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    let cause = match field(&pairs, "cause")? {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        _ => return None,
    };
    Some(Record {
        term: int(field(&pairs, "term"))?,
        old_primary: int(field(&pairs, "old_primary")),
        new_primary: int(field(&pairs, "new_primary"))?,
        cause,
        last_contact_ms: int(field(&pairs, "last_contact_ms")),
        detected_ms: int(field(&pairs, "detected_ms")),
        elected_ms: int(field(&pairs, "elected_ms"))?,
        first_commit_ms: int(field(&pairs, "first_commit_ms")),
        mttr_ms: int(field(&pairs, "mttr_ms")),
    })
}

/// Node `id`'s journal, newest first, as `KEEPBIT EVENTS COUNT 100` shows it.
fn events(c: &TestCluster, id: u64) -> Option<Vec<Record>> {
    let mut con = c.conn(id).ok()?;
    let v: Value = redis::cmd("KEEPBIT").arg("EVENTS").arg("COUNT").arg(100).query(&mut con).ok()?;
    match v {
        Value::Array(items) => items.iter().map(record).collect(),
        _ => None,
    }
}

/// Waits until every node in `ids` shows the same completed newest record, newer than
/// `after_term`, and returns it.
fn agreed_newest(c: &TestCluster, ids: &[u64], after_term: u64) -> Record {
    let mut seen = None;
    support::wait_for("every node to show the same completed newest journal record", DEADLINE, || {
        let newest: Vec<Option<Record>> =
            ids.iter().map(|&id| events(c, id).and_then(|e| e.into_iter().next())).collect();
        let first = newest[0].clone().filter(|r| r.term > after_term && r.first_commit_ms.is_some());
        seen = first.filter(|f| newest.iter().all(|r| r.as_ref() == Some(f)));
        seen.is_some()
    });
    seen.expect("agreed record")
}

/// The record of the cluster's first election, once every node shows it.
fn initial_record(c: &TestCluster) -> Record {
    c.wait_settled(DEADLINE);
    let first = agreed_newest(c, &c.ids(), 0);
    assert_eq!((first.cause.as_str(), first.old_primary), ("restart", None), "{first:?}");
    first
}

/// The timestamps are in order and the MTTR is positive and plausible.
fn assert_timings(r: &Record) {
    let last_contact = r.last_contact_ms.unwrap_or_else(|| panic!("no last contact: {r:?}"));
    let detected = r.detected_ms.unwrap_or_else(|| panic!("no detection time: {r:?}"));
    let first_commit = r.first_commit_ms.unwrap_or_else(|| panic!("no first commit: {r:?}"));
    assert!(last_contact <= detected, "last contact after detection: {r:?}");
    assert!(detected <= r.elected_ms, "detection after the election: {r:?}");
    assert!(r.elected_ms <= first_commit, "first commit before the election: {r:?}");
    let mttr = r.mttr_ms.unwrap_or_else(|| panic!("no MTTR: {r:?}"));
    assert_eq!(mttr, first_commit - last_contact, "{r:?}");
    assert!(mttr > 0 && mttr < MTTR_MAX_MS, "implausible MTTR: {r:?}");
}

/// Checks the record of the failover away from `old` against what every other node shows.
fn failover_record(c: &TestCluster, old: u64, after_term: u64, cause: &str) -> Record {
    let others: Vec<u64> = c.ids().into_iter().filter(|&id| id != old).collect();
    let r = agreed_newest(c, &others, after_term);
    println!("journal: {r:?}");
    assert_eq!(r.old_primary, Some(old), "{r:?}");
    assert!(others.contains(&r.new_primary), "{r:?}");
    assert_eq!(r.cause, cause, "{r:?}; logs under {}", c.dir.display());
    assert_timings(&r);
    r
}

/// kill -9 of the primary is journaled as a crash (its port refuses the new primary's
/// vote request) on every node; the killed node, restarted, takes the same record from
/// the log; and the journal survives the restart of every node.
#[test]
fn kill_9_of_the_primary_is_journaled_as_a_crash_and_survives_restarts() {
    let mut c = TestCluster::start(ClusterOptions::default());
    let first = initial_record(&c);
    let old = c.wait_primary(DEADLINE);
    c.kill(old);
    let r = failover_record(&c, old, first.term, "crash: connection refused");
    check_failover_metrics(&c, old, &r);
    c.start_node(old);
    assert_eq!(agreed_newest(&c, &c.ids(), first.term), r, "the restarted node has the same newest record");
    for id in c.ids() {
        c.restart(id);
    }
    c.wait_settled(DEADLINE);
    support::wait_for("every node to show the crash record after restarting them all", DEADLINE, || {
        c.ids().iter().all(|&id| events(&c, id).is_some_and(|e| e.contains(&r) && e.contains(&first)))
    });
    let newest = agreed_newest(&c, &c.ids(), r.term);
    assert_eq!(newest.cause, "restart", "the whole cluster restarted: {newest:?}");
}

/// The new primary, which wrote the record, counts the failover once under the cause's
/// label with its MTTR in the duration histogram; the other survivor counts none (a
/// failover counts once in the cluster), and the cluster's first election (`restart`)
/// is no failover.
fn check_failover_metrics(c: &TestCluster, old: u64, r: &Record) {
    let new = c.node(r.new_primary);
    let crash = "keepbit_failovers_total{cause=\"crash\"}";
    support::wait_for("the new primary to count the failover in /metrics", DEADLINE, || new.metric(crash) == Some(1.0));
    let (_, text) = new.http("/metrics").expect("metrics");
    assert!(!text.contains("keepbit_failovers_total{cause=\"restart\"}"), "{text}");
    assert_eq!(new.metric("keepbit_failover_duration_seconds_count"), Some(1.0), "{text}");
    let sum = new.metric("keepbit_failover_duration_seconds_sum").expect("sum");
    let mttr_s = r.mttr_ms.expect("mttr") as f64 / 1000.0;
    assert!((sum - mttr_s).abs() < 1e-6, "histogram sum {sum} is the record's MTTR {mttr_s}");
    for other in c.ids().into_iter().filter(|&id| id != old && id != r.new_primary) {
        let n = c.node(other);
        assert_eq!(n.metric(crash), None, "node {other} did not write the record");
        assert_eq!(n.metric("keepbit_failover_duration_seconds_count"), Some(0.0));
    }
}

/// A SIGSTOPped primary is journaled as a heartbeat timeout: it still accepts connections
/// (in the kernel) but answers nothing. Once continued it holds the same record.
#[test]
fn a_paused_primary_is_journaled_as_a_heartbeat_timeout() {
    let c = TestCluster::start(ClusterOptions::default());
    let first = initial_record(&c);
    let old = c.wait_primary(DEADLINE);
    c.signal(old, "-STOP");
    let r = failover_record(&c, old, first.term, "heartbeat timeout");
    c.signal(old, "-CONT");
    assert_eq!(agreed_newest(&c, &c.ids(), first.term), r, "the resumed node has the same newest record");
    check_resp3_and_errors(&c, old, &r);
    check_the_cli(&c, &r);
}

/// Over RESP3 each record is a map; bad arguments get Redis-style errors.
fn check_resp3_and_errors(c: &TestCluster, id: u64, newest: &Record) {
    let url = format!("{}?protocol=resp3", c.node(id).url());
    let mut con = redis::Client::open(url).and_then(|cl| cl.get_connection()).expect("RESP3 connection");
    let v: Value = redis::cmd("KEEPBIT").arg("EVENTS").arg("COUNT").arg(1).query(&mut con).expect("events");
    match v {
        Value::Array(items) => {
            assert!(matches!(items.first(), Some(Value::Map(_))), "{items:?}");
            assert_eq!(items.iter().filter_map(record).collect::<Vec<_>>(), vec![newest.clone()]);
        }
        other => panic!("not an array: {other:?}"),
    }
    for (args, error) in [(&["COUNT", "0"][..], "COUNT must be positive"), (&["COUNT"][..], "syntax error")] {
        let err = redis::cmd("KEEPBIT").arg("EVENTS").arg(args).query::<Value>(&mut con).expect_err("must fail");
        assert!(err.to_string().contains(error), "{args:?}: {err}");
    }
}

/// `keepbit events --json` and `keepbit status --json` show the failover.
fn check_the_cli(c: &TestCluster, newest: &Record) {
    let exe = env!("CARGO_BIN_EXE_keepbit");
    let n = c.node(newest.new_primary);
    let port = n.client_port.to_string();
    let out = std::process::Command::new(exe)
        .args(["events", "--host", &n.ip, "--port", &port, "--count", "2", "--json"])
        .output()
        .expect("run keepbit events");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(events[0]["cause"], newest.cause.as_str(), "{events}");
    assert_eq!(events[0]["mttr_ms"], newest.mttr_ms.expect("mttr"), "{events}");
    assert_eq!(events[1]["cause"], "restart", "{events}");
    let nodes = c.client_addrs().join(",");
    let out = std::process::Command::new(exe).args(["status", "--nodes", &nodes, "--json"]).output().expect("status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let summary = &status["summary"];
    assert_eq!(summary["primary"], n.client_addr().as_str(), "{status}");
    assert_eq!(summary["failovers_last_hour"], 1, "{status}");
    assert_eq!(summary["mttr_max_ms"], newest.mttr_ms.expect("mttr"), "{status}");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(3), "{status}");
    let screen = std::process::Command::new(exe).args(["status", "--nodes", &nodes]).output().expect("status");
    let screen = String::from_utf8_lossy(&screen.stdout);
    assert!(screen.contains("heartbeat timeout") && screen.contains("1 in the last hour"), "{screen}");
}

const IPS: [&str; 3] = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];

/// A primary cut off from both standbys (nftables drops its packets both ways) is
/// journaled as a partition: the new primary's connections to it are never established.
/// After healing, it holds the same record.
#[test]
fn an_isolated_primary_is_journaled_as_a_partition() {
    if !netns::inside_private("an_isolated_primary_is_journaled_as_a_partition") {
        return;
    }
    let c = TestCluster::start(ClusterOptions { ips: IPS.map(String::from).to_vec(), ..Default::default() });
    let first = initial_record(&c);
    let old = c.wait_primary(DEADLINE);
    let status = |id: u64, path: &str| c.node(id).http(path).map(|(code, _)| code);
    support::wait_for("the endpoints to name the primary", DEADLINE, || {
        c.ids().iter().all(|&id| match id == old {
            true => status(id, "/primary") == Some(200),
            false => status(id, "/replica") == Some(200) && status(id, "/primary") == Some(503),
        })
    });
    let partition = Partition::isolate(&c, old);
    let r = failover_record(&c, old, first.term, "partition (no quorum)");
    // On the majority side the endpoints follow the new primary; the cut-off one stops
    // claiming to be primary (its lease has run out), if it can be asked at all.
    let third = c.ids().into_iter().find(|&id| id != old && id != r.new_primary).expect("a third node");
    support::wait_for("the endpoints to follow the failover", DEADLINE, || {
        status(r.new_primary, "/primary") == Some(200)
            && status(third, "/replica") == Some(200)
            && status(third, "/primary") == Some(503)
            && status(old, "/primary") != Some(200)
    });
    partition.heal();
    assert_eq!(agreed_newest(&c, &c.ids(), first.term), r, "the healed node has the same newest record");
}
