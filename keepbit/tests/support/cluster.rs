//! `TestCluster`: N real `keepbit server` processes forming a cluster on loopback, with
//! kill -9, SIGSTOP/SIGCONT and restart by PID, and helpers to find the primary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::Value;

pub struct ClusterNode {
    pub id: u64,
    pub ip: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub config: PathBuf,
    pub child: Option<Child>,
}

impl ClusterNode {
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.ip, self.client_port)
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.ip, self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

pub struct TestCluster {
    pub nodes: Vec<ClusterNode>,
    pub dir: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A port that was free a moment ago on `ip`.
fn free_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

pub struct ClusterOptions<'a> {
    pub nodes: usize,
    /// One address per node; defaults to 127.0.0.1 for all.
    pub ips: Vec<String>,
    pub mode: &'a str,
    /// Extra lines for the [cluster] section.
    pub extra: &'a str,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        ClusterOptions { nodes: 3, ips: Vec::new(), mode: "active-passive", extra: "" }
    }
}

impl TestCluster {
    pub fn start(o: ClusterOptions) -> TestCluster {
        let dir = std::env::temp_dir().join(format!(
            "keepbit-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut nodes = Vec::new();
        for i in 0..o.nodes {
            let ip = o.ips.get(i).cloned().unwrap_or_else(|| "127.0.0.1".into());
            let (client_port, peer_port) = (free_port(&ip), free_port(&ip));
            let node_dir = dir.join(format!("node-{}", i + 1));
            std::fs::create_dir_all(&node_dir).expect("mkdir");
            nodes.push(ClusterNode {
                id: i as u64 + 1,
                ip,
                client_port,
                peer_port,
                config: node_dir.join("keepbit.toml"),
                child: None,
            });
        }
        let peers: Vec<String> = nodes
            .iter()
            .map(|n| {
                format!(
                    "  {{ id = {}, addr = \"{}:{}\", client_addr = \"{}:{}\" }},",
                    n.id, n.ip, n.peer_port, n.ip, n.client_port
                )
            })
            .collect();
        for n in &nodes {
            let text = format!(
                "bind = \"{ip}\"\nport = {port}\ndata_dir = {dir:?}\nlog_level = \"info\"\n\n[cluster]\nnode_id = {id}\nsecret = \"test-secret\"\nmode = \"{mode}\"\n{extra}\npeers = [\n{peers}\n]\n",
                ip = n.ip,
                port = n.client_port,
                dir = n.config.parent().expect("dir").display().to_string(),
                id = n.id,
                mode = o.mode,
                extra = o.extra,
                peers = peers.join("\n"),
            );
            std::fs::write(&n.config, text).expect("write config");
        }
        let mut c = TestCluster { nodes, dir };
        for i in 0..c.nodes.len() {
            c.start_node(i as u64 + 1);
        }
        c
    }

    fn node(&self, id: u64) -> &ClusterNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn start_node(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        assert!(n.child.is_none(), "node {id} already running");
        let log = std::fs::File::create(n.config.with_file_name("keepbit.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_keepbit"))
            .args(["server", "--config"])
            .arg(&n.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start keepbit server");
        n.child = Some(child);
    }

    /// kill -9, and reap the process.
    pub fn kill(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, id: u64, sig: &str) {
        let pid = self.node(id).pid().expect("running");
        let ok = Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill").success();
        assert!(ok, "kill {sig} {pid} failed");
    }

    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.start_node(id);
    }

    pub fn conn(&self, id: u64) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.node(id).url())?;
        client.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// The node that says it is primary (ROLE), among running nodes.
    pub fn primary(&self) -> Option<u64> {
        self.nodes.iter().filter(|n| n.child.is_some()).find_map(|n| {
            let mut con = self.conn(n.id).ok()?;
            con.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            let role: Value = redis::cmd("ROLE").query(&mut con).ok()?;
            match role {
                Value::Array(items) if items.first() == Some(&Value::BulkString(b"master".to_vec())) => Some(n.id),
                _ => None,
            }
        })
    }

    pub fn wait_primary(&self, deadline: Duration) -> u64 {
        let end = Instant::now() + deadline;
        loop {
            if let Some(p) = self.primary() {
                return p;
            }
            assert!(Instant::now() < end, "no primary within {deadline:?}; logs under {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `id` reports having applied at least `index` (INFO replication).
    pub fn wait_applied(&self, id: u64, index: u64, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            if self.applied(id).is_some_and(|a| a >= index) {
                return;
            }
            assert!(Instant::now() < end, "node {id} did not apply index {index} within {deadline:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn applied(&self, id: u64) -> Option<u64> {
        let mut con = self.conn(id).ok()?;
        let info: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.node(id).config.with_file_name("keepbit.log")).unwrap_or_default()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
