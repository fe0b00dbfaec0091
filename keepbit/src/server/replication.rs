//! What clients see of replication: ROLE, INFO replication, WAIT, the Sentinel discovery
//! subset (so Sentinel-aware client libraries follow failovers), and the `KEEPBIT CLUSTER`
//! admin command behind `keepbit cluster …`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Server;
use crate::cmd::args::{is, lossy, parse_i64};
use crate::config::host_port;
use crate::error::CmdError;
use crate::raft::role::RoleView;
use crate::raft::types::Member;
use crate::reply::Reply;

type Result<T> = std::result::Result<T, CmdError>;

/// A member's client address as (host, port) for ROLE, INFO and Sentinel replies: a name
/// as given, an IPv6 address without its brackets (as Redis reports it).
fn split_addr(addr: &str) -> (String, i64) {
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            (host.to_string(), port.parse().unwrap_or(0))
        }
        None => (addr.to_string(), 0),
    }
}

fn standbys(view: &RoleView) -> Vec<(u64, &Member)> {
    let leader = view.leader.as_ref().map(|l| l.0);
    view.members.iter().filter(|m| Some(m.0) != leader).map(|m| (m.0, &m.1)).collect()
}

pub fn role(srv: &Server) -> Reply {
    let Some(c) = srv.cluster.as_deref() else {
        return Reply::Array(vec![Reply::bulk("master"), Reply::Int(0), Reply::Array(vec![])]);
    };
    let view = c.role();
    if view.is_primary {
        let replicas = standbys(&view)
            .into_iter()
            .map(|(id, m)| {
                let (ip, port) = split_addr(&m.client_addr);
                let offset = view.matched.get(&id).copied().unwrap_or(0);
                Reply::Array(vec![Reply::bulk(ip), Reply::bulk(port.to_string()), Reply::bulk(offset.to_string())])
            })
            .collect();
        return Reply::Array(vec![Reply::bulk("master"), Reply::Int(view.last_applied as i64), Reply::Array(replicas)]);
    }
    let (ip, port, state) = match &view.leader {
        Some((_, m)) => {
            let (ip, port) = split_addr(&m.client_addr);
            (ip, port, "connected")
        }
        None => ("?".into(), 0, "connect"),
    };
    Reply::Array(vec![
        Reply::bulk("slave"),
        Reply::bulk(ip),
        Reply::Int(port),
        Reply::bulk(state),
        Reply::Int(view.last_applied as i64),
    ])
}

/// The `# Replication` section of INFO, in Redis's format; offsets are log indexes.
pub fn info_replication(srv: &Server, out: &mut String) {
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    let Some(c) = srv.cluster.as_deref() else {
        kv("role", &"master");
        kv("connected_slaves", &0);
        kv("master_replid", &srv.run_id);
        kv("master_repl_offset", &0);
        return;
    };
    let view = c.role();
    if view.is_primary {
        let replicas = standbys(&view);
        kv("role", &"master");
        kv("connected_slaves", &replicas.len());
        for (i, (id, m)) in replicas.iter().enumerate() {
            let (ip, port) = split_addr(&m.client_addr);
            let offset = view.matched.get(id).copied().unwrap_or(0);
            let lag = view.last_log_index.saturating_sub(offset);
            kv(&format!("slave{i}"), &format!("ip={ip},port={port},state=online,offset={offset},lag={lag}"));
        }
    } else {
        kv("role", &"slave");
        let (ip, port) = view.leader.as_ref().map(|l| split_addr(&l.1.client_addr)).unwrap_or(("?".into(), 0));
        kv("master_host", &ip);
        kv("master_port", &port);
        kv("master_link_status", &if view.leader.is_some() { "up" } else { "down" });
        kv("slave_repl_offset", &view.last_applied);
        kv("slave_read_only", &1);
        kv("connected_slaves", &0);
    }
    kv("keepbit_node_id", &c.id);
    kv("keepbit_term", &view.term);
    kv("keepbit_commit_index", &view.committed);
    kv("keepbit_snapshot_index", &view.snapshot_index);
    kv("keepbit_purged_index", &view.purged_index);
    kv("master_failover_state", &super::admin::failover::state(srv));
    kv("master_replid", &format!("{:040x}", view.term));
    kv("master_repl_offset", &view.last_applied);
}

