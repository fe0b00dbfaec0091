//! `keepbit up`: a local cluster for trying Keepbit — N node processes on 127.0.0.1,
//! a report of who is primary as it changes, and everything stopped on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::client::call_once;
use keepbit_resp::Frame;

pub struct UpOptions {
    pub nodes: usize,
    pub data_dir: PathBuf,
    /// Client ports are `base_port + i` (i from 1); peer ports add 10000.
    pub base_port: u16,
    pub mode: String,
    /// Node i listens on 127.0.0.(10+i) instead of 127.0.0.1, so that traffic between
    /// two nodes can be cut by address (drill partitions).
    pub distinct_ips: bool,
    /// Extra lines for each node's `[cluster]` section.
    pub cluster_extra: String,
    /// Each node serves the admin HTTP endpoints on client port + 20000.
    pub admin_http: bool,
    /// Extra sections (`[health]`, `[faults]`, …) appended to each node's config.
    pub sections_extra: String,
}

impl UpOptions {
    pub fn new(nodes: usize, data_dir: PathBuf, base_port: u16, mode: &str) -> UpOptions {
        UpOptions {
            nodes,
            data_dir,
            base_port,
            mode: mode.into(),
            distinct_ips: false,
            cluster_extra: String::new(),
            admin_http: false,
            sections_extra: String::new(),
        }
    }

    /// Node `id`'s admin HTTP port, when the admin port is on (and the port exists).
    pub fn admin_port(&self, id: u64) -> Option<u16> {
        let client = self.base_port.checked_add(id as u16)?;
        self.admin_http.then(|| client.checked_add(ADMIN_PORT_OFFSET)).flatten()
    }

    pub fn ip(&self, id: u64) -> String {
        if self.distinct_ips {
            format!("127.0.0.{}", 10 + id)
        } else {
            "127.0.0.1".into()
        }
    }
}

pub struct NodeProc {
    pub id: u64,
    pub client_addr: String,
    pub child: Child,
    pub exited: bool,
}

/// Each node of a local cluster refuses growing writes above this (1 GiB), so a runaway
/// client fills no machine.
const UP_MAXMEMORY_BYTES: u64 = 1 << 30;

/// Admin HTTP ports are client ports plus this.
const ADMIN_PORT_OFFSET: u16 = 20_000;

/// File under the data dir holding the local cluster's admin password.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";
/// File under the data dir holding the local cluster's peer secret.
const CLUSTER_SECRET_FILE: &str = "cluster-secret";

/// Reads the secret kept in `path`, or makes a random one and keeps it there (mode 0600),
/// so a restarted `keepbit up` keeps its passwords.
pub fn stored_secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let secret = text.trim().to_string();
        anyhow::ensure!(!secret.is_empty(), "{} is empty; delete it to make a new secret", path.display());
        return Ok(secret);
    }
    let secret: String = (0..16).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    Ok(secret)
}

