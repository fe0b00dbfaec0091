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
}

impl UpOptions {
    pub fn new(nodes: usize, data_dir: PathBuf, base_port: u16, mode: &str) -> UpOptions {
        UpOptions { nodes, data_dir, base_port, mode: mode.into(), distinct_ips: false, cluster_extra: String::new() }
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

/// Writes each node's config under `data_dir/node-<id>/keepbit.toml`.
pub fn write_configs(o: &UpOptions) -> anyhow::Result<Vec<(u64, PathBuf, String)>> {
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
        let text = format!(
            "bind = \"{ip}\"\nport = {port}\ndata_dir = {:?}\n\n[cluster]\nnode_id = {id}\nsecret = \"keepbit-local\"\nmode = {:?}\n{}\npeers = [\n{}\n]\n",
            dir.display().to_string(),
            o.mode,
            o.cluster_extra,
            peers.join("\n")
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
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Ok(Command::new(exe)
        .args(["server", "--config"])
        .arg(config)
        .args(extra_args)
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
        println!("node {id}: pid {} on {addr} (log {})", child.id().unwrap_or(0), log.display());
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
