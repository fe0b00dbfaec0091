//! The nemesis: carries out faults on a local cluster it started (signals by PID,
//! nftables for partitions), or on an operator's cluster through command templates.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use keepbit_resp::Frame;
use tokio::process::Child;

use super::scenario::{Fault, Target, CRASH_LOOP_TIMES, SLOW_DISK_DELAY_MS};
use crate::client::{call_once, text};
use crate::up::{self, UpOptions};

const NFT_TABLE: &str = "keepbit_drill";

pub struct LocalNode {
    pub id: u64,
    pub client_addr: String,
    pub ip: String,
    config: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// Where the drill's faults land.
pub enum Testbed {
    Local(LocalCluster),
    /// An operator's cluster: faults run `fault_command`, heals `heal_command`, with
    /// `{action}` (kill, pause, isolate, …) and `{node}` (client address) substituted.
    External {
        addrs: Vec<String>,
        fault_command: String,
        heal_command: String,
    },
}

pub struct LocalCluster {
    pub nodes: Vec<LocalNode>,
    exe: PathBuf,
    extra_args: Vec<String>,
    /// Extra environment of every node process (`KEEPBIT_FAULTS=1` for slow-disk faults).
    env: Vec<(String, String)>,
    partitioned: bool,
    /// The admin password `up::write_configs` stored (FAILOVER needs it).
    admin_password: String,
    /// When faults hit which nodes (`drill::gap`), taken after each step.
    hits: Vec<(Instant, Vec<u64>)>,
}

/// Runs a command, returning an error with its output if it fails.
async fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out =
        tokio::process::Command::new(cmd).args(args).output().await.with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        anyhow::bail!("{cmd} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// True if nftables can be used here (root, `nft` installed).
pub async fn partitions_available() -> bool {
    sh("nft", &["list", "tables"]).await.is_ok()
}

/// The client address of the node that says it is primary.
pub async fn primary_of(addrs: &[String]) -> Option<String> {
    up::find_primary(addrs).await
}

/// (term, primary node id) as reported by `addr`'s INFO replication.
pub async fn leadership(addr: &str) -> Option<(u64, Option<u64>, bool)> {
    let reply = call_once(addr, &["INFO", "replication"], Duration::from_millis(250)).await.ok()?;
    let info = text(&reply)?;
    let field = |k: &str| info.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string());
    let term = field("keepbit_term:")?.parse().ok()?;
    let me: u64 = field("keepbit_node_id:")?.parse().ok()?;
    let is_primary = field("role:").as_deref() == Some("master");
    Some((term, is_primary.then_some(me), is_primary))
}

impl LocalCluster {
    /// Starts the cluster's processes and waits for a primary.
    pub async fn start(
        opts: &UpOptions,
        exe: PathBuf,
        extra_args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<LocalCluster> {
        let configs = up::write_configs(opts)?;
        let mut nodes = Vec::new();
        for (id, config, client_addr) in configs {
            let log = config.with_file_name("keepbit.log");
            let child = up::spawn_env(&exe, &config, &log, &extra_args, &env)?;
            nodes.push(LocalNode { id, ip: opts.ip(id), client_addr, config, child: Some(child), paused: false });
        }
        let admin_password = std::fs::read_to_string(opts.data_dir.join(up::ADMIN_PASSWORD_FILE))?.trim().to_string();
        let c = LocalCluster { nodes, exe, extra_args, env, partitioned: false, admin_password, hits: Vec::new() };
        c.wait_primary(Duration::from_secs(30)).await?;
        Ok(c)
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_addr.clone()).collect()
    }

    fn up_addrs(&self) -> Vec<String> {
        self.nodes.iter().filter(|n| n.child.is_some() && !n.paused).map(|n| n.client_addr.clone()).collect()
    }

    pub async fn primary(&self) -> Option<u64> {
        let addr = primary_of(&self.up_addrs()).await?;
        self.nodes.iter().find(|n| n.client_addr == addr).map(|n| n.id)
    }

