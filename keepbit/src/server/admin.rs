//! Server introspection and administration: CLIENT, COMMAND, INFO, CONFIG, ROLE,
//! LASTSAVE and PUBSUB, in Redis's formats.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::session::Session;
use crate::cmd::args::{is, lossy, parse_i64};
use crate::cmd::{self, flags, Spec};
use crate::config::Config;
use crate::error::CmdError;
use crate::glob;
use crate::reply::Reply;

/// The Redis version Keepbit's commands and replies follow.
pub const REDIS_VERSION: &str = "7.2.4";

type Result<T> = std::result::Result<T, CmdError>;

pub fn valid_client_name(name: &[u8]) -> Result<String> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err("Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(lossy(name))
}

fn sub_arity(cmd: &str, sub: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(CmdError::WrongArity(format!("{cmd}|{sub}")))
    }
}

fn unknown_sub(cmd: &str, sub: &[u8]) -> CmdError {
    CmdError::UnknownSubcommand { cmd: cmd.to_uppercase(), sub: lossy(sub) }
}

fn on_off(arg: &[u8]) -> Result<()> {
    if is(arg, "on") || is(arg, "off") {
        Ok(())
    } else {
        Err(CmdError::Syntax)
    }
}

pub fn client(s: &mut Session, a: &[Bytes]) -> Result<Reply> {
    let sub = lossy(&a[1]).to_lowercase();
    let n = a.len();
    match sub.as_str() {
        "id" => {
            sub_arity("client", &sub, n == 2)?;
            Ok(Reply::Int(s.client.id as i64))
        }
        "setname" => {
            sub_arity("client", &sub, n == 3)?;
            let name = valid_client_name(&a[2])?;
            *s.client.name.lock().unwrap_or_else(|e| e.into_inner()) = name;
            Ok(Reply::Ok)
        }
        "getname" => {
            sub_arity("client", &sub, n == 2)?;
            let name = s.client.name();
            Ok(if name.is_empty() { Reply::Nil } else { Reply::bulk(name) })
        }
        "info" => {
            sub_arity("client", &sub, n == 2)?;
            Ok(Reply::Verbatim(format!("{}\n", s.client.info_line())))
        }
        "list" => client_list(s, &a[2..]),
        "kill" => client_kill(s, &a[2..]),
        "setinfo" => {
            sub_arity("client", &sub, n == 4)?;
            let target = if is(&a[2], "lib-name") {
                &s.client.lib_name
            } else if is(&a[2], "lib-ver") {
                &s.client.lib_ver
            } else {
                return Err(CmdError::err(format!("Unrecognized option '{}'", lossy(&a[2]))));
            };
            *target.lock().unwrap_or_else(|e| e.into_inner()) = valid_client_name(&a[3])?;
            Ok(Reply::Ok)
        }
        "no-evict" | "no-touch" => {
            sub_arity("client", &sub, n == 3)?;
            on_off(&a[2])?;
            Ok(Reply::Ok)
        }
        "help" => Ok(cmd::help_reply(&[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "ID",
            "INFO",
            "KILL <ip:port> | [ID <id>] [ADDR <ip:port>] [LADDR <ip:port>] [SKIPME yes|no] [MAXAGE <s>]",
            "LIST [TYPE (NORMAL|PUBSUB)] [ID <id> ...]",
            "NO-EVICT (ON|OFF)",
            "NO-TOUCH (ON|OFF)",
            "SETINFO <option> <value>",
            "SETNAME <name>",
            "HELP",
        ])),
        _ => Err(unknown_sub("client", &a[1])),
    }
}

fn client_list(s: &Session, opts: &[Bytes]) -> Result<Reply> {
    let mut clients = s.node.clients.all();
    match opts {
        [] => {}
        [t, kind] if is(t, "type") => {
            let kind = lossy(kind).to_lowercase();
            match kind.as_str() {
                "normal" => clients.retain(|c| !c.is_pubsub()),
                "pubsub" => clients.retain(|c| c.is_pubsub()),
                "master" | "replica" | "slave" => clients.clear(),
                _ => return Err(CmdError::err(format!("Unknown client type '{kind}'"))),
            }
        }
        [id, ids @ ..] if is(id, "id") && !ids.is_empty() => {
            let wanted = ids
                .iter()
                .map(|i| parse_i64(i).map_err(|_| CmdError::err("Invalid client ID")))
                .collect::<Result<Vec<_>>>()?;
            clients.retain(|c| wanted.contains(&(c.id as i64)));
        }
        _ => return Err(CmdError::Syntax),
    }
    let text: String = clients.iter().map(|c| c.info_line() + "\n").collect();
    Ok(Reply::Verbatim(text))
}

