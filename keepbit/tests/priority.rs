//! Priorities and failback on real clusters: a member with priority 0 is never primary for
//! longer than a handover across kill -9 of the primary; when only priority-0 members are
//! left it leads, then hands back as soon as a member with priority is caught up; and
//! leadership returns to `preferred_primary` after it comes back and stays caught up for
//! `failback_quiet_ms`, journaled as `failback` on every node.

mod support;

use std::time::{Duration, Instant};

use redis::Value;
use support::cluster::{ClusterOptions, TestCluster};
use support::wait_for;

const SETTLE: Duration = Duration::from_secs(20);
/// The longest a priority-0 node may report itself primary: the primary's priority check
/// runs every five heartbeats (100 ms here) and a switchover takes milliseconds.
const HANDOVER: Duration = Duration::from_millis(1500);

/// Node `id`'s newest journal record: (term, cause, completed).
fn newest(c: &TestCluster, id: u64) -> Option<(u64, String, bool)> {
    let mut con = c.conn(id).ok()?;
    let v: Value = redis::cmd("KEEPBIT").arg("EVENTS").arg("COUNT").arg(1).query(&mut con).ok()?;
    let Value::Array(records) = v else { return None };
    let pairs: Vec<(String, Value)> = match records.first()? {
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|kv| match kv {
                [Value::BulkString(k), v] => Some((String::from_utf8_lossy(k).into_owned(), v.clone())),
                _ => None,
            })
            .collect(),
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| match k {
                Value::BulkString(k) => Some((String::from_utf8_lossy(k).into_owned(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    let get = |name: &str| pairs.iter().find(|p| p.0 == name).map(|p| p.1.clone());
    let term = match get("term")? {
        Value::Int(t) => t as u64,
        _ => return None,
    };
    let cause = match get("cause")? {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => return None,
    };
    let completed = matches!(get("first_commit_ms"), Some(Value::Int(_)));
    Some((term, cause, completed))
}

/// The term of node `id`'s newest record once it is completed and newer than `after`
/// (0: any).
fn completed_term(c: &TestCluster, id: u64, after: u64) -> u64 {
    let mut term = 0;
    wait_for("a newer journal record to complete", SETTLE, || {
        term = newest(c, id).filter(|r| r.2).map_or(0, |r| r.0);
        term > after
    });
    term
}

/// Waits until every node in `ids` shows the same completed newest record, newer than
/// `after_term`; its cause.
fn agreed_newest_cause(c: &TestCluster, ids: &[u64], after_term: u64) -> String {
    let mut seen = None;
    wait_for("every node to show the same completed newest journal record", SETTLE, || {
        let all: Vec<Option<(u64, String, bool)>> = ids.iter().map(|&id| newest(c, id)).collect();
        seen = all[0].clone().filter(|r| r.2 && r.0 > after_term && all.iter().all(|o| o.as_ref() == Some(r)));
        seen.is_some()
    });
    seen.map(|r| r.1).unwrap_or_default()
}

/// Polls until a primary other than `not` and `never` serves, noting every stretch in
/// which `never` (priority 0) said it was primary; returns the new primary and the
/// longest such stretch.
fn wait_primary_watching(c: &TestCluster, not: Option<u64>, never: u64, deadline: Duration) -> (u64, Duration) {
    let end = Instant::now() + deadline;
    let (mut longest, mut since) = (Duration::ZERO, None::<Instant>);
    loop {
        let now = Instant::now();
        if c.role(never).as_deref() == Some("master") {
            longest = longest.max(now - *since.get_or_insert(now));
        } else {
            since = None;
        }
        if let Some(p) = c.primary().filter(|&p| p != never && Some(p) != not) {
            return (p, longest);
        }
        assert!(now < end, "no primary with priority within {deadline:?}; logs under {}", c.dir.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Three nodes, the third with priority 0. The primary is killed (kill -9) and restarted
/// twice: each time the other node with priority takes over, and node 3 never reports
/// itself primary for longer than a handover.
#[test]
fn a_priority_0_node_is_never_primary_across_kills_of_the_primary() {
    let mut c = TestCluster::start(ClusterOptions { priorities: vec![1, 1, 0], ..Default::default() });
    let (mut primary, longest) = wait_primary_watching(&c, None, 3, SETTLE);
    assert!(longest <= HANDOVER, "node 3 was primary for {longest:?} at start");
    for round in 1..=2 {
        c.kill(primary);
        let (next, longest) = wait_primary_watching(&c, Some(primary), 3, SETTLE);
        eprintln!("round {round}: node {next} took over from {primary}; node 3 primary for at most {longest:?}");
        assert!(longest <= HANDOVER, "round {round}: node 3 was primary for {longest:?}");
        c.start_node(primary);
        wait_for("the killed node to rejoin as a standby", SETTLE, || c.role(primary).as_deref() == Some("slave"));
        let again = c.wait_settled(SETTLE);
        assert_ne!(again, 3, "round {round}: the settled primary has priority 0");
        primary = again;
    }
    let mut con = c.conn(primary).expect("connect");
    redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).expect("the primary with priority serves writes");
}

/// Nodes 2 and 3 have priority 0. With node 1 killed one of them must lead (openraft
/// elects whoever times out first); once node 1 is back and caught up it hands over at
/// once, as a planned switchover.
#[test]
fn a_priority_0_leader_hands_over_once_a_node_with_priority_is_back() {
    let mut c = TestCluster::start(ClusterOptions { priorities: vec![1, 0, 0], ..Default::default() });
    wait_for("node 1 to be primary", SETTLE, || c.primary() == Some(1));
    let before = completed_term(&c, 1, 0);
    c.kill(1);
    let stand_in = c.wait_primary(SETTLE);
    assert_ne!(stand_in, 1);
    let mut con = c.conn(stand_in).expect("connect");
    redis::cmd("SET").arg("k").arg("while 1 was down").query::<()>(&mut con).expect("the stand-in serves writes");
    let takeover = completed_term(&c, stand_in, before);
    let restarted = Instant::now();
    c.start_node(1);
    wait_for("node 1 to be primary again", SETTLE, || c.primary() == Some(1));
    eprintln!("node 1 primary again {:?} after its restart", restarted.elapsed());
    assert_eq!(agreed_newest_cause(&c, &[1, 2, 3], takeover), "planned switchover");
    let mut con = c.conn(1).expect("connect");
    let v: String = redis::cmd("GET").arg("k").query(&mut con).expect("get");
    assert_eq!(v, "while 1 was down");
}

/// `preferred_primary = 1`: killed, another node takes over; restarted, leadership
/// returns to it, not before it has been caught up for `failback_quiet_ms` (1 s here),
/// and every node's newest journal record says `failback`.
#[test]
fn leadership_fails_back_to_the_preferred_primary() {
    let extra = "preferred_primary = 1\nfailback_quiet_ms = 1000\n";
    let mut c = TestCluster::start(ClusterOptions { extra, ..Default::default() });
    wait_for("node 1 to be primary", SETTLE, || c.primary() == Some(1));
    let before = completed_term(&c, 1, 0);
    c.kill(1);
    let stand_in = c.wait_primary(SETTLE);
    assert_ne!(stand_in, 1);
    let takeover = completed_term(&c, stand_in, before);
    let restarted = Instant::now();
    c.start_node(1);
    wait_for("node 1 to rejoin as a standby", SETTLE, || c.role(1).as_deref() == Some("slave"));
    wait_for("leadership to return to node 1", SETTLE, || c.primary() == Some(1));
    let took = restarted.elapsed();
    eprintln!("failback to node 1 {took:?} after its restart");
    assert!(took >= Duration::from_millis(1000), "failback after {took:?}, before the quiet period");
    assert_eq!(agreed_newest_cause(&c, &[1, 2, 3], takeover), "failback");
    let mut con = c.conn(1).expect("connect");
    redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).expect("the preferred primary serves writes");
}
