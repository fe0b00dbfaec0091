//! INFO, in Redis's section format.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::REDIS_VERSION;
use crate::cmd::args::lossy;
use crate::reply::Reply;
use crate::server::Server;

pub fn info(srv: &Server, sections: &[Bytes]) -> Reply {
    let all = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "keepbit", "keyspace"];
    let wanted: Vec<String> = if sections.is_empty() {
        all.iter().map(|s| s.to_string()).collect()
    } else {
        let names: Vec<String> = sections.iter().map(|s| lossy(s).to_lowercase()).collect();
        if names.iter().any(|n| n == "all" || n == "everything" || n == "default") {
            all.iter().map(|s| s.to_string()).collect()
        } else {
            names
        }
    };
    let mut out = String::new();
    for section in all.iter().filter(|a| wanted.iter().any(|w| w == *a)) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        info_section(srv, section, &mut out);
    }
    Reply::Verbatim(out)
}

fn kv(out: &mut String, k: &str, v: impl std::fmt::Display) {
    let _ = write!(out, "{k}:{v}\r\n");
}

/// `# Keepbit`: the health checks' states and lags, one `field:value` per line.
fn keepbit_section(srv: &Server, out: &mut String) {
    out.push_str("# Keepbit\r\n");
    let report = srv.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
    kv(out, "keepbit_role", crate::server::health::role_name(srv));
    kv(out, "keepbit_health", report.status.as_str());
    for c in &report.checks {
        let _ = write!(out, "keepbit_health_{}:{}\r\n", c.name, c.status.as_str());
    }
    if let Some(r) = &report.replication {
        kv(out, "keepbit_replication_lag_entries", r.entries);
        kv(out, "keepbit_replication_lag_seconds", format!("{:.3}", r.seconds));
    }
    if let Some(addr) = srv.config().admin_addr() {
        kv(out, "keepbit_admin_addr", addr);
    }
}

fn info_section(srv: &Server, section: &str, out: &mut String) {
    let node = srv;
    let cfg = node.config();
    let st = &node.stats;
    match section {
        "server" => {
            out.push_str("# Server\r\n");
            kv(out, "redis_version", REDIS_VERSION);
            kv(out, "keepbit_version", env!("CARGO_PKG_VERSION"));
            kv(out, "redis_mode", "standalone");
            kv(out, "os", std::env::consts::OS);
            kv(out, "arch_bits", 64);
            kv(out, "process_id", std::process::id());
            kv(out, "run_id", &node.run_id);
            kv(out, "tcp_port", cfg.port);
            kv(out, "server_time_usec", node.node.now_ms() * 1000);
            kv(out, "uptime_in_seconds", node.started.elapsed().as_secs());
            kv(out, "uptime_in_days", node.started.elapsed().as_secs() / 86400);
            kv(out, "executable", std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default());
        }
        "clients" => {
            out.push_str("# Clients\r\n");
            let clients = node.clients.all();
            kv(out, "connected_clients", clients.len());
            kv(out, "maxclients", cfg.maxclients);
            kv(out, "blocked_clients", clients.iter().filter(|c| c.blocked.load(Relaxed)).count());
            kv(out, "pubsub_clients", clients.iter().filter(|c| c.is_pubsub()).count());
        }
        "memory" => {
            out.push_str("# Memory\r\n");
            let rss = crate::memory::rss_bytes();
            kv(out, "used_memory", rss);
            kv(out, "used_memory_human", format!("{:.2}M", rss as f64 / 1048576.0));
            kv(out, "used_memory_rss", rss);
            kv(out, "maxmemory", srv.node.memory.max());
            kv(out, "maxmemory_policy", "noeviction");
        }
        "persistence" => {
            out.push_str("# Persistence\r\n");
            kv(out, "loading", 0);
            kv(out, "rdb_changes_since_last_save", 0);
            kv(out, "rdb_last_save_time", node.started_unix_s);
            kv(out, "aof_enabled", 0);
        }
        "stats" => {
            out.push_str("# Stats\r\n");
            kv(out, "total_connections_received", st.connections_received.load(Relaxed));
            kv(out, "total_commands_processed", st.commands_processed.load(Relaxed));
            kv(out, "total_net_input_bytes", st.net_input_bytes.load(Relaxed));
            kv(out, "total_net_output_bytes", st.net_output_bytes.load(Relaxed));
            kv(out, "rejected_connections", st.rejected_connections.load(Relaxed));
            kv(out, "expired_keys", st.expired_keys.load(Relaxed));
            kv(out, "evicted_keys", 0);
            kv(out, "pubsub_channels", node.pubsub.channels(None).len());
            kv(out, "pubsub_patterns", node.pubsub.numpat());
        }
        "replication" => {
            out.push_str("# Replication\r\n");
            super::super::replication::info_replication(srv, out);
        }
        "cpu" => out.push_str("# CPU\r\n"),
        "keepbit" => keepbit_section(srv, out),
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            for (i, (keys, expires)) in node.node.machine.keyspace_sizes().into_iter().enumerate() {
                if keys > 0 {
                    let _ = write!(out, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
        }
        _ => {}
    }
}
