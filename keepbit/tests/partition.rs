//! Network partitions between cluster nodes, made with nftables rules that drop traffic
//! between the nodes' loopback addresses.
//!
//! The rules must never touch the machine's real network, so the test re-executes itself
//! under `unshare --net --pid --fork --kill-child` with loopback up: the new network
//! namespace holds the rules and vanishes with the test; the new PID namespace makes every
//! node die with the test even if the test itself is killed. This needs root, `unshare`
//! (util-linux), `ip` (iproute2) and `nft` (nftables; `.ci/run` installs it). Without
//! them the test fails under `CI=true` and is skipped with a note elsewhere.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use redis::Value;
use support::cluster::{ClusterOptions, TestCluster};
use support::netns::{ns as netns, Partition};

const IPS: [&str; 3] = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
/// The list every write appends to: its order on a node is that node's history.
const KEY: &str = "history";
/// Generous: the machine may be shared; nothing here asserts on timing.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long a client waits for a reply before recording the write as unknown.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Isolating the primary from both standbys loses no acknowledged write and forks no
/// history: the isolated node acknowledges nothing, the majority elects a new primary that
/// takes writes, and after healing the old primary follows the new one as a standby and
/// every node holds the same history, with every acknowledged write in it exactly once.
#[test]
fn isolated_primary_acknowledges_nothing_and_rejoins_one_history() {
    if !netns::inside_private("isolated_primary_acknowledges_nothing_and_rejoins_one_history") {
        return;
    }
    let c = TestCluster::start(ClusterOptions { ips: IPS.map(String::from).to_vec(), ..Default::default() });
    let all: Vec<u64> = c.nodes.iter().map(|n| n.id).collect();
    let hist = History::default();
    c.wait_primary(DEADLINE);
    hist.acked_writes(&c, &all, Phase::Before, 20);

    let old = c.wait_primary(DEADLINE);
    let majority: Vec<u64> = all.iter().copied().filter(|&id| id != old).collect();
    let partition = Partition::isolate(&c, old);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            while !stop.load(Relaxed) {
                hist.write(&c, old, Phase::Isolated);
                thread::sleep(Duration::from_millis(20));
            }
        });
        let new = wait_value("a primary among the majority", || primary_among(&c, &majority));
        println!("isolated node {old}; node {new} became primary");
        hist.acked_writes(&c, &majority, Phase::Majority, 20);
        support::wait_for("the isolated node to stop claiming the primary role", DEADLINE, || {
            role(&c, old).is_some_and(|r| r.first().is_some_and(|r| r != "master"))
        });
        support::wait_for("several writes sent to the isolated node", DEADLINE, || hist.count(Phase::Isolated) >= 5);
    });
    let acked_while_isolated = hist.values(|w| w.phase == Phase::Isolated && w.outcome == Outcome::Ok);
    assert!(acked_while_isolated.is_empty(), "the isolated node acknowledged {acked_while_isolated:?}");
    let unknown = hist.values(|w| w.phase == Phase::Isolated && w.outcome == Outcome::Unknown).len();
    println!("{} writes sent to the isolated node: none acknowledged, {unknown} unknown", hist.count(Phase::Isolated));
    let dropped = partition.dropped_packets();
    assert!(dropped > 0, "the partition rules dropped no packet: the nodes did not talk over their own addresses");
    println!("partition dropped {dropped} packets; healing");
    partition.heal();

    hist.acked_writes(&c, &all, Phase::Healed, 5);
    let primary = converge(&c, old);
    println!("healed: node {primary} is primary, node {old} follows it");
    check_one_history(&c, &hist);
}

/// Waits until one node is primary, `old` is a standby following it, and every node has
/// applied the primary's commit index. Returns the primary.
fn converge(c: &TestCluster, old: u64) -> u64 {
    let primary = c.wait_primary(DEADLINE);
    assert_ne!(primary, old, "the isolated node became primary again; logs under {}", c.dir.display());
    let primary_ip = &c.nodes[(primary - 1) as usize].ip;
    support::wait_for("the old primary to follow the new one", DEADLINE, || {
        role(c, old).is_some_and(|r| r.first().is_some_and(|x| x == "slave") && r.get(1) == Some(primary_ip))
    });
    let commit = info_u64(c, primary, "keepbit_commit_index").expect("commit index of the primary");
    for n in &c.nodes {
        c.wait_applied(n.id, commit, DEADLINE);
    }
    primary
}

