//! Storage faults on real processes: a node whose disk fills up.

mod support;

use std::time::{Duration, Instant};

use support::cluster::{ClusterOptions, TestCluster};

const ELECTION: Duration = Duration::from_secs(15);

/// A node whose disk fills up stops with a non-zero exit code and a log line that says
/// why, instead of running on with a log that no longer matches what it acknowledged; the
/// other two nodes keep serving and every acknowledged write is readable from them.
#[test]
fn a_full_disk_stops_its_node_and_the_cluster_serves_on() {
    let probe = "mount -t tmpfs -o size=1m tmpfs /mnt";
    if !support::tool_works("unshare", &["-m", "sh", "-c", probe], "unshare -m and tmpfs mounts (root)") {
        return;
    }
    let mut c = TestCluster::start(ClusterOptions { small_disk: Some((1, 4)), ..ClusterOptions::default() });
    c.wait_settled(ELECTION);
    let value = vec![b'v'; 64 << 10];
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0u64;
    let status = loop {
        if let Some((id, status)) = c.exited().into_iter().next() {
            assert_eq!(id, 1, "only the node with the small disk may stop");
            break status;
        }
        assert!(Instant::now() < deadline, "node 1 kept running with a full disk; log:\n{}", c.log(1));
        let Some(p) = c.primary() else { continue };
        let Ok(mut con) = c.conn(p) else { continue };
        let key = format!("fill:{i}");
        if redis::cmd("SET").arg(&key).arg(&value).query::<()>(&mut con).is_ok() {
            acked.push(key);
        }
        i += 1;
    };
    assert!(!status.success(), "node 1 exited with {status}");
    let log = c.log(1);
    assert!(
        log.contains("replication stopped for good") && log.contains("No space left on device"),
        "no clear log line:\n{log}"
    );
    assert!(acked.len() > 10, "only {} writes before the disk filled", acked.len());
    // The two others still form a quorum: writes go on, and nothing acknowledged is lost.
    let p = c.wait_primary(ELECTION);
    assert_ne!(p, 1);
    let mut con = c.conn(p).expect("connect");
    redis::cmd("SET").arg("after-full-disk").arg(1).query::<()>(&mut con).expect("the cluster still writes");
    for key in &acked {
        let len: usize = redis::cmd("STRLEN").arg(key).query(&mut con).expect("STRLEN");
        assert_eq!(len, value.len(), "acknowledged write {key} lost");
    }
}
