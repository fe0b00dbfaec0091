//! Proactive switchover on a real cluster: a slow fsync injected on the primary at
//! runtime (`KEEPBIT FAULT SET fsync_delay_ms`) moves leadership to a healthy standby
//! once the fsync check has stayed degraded for `proactive_sustain_ms`, while a workload
//! keeps writing; every node journals the change as `proactive: fsync`; and the same fault
//! on the new primary within the cooldown is held, not acted on.

mod support;

use std::time::{Duration, Instant};

use redis::Value;
use support::cluster::{ClusterOptions, TestCluster};

const SETTLE: Duration = Duration::from_secs(20);
const GUARD: &[(&str, &str)] = &[("KEEPBIT_FAULTS", "1")];
const COOLDOWN: Duration = Duration::from_millis(10_000);

/// Quick checks, a 1 s sustain, a 10 s cooldown; the disk check is off (a small test
/// disk must not trigger anything) and stalls never fail.
const TOP: &str = "[health]\ninterval_ms = 50\nwindow_s = 2\nfsync_p99_degraded_ms = 40\n\
    fsync_p99_failing_ms = 1000\nstall_ms = 150\nstalls_failing_count = 1000\n\
    disk_free_degraded_bytes = 0\ndisk_free_failing_bytes = 0\nproactive = true\n\
    proactive_sustain_ms = 1000\nproactive_cooldown_ms = 10000\nproactive_max_per_hour = 3\n\
    [faults]\nenable = true\n";

fn fault(c: &TestCluster, id: u64, args: &[&str]) -> String {
    let mut con = c.conn(id).expect("connect");
    redis::cmd("AUTH").arg("admin").arg(support::ADMIN_PASSWORD).query::<()>(&mut con).expect("AUTH admin");
    redis::cmd("KEEPBIT").arg("FAULT").arg(args).query(&mut con).expect("KEEPBIT FAULT")
}

/// The cause of node `id`'s newest journal record.
fn newest_cause(c: &TestCluster, id: u64) -> Option<String> {
    let mut con = c.conn(id).ok()?;
    let v: Value = redis::cmd("KEEPBIT").arg("EVENTS").arg("COUNT").arg(1).query(&mut con).ok()?;
    let Value::Array(records) = v else { return None };
    let pairs: Vec<(Value, Value)> = match records.first()? {
        Value::Array(flat) => flat.chunks(2).filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone()))).collect(),
        Value::Map(m) => m.clone(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(k, v)| match (k, v) {
        (Value::BulkString(k), Value::BulkString(v)) if k == b"cause" => Some(String::from_utf8_lossy(&v).into_owned()),
        _ => None,
    })
}

/// A primary other than `old`, within `deadline`.
fn new_primary(c: &TestCluster, old: u64, deadline: Duration) -> Option<u64> {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Some(p) = c.primary().filter(|&p| p != old) {
            return Some(p);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_slow_fsync_moves_leadership_off_the_primary_once_and_the_cooldown_holds_the_next() {
    let c = TestCluster::start(ClusterOptions { env: GUARD, top: vec![TOP.to_string(); 3], ..Default::default() });
    let started = Instant::now();
    let old = c.wait_settled(SETTLE);
    let w = support::workload::Workload::start(c.client_addrs(), "pro");
    w.wait_acked(20, SETTLE);
    // The cluster's first election starts the cooldown too.
    support::wait_for("the start-up cooldown to pass", COOLDOWN + SETTLE, || {
        started.elapsed() >= COOLDOWN + Duration::from_secs(1)
    });
    assert_eq!(c.primary(), Some(old), "leadership moved before any fault");
    let errors_before = w.errors();
    assert_eq!(fault(&c, old, &["SET", "fsync_delay_ms", "100"]), "OK");
    let injected = Instant::now();
    let new = new_primary(&c, old, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("leadership never moved off node {old}; logs under {}", c.dir.display()));
    let moved_after = injected.elapsed();
    eprintln!("leadership moved {old} -> {new} {moved_after:?} after the fault was injected");
    assert!(moved_after >= Duration::from_millis(1000), "moved after {moved_after:?}, before the sustain window");
    for id in c.ids() {
        support::wait_for("every node to journal the proactive move", SETTLE, || {
            newest_cause(&c, id).is_some_and(|cause| cause.starts_with("proactive: fsync"))
        });
    }
    let acked = w.acked();
    w.wait_acked(acked + 20, SETTLE);
    let switch_errors = w.errors() - errors_before;
    eprintln!("client errors across the proactive switchover: {switch_errors}");
    assert!(switch_errors <= 3, "{switch_errors} client errors across a planned switchover");

    // The same fault on the new primary, within the cooldown: held, and logged as such.
    assert_eq!(fault(&c, new, &["SET", "fsync_delay_ms", "100"]), "OK");
    support::wait_for("the new primary to hold the move for the cooldown", COOLDOWN, || {
        c.log(new).contains("proactive switchover held: fsync is bad, but cooldown")
    });
    assert_eq!(c.primary(), Some(new), "leadership moved again within the cooldown");
    assert!(injected.elapsed() < COOLDOWN, "the check ran past the cooldown: {:?}", injected.elapsed());
    let history = w.stop();
    assert!(history.error_count <= 3 + errors_before, "{:?}", history.errors);
    fault(&c, new, &["CLEAR"]);
    fault(&c, old, &["CLEAR"]);
}