fn client_kill(s: &Session, opts: &[Bytes]) -> Result<Reply> {
    let clients = s.node.clients.all();
    if let [addr] = opts {
        // Old form: CLIENT KILL ip:port.
        let target = lossy(addr);
        let c = clients.iter().find(|c| c.addr.to_string() == target).ok_or_else(|| CmdError::err("No such client"))?;
        c.kill("CLIENT KILL");
        return Ok(Reply::Ok);
    }
    if opts.is_empty() || opts.len() % 2 != 0 {
        return Err(CmdError::Syntax);
    }
    let mut matching: Vec<_> = clients.clone();
    let mut skipme = true;
    for pair in opts.chunks(2) {
        let (k, v) = (&pair[0], lossy(&pair[1]));
        if is(k, "id") {
            let id = parse_i64(&pair[1]).map_err(|_| CmdError::err("client-id should be greater than 0"))?;
            matching.retain(|c| c.id as i64 == id);
        } else if is(k, "addr") {
            matching.retain(|c| c.addr.to_string() == v);
        } else if is(k, "laddr") {
            matching.retain(|c| c.laddr.to_string() == v);
        } else if is(k, "user") {
            if v != "default" {
                matching.clear();
            }
        } else if is(k, "type") {
            match v.to_lowercase().as_str() {
                "normal" => matching.retain(|c| !c.is_pubsub()),
                "pubsub" => matching.retain(|c| c.is_pubsub()),
                "master" | "replica" | "slave" => matching.clear(),
                _ => return Err(CmdError::err(format!("Unknown client type '{v}'"))),
            }
        } else if is(k, "skipme") {
            skipme = match v.to_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(CmdError::Syntax),
            };
        } else if is(k, "maxage") {
            let age = parse_i64(&pair[1])?;
            matching.retain(|c| c.created.elapsed().as_secs() as i64 >= age);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if skipme {
        matching.retain(|c| c.id != s.client.id);
    }
    matching.iter().for_each(|c| c.kill("CLIENT KILL"));
    Ok(Reply::Int(matching.len() as i64))
}

pub fn server_command(s: &mut Session, name: &str, a: &[Bytes]) -> Result<Reply> {
    match name {
        "command" => command(a),
        "info" => Ok(info(s, &a[1..])),
        "config" => config(s, a),
        "role" => Ok(super::replication::role(s)),
        "lastsave" => Ok(Reply::Int(s.node.started_unix_s as i64)),
        "pubsub" => pubsub(s, a),
        _ => Err(CmdError::unknown_command(a)),
    }
}

fn command_info(spec: &Spec) -> Reply {
    let flag_names = flags::NAMES.iter().filter(|(f, _)| spec.has(*f)).map(|(_, n)| Reply::simple(n)).collect();
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(flag_names),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(vec![Reply::simple(&format!("@{}", spec.group))]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn command_doc(spec: &Spec) -> Reply {
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
    ])
}

fn public_specs() -> impl Iterator<Item = &'static Spec> {
    cmd::all().iter().filter(|s| !s.has(flags::INTERNAL))
}