/// Every node holds the same list; every acknowledged write is in it once, in the order
/// the writes were acknowledged; nothing in it was refused or never sent.
fn check_one_history(c: &TestCluster, hist: &History) {
    let lists: BTreeMap<u64, Vec<String>> = c.nodes.iter().map(|n| (n.id, read_history(c, n.id))).collect();
    let (first, list) = lists.iter().next().expect("nodes");
    for (id, other) in &lists {
        assert_eq!(other, list, "node {id} and node {first} hold different histories");
    }
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&String> = list.iter().filter(|v| !seen.insert(*v)).collect();
    assert!(duplicates.is_empty(), "values applied twice: {duplicates:?}");
    let writes = hist.writes.lock().expect("history");
    let outcome: BTreeMap<&str, Outcome> = writes.iter().map(|w| (w.value.as_str(), w.outcome)).collect();
    let phantom: Vec<&String> = list.iter().filter(|v| !outcome.contains_key(v.as_str())).collect();
    assert!(phantom.is_empty(), "values nobody wrote: {phantom:?}");
    let refused: Vec<&String> = list.iter().filter(|v| outcome[v.as_str()] == Outcome::Refused).collect();
    assert!(refused.is_empty(), "writes refused with READONLY were applied: {refused:?}");
    let acked: Vec<&str> = writes.iter().filter(|w| w.outcome == Outcome::Ok).map(|w| w.value.as_str()).collect();
    let lost: Vec<&&str> = acked.iter().filter(|v| !seen.contains(&v.to_string())).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let acked_set: BTreeSet<&str> = acked.iter().copied().collect();
    let order: Vec<&str> = list.iter().map(String::as_str).filter(|v| acked_set.contains(v)).collect();
    assert_eq!(order, acked, "acknowledged writes applied out of the order they were acknowledged in");
    let unknown = list.len() - acked.len();
    println!("one history of {} values on every node: {} acknowledged, {unknown} unknown", list.len(), acked.len());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Before,
    /// Sent to the isolated node while it was cut off.
    Isolated,
    Majority,
    Healed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// Definitely not carried out: READONLY, or the connection could not be opened.
    Refused,
    /// Timed out, connection lost, TRYAGAIN …: it may or may not have been applied.
    Unknown,
}

struct Write {
    value: String,
    phase: Phase,
    outcome: Outcome,
}

/// Every write attempted, with its outcome: invoke → ok | refused | unknown.
#[derive(Default)]
struct History {
    writes: Mutex<Vec<Write>>,
    next: AtomicUsize,
}

impl History {
    /// Appends a fresh value to the list on node `id` and records the outcome.
    fn write(&self, c: &TestCluster, id: u64, phase: Phase) -> Outcome {
        let value = format!("{phase:?}-{}-node{id}", self.next.fetch_add(1, Relaxed));
        let outcome = match connect(c, id, REPLY_TIMEOUT) {
            Err(_) => Outcome::Refused,
            Ok(mut con) => match redis::cmd("RPUSH").arg(KEY).arg(&value).query::<i64>(&mut con) {
                Ok(_) => Outcome::Ok,
                Err(e) if e.code() == Some("READONLY") => Outcome::Refused,
                Err(_) => Outcome::Unknown,
            },
        };
        self.writes.lock().expect("history").push(Write { value, phase, outcome });
        outcome
    }

    /// Writes to whichever of `among` is primary until `count` writes were acknowledged.
    fn acked_writes(&self, c: &TestCluster, among: &[u64], phase: Phase, count: usize) {
        let end = Instant::now() + DEADLINE;
        let mut acked = 0;
        while acked < count {
            assert!(
                Instant::now() < end,
                "only {acked} of {count} {phase:?} writes acknowledged by a primary among {among:?} \
                 within {DEADLINE:?}; logs under {}",
                c.dir.display()
            );
            match primary_among(c, among) {
                Some(p) if self.write(c, p, phase) == Outcome::Ok => acked += 1,
                _ => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn count(&self, phase: Phase) -> usize {
        self.writes.lock().expect("history").iter().filter(|w| w.phase == phase).count()
    }

    fn values(&self, pick: impl Fn(&Write) -> bool) -> Vec<String> {
        self.writes.lock().expect("history").iter().filter(|w| pick(w)).map(|w| w.value.clone()).collect()
    }
}

/// Stops the background writer even when the scope panics, so `thread::scope` can return.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// nftables rules cutting one node off from the others in both directions; clients on
/// 127.0.0.1 still reach every node. The table is deleted on drop, failure or not.
fn connect(c: &TestCluster, id: u64, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let con = c.conn(id)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// ROLE of node `id`, flattened to strings.
fn role(c: &TestCluster, id: u64) -> Option<Vec<String>> {
    let mut con = connect(c, id, REPLY_TIMEOUT).ok()?;
    let Value::Array(items) = redis::cmd("ROLE").query::<Value>(&mut con).ok()? else { return None };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    };
    Some(items.iter().map(text).collect())
}

/// The node among `ids` that says it is primary.
fn primary_among(c: &TestCluster, ids: &[u64]) -> Option<u64> {
    ids.iter().copied().find(|&id| role(c, id).is_some_and(|r| r.first().is_some_and(|r| r == "master")))
}

fn info_u64(c: &TestCluster, id: u64, field: &str) -> Option<u64> {
    let mut con = connect(c, id, REPLY_TIMEOUT).ok()?;
    let info: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok())
}

/// The list as node `id` has applied it (READONLY: standbys answer from their own state).
fn read_history(c: &TestCluster, id: u64) -> Vec<String> {
    let mut con = connect(c, id, REPLY_TIMEOUT).unwrap_or_else(|e| panic!("connect to node {id}: {e}"));
    redis::cmd("READONLY").query::<()>(&mut con).unwrap_or_else(|e| panic!("READONLY on node {id}: {e}"));
    redis::cmd("LRANGE").arg(KEY).arg(0).arg(-1).query(&mut con).unwrap_or_else(|e| panic!("LRANGE on node {id}: {e}"))
}

/// Polls `f` until it returns a value, for at most [`DEADLINE`].
fn wait_value<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {DEADLINE:?} waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
