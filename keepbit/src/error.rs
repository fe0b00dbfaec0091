//! Typed errors and the one place that maps them to RESP error replies: `CmdError` (a
//! command failed) and `ExecError` (the replication layer could not carry a request out).

use serde::{Deserialize, Serialize};

use crate::reply::Reply;

/// Why a command failed. Every variant maps to Redis's exact error text in [`CmdError::to_reply`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CmdError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR index out of range")]
    IndexOutOfRange,
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand { name: String, args: String },
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand { cmd: String, sub: String },
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// An admin-only command (`config|set`) from a user without the permission.
    #[error("NOPERM User {user} has no permissions to run the '{command}' command")]
    NoPerm { user: String, command: String },
    #[error("ERR DB index is out of range")]
    DbIndex,
    #[error("ERR timeout is not a float or out of range")]
    TimeoutNotFloat,
    #[error("ERR timeout is negative")]
    TimeoutNegative,
    #[error("ERR max number of clients reached")]
    MaxClients,
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    Oom,
    /// Any other `ERR <message>`.
    #[error("ERR {0}")]
    Err(String),
    /// A complete error line with its own code (`EXECABORT …`, `NOPROTO …`).
    #[error("{0}")]
    Coded(String),
}

impl CmdError {
    pub fn err(msg: impl Into<String>) -> Self {
        CmdError::Err(msg.into())
    }

    pub fn unknown_command(args: &[bytes::Bytes]) -> Self {
        let name = args.first().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
        let rest: String = args.iter().skip(1).map(|a| format!("'{}' ", String::from_utf8_lossy(a))).collect();
        CmdError::UnknownCommand { name, args: rest }
    }

    /// The wire form. Every error a client sees goes through here.
    pub fn to_reply(&self) -> Reply {
        Reply::Error(self.to_string())
    }
}

pub type CmdResult = Result<Reply, CmdError>;

/// Why a request could not be carried out by the replication layer, kept typed until it
/// reaches the wire so a client (or a retrying proxy) can tell *rejected before it was
/// proposed* (safe to retry anywhere) from *outcome unknown* (the write may have been
/// applied).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum ExecError {
    /// The command itself failed; nothing was proposed.
    #[error("{0}")]
    Cmd(#[serde(with = "cmd_error_text")] CmdError),
    /// A write reached an active-passive standby. Rejected.
    #[error("not the primary")]
    NotPrimary,
    /// A read reached an active-passive standby on a connection without READONLY. Rejected.
    #[error("standby read (primary {primary:?})")]
    StandbyRead { primary: Option<String> },
    /// No primary with a quorum is known. Rejected.
    #[error("no primary")]
    NoPrimary,
    /// This node is primary in name but cannot confirm its quorum for a read. Rejected.
    #[error("lost quorum")]
    NoQuorum,
    /// A forwarded request arrived at a node that is no longer primary. Rejected.
    #[error("no longer primary")]
    NoLongerPrimary,
    /// The primary could not be reached to forward a request. The request may have
    /// been delivered, so a write's outcome is unknown.
    #[error("cannot reach the primary: {0}")]
    Unreachable(String),
    /// A write was proposed but this node stopped being primary, or the entry was
    /// replaced, before it committed. It may or may not take effect.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(OutcomeUnknown),
    /// A standby could not catch up to the primary's read index in time. Rejected.
    #[error("too far behind")]
    Behind,
    /// The peer answered something this node cannot interpret.
    #[error("bad peer reply: {0}")]
    Peer(String),
    /// The node is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A membership change failed (openraft's reason).
    #[error("membership change failed: {0}")]
    Membership(String),
    /// Replication has stopped on this node for good.
    #[error("replication stopped: {0}")]
    Fatal(String),
    /// The write's log entry would exceed `max_entry_bytes`. Rejected before proposing.
    #[error("entry of {bytes} bytes over max_entry_bytes {max}")]
    TooLarge { bytes: usize, max: usize },
}

/// Why a proposed write's outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutcomeUnknown {
    /// This node lost its primary role while the write was in flight.
    Demoted,
    /// Leadership changed and the entry was dropped from the uncommitted log tail (it
    /// may still be committed by the new leader if another node had it).
    LeaderChanged,
}

