//! CONFIG GET/SET/RESETSTAT over the runtime-settable part of `Config`.

use bytes::Bytes;

use super::{sub_arity, unknown_sub, Result};
use crate::cmd::args::lossy;
use crate::cmd::help_reply;
use crate::config::Config;
use crate::error::CmdError;
use crate::glob;
use crate::reply::Reply;
use crate::server::Server;

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
    ("maxmemory", true),
    ("maxmemory-policy", false),
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
        "maxmemory" => c.maxmemory_bytes.to_string(),
        "maxmemory-policy" => "noeviction".to_string(),
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
        "maxmemory" => c.maxmemory_bytes = parse_memory(v).ok_or_else(bad)? as u64,
        "proto-max-bulk-len" => c.proto_max_bulk_len_bytes = parse_memory(v).ok_or_else(bad)?,
        "client-query-buffer-limit" => c.client_query_buffer_limit_bytes = parse_memory(v).ok_or_else(bad)?,
        _ => return Err("can't set immutable config".into()),
    }
    c.validate().map_err(|e| e.to_string())
}

pub fn config(srv: &Server, a: &[Bytes]) -> Result<Reply> {
    let sub = lossy(&a[1]).to_lowercase();
    match sub.as_str() {
        "get" => {
            sub_arity("config", &sub, a.len() >= 3)?;
            let cfg = srv.config();
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
            let mut cfg = srv.config();
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
            srv.set_config(cfg);
            Ok(Reply::Ok)
        }
        "resetstat" => {
            sub_arity("config", &sub, a.len() == 2)?;
            srv.stats.reset();
            Ok(Reply::Ok)
        }
        "rewrite" => Err(CmdError::err("The server is running without a config file")),
        "help" => Ok(help_reply(&[
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values_parse_like_redis() {
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("x"), None);
    }
}