    pub async fn wait_primary(&self, deadline: Duration) -> anyhow::Result<u64> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(p) = self.primary().await {
                return Ok(p);
            }
            if Instant::now() > end {
                anyhow::bail!("no primary within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn node_mut(&mut self, id: u64) -> &mut LocalNode {
        &mut self.nodes[(id - 1) as usize]
    }

    async fn targets(&self, t: Target) -> Vec<u64> {
        let primary = self.primary().await;
        let up: Vec<u64> = self.nodes.iter().filter(|n| n.child.is_some() && !n.paused).map(|n| n.id).collect();
        match t {
            Target::Primary => primary.into_iter().collect(),
            Target::Standby => up.iter().rev().find(|&&id| Some(id) != primary).copied().into_iter().collect(),
            Target::Majority => {
                let need = self.nodes.len() / 2 + 1;
                let mut v: Vec<u64> = primary.into_iter().collect();
                v.extend(up.iter().filter(|&&id| Some(id) != primary).take(need.saturating_sub(v.len())));
                v
            }
        }
    }

    pub async fn kill(&mut self, id: u64) {
        let n = self.node_mut(id);
        if let Some(mut c) = n.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
        n.paused = false;
    }

    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let (exe, args, env) = (self.exe.clone(), self.extra_args.clone(), self.env.clone());
        let n = self.node_mut(id);
        if n.child.is_none() {
            n.child = Some(up::spawn_env(&exe, &n.config, &n.config.with_file_name("keepbit.log"), &args, &env)?);
        }
        Ok(())
    }

    async fn signal(&mut self, id: u64, sig: &str) -> anyhow::Result<()> {
        let pid = self.node_mut(id).child.as_ref().and_then(|c| c.id()).context("node not running")?;
        sh("kill", &[sig, &pid.to_string()]).await?;
        self.node_mut(id).paused = sig == "-STOP";
        Ok(())
    }

    /// Drops all traffic between the two groups, both directions.
    async fn partition(&mut self, a: &[u64], b: &[u64]) -> anyhow::Result<()> {
        if !self.partitioned {
            sh("nft", &["add", "table", "inet", NFT_TABLE]).await?;
            sh("nft", &["add", "chain", "inet", NFT_TABLE, "out", "{ type filter hook output priority 0 ; }"]).await?;
            self.partitioned = true;
        }
        for &x in a {
            for &y in b {
                let (ix, iy) = (self.node_mut(x).ip.clone(), self.node_mut(y).ip.clone());
                for (s, d) in [(&ix, &iy), (&iy, &ix)] {
                    sh("nft", &["add", "rule", "inet", NFT_TABLE, "out", "ip", "saddr", s, "ip", "daddr", d, "drop"])
                        .await?;
                }
            }
        }
        Ok(())
    }

    pub async fn heal_partitions(&mut self) -> anyhow::Result<()> {
        if self.partitioned {
            sh("nft", &["delete", "table", "inet", NFT_TABLE]).await?;
            self.partitioned = false;
        }
        Ok(())
    }

    /// Undoes every fault: resumes paused nodes, heals partitions, restarts killed nodes.
    pub async fn heal_all(&mut self) -> anyhow::Result<()> {
        self.heal_partitions().await?;
        for id in 1..=self.nodes.len() as u64 {
            if self.node_mut(id).paused {
                self.signal(id, "-CONT").await?;
            }
            self.restart(id)?;
        }
        Ok(())
    }