impl std::fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutcomeUnknown::Demoted => "demoted",
            OutcomeUnknown::LeaderChanged => "leader changed",
        })
    }
}

impl From<CmdError> for ExecError {
    fn from(e: CmdError) -> Self {
        ExecError::Cmd(e)
    }
}

impl ExecError {
    /// True when the request was refused before it could take effect anywhere, so
    /// sending it again (to any node) cannot apply it twice.
    pub fn is_rejected(&self) -> bool {
        !matches!(self, ExecError::OutcomeUnknown(_) | ExecError::Unreachable(_) | ExecError::Peer(_))
    }

    /// The wire form: Redis's codes (READONLY, TRYAGAIN) with Keepbit's explanations.
    pub fn to_reply(&self) -> Reply {
        let coded = |s: String| Reply::Error(s);
        match self {
            ExecError::Cmd(e) => e.to_reply(),
            ExecError::NotPrimary => coded("READONLY You can't write against a read only replica.".into()),
            ExecError::StandbyRead { primary } => coded(format!(
                "READONLY This node is a standby; the primary is {}. Send READONLY to read possibly stale data here.",
                primary.as_deref().unwrap_or("unknown (election in progress)")
            )),
            ExecError::NoPrimary => coded("TRYAGAIN no primary with a quorum right now; retry shortly".into()),
            ExecError::NoQuorum => coded("TRYAGAIN this node lost its quorum; retry on the new primary".into()),
            ExecError::NoLongerPrimary => coded("TRYAGAIN this node is no longer the primary; retry".into()),
            ExecError::Unreachable(e) => coded(format!("TRYAGAIN cannot reach the primary: {e}")),
            ExecError::OutcomeUnknown(OutcomeUnknown::Demoted) => coded(
                "TRYAGAIN this node stopped being primary before the write committed; its outcome is unknown".into(),
            ),
            ExecError::OutcomeUnknown(OutcomeUnknown::LeaderChanged) => {
                coded("TRYAGAIN leadership changed before the write committed; its outcome is unknown".into())
            }
            ExecError::Behind => coded("TRYAGAIN this node is too far behind the primary; retry".into()),
            ExecError::Peer(e) => coded(format!("ERR bad reply from the primary: {e}")),
            ExecError::ShuttingDown => coded("TRYAGAIN node shutting down".into()),
            ExecError::Membership(e) => coded(format!("ERR {e}")),
            ExecError::Fatal(e) => coded(format!("ERR replication stopped: {e}")),
            ExecError::TooLarge { bytes, max } => coded(format!(
                "ERR this write needs a replicated log entry of {bytes} bytes, over max_entry_bytes ({max})"
            )),
        }
    }
}

/// `CmdError` crosses the peer link as its wire text (it is only ever shown to clients).
mod cmd_error_text {
    use super::CmdError;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &CmdError, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&e.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CmdError, D::Error> {
        Ok(CmdError::Coded(String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retrying client must be able to tell the two apart from the reply alone.
    #[test]
    fn unknown_outcomes_say_so_and_rejections_do_not() {
        let unknown = [
            ExecError::OutcomeUnknown(OutcomeUnknown::Demoted),
            ExecError::OutcomeUnknown(OutcomeUnknown::LeaderChanged),
        ];
        for e in unknown {
            assert!(!e.is_rejected());
            assert!(
                matches!(e.to_reply(), Reply::Error(t) if t.starts_with("TRYAGAIN") && t.contains("outcome is unknown"))
            );
        }
        for e in [ExecError::NotPrimary, ExecError::NoPrimary, ExecError::NoQuorum, ExecError::NoLongerPrimary] {
            assert!(e.is_rejected());
            assert!(matches!(e.to_reply(), Reply::Error(t) if !t.contains("unknown")));
        }
    }

    /// The distinction survives the peer link (active-active forwarding).
    #[test]
    fn exec_errors_round_trip_through_the_peer_encoding() {
        for e in [
            ExecError::OutcomeUnknown(OutcomeUnknown::LeaderChanged),
            ExecError::Cmd(CmdError::WrongType),
            ExecError::StandbyRead { primary: Some("127.0.0.1:6379".into()) },
        ] {
            let bytes = postcard::to_stdvec(&e).expect("encode");
            let back: ExecError = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back.to_reply(), e.to_reply());
        }
    }
}