fn command(a: &[Bytes]) -> Result<Reply> {
    let Some(sub) = a.get(1) else {
        return Ok(Reply::Array(public_specs().map(command_info).collect()));
    };
    let sub = lossy(sub).to_lowercase();
    match sub.as_str() {
        "count" => {
            sub_arity("command", &sub, a.len() == 2)?;
            Ok(Reply::Int(public_specs().count() as i64))
        }
        "info" => Ok(Reply::Array(if a.len() == 2 {
            public_specs().map(command_info).collect()
        } else {
            a[2..].iter().map(|n| cmd::lookup(n).map_or(Reply::Nil, command_info)).collect()
        })),
        "docs" => {
            let specs: Vec<&Spec> = if a.len() == 2 {
                public_specs().collect()
            } else {
                a[2..].iter().filter_map(|n| cmd::lookup(n)).collect()
            };
            Ok(Reply::Map(specs.into_iter().map(|s| (Reply::bulk(s.name), command_doc(s))).collect()))
        }
        "list" => {
            let pattern = match &a[2..] {
                [] => None,
                [f, kind, p] if is(f, "filterby") && is(kind, "pattern") => Some(p.clone()),
                [f, kind, cat] if is(f, "filterby") && is(kind, "aclcat") => {
                    let cat = lossy(cat).to_lowercase();
                    return Ok(Reply::bulks(public_specs().filter(|s| s.group == cat).map(|s| Bytes::from(s.name))));
                }
                [f, kind, _] if is(f, "filterby") && is(kind, "module") => return Ok(Reply::Array(vec![])),
                _ => return Err(CmdError::Syntax),
            };
            Ok(Reply::bulks(
                public_specs()
                    .filter(|s| pattern.as_ref().is_none_or(|p| glob::matches(p, s.name.as_bytes())))
                    .map(|s| Bytes::from(s.name)),
            ))
        }
        "getkeys" => {
            let args = &a[2..];
            let spec =
                args.first().and_then(|n| cmd::lookup(n)).ok_or_else(|| CmdError::err("Invalid command specified"))?;
            if !spec.arity_ok(args.len()) {
                return Err(CmdError::err("Invalid number of arguments specified for command"));
            }
            let keys = spec.keys(args);
            if keys.is_empty() {
                return Err(CmdError::err("The command has no key arguments"));
            }
            Ok(Reply::bulks(keys.into_iter().cloned()))
        }
        "help" => Ok(cmd::help_reply(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "COUNT",
            "DOCS [<command-name> ...]",
            "GETKEYS <full-command>",
            "INFO [<command-name> ...]",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "HELP",
        ])),
        _ => Err(unknown_sub("command", &a[1])),
    }
}

fn info(s: &Session, sections: &[Bytes]) -> Reply {
    let all = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "keyspace"];
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
        info_section(s, section, &mut out);
    }
    Reply::Verbatim(out)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn kv(out: &mut String, k: &str, v: impl std::fmt::Display) {
    let _ = write!(out, "{k}:{v}\r\n");
}

fn info_section(s: &Session, section: &str, out: &mut String) {
    let node = &s.node;
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
            kv(out, "server_time_usec", node.now_ms() * 1000);
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
            let rss = rss_bytes();
            kv(out, "used_memory", rss);
            kv(out, "used_memory_human", format!("{:.2}M", rss as f64 / 1048576.0));
            kv(out, "used_memory_rss", rss);
            kv(out, "maxmemory", 0);
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
            super::replication::info_replication(s, out);
        }
        "cpu" => out.push_str("# CPU\r\n"),
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            for (i, (keys, expires)) in node.keyspace_sizes().into_iter().enumerate() {
                if keys > 0 {
                    let _ = write!(out, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
        }
        _ => {}
    }
}

/// CONFIG parameters Keepbit has, by their Redis names.
const PARAMS: &[(&str, bool)] = &[
    // (name, settable at runtime)
    ("bind", false),
    ("port", false),
    ("requirepass", true),
    ("databases", false),
    ("maxclients", true),
    ("proto-max-bulk-len", true),
    ("client-query-buffer-limit", true),
    ("timeout", true),
    ("dir", false),
];

fn param_value(c: &Config, name: &str) -> String {
    match name {
        "bind" => c.bind.clone(),
        "port" => c.port.to_string(),
        "requirepass" => c.requirepass.clone().unwrap_or_default(),
        "databases" => c.databases.to_string(),
        "maxclients" => c.maxclients.to_string(),
        "proto-max-bulk-len" => c.proto_max_bulk_len_bytes.to_string(),
        "client-query-buffer-limit" => c.client_query_buffer_limit_bytes.to_string(),
        "timeout" => c.timeout_s.to_string(),
        "dir" => c.data_dir.display().to_string(),
        _ => String::new(),
    }
}

