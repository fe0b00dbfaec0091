//! Test-only fault injection on real processes (`[faults]`, `KEEPBIT FAULT`): a slow
//! fsync shows in the primary's health while writes go on, an event-loop stall shows in
//! the event_loop check, a failing fsync stops its node and the cluster fails over, and
//! without the `KEEPBIT_FAULTS=1` guard none of it can be turned on.

mod support;

use std::time::{Duration, Instant};

use support::cluster::{ClusterOptions, TestCluster};

const ELECTION: Duration = Duration::from_secs(20);
const GUARD: &[(&str, &str)] = &[("KEEPBIT_FAULTS", "1")];

/// Small thresholds, checked often, so a few slow fsyncs or one stall show at once.
const HEALTH: &str = "[health]\ninterval_ms = 50\nwindow_s = 60\nproactive = false\nfsync_p99_degraded_ms = 40\n\
    fsync_p99_failing_ms = 250\nstall_ms = 150\nstalls_failing_count = 1000\n";

/// `top` lines for `n` nodes: the health settings plus `[faults]`.
fn top(n: usize, faults: &str) -> Vec<String> {
    vec![format!("{HEALTH}[faults]\n{faults}\n"); n]
}

/// An admin connection to node `id`.
fn admin(c: &TestCluster, id: u64) -> redis::Connection {
    let mut con = c.conn(id).expect("connect");
    redis::cmd("AUTH").arg("admin").arg(support::ADMIN_PASSWORD).query::<()>(&mut con).expect("AUTH admin");
    con
}

fn fault(c: &TestCluster, id: u64, args: &[&str]) -> redis::RedisResult<String> {
    redis::cmd("KEEPBIT").arg("FAULT").arg(args).query(&mut admin(c, id))
}

/// The line of check `name` in node `id`'s `KEEPBIT HEALTH`, e.g. "fsync: degraded (…)".
fn check(c: &TestCluster, id: u64, name: &str) -> Option<String> {
    let mut con = c.conn(id).ok()?;
    let text: String = redis::cmd("KEEPBIT").arg("HEALTH").query(&mut con).ok()?;
    text.lines().find(|l| l.starts_with(&format!("{name}: "))).map(str::to_string)
}

/// Writes through `id` until its check `name` reads `status`; every write must succeed.
fn write_until(c: &TestCluster, id: u64, name: &str, status: &str, deadline: Duration) -> String {
    let end = Instant::now() + deadline;
    let mut con = c.conn(id).expect("connect");
    for i in 0.. {
        redis::cmd("SET").arg(format!("k{i}")).arg(i).query::<()>(&mut con).expect("a write under the fault");
        if let Some(line) = check(c, id, name).filter(|l| l.starts_with(&format!("{name}: {status} "))) {
            return line;
        }
        let last = check(c, id, name);
        assert!(Instant::now() < end, "{name} never {status} on node {id}: {last:?}; logs under {}", c.dir.display());
    }
    unreachable!()
}

