//! The admin HTTP endpoints and metrics of a real cluster through failovers: who answers
//! `/primary` and `/replica` before and after the primary is killed or paused, the
//! metrics counters that move with it, the health report's surfaces (INFO keepbit,
//! KEEPBIT HEALTH), bad requests, and HAProxy routing by `GET /primary` with the
//! shipped `deploy/haproxy.cfg`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keepbit::health::phi::PeerArrivals;
use keepbit::metrics::{family_index, FsyncProbe, Metrics};
use support::cluster::{ClusterOptions, TestCluster};

const SETTLE: Duration = Duration::from_secs(30);
const FAILOVER: Duration = Duration::from_secs(15);

fn code(c: &TestCluster, id: u64, path: &str) -> Option<u16> {
    c.node(id).http(path).map(|r| r.0)
}

/// A sample of `/metrics` on node `id`: the value on the line that starts with `series `.
fn metric(c: &TestCluster, id: u64, series: &str) -> Option<f64> {
    let (_, body) = c.node(id).http("/metrics")?;
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// (id, /primary, /replica?lag=1000, /health) status codes; `None`: no answer.
type Answers = (u64, Option<u16>, Option<u16>, Option<u16>);

/// What every node's endpoints say.
fn endpoints(c: &TestCluster, ids: &[u64]) -> Vec<Answers> {
    ids.iter()
        .map(|&id| (id, code(c, id, "/primary"), code(c, id, "/replica?lag=1000"), code(c, id, "/health")))
        .collect()
}

/// Waits until `primary` alone answers /primary with 200, every other node in `ids`
/// answers /replica with 200 and /primary with 503, and every one is healthy.
fn wait_endpoints(c: &TestCluster, primary: u64, ids: &[u64], deadline: Duration) {
    let end = Instant::now() + deadline;
    let want = |id: u64| match id == primary {
        true => (id, Some(200), Some(503), Some(200)),
        false => (id, Some(503), Some(200), Some(200)),
    };
    loop {
        let got = endpoints(c, ids);
        if got.iter().all(|g| *g == want(g.0)) {
            return;
        }
        if Instant::now() > end {
            let health: Vec<_> = ids.iter().map(|&id| c.node(id).http("/health")).collect();
            panic!(
                "endpoints never settled on primary {primary}: {got:?}; health {health:?}; logs under {}",
                c.dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until exactly one of `ids` answers /primary with 200; returns it.
fn wait_endpoint_primary(c: &TestCluster, ids: &[u64], deadline: Duration) -> u64 {
    let end = Instant::now() + deadline;
    loop {
        let primaries: Vec<u64> = ids.iter().copied().filter(|&id| code(c, id, "/primary") == Some(200)).collect();
        if let [p] = primaries[..] {
            return p;
        }
        assert!(Instant::now() < end, "no single /primary among {ids:?}: {primaries:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_at(c: &TestCluster, id: u64, key: &str) -> Option<String> {
    let mut con = c.conn(id).ok()?;
    redis::cmd("GET").arg(key).query(&mut con).ok()
}

fn others(c: &TestCluster, id: u64) -> Vec<u64> {
    c.ids().into_iter().filter(|&i| i != id).collect()
}

/// kill -9 of the primary: before, only the primary answers `/primary` 200 and only the
/// standbys `/replica` 200; after, one survivor takes over both roles' answers, the dead
/// node answers nothing, the survivors count a leader change and a new term, writes are
/// counted by family, and the new primary suspects the dead node (phi) without failing.
#[test]
fn kill_9_of_the_primary_moves_the_primary_and_replica_endpoints() {
    let mut c = TestCluster::start(ClusterOptions::default());
    let old = c.wait_settled(SETTLE);
    wait_endpoints(&c, old, &c.ids(), FAILOVER);

    let strings = "keepbit_commands_total{family=\"string\"}";
    let before = metric(&c, old, strings).expect("string commands counted");
    let mut con = c.conn(old).expect("connect");
    for i in 0..10 {
        redis::cmd("SET").arg("k").arg(i).query::<()>(&mut con).expect("SET");
    }
    let _: Result<(), _> = redis::cmd("NOSUCHCOMMAND").query(&mut con);
    assert_eq!(metric(&c, old, strings), Some(before + 10.0), "each SET counted once");
    assert!(metric(&c, old, "keepbit_command_errors_total{family=\"other\"}").is_some_and(|n| n >= 1.0));
    assert!(metric(&c, old, "keepbit_command_duration_seconds_count{family=\"string\"}").is_some_and(|n| n >= 10.0));
    assert!(metric(&c, old, "keepbit_log_fsync_duration_seconds_count").is_some_and(|n| n > 0.0));
    assert!(metric(&c, old, "keepbit_client_connections").is_some());

    let survivors = others(&c, old);
    let term = metric(&c, survivors[0], "keepbit_term").expect("term");
    let changes: Vec<f64> =
        survivors.iter().map(|&id| metric(&c, id, "keepbit_leader_changes_total").expect("count")).collect();
    assert!(changes.iter().all(|&n| n >= 1.0), "the first leader counts: {changes:?}");

    c.kill(old);
    let new = wait_endpoint_primary(&c, &survivors, FAILOVER);
    wait_endpoints(&c, new, &survivors, FAILOVER);
    assert_eq!(c.node(old).http("/health"), None, "a killed node answers nothing");
    for (i, &id) in survivors.iter().enumerate() {
        let now = metric(&c, id, "keepbit_leader_changes_total").expect("count");
        assert!(now > changes[i], "node {id} counted the change: {now} after {}", changes[i]);
    }
    support::wait_for("a new term in the metrics", FAILOVER, || {
        metric(&c, new, "keepbit_term").is_some_and(|t| t > term)
    });
    support::wait_for("the new primary to suspect the dead node", FAILOVER, || {
        let (status, body) = c.node(new).http("/health").unwrap_or_default();
        status == 200
            && body.contains(&format!("{{\"name\":\"peers\",\"status\":\"degraded\",\"reason\":\"suspected: {old} "))
    });
    assert_eq!(metric(&c, new, "keepbit_health_check_status{check=\"peers\"}"), Some(1.0));
}

/// SIGSTOP of the primary: the survivors elect a new one and move the endpoints; on
/// SIGCONT the old primary answers `/primary` 503 and `/replica` 200 (it follows the new
/// primary) and counts the leader change.
#[test]
fn a_paused_primary_comes_back_as_a_replica_on_the_endpoints() {
    let c = TestCluster::start(ClusterOptions::default());
    let old = c.wait_settled(SETTLE);
    wait_endpoints(&c, old, &c.ids(), FAILOVER);
    let changes = metric(&c, old, "keepbit_leader_changes_total").expect("count");

    c.signal(old, "-STOP");
    let survivors = others(&c, old);
    let new = wait_endpoint_primary(&c, &survivors, FAILOVER);
    wait_endpoints(&c, new, &survivors, FAILOVER);
    assert_eq!(code(&c, old, "/primary"), None, "a paused node answers nothing");

    c.signal(old, "-CONT");
    wait_endpoints(&c, new, &c.ids(), FAILOVER);
    let now = metric(&c, old, "keepbit_leader_changes_total").expect("count");
    assert!(now > changes, "the old primary counted the change: {now} after {changes}");
}

/// Bad requests get 4xx, never a crash; a single-node cluster is its own primary; the
/// health report shows in INFO keepbit and KEEPBIT HEALTH; /metrics is OpenMetrics text.
#[test]
fn endpoints_answer_bad_requests_and_health_shows_in_info() {
    let c = TestCluster::start(ClusterOptions { nodes: 1, ..Default::default() });
    c.wait_primary(SETTLE);
    let n = c.node(1);
    support::wait_for("/primary on a single node", FAILOVER, || code(&c, 1, "/primary") == Some(200));
    assert_eq!(code(&c, 1, "/replica"), Some(503));
    assert_eq!(code(&c, 1, "/ready"), Some(200));
    assert_eq!(code(&c, 1, "/nope"), Some(404));
    assert_eq!(code(&c, 1, "/replica?lag=ten"), Some(400));
    let raw = |request: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(n.admin_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(raw("POST /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .starts_with("HTTP/1.1 405"));
    assert!(raw("garbage\r\n\r\n").starts_with("HTTP/1.1 400"), "a malformed request gets 400");
    assert_eq!(code(&c, 1, "/health"), Some(200), "still serving");

    let (_, metrics) = n.http("/metrics").expect("metrics");
    for name in [
        "# TYPE keepbit_failovers counter",
        "keepbit_failover_duration_seconds",
        "keepbit_event_loop_stall_seconds",
        "keepbit_replication_lag_entries",
        "# EOF",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let mut con = c.conn(1).expect("connect");
    support::wait_for("a health report", FAILOVER, || {
        let info: String = redis::cmd("INFO").arg("keepbit").query(&mut con).expect("INFO");
        info.contains("# Keepbit\r\n")
            && info.contains("keepbit_health:ok\r\n")
            && info.contains("keepbit_health_fsync:ok\r\n")
    });
    let health: String = redis::cmd("KEEPBIT").arg("HEALTH").query(&mut con).expect("KEEPBIT HEALTH");
    for check in ["status: ok", "event_loop: ok", "apply_lag: ok", "fsync: ok", "disk: ok", "memory: ok", "peers: ok"] {
        assert!(health.contains(check), "{check:?} missing from {health}");
    }
}

/// Starts HAProxy on the shipped `deploy/haproxy.cfg`, pointed at `c`'s nodes and
/// listening on `port`.
fn start_haproxy(c: &TestCluster, port: u16) -> Child {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/haproxy.cfg")).expect("cfg");
    let mut cfg = shipped.replace("bind 127.0.0.1:6379", &format!("bind 127.0.0.1:{port}"));
    for n in &c.nodes {
        let shipped_line = format!("127.0.0.1:{} check port {}", 6380 + n.id, 26380 + n.id);
        assert!(cfg.contains(&shipped_line), "deploy/haproxy.cfg lists node {}", n.id);
        cfg = cfg.replace(&shipped_line, &format!("{} check port {}", n.client_addr(), n.admin_port));
    }
    let path = c.dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("write cfg");
    Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy")
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Through HAProxy with `option httpchk GET /primary` (the shipped config), a SET lands on
/// the primary, and after kill -9 of the primary on the new one.
#[test]
fn haproxy_routes_to_the_primary_by_its_http_check() {
    if !support::tool_works(
        "haproxy",
        &["-c", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/haproxy.cfg")],
        "haproxy",
    ) {
        return;
    }
    let mut c = TestCluster::start(ClusterOptions::default());
    let old = c.wait_settled(SETTLE);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let _haproxy = Reaped(start_haproxy(&c, port));
    let set_via_haproxy = |value: &str| -> bool {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else { return false };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) else { return false };
        let _ = con.set_read_timeout(Some(Duration::from_secs(2)));
        redis::cmd("SET").arg("via-haproxy").arg(value).query::<()>(&mut con).is_ok()
    };
    support::wait_for("a SET through HAProxy", FAILOVER, || set_via_haproxy("one"));
    assert_eq!(read_at(&c, old, "via-haproxy").as_deref(), Some("one"), "it reached the primary");

    c.kill(old);
    let new = wait_endpoint_primary(&c, &others(&c, old), FAILOVER);
    support::wait_for("a SET through HAProxy after the failover", FAILOVER, || set_via_haproxy("two"));
    assert_eq!(read_at(&c, new, "via-haproxy").as_deref(), Some("two"), "it reached the new primary");
}

/// What health and metrics add to hot paths allocates nothing: counting a command by
/// family (with its latency and error), noting a peer's heartbeat, and recording an
/// fsync are atomics, locks and fixed buffers (measured with a counting allocator).
#[test]
fn counting_commands_heartbeats_and_fsyncs_does_not_allocate() {
    let m = Metrics::new();
    let arrivals = PeerArrivals::new(20.0);
    arrivals.heartbeat(2);
    let probe = FsyncProbe::default();
    let info = allocation_counter::measure(|| {
        for i in 0..10_000u64 {
            let family = family_index(["string", "hash", "generic", "nosuch"][(i % 4) as usize]);
            m.command(family, Duration::from_micros(i % 500), i % 7 == 0);
            arrivals.heartbeat(2);
            probe.record(Duration::from_micros(300), true);
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    let control = allocation_counter::measure(|| drop(std::hint::black_box(vec![0u8; 16])));
    assert_eq!(control.count_total, 1, "the counting allocator is in place");
    assert!(m.encode().contains("keepbit_commands_total{family=\"string\"} 2500"));
}
