//! What a drill's clients did: every operation as invoke → completion, with its outcome
//! kept three-valued (`Ok`, `Fail`, `Unknown`), because an operation whose reply was lost
//! may or may not have taken effect.

use serde::{Deserialize, Serialize};

/// The kinds of operation the workload performs; each exposes a different failure.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// `RPUSH key value` with a value no other operation uses (loss and duplication).
    Append { key: String, value: String },
    /// `LRANGE key 0 -1`, the list read back.
    ReadList { key: String },
    /// `SET key value` on a register (linearizability).
    Write { key: String, value: String },
    /// `GET key` on a register.
    Read { key: String },
    /// `INCR key` on a counter (lost or doubled increments).
    Incr { key: String },
    /// `SET key value NX` on a key no other operation uses (unique inserts).
    Insert { key: String, value: String },
}

impl Action {
    pub fn key(&self) -> &str {
        match self {
            Action::Append { key, .. }
            | Action::ReadList { key }
            | Action::Write { key, .. }
            | Action::Read { key }
            | Action::Incr { key }
            | Action::Insert { key, .. } => key,
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Action::Read { .. } | Action::ReadList { .. })
    }
}

/// How an operation ended, as far as the client can tell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged; `value` is what a read returned (None: nil), or the counter after INCR.
    Ok { value: Option<String> },
    /// Definitely not applied: the server refused it (`-READONLY`, `-TRYAGAIN` before
    /// proposing, connection refused).
    Fail { reason: String },
    /// Sent, but the reply never came or said the outcome is unknown (timeout, connection
    /// lost, `-TRYAGAIN … outcome is unknown`). It may or may not have taken effect.
    Unknown { reason: String },
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub client: u32,
    pub action: Action,
    /// Monotonic microseconds since the round started.
    pub invoke_us: u64,
    /// When the outcome was known (for `Unknown`: when the client gave up waiting).
    pub complete_us: u64,
    pub outcome: Outcome,
    /// The node (client address) the operation was sent to.
    pub node: String,
}

impl Event {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    pub fn unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown { .. })
    }
}
