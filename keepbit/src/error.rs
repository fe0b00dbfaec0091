//! Typed command errors and the one place that maps them to RESP error replies.

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
    #[error("ERR DB index is out of range")]
    DbIndex,
    #[error("ERR timeout is not a float or out of range")]
    TimeoutNotFloat,
    #[error("ERR timeout is negative")]
    TimeoutNegative,
    #[error("ERR max number of clients reached")]
    MaxClients,
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
