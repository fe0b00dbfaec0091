//! Server introspection and administration in Redis's formats, one file per command
//! family. Each handler sees the shared server state and the calling client, never the
//! session, so these files import nothing from the session.

mod client;
mod command;
mod config;
mod events;
pub mod failover;
mod fault;
mod info;
mod pubsub;

pub use client::client;
pub use command::command;
pub use config::config;
pub use events::{events, record_reply};
pub use failover::failover;
pub use fault::{fault, spawn_stalls};
pub use info::info;
pub use pubsub::pubsub;

use bytes::Bytes;

use crate::cmd::args::{is, lossy};
use crate::error::CmdError;

/// The Redis version Keepbit's commands and replies follow.
pub const REDIS_VERSION: &str = "7.2.4";

type Result<T> = std::result::Result<T, CmdError>;

pub fn valid_client_name(name: &[u8]) -> Result<String> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err("Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(lossy(name))
}

/// Subcommands only the `admin` user may run: they change membership, configuration,
/// leadership (FAILOVER, whatever its arguments) or other clients' connections. Returns the
/// ACL-style name (`config|set`) when `args` is one of them.
pub fn admin_only(args: &[Bytes]) -> Option<String> {
    if args.first().is_some_and(|n| is(n, "failover")) {
        return Some("failover".into());
    }
    const GATED: &[(&str, &[&str])] =
        &[("config", &["set", "resetstat", "rewrite"]), ("client", &["kill"]), ("keepbit", &["cluster", "fault"])];
    let (name, sub) = (args.first()?, args.get(1)?);
    let (cmd, subs) = GATED.iter().find(|(cmd, _)| is(name, cmd))?;
    let sub = lossy(sub).to_lowercase();
    // KEEPBIT CLUSTER STATUS only reads.
    let status = *cmd == "keepbit" && args.get(2).is_some_and(|a| is(a, "status"));
    (subs.contains(&sub.as_str()) && !status).then(|| format!("{cmd}|{sub}"))
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