/// Parses a Redis memory value: `1024`, `1kb`, `64mb`, `1gb`.
fn parse_memory(v: &str) -> Option<usize> {
    let lower = v.to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn set_param(c: &mut Config, name: &str, v: &str) -> std::result::Result<(), String> {
    let bad = || format!("argument couldn't be parsed into an integer");
    match name {
        "requirepass" => c.requirepass = (!v.is_empty()).then(|| v.to_string()),
        "maxclients" => c.maxclients = v.parse().map_err(|_| bad())?,
        "timeout" => c.timeout_s = v.parse().map_err(|_| bad())?,
        "proto-max-bulk-len" => c.proto_max_bulk_len_bytes = parse_memory(v).ok_or_else(bad)?,
        "client-query-buffer-limit" => c.client_query_buffer_limit_bytes = parse_memory(v).ok_or_else(bad)?,
        _ => return Err("can't set immutable config".into()),
    }
    c.validate().map_err(|e| e.to_string())
}

fn config(s: &mut Session, a: &[Bytes]) -> Result<Reply> {
    let sub = lossy(&a[1]).to_lowercase();
    match sub.as_str() {
        "get" => {
            sub_arity("config", &sub, a.len() >= 3)?;
            let cfg = s.node.config();
            let pairs = PARAMS
                .iter()
                .filter(|(name, _)| a[2..].iter().any(|p| glob::matches(&p.to_ascii_lowercase(), name.as_bytes())))
                .map(|(name, _)| (Reply::bulk(*name), Reply::bulk(param_value(&cfg, name))))
                .collect();
            Ok(Reply::Map(pairs))
        }
        "set" => {
            if a.len() < 4 || a.len() % 2 != 0 {
                return Err(CmdError::WrongArity("config|set".into()));
            }
            let mut cfg = s.node.config();
            for pair in a[2..].chunks(2) {
                let name = lossy(&pair[0]).to_lowercase();
                if !PARAMS.iter().any(|(p, _)| *p == name) {
                    return Err(CmdError::err(format!(
                        "Unknown option or number of arguments for CONFIG SET - '{}'",
                        lossy(&pair[0])
                    )));
                }
                set_param(&mut cfg, &name, &lossy(&pair[1])).map_err(|why| {
                    CmdError::err(format!("CONFIG SET failed (possibly related to argument '{name}') - {why}"))
                })?;
            }
            s.node.set_config(cfg);
            Ok(Reply::Ok)
        }
        "resetstat" => {
            sub_arity("config", &sub, a.len() == 2)?;
            s.node.stats.reset();
            Ok(Reply::Ok)
        }
        "rewrite" => Err(CmdError::err("The server is running without a config file")),
        "help" => Ok(cmd::help_reply(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "SET <directive> <value>",
            "RESETSTAT",
            "REWRITE",
            "HELP",
        ])),
        _ => Err(unknown_sub("config", &a[1])),
    }
}

fn pubsub(s: &mut Session, a: &[Bytes]) -> Result<Reply> {
    let sub = lossy(&a[1]).to_lowercase();
    let ps = &s.node.pubsub;
    match sub.as_str() {
        "channels" => {
            sub_arity("pubsub", &sub, a.len() <= 3)?;
            Ok(Reply::bulks(ps.channels(a.get(2).map(|p| &p[..]))))
        }
        "numsub" => Ok(Reply::Array(
            a[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(ps.numsub(c) as i64)]).collect(),
        )),
        "numpat" => {
            sub_arity("pubsub", &sub, a.len() == 2)?;
            Ok(Reply::Int(ps.numpat() as i64))
        }
        "shardchannels" => Ok(Reply::Array(vec![])),
        "shardnumsub" => {
            Ok(Reply::Array(a[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(0)]).collect()))
        }
        "help" => Ok(cmd::help_reply(&[
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "NUMPAT",
            "NUMSUB [<channel> ...]",
            "HELP",
        ])),
        _ => Err(unknown_sub("pubsub", &a[1])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values_parse_like_redis() {
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("x"), None);
        let _ = parse_i64; // keep the import used in all cfgs
    }
}