    /// Carries out one fault; returns a description for the timeline.
    pub async fn apply(&mut self, fault: Fault) -> anyhow::Result<String> {
        Ok(match fault {
            Fault::Kill(t) => {
                let ids = self.targets(t).await;
                self.hits.push((Instant::now(), ids.clone()));
                for &id in &ids {
                    self.kill(id).await;
                }
                format!("kill -9 {}", describe(&ids, t))
            }
            Fault::Restart => {
                let ids: Vec<u64> = self.nodes.iter().filter(|n| n.child.is_none()).map(|n| n.id).collect();
                for &id in &ids {
                    self.restart(id)?;
                }
                format!("restart nodes {ids:?}")
            }
            Fault::Pause(t) => {
                let ids = self.targets(t).await;
                self.hits.push((Instant::now(), ids.clone()));
                for &id in &ids {
                    self.signal(id, "-STOP").await?;
                }
                format!("SIGSTOP {}", describe(&ids, t))
            }
            Fault::Resume => {
                let ids: Vec<u64> = self.nodes.iter().filter(|n| n.paused).map(|n| n.id).collect();
                for &id in &ids {
                    self.signal(id, "-CONT").await?;
                }
                format!("SIGCONT nodes {ids:?}")
            }
            Fault::Isolate(t) => {
                let ids = self.targets(t).await;
                self.hits.push((Instant::now(), ids.clone()));
                let rest: Vec<u64> = self.nodes.iter().map(|n| n.id).filter(|id| !ids.contains(id)).collect();
                self.partition(&ids, &rest).await?;
                format!("isolate {}", describe(&ids, t))
            }
            Fault::Halves => {
                let primary = self.primary().await.unwrap_or(1);
                let other = self.nodes.iter().map(|n| n.id).find(|&id| id != primary).unwrap_or(2);
                let small = vec![primary, other];
                self.hits.push((Instant::now(), small.clone()));
                let big: Vec<u64> = self.nodes.iter().map(|n| n.id).filter(|id| !small.contains(id)).collect();
                self.partition(&small, &big).await?;
                format!("partition {small:?} | {big:?} (primary {primary} in the minority)")
            }
            Fault::Bridge => {
                let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
                let (a, bridge, b) = (&ids[..2], ids[2], &ids[3..]);
                self.partition(a, b).await?;
                format!("partition {a:?} | {b:?} bridged by node {bridge}")
            }
            Fault::Heal => {
                self.heal_partitions().await?;
                "heal partitions".into()
            }
            Fault::RollingRestart => {
                let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
                for id in ids {
                    self.hits.push((Instant::now(), vec![id]));
                    self.kill(id).await;
                    self.restart(id)?;
                    self.wait_rejoined(id, Duration::from_secs(20)).await?;
                }
                "rolling restart of every node".into()
            }
            Fault::Switchover => self.switchover().await?,
            Fault::SlowDisk(t) => {
                let ids = self.targets(t).await;
                self.hits.push((Instant::now(), ids.clone()));
                let delay = SLOW_DISK_DELAY_MS.to_string();
                for &id in &ids {
                    self.admin(id, &["KEEPBIT", "FAULT", "SET", "fsync_delay_ms", &delay]).await?;
                }
                format!("fsync_delay_ms {delay} on {}", describe(&ids, t))
            }
            Fault::ClearFaults => {
                let ids: Vec<u64> =
                    self.nodes.iter().filter(|n| n.child.is_some() && !n.paused).map(|n| n.id).collect();
                for &id in &ids {
                    self.admin(id, &["KEEPBIT", "FAULT", "CLEAR"]).await?;
                }
                format!("KEEPBIT FAULT CLEAR on nodes {ids:?}")
            }
            Fault::CrashLoop(t) => self.crash_loop(t).await?,
        })
    }

    /// Sends one admin command to node `id` (authenticated with the cluster's admin
    /// password); an error reply is an error.
    async fn admin(&self, id: u64, args: &[&str]) -> anyhow::Result<()> {
        let addr = &self.nodes[(id - 1) as usize].client_addr;
        let mut c = crate::client::Client::connect(addr, Duration::from_secs(2)).await?;
        c.call(&["AUTH", "admin", &self.admin_password]).await?;
        if let Frame::Error(e) = c.call(args).await? {
            anyhow::bail!("{} on node {id}: {}", args.join(" "), String::from_utf8_lossy(&e));
        }
        Ok(())
    }