/// A delay added to the primary's fsyncs at runtime turns its fsync check degraded, then
/// failing once 3+ fsyncs take longer than the failing threshold (KEEPBIT HEALTH and
/// /health agree); every write meanwhile succeeds, and CLEAR puts fsyncs back.
#[test]
fn a_slow_fsync_on_the_primary_turns_its_health_degraded_then_failing() {
    let c = TestCluster::start(ClusterOptions { env: GUARD, top: top(3, "enable = true"), ..Default::default() });
    let p = c.wait_settled(ELECTION);
    let mut con = c.conn(p).expect("connect");
    redis::cmd("SET").arg("before").arg(1).query::<()>(&mut con).expect("write");
    let before = check(&c, p, "fsync").expect("fsync check");
    assert!(before.starts_with("fsync: ok "), "{before}");
    assert_eq!(fault(&c, p, &["SET", "fsync_delay_ms", "80"]).expect("set"), "OK");
    let degraded = write_until(&c, p, "fsync", "degraded", Duration::from_secs(20));
    assert!(degraded.contains("p99 "), "{degraded}");
    fault(&c, p, &["SET", "fsync_delay_ms", "300"]).expect("set");
    let failing = write_until(&c, p, "fsync", "failing", Duration::from_secs(30));
    assert!(failing.contains("over 250 ms"), "{failing}");
    let (status, body) = c.node(p).http("/health").expect("/health answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#"{"name":"fsync","status":"failing""#), "{body}");
    assert_eq!(fault(&c, p, &["CLEAR"]).expect("clear"), "OK");
    let started = Instant::now();
    redis::cmd("SET").arg("after").arg(1).query::<()>(&mut con).expect("write after CLEAR");
    assert!(started.elapsed() < Duration::from_millis(250), "fsyncs still slow after CLEAR");
}

/// `stall_ms` / `stall_every_ms` block the client event loop: the event_loop check counts
/// the stalls, with the lateness it saw.
#[test]
fn an_injected_stall_shows_in_the_event_loop_check() {
    let c =
        TestCluster::start(ClusterOptions { nodes: 1, env: GUARD, top: top(1, "enable = true"), ..Default::default() });
    c.wait_primary(ELECTION);
    let quiet = check(&c, 1, "event_loop").expect("event_loop check");
    assert!(quiet.starts_with("event_loop: ok (clients: 0 stalls"), "{quiet}");
    fault(&c, 1, &["SET", "stall_ms", "400"]).expect("set");
    fault(&c, 1, &["SET", "stall_every_ms", "300"]).expect("set");
    let end = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let line = check(&c, 1, "event_loop");
        let stalls = line.as_deref().and_then(|l| l.split("clients: ").nth(1)?.split(' ').next()?.parse::<u64>().ok());
        if stalls.is_some_and(|n| n >= 2) {
            break line.unwrap_or_default();
        }
        assert!(Instant::now() < end, "no stalls reported: {line:?}; logs under {}", c.dir.display());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(line.starts_with("event_loop: degraded "), "{line}");
    let worst: f64 = line.split("worst ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).expect("worst lag");
    assert!(worst >= 200.0, "worst lateness {worst} ms for 400 ms stalls: {line}");
    fault(&c, 1, &["CLEAR"]).expect("clear");
}

/// `fsync_fail_after = 0` on the primary: its next fsync fails, the node exits non-zero
/// saying why, and the other two elect a primary that takes writes.
#[test]
fn a_failing_fsync_stops_the_primary_and_the_cluster_fails_over() {
    let mut c = TestCluster::start(ClusterOptions { env: GUARD, top: top(3, "enable = true"), ..Default::default() });
    let p = c.wait_settled(ELECTION);
    fault(&c, p, &["SET", "fsync_fail_after", "0"]).expect("set");
    let end = Instant::now() + ELECTION;
    let status = loop {
        if let Some((id, status)) = c.exited().into_iter().next() {
            assert_eq!(id, p, "only the primary may stop");
            break status;
        }
        assert!(Instant::now() < end, "node {p} kept running with failing fsyncs; log:\n{}", c.log(p));
        if let Ok(mut con) = c.conn(p) {
            let _ = redis::cmd("SET").arg("k").arg(1).query::<()>(&mut con);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "node {p} exited with {status}");
    let log = c.log(p);
    assert!(
        log.contains("replication stopped for good") && log.contains("injected fault: fsync failed"),
        "no clear log line:\n{log}"
    );
    let q = c.wait_primary(ELECTION);
    assert_ne!(q, p);
    let mut con = c.conn(q).expect("connect");
    redis::cmd("SET").arg("after").arg(1).query::<()>(&mut con).expect("the survivors take writes");
}

/// Without `KEEPBIT_FAULTS=1` a node with `[faults] enable = true` refuses to start and
/// says what is missing; a node started without fault injection answers KEEPBIT FAULT
/// with the disabled error (a guard alone, without `enable`, allows nothing either).
#[test]
fn without_the_guard_faults_are_refused() {
    let mut c = TestCluster::start(ClusterOptions { nodes: 1, top: top(1, "enable = true"), ..Default::default() });
    support::wait_for("the unguarded node to exit", Duration::from_secs(10), || !c.exited().is_empty());
    let (_, status) = c.exited()[0];
    assert!(!status.success(), "{status}");
    let log = c.log(1);
    assert!(log.contains("needs KEEPBIT_FAULTS=1"), "no clear error:\n{log}");
    for env in [&[][..], GUARD] {
        let c =
            TestCluster::start(ClusterOptions { nodes: 1, env, top: top(1, "enable = false"), ..Default::default() });
        c.wait_primary(ELECTION);
        for args in [&["SET", "fsync_delay_ms", "5"][..], &["CLEAR"], &["SET", "nonsense", "x"]] {
            let err = fault(&c, 1, args).expect_err("refused");
            assert!(err.to_string().contains("fault injection is disabled on this node"), "{args:?}: {err}");
        }
        let mut plain = c.conn(1).expect("connect");
        let err = redis::cmd("KEEPBIT").arg("FAULT").arg("CLEAR").query::<String>(&mut plain).expect_err("not admin");
        assert!(err.to_string().contains("no permissions to run the 'keepbit|fault' command"), "admin only: {err}");
    }
}

/// `disk_full_after_bytes` on the primary: once its appends pass the limit the node stops
/// as on a real full disk (non-zero exit, `No space left on device`), and the survivors
/// elect a primary that holds every acknowledged write.
#[test]
fn an_injected_full_disk_stops_the_primary_and_loses_no_acknowledged_write() {
    let mut c = TestCluster::start(ClusterOptions { env: GUARD, top: top(3, "enable = true"), ..Default::default() });
    let p = c.wait_settled(ELECTION);
    fault(&c, p, &["SET", "disk_full_after_bytes", "20000"]).expect("set");
    let value = vec![b'v'; 1000];
    let mut acked = Vec::new();
    let end = Instant::now() + ELECTION;
    let status = loop {
        if let Some((id, status)) = c.exited().into_iter().next() {
            assert_eq!(id, p, "only the primary may stop");
            break status;
        }
        assert!(Instant::now() < end, "node {p} kept running with a full disk; log:\n{}", c.log(p));
        let key = format!("fill:{}", acked.len());
        let written = c.conn(p).and_then(|mut con| redis::cmd("SET").arg(&key).arg(&value).query::<()>(&mut con));
        if written.is_ok() {
            acked.push(key);
        }
    };
    assert!(!status.success(), "node {p} exited with {status}");
    let log = c.log(p);
    assert!(
        log.contains("replication stopped for good") && log.contains("No space left on device (injected fault"),
        "no clear log line:\n{log}"
    );
    assert!(
        (5..=25).contains(&acked.len()),
        "{} writes of 1000 bytes acknowledged under a 20000-byte limit",
        acked.len()
    );
    let q = c.wait_primary(ELECTION);
    assert_ne!(q, p);
    let mut con = c.conn(q).expect("connect");
    for key in &acked {
        let len: usize = redis::cmd("STRLEN").arg(key).query(&mut con).expect("STRLEN");
        assert_eq!(len, value.len(), "acknowledged write {key} lost");
    }
}