/// Writes each node's config under `data_dir/node-<id>/keepbit.toml`.
pub fn write_configs(o: &UpOptions) -> anyhow::Result<Vec<(u64, PathBuf, String)>> {
    std::fs::create_dir_all(&o.data_dir).with_context(|| format!("cannot create {}", o.data_dir.display()))?;
    let admin = stored_secret(&o.data_dir.join(ADMIN_PASSWORD_FILE))?;
    let secret = stored_secret(&o.data_dir.join(CLUSTER_SECRET_FILE))?;
    let peers: Vec<String> = (1..=o.nodes as u64)
        .map(|id| {
            let port = o.base_port + id as u16;
            let ip = o.ip(id);
            format!("  {{ id = {id}, addr = \"{ip}:{}\", client_addr = \"{ip}:{port}\" }},", port + 10000)
        })
        .collect();
    let mut out = Vec::new();
    for id in 1..=o.nodes as u64 {
        let dir = o.data_dir.join(format!("node-{id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let port = o.base_port + id as u16;
        let ip = o.ip(id);
        let admin_port = o.admin_port(id).map_or(String::new(), |p| format!("admin_port = {p}\n"));
        let text = format!(
            "bind = \"{ip}\"\nport = {port}\ndata_dir = {:?}\nadmin_password = \"{admin}\"\nmaxmemory_bytes = {UP_MAXMEMORY_BYTES}\n{admin_port}\n[cluster]\nnode_id = {id}\nsecret = \"{secret}\"\nmode = {:?}\n{}\npeers = [\n{}\n]\n{}",
            dir.display().to_string(),
            o.mode,
            o.cluster_extra,
            peers.join("\n"),
            o.sections_extra
        );
        let path = dir.join("keepbit.toml");
        std::fs::write(&path, text)?;
        out.push((id, path, format!("{ip}:{port}")));
    }
    Ok(out)
}

/// Starts one `keepbit server` (appending to its log file).
pub fn spawn(exe: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    spawn_with(exe, config, log, &[])
}

pub fn spawn_with(exe: &Path, config: &Path, log: &Path, extra_args: &[String]) -> anyhow::Result<Child> {
    spawn_env(exe, config, log, extra_args, &[])
}

/// [`spawn_with`], with extra environment variables (a drill's `KEEPBIT_FAULTS=1`).
pub fn spawn_env(
    exe: &Path,
    config: &Path,
    log: &Path,
    extra_args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Ok(Command::new(exe)
        .args(["server", "--config"])
        .arg(config)
        .args(extra_args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?)
}

/// The client address of the current primary as reported by any node.
pub async fn find_primary(addrs: &[String]) -> Option<String> {
    for addr in addrs {
        let Ok(reply) = call_once(addr, &["ROLE"], Duration::from_millis(300)).await else { continue };
        if let Frame::Array(items) = reply {
            if matches!(items.first(), Some(Frame::Bulk(b)) if &b[..] == b"master") {
                return Some(addr.clone());
            }
        }
    }
    None
}

pub async fn run(o: UpOptions) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let configs = write_configs(&o)?;
    let mut procs = Vec::new();
    for (id, path, addr) in &configs {
        let log = path.with_file_name("keepbit.log");
        let child = spawn(&exe, path, &log)?;
        let ip = addr.rsplit_once(':').map_or("127.0.0.1", |a| a.0);
        let admin = o.admin_port(*id).map_or(String::new(), |p| format!(", admin http://{ip}:{p}"));
        println!("node {id}: pid {} on {addr}{admin} (log {})", child.id().unwrap_or(0), log.display());
        procs.push(NodeProc { id: *id, client_addr: addr.clone(), child, exited: false });
    }
    let addrs: Vec<String> = procs.iter().map(|p| p.client_addr.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let primary = loop {
        if let Some(p) = find_primary(&addrs).await {
            break p;
        }
        if Instant::now() > deadline {
            anyhow::bail!("no primary elected within 30 s; see the node logs under {}", o.data_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let port = |a: &str| a.rsplit(':').next().unwrap_or("").to_string();
    println!("\nKeepbit cluster of {} nodes is up; the primary is {primary}.", procs.len());
    println!("  connect:        redis-cli -p {}", port(&primary));
    println!("  discover:       redis-cli -p {} SENTINEL get-master-addr-by-name keepbit", port(&addrs[0]));
    let victim = procs.iter().find(|p| p.client_addr == primary).and_then(|p| p.child.id()).unwrap_or(0);
    println!("  watch failover: kill -9 {victim}   (the primary's pid; a standby takes over in well under a second)");
    println!("  status:         keepbit cluster status --node {}", addrs[0]);
    if let Some(p) = o.admin_port(1) {
        println!("  health:         curl http://127.0.0.1:{p}/health   (also /ready /primary /replica /metrics)");
    }
    println!(
        "  admin:          keepbit cluster add|remove … --admin-password-file {}",
        o.data_dir.join(ADMIN_PASSWORD_FILE).display()
    );
    println!("Ctrl-C stops every node.\n");

    let mut last = Some(primary);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {}
        }
        for p in procs.iter_mut() {
            if let (false, Ok(Some(status))) = (p.exited, p.child.try_wait()) {
                println!(
                    "node {} exited ({status}); restart it with: {} server --config {}",
                    p.id,
                    exe.display(),
                    o.data_dir.join(format!("node-{}", p.id)).join("keepbit.toml").display()
                );
                p.exited = true;
            }
        }
        let now = find_primary(&addrs).await;
        if now != last {
            match &now {
                Some(p) => println!("primary is now {p}"),
                None => println!("no primary (election in progress or no quorum)"),
            }
            last = now;
        }
    }
    println!("stopping {} nodes", procs.len());
    for p in procs.iter_mut() {
        if let Some(pid) = p.child.id() {
            // SIGTERM first for a clean shutdown; kill_on_drop covers the rest.
            let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
        }
    }
    for p in procs.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await;
        let _ = p.child.kill().await;
    }
    Ok(())
}
