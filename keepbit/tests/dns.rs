//! Member addresses given as DNS names: a cluster whose peer list names members by
//! `localhost:PORT` forms, elects a primary, replicates and reports the names to
//! clients as given; a host that is neither an IP nor a valid name is refused with a
//! clear error, in the config and in `KEEPBIT CLUSTER ADD`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::cluster::{ClusterOptions, TestCluster};

/// Long enough for an election on a loaded 2-core machine; failures report the logs.
const ELECTION: Duration = Duration::from_secs(15);
const CATCH_UP: Duration = Duration::from_secs(30);

/// Nodes 1 and 2 are listed by name (node 2 in capitals), node 3 by IP:
/// named nodes bind their peer port on every interface and dial without a source IP,
/// the IP node as ever. A write on the primary reaches every node, and every node
/// names the primary to Sentinel clients by the host its peer list gives.
#[test]
fn a_cluster_named_by_dns_elects_replicates_and_reports_names() {
    let c = TestCluster::start(ClusterOptions {
        hosts: vec!["localhost".into(), "LocalHost".into()],
        ..ClusterOptions::default()
    });
    let p = c.wait_settled(ELECTION);
    let primary_host = &c.node(p).host;
    let named = c.nodes.iter().filter(|n| n.host != n.ip).count();
    assert_eq!(named, 2, "two members are named by DNS");
    let reported = c.sentinel_primary(3).expect("node 3 answers SENTINEL");
    assert!(reported.starts_with(&format!("{primary_host}:")), "{reported} names primary {p} by {primary_host}");

    let mut con = c.conn(p).expect("connect to the primary");
    redis::cmd("SET").arg("dns-key").arg("dns-value").query::<()>(&mut con).expect("SET on the primary");
    let target = c.applied(p).expect("primary answers INFO");
    for id in c.ids() {
        c.wait_applied(id, target, CATCH_UP);
        let mut con = c.readonly_conn(id).expect("connect");
        let v: Option<String> = redis::cmd("GET").arg("dns-key").query(&mut con).expect("GET");
        assert_eq!(v.as_deref(), Some("dns-value"), "node {id} holds the write");
    }

    // ROLE on the primary lists each standby by its host and port as given.
    let (_, _, standbys): (String, i64, Vec<Vec<String>>) = redis::cmd("ROLE").query(&mut con).expect("ROLE");
    let mut listed: Vec<(String, String)> = standbys.iter().map(|s| (s[0].clone(), s[1].clone())).collect();
    let mut expected: Vec<(String, String)> =
        c.nodes.iter().filter(|n| n.id != p).map(|n| (n.host.clone(), n.client_port.to_string())).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "ROLE on primary {p}");

    redis::cmd("AUTH").arg("admin").arg(support::ADMIN_PASSWORD).query::<()>(&mut con).expect("AUTH admin");
    for (addr, client) in [("bad_host:7001", "localhost:7002"), ("localhost:7001", "[::1:7002")] {
        let err = redis::cmd("KEEPBIT")
            .arg(&["CLUSTER", "ADD", "4", addr, client])
            .query::<()>(&mut con)
            .expect_err("a bad host is refused");
        let bad = if addr.starts_with("bad") { addr } else { client };
        let msg = err.to_string();
        assert!(msg.contains(&format!("'{bad}' is not a host:port address")), "{msg}");
    }
    let status = c.status(p).expect("KEEPBIT CLUSTER STATUS");
    assert!(!status.contains("\n  4 "), "no member was added: {status}");
}

/// A config whose peer host is neither an IP nor a valid DNS name is refused before the
/// node starts, naming the setting and the address.
#[test]
fn a_config_with_a_bad_host_is_refused() {
    let dir = std::env::temp_dir().join(format!("keepbit-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("node.toml");
    let config = |host: &str| {
        format!(
            "data_dir = {:?}\n[cluster]\nnode_id = 1\nsecret = \"s\"\npeers = [\n  \
             {{ id = 1, addr = \"localhost:17001\", client_addr = \"localhost:16379\" }},\n  \
             {{ id = 2, addr = \"{host}:17001\", client_addr = \"127.0.0.2:16379\" }},\n]\n",
            dir.display().to_string()
        )
    };
    let check = |text: &str| {
        std::fs::write(&path, text).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_keepbit"))
            .args(["server", "--config"])
            .arg(&path)
            .arg("--check-config")
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run keepbit");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, output) = check(&config("keepbit-2.peers.example"));
    assert!(ok && output.contains("config ok"), "a DNS name is accepted: {output}");
    for host in ["bad_host", "", "-dash", "a..b"] {
        let (ok, output) = check(&config(host));
        assert!(!ok, "{host:?} is refused");
        let expected = format!("\"{host}:17001\" is not a host:port address");
        assert!(output.contains("cluster.peers.addr") && output.contains(&expected), "{host:?}: {output}");
        assert!(!output.contains("panicked"), "{output}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