/// WAIT numreplicas timeout: how many standbys hold everything this primary has logged
/// (which includes the client's last write).
pub async fn wait(srv: &Server, a: &[Bytes]) -> Result<Reply> {
    let wanted = parse_i64(&a[1])?;
    let timeout_ms = parse_i64(&a[2])?;
    if timeout_ms < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    let Some(c) = srv.cluster.as_deref() else { return Ok(Reply::Int(0)) };
    if !c.is_primary() {
        return Err(CmdError::err("WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."));
    }
    let target = c.role().last_log_index;
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    loop {
        let view = c.role();
        let n =
            standbys(&view).iter().filter(|(id, _)| view.matched.get(id).is_some_and(|&m| m >= target)).count() as i64;
        if n >= wanted || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Reply::Int(n));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A Sentinel state record: a map under RESP3 (as Redis answers, and as redis-py's
/// RESP3 parser requires), a flat field/value array under RESP2.
fn record(pairs: Vec<(&'static str, String)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (Reply::bulk(k), Reply::bulk(v))).collect())
}

/// The subset of Sentinel that discovery clients use, answered by every node.
pub async fn sentinel(srv: &Server, a: &[Bytes]) -> Result<Reply> {
    let sub = lossy(&a[1]).to_lowercase();
    let Some(c) = srv.cluster.as_deref() else {
        return Err(CmdError::err("this node is not part of a cluster; there is no primary to discover"));
    };
    let name = &c.config.name;
    let mut view = c.role();
    if ["get-master-addr-by-name", "masters", "master"].contains(&sub.as_str()) {
        view.leader = c.confirmed_primary().await;
    }
    let matches_name = |i: usize| a.get(i).is_some_and(|n| lossy(n) == *name);
    let master = |view: &RoleView| -> Option<Reply> {
        let (_, m) = view.leader.as_ref()?;
        let (ip, port) = split_addr(&m.client_addr);
        let quorum = view.members.iter().filter(|m| m.2).count() / 2 + 1;
        Some(record(vec![
            ("name", name.clone()),
            ("ip", ip),
            ("port", port.to_string()),
            ("runid", format!("{:040x}", view.term)),
            ("flags", "master".into()),
            ("num-slaves", standbys(view).len().to_string()),
            ("num-other-sentinels", view.members.len().saturating_sub(1).to_string()),
            ("quorum", quorum.to_string()),
            ("config-epoch", view.term.to_string()),
        ]))
    };
    match sub.as_str() {
        "get-master-addr-by-name" => {
            if a.len() != 3 {
                return Err(CmdError::WrongArity("sentinel|get-master-addr-by-name".into()));
            }
            if !matches_name(2) {
                return Ok(Reply::NilArray);
            }
            Ok(match &view.leader {
                Some((_, m)) => {
                    let (ip, port) = split_addr(&m.client_addr);
                    Reply::bulks([Bytes::from(ip), Bytes::from(port.to_string())])
                }
                None => Reply::NilArray,
            })
        }
        "masters" => Ok(Reply::Array(master(&view).into_iter().collect())),
        "master" => {
            if !matches_name(2) {
                return Err(CmdError::err("No such master with that name"));
            }
            master(&view).ok_or_else(|| CmdError::err("No such master with that name"))
        }
        "replicas" | "slaves" => {
            if !matches_name(2) {
                return Err(CmdError::err("No such master with that name"));
            }
            let (mip, mport) = view.leader.as_ref().map(|l| split_addr(&l.1.client_addr)).unwrap_or(("?".into(), 0));
            Ok(Reply::Array(
                standbys(&view)
                    .into_iter()
                    .map(|(id, m)| {
                        let (ip, port) = split_addr(&m.client_addr);
                        record(vec![
                            ("name", m.client_addr.clone()),
                            ("ip", ip),
                            ("port", port.to_string()),
                            ("runid", format!("{id:040x}")),
                            ("flags", "slave".into()),
                            ("master-host", mip.clone()),
                            ("master-port", mport.to_string()),
                            ("master-link-status", "ok".into()),
                            ("slave-repl-offset", view.matched.get(&id).copied().unwrap_or(0).to_string()),
                        ])
                    })
                    .collect(),
            ))
        }
        "sentinels" => {
            if !matches_name(2) {
                return Err(CmdError::err("No such master with that name"));
            }
            Ok(Reply::Array(
                view.members
                    .iter()
                    .filter(|m| m.0 != c.id)
                    .map(|(id, m, _)| {
                        let (ip, port) = split_addr(&m.client_addr);
                        record(vec![
                            ("name", format!("{id:040x}")),
                            ("ip", ip),
                            ("port", port.to_string()),
                            ("runid", format!("{id:040x}")),
                            ("flags", "sentinel".into()),
                        ])
                    })
                    .collect(),
            ))
        }
        "myid" => Ok(Reply::bulk(format!("{:040x}", c.id))),
        _ => Err(CmdError::UnknownSubcommand { cmd: "SENTINEL".into(), sub: lossy(&a[1]) }),
    }
}

/// `KEEPBIT HEALTH` (each check with its reason),
/// `KEEPBIT CLUSTER STATUS | ADD <id> <peer-addr> <client-addr> | REMOVE <id>`, and
/// `KEEPBIT EVENTS [COUNT n]` (the failover journal, `admin::events`), and the test-only
/// `KEEPBIT FAULT SET <name> <value> | CLEAR` (`admin::fault`).
pub async fn keepbit_admin(srv: &Server, a: &[Bytes]) -> Result<Reply> {
    if a.len() == 2 && is(&a[1], "health") {
        return Ok(Reply::Verbatim(srv.health.lock().unwrap_or_else(|e| e.into_inner()).text()));
    }
    if a.len() >= 2 && is(&a[1], "events") {
        return super::admin::events(srv, a);
    }
    if a.len() >= 2 && is(&a[1], "fault") {
        return super::admin::fault(&a[2..]);
    }
    if !(a.len() >= 3 && is(&a[1], "cluster")) {
        return Err(CmdError::Syntax);
    }
    let Some(c) = srv.cluster.as_deref() else {
        return Err(CmdError::err("this node is not part of a cluster"));
    };
    let sub = lossy(&a[2]).to_lowercase();
    match (sub.as_str(), &a[3..]) {
        ("status", []) => Ok(Reply::Verbatim(status_text(c.id, &c.role()))),
        ("add", [id, addr, client_addr]) => {
            let id = parse_i64(id)
                .ok()
                .filter(|&i| i > 0)
                .ok_or_else(|| CmdError::err("node id must be a positive integer"))? as u64;
            for x in [addr, client_addr] {
                host_port(&lossy(x))
                    .map_err(|why| CmdError::err(format!("'{}' is not a host:port address: {why}", lossy(x))))?;
            }
            Ok(match c.add_node(id, Member::new(lossy(addr), lossy(client_addr))).await {
                Ok(()) => Reply::Ok,
                Err(e) => e.to_reply(),
            })
        }
        ("remove", [id]) => {
            let id = parse_i64(id)
                .ok()
                .filter(|&i| i > 0)
                .ok_or_else(|| CmdError::err("node id must be a positive integer"))? as u64;
            Ok(match c.remove_node(id).await {
                Ok(()) => Reply::Ok,
                Err(e) => e.to_reply(),
            })
        }
        _ => Err(CmdError::Syntax),
    }
}

pub fn status_text(me: u64, v: &RoleView) -> String {
    let mut out = String::new();
    let leader = v.leader.as_ref().map(|l| l.0);
    let _ = writeln!(out, "term: {}", v.term);
    let _ = writeln!(out, "leader: {}", leader.map_or("none".into(), |l| l.to_string()));
    let _ = writeln!(
        out,
        "this node: {me} (commit index {}, applied index {}, last log index {})",
        v.committed, v.last_applied, v.last_log_index
    );
    let _ = writeln!(out, "members:");
    for (id, m, voter) in &v.members {
        let role = if Some(*id) == leader {
            "primary"
        } else if *voter {
            "standby"
        } else {
            "learner"
        };
        let lag =
            v.matched.get(id).map(|&mi| format!(" lag={}", v.last_log_index.saturating_sub(mi))).unwrap_or_default();
        let _ = writeln!(out, "  {id} {role} peer={} clients={}{lag}", m.addr, m.client_addr);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_addresses_split_into_host_and_port() {
        for (addr, host, port) in [
            ("127.0.0.1:6379", "127.0.0.1", 6379),
            ("[::1]:6380", "::1", 6380),
            ("[fe80::1:2]:7000", "fe80::1:2", 7000),
            ("keepbit-0.keepbit-peers.ns.svc.cluster.local:6379", "keepbit-0.keepbit-peers.ns.svc.cluster.local", 6379),
            ("localhost:1", "localhost", 1),
        ] {
            assert_eq!(super::split_addr(addr), (host.to_string(), port), "{addr}");
        }
    }
}
