//! `TestCluster`: N real `keepbit server` processes forming a cluster on loopback, with
//! kill -9, SIGSTOP/SIGCONT and restart by PID, and helpers to find the primary.
//!
//! Every process is started here and stopped by PID in `Drop` (after a SIGCONT, so a
//! paused node dies too). Each node's log (stderr) is appended to across restarts in
//! `<dir>/node-<id>/keepbit.log`; the directory is kept when a test panics.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Value;

/// Client connections made by the harness give up after this long, so a paused node
/// cannot hang a test.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ClusterNode {
    pub id: u64,
    pub ip: String,
    /// What the peer list calls this node (its `addr` and `client_addr` hosts): its ip,
    /// or a DNS name resolving to it.
    pub host: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// The admin HTTP port (`admin_port`), on every test node.
    pub admin_port: u16,
    pub config: PathBuf,
    pub child: Option<Child>,
    /// SIGSTOPped and not yet continued.
    pub stopped: AtomicBool,
    /// Length of the log file when the current process started.
    log_offset: usize,
    /// `priority` in the peer list; unset: not written (the default, 1).
    pub priority: Option<u32>,
}

impl ClusterNode {
    /// The client address as the peer list gives it (and Sentinel reports it).
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }

    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.ip, self.client_port)
    }

    /// The admin HTTP server's address, `ip:port`.
    pub fn admin_addr(&self) -> String {
        format!("{}:{}", self.ip, self.admin_port)
    }

    /// The admin HTTP server's URL, `http://ip:port`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr())
    }

    /// `GET path` on the admin port: (status, body), or `None` when it does not answer.
    pub fn http(&self, path: &str) -> Option<(u16, String)> {
        super::http_get(&self.admin_addr(), path)
    }

    /// A sample of `/metrics`: the value on the line that starts with `series `; `None`
    /// when the node does not answer or has no such series.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http("/metrics")?;
        body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn log_path(&self) -> PathBuf {
        self.config.with_file_name("keepbit.log")
    }

    fn peer_line(&self) -> String {
        let priority = self.priority.map_or(String::new(), |p| format!(", priority = {p}"));
        let (id, addr, client) = (self.id, self.peer_addr(), self.client_addr());
        format!("  {{ id = {id}, addr = \"{addr}\", client_addr = \"{client}\"{priority} }},")
    }
}

pub struct TestCluster {
    pub nodes: Vec<ClusterNode>,
    pub dir: PathBuf,
    mode: String,
    extra: String,
    /// Extra top-level lines per node (index = id - 1).
    top: Vec<String>,
    /// (node, MiB): that node's Raft directory is a private tmpfs of that size.
    small_disk: Option<(u64, u64)>,
    /// Environment variables every node starts with.
    env: Vec<(String, String)>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Ports handed to nodes lie below Linux's ephemeral range (32768+), so an outgoing
/// connection cannot take a node's port between this choice and the node's bind.
const PORTS: std::ops::Range<u32> = 20_000..32_768;

/// A port that was free a moment ago on `ip`, and never handed out before by this test
/// process: the kernel may offer a just-released port again, and two nodes given the
/// same port fail to start (or, as peers, receive each other's messages).
fn free_port(ip: &str) -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    // Start somewhere different in every process, so parallel test binaries rarely meet.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..PORTS.len() {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (PORTS.start + seed.wrapping_add(i.wrapping_mul(104_729)) % PORTS.len() as u32) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) && std::net::TcpListener::bind((ip, port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port on {ip} in {PORTS:?}");
}

pub struct ClusterOptions<'a> {
    pub nodes: usize,
    /// One address per node; defaults to 127.0.0.1 for all.
    pub ips: Vec<String>,
    /// A DNS name per node (resolving to its ip) that the peer list uses instead of the
    /// ip; a node without an entry is listed by ip.
    pub hosts: Vec<String>,
    pub mode: &'a str,
    /// Extra lines for the [cluster] section.
    pub extra: &'a str,
    /// (node, MiB): give that node a Raft directory on a tmpfs of that size, mounted in
    /// a mount namespace of its own (needs root and `unshare`), so its disk fills up.
    pub small_disk: Option<(u64, u64)>,
    /// Extra top-level lines (before [cluster]), one entry per node in order; a node
    /// without an entry gets none.
    pub top: Vec<String>,
    /// Environment variables every node starts with (`KEEPBIT_FAULTS=1`).
    pub env: &'a [(&'a str, &'a str)],
    /// `priority` per node in order, written into every peer list; a node without an
    /// entry gets none (priority 1).
    pub priorities: Vec<u32>,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            ips: Vec::new(),
            hosts: Vec::new(),
            mode: "active-passive",
            extra: "",
            small_disk: None,
            top: Vec::new(),
            env: &[],
            priorities: Vec::new(),
        }
    }
}