    /// kill -9 the target and restart it [`CRASH_LOOP_TIMES`] times, each time as soon as
    /// its process is gone, letting it run 400 ms before the next kill.
    async fn crash_loop(&mut self, t: Target) -> anyhow::Result<String> {
        let ids = self.targets(t).await;
        for _ in 0..CRASH_LOOP_TIMES {
            self.hits.push((Instant::now(), ids.clone()));
            for &id in &ids {
                self.kill(id).await;
                self.restart(id)?;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Ok(format!("kill -9 and restart {} {CRASH_LOOP_TIMES} times", describe(&ids, t)))
    }

    /// FAILOVER on the primary, as `keepbit failover` sends it; returns once a new primary
    /// serves.
    async fn switchover(&self) -> anyhow::Result<String> {
        let old = self.primary().await.context("no primary to switch over from")?;
        let addr = &self.nodes[(old - 1) as usize].client_addr;
        let mut c = crate::client::Client::connect(addr, Duration::from_secs(5)).await?;
        c.call(&["AUTH", "admin", &self.admin_password]).await?;
        let started = Instant::now();
        if let Frame::Error(e) = c.call(&["FAILOVER", "TIMEOUT", "5000"]).await? {
            anyhow::bail!("FAILOVER on node {old}: {}", String::from_utf8_lossy(&e));
        }
        let took = started.elapsed();
        let new = self.primary().await.map_or("?".into(), |n| n.to_string());
        Ok(format!("switchover from node {old} to node {new} (FAILOVER answered in {took:?})"))
    }

    /// Waits until `id` answers as a member (primary or standby with a known primary).
    pub async fn wait_rejoined(&self, id: u64, deadline: Duration) -> anyhow::Result<()> {
        let addr = self.nodes[(id - 1) as usize].client_addr.clone();
        let end = Instant::now() + deadline;
        loop {
            if let Ok(Frame::Array(items)) = call_once(&addr, &["ROLE"], Duration::from_millis(300)).await {
                let role = items.first().and_then(text).unwrap_or_default();
                let connected = items.get(3).and_then(text).as_deref() == Some("connected");
                if role == "master" || connected {
                    return Ok(());
                }
            }
            if Instant::now() > end {
                anyhow::bail!("node {id} did not rejoin within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node has applied what the primary had committed when asked.
    pub async fn wait_settled(&self, deadline: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + deadline;
        let primary = self.wait_primary(deadline).await?;
        let target = applied(&self.nodes[(primary - 1) as usize].client_addr).await.unwrap_or(0);
        for n in &self.nodes {
            loop {
                if applied(&n.client_addr).await.is_some_and(|a| a >= target) {
                    break;
                }
                if Instant::now() > end {
                    anyhow::bail!("node {} did not catch up to index {target}", n.id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.heal_partitions().await;
        for id in 1..=self.nodes.len() as u64 {
            if self.node_mut(id).paused {
                let _ = self.signal(id, "-CONT").await;
            }
            self.kill(id).await;
        }
    }
}

fn describe(ids: &[u64], t: Target) -> String {
    let what = match t {
        Target::Primary => "primary",
        Target::Standby => "standby",
        Target::Majority => "majority",
    };
    match ids {
        [one] => format!("node {one} ({what})"),
        many => format!("nodes {many:?} ({what})"),
    }
}

/// The applied log index a node reports (INFO replication's master_repl_offset).
pub async fn applied(addr: &str) -> Option<u64> {
    let reply = call_once(addr, &["INFO", "replication"], Duration::from_millis(300)).await.ok()?;
    text(&reply)?.lines().find_map(|l| l.strip_prefix("master_repl_offset:")).and_then(|v| v.trim().parse().ok())
}

impl Testbed {
    pub fn addrs(&self) -> Vec<String> {
        match self {
            Testbed::Local(c) => c.addrs(),
            Testbed::External { addrs, .. } => addrs.clone(),
        }
    }

    pub async fn apply(&mut self, fault: Fault) -> anyhow::Result<String> {
        match self {
            Testbed::Local(c) => c.apply(fault).await,
            Testbed::External { addrs, fault_command, heal_command } => {
                let primary = primary_of(addrs).await.unwrap_or_default();
                let (action, template) = match fault {
                    Fault::Kill(_) => ("kill", &*fault_command),
                    Fault::Pause(_) => ("pause", &*fault_command),
                    Fault::Isolate(_) => ("isolate", &*fault_command),
                    Fault::Restart | Fault::Resume | Fault::Heal => ("heal", &*heal_command),
                    other => anyhow::bail!("{other:?} is not supported on an external cluster"),
                };
                let cmd = template.replace("{action}", action).replace("{node}", &primary);
                sh("sh", &["-c", &cmd]).await?;
                Ok(format!("{action} {primary}: {cmd}"))
            }
        }
    }

    pub async fn settle(&mut self, deadline: Duration) -> anyhow::Result<()> {
        match self {
            Testbed::Local(c) => {
                c.heal_all().await?;
                c.wait_settled(deadline).await
            }
            Testbed::External { addrs, .. } => {
                let end = Instant::now() + deadline;
                while primary_of(addrs).await.is_none() {
                    if Instant::now() > end {
                        anyhow::bail!("no primary after healing");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(())
            }
        }
    }

    /// When the faults since the last call hit which nodes (none known for an external
    /// cluster).
    pub fn take_hits(&mut self) -> Vec<(Instant, Vec<u64>)> {
        match self {
            Testbed::Local(c) => std::mem::take(&mut c.hits),
            Testbed::External { .. } => Vec::new(),
        }
    }

    pub fn node_ids(&self) -> BTreeSet<u64> {
        match self {
            Testbed::Local(c) => c.nodes.iter().map(|n| n.id).collect(),
            Testbed::External { addrs, .. } => (1..=addrs.len() as u64).collect(),
        }
    }
}