/// A node's answer to ROLE: "master" or "slave".
pub fn role_of(con: &mut redis::Connection) -> Option<String> {
    let role: Value = redis::cmd("ROLE").query(con).ok()?;
    match role {
        Value::Array(items) => match items.first() {
            Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// Election timing for test clusters. Up to a dozen three-node clusters share two cores
/// while the suite runs, so the production defaults (heartbeat 20 ms, elections after
/// 60-120 ms, measured by bench/failover.py) would see starved heartbeats turn into
/// elections that tests asserting "no write fails" cannot tell from bugs. Tests that set
/// their own timing in `extra` keep it.
fn timing(extra: &str) -> &'static str {
    if extra.contains("heartbeat_ms") || extra.contains("election_timeout") {
        ""
    } else {
        "heartbeat_ms = 50\nelection_timeout_min_ms = 150\nelection_timeout_max_ms = 300\n"
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
        let mut c = TestCluster {
            nodes: Vec::new(),
            dir,
            mode: o.mode.to_string(),
            extra: o.extra.to_string(),
            top: o.top,
            small_disk: o.small_disk,
            env: o.env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        for i in 0..o.nodes {
            let ip = o.ips.get(i).cloned().unwrap_or_else(|| "127.0.0.1".into());
            let id = c.new_node(ip);
            if let Some(host) = o.hosts.get(i) {
                c.nodes[id as usize - 1].host = host.clone();
            }
            c.nodes[id as usize - 1].priority = o.priorities.get(i).copied();
        }
        let peers: Vec<String> = c.nodes.iter().map(ClusterNode::peer_line).collect();
        for i in 0..c.nodes.len() {
            c.write_config(i as u64 + 1, &peers, "");
        }
        for i in 0..c.nodes.len() {
            c.start_node(i as u64 + 1);
        }
        c
    }

    fn new_node(&mut self, ip: String) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let (client_port, peer_port, admin_port) = (free_port(&ip), free_port(&ip), free_port(&ip));
        let node_dir = self.dir.join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir).expect("mkdir");
        self.nodes.push(ClusterNode {
            id,
            host: ip.clone(),
            ip,
            client_port,
            peer_port,
            admin_port,
            config: node_dir.join("keepbit.toml"),
            child: None,
            stopped: AtomicBool::new(false),
            log_offset: 0,
            priority: None,
        });
        id
    }

    fn write_config(&self, id: u64, peers: &[String], more: &str) {
        let n = self.node(id);
        let text = format!(
            "bind = \"{ip}\"\nport = {port}\nadmin_port = {admin_port}\ndata_dir = {dir:?}\nlog_level = \"info\"\nadmin_password = \"{admin}\"\n{top}\n\n[cluster]\nnode_id = {id}\nsecret = \"test-secret\"\nmode = \"{mode}\"\n{timing}{extra}\n{more}\npeers = [\n{peers}\n]\n",
            ip = n.ip,
            port = n.client_port,
            admin_port = n.admin_port,
            admin = super::ADMIN_PASSWORD,
            dir = n.config.parent().expect("dir").display().to_string(),
            id = n.id,
            mode = self.mode,
            extra = self.extra,
            timing = timing(&self.extra),
            peers = peers.join("\n"),
            top = self.top.get(id as usize - 1).map_or("", String::as_str),
        );
        std::fs::write(&n.config, text).expect("write config");
    }

    /// Configures one more node (not started) that lists every node plus itself and
    /// joins the running cluster instead of forming one (`join = true`): it becomes a
    /// member only through `keepbit cluster add`.
    pub fn add_joining_node(&mut self, ip: &str) -> u64 {
        let id = self.new_node(ip.to_string());
        let peers: Vec<String> = self.nodes.iter().map(ClusterNode::peer_line).collect();
        self.write_config(id, &peers, "join = true");
        id
    }

    pub fn node(&self, id: u64) -> &ClusterNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Nodes with a process that is running (not killed, not paused).
    pub fn live(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some() && !n.stopped.load(Ordering::Relaxed)).map(|n| n.id).collect()
    }

    pub fn client_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(ClusterNode::client_addr).collect()
    }

    /// The node whose client address is `addr`.
    pub fn id_of(&self, addr: &str) -> Option<u64> {
        self.nodes.iter().find(|n| n.client_addr() == addr).map(|n| n.id)
    }

    pub fn start_node(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        assert!(n.child.is_none(), "node {id} already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(n.log_path()).expect("log file");
        n.log_offset = log.metadata().map_or(0, |m| m.len() as usize);
        let exe = env!("CARGO_BIN_EXE_keepbit");
        let mut cmd = match self.small_disk {
            Some((node, mib)) if node == id => {
                let raft_dir = n.config.with_file_name("raft");
                std::fs::create_dir_all(&raft_dir).expect("raft dir");
                // unshare execs the shell, which execs keepbit: the PID stays the node's.
                let mut c = Command::new("unshare");
                let script = format!("mount -t tmpfs -o size={mib}m tmpfs \"$0\" && exec \"$@\"");
                c.args(["-m", "sh", "-c", &script]).arg(&raft_dir).arg(exe);
                c
            }
            _ => Command::new(exe),
        };
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["server", "--config"])
            .arg(&n.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start keepbit server");
        n.child = Some(child);
        n.stopped.store(false, Ordering::Relaxed);
    }

    /// kill -9, and reap the process.
    pub fn kill(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        n.stopped.store(false, Ordering::Relaxed);
    }

    /// Sends a signal by PID: "-STOP" pauses the node, "-CONT" resumes it.
    pub fn signal(&self, id: u64, sig: &str) {
        let pid = self.node(id).pid().expect("running");
        let ok = Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill").success();
        assert!(ok, "kill {sig} {pid} failed");
        match sig {
            "-STOP" => self.node(id).stopped.store(true, Ordering::Relaxed),
            "-CONT" => self.node(id).stopped.store(false, Ordering::Relaxed),
            _ => {}
        }
    }

    /// Nodes whose process ended on its own (a crash or abort), with how it ended.
    pub fn exited(&mut self) -> Vec<(u64, std::process::ExitStatus)> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(status) = n.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                out.push((n.id, status));
            }
        }
        out
    }

    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.start_node(id);
    }

    /// A connection to node `id` whose reads and writes time out.
    pub fn conn(&self, id: u64) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.node(id).url())?;
        let con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    /// A connection to node `id` that may read there although it is a standby.
    pub fn readonly_conn(&self, id: u64) -> redis::RedisResult<redis::Connection> {
        let mut con = self.conn(id)?;
        redis::cmd("READONLY").query::<()>(&mut con)?;
        Ok(con)
    }

    /// What node `id` answers to ROLE, if it answers.
    pub fn role(&self, id: u64) -> Option<String> {
        if self.node(id).stopped.load(Ordering::Relaxed) {
            return None;
        }
        let mut con = self.conn(id).ok()?;
        con.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        role_of(&mut con)
    }

    /// The node that says it is primary (ROLE), among running nodes.
    pub fn primary(&self) -> Option<u64> {
        self.live().into_iter().find(|&id| self.role(id).as_deref() == Some("master"))
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

    /// Waits for a primary that every live node agrees on (SENTINEL discovery names it
    /// everywhere), so a client may start without meeting an election.
    pub fn wait_settled(&self, deadline: Duration) -> u64 {
        let end = Instant::now() + deadline;
        loop {
            if let Some(p) = self.primary() {
                let addr = self.node(p).client_addr();
                if self.live().iter().all(|&id| self.sentinel_primary(id).as_deref() == Some(addr.as_str())) {
                    return p;
                }
            }
            assert!(Instant::now() < end, "no settled primary within {deadline:?}; logs under {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The primary's client address as node `id` reports it to Sentinel clients.
    pub fn sentinel_primary(&self, id: u64) -> Option<String> {
        let mut con = self.conn(id).ok()?;
        let addr: Option<(String, String)> =
            redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg("keepbit").query(&mut con).ok()?;
        addr.map(|(ip, port)| format!("{ip}:{port}"))
    }

    /// Waits until `id` reports having applied at least `index` (INFO replication).
    pub fn wait_applied(&self, id: u64, index: u64, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            if self.applied(id).is_some_and(|a| a >= index) {
                return;
            }
            assert!(
                Instant::now() < end,
                "node {id} did not apply index {index} within {deadline:?} (at {:?}); logs under {}",
                self.applied(id),
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `primary`'s log has stopped growing for `quiet` and every live node has
    /// applied all of it (start-up entries such as the failover journal's are in), so which
    /// standbys are caught up cannot change under the test.
    pub fn wait_log_quiet(&self, primary: u64, quiet: Duration, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            let index = self.applied(primary).unwrap_or(0);
            for id in self.live() {
                self.wait_applied(id, index, end.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(quiet);
            if self.applied(primary) == Some(index) {
                return;
            }
            assert!(Instant::now() < end, "node {primary}'s log kept growing for {deadline:?}");
        }
    }

    pub fn applied(&self, id: u64) -> Option<u64> {
        self.info_field(id, "master_repl_offset")
    }

    /// A numeric field of INFO replication on node `id`.
    pub fn info_field(&self, id: u64, field: &str) -> Option<u64> {
        let mut con = self.conn(id).ok()?;
        let info: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.trim().parse().ok())
    }

    /// `KEEPBIT CLUSTER STATUS` as node `id` reports it.
    pub fn status(&self, id: u64) -> Option<String> {
        let mut con = self.conn(id).ok()?;
        redis::cmd("KEEPBIT").arg("CLUSTER").arg("STATUS").query(&mut con).ok()
    }

    /// Everything node `id` has logged, across restarts.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.node(id).log_path()).unwrap_or_default()
    }

    /// What node `id` has logged since its current process started.
    pub fn log_since_start(&self, id: u64) -> String {
        let log = self.log(id);
        log.get(self.node(id).log_offset..).unwrap_or_default().to_string()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                // Only a process not yet reaped still owns its PID: never signal a reused one.
                if matches!(c.try_wait(), Ok(None)) {
                    let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("cluster logs kept under {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
