//! The openraft type configuration: what the replicated log carries and what applying an
//! entry answers.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::reply::Reply;

/// A log entry's payload: one `Op` in its versioned binary encoding (`Op::encode`), so
/// the log holds exactly the bytes a future version must still decode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request(pub Bytes);

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op({} bytes)", self.0.len())
    }
}

/// What applying an entry answered, returned to the client that proposed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub reply: Reply,
    /// Database selected after the op (a MULTI block may SELECT).
    pub db_after: usize,
}

/// A cluster member as the log records it: where peers reach it, and where clients do
/// (what Sentinel discovery, ROLE and redirections report).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Peer (Raft) address, `ip:port`.
    pub addr: String,
    /// Client (RESP) address, `ip:port`.
    pub client_addr: String,
}

impl Member {
    pub fn new(addr: impl Into<String>, client_addr: impl Into<String>) -> Member {
        Member { addr: addr.into(), client_addr: client_addr.into() }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (clients {})", self.addr, self.client_addr)
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Request,
        R = Response,
        Node = Member,
);

pub type NodeId = u64;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// Where the state machine stands in the log: the last applied entry and the membership
/// in force. Kept beside the keyspace (`Machine`'s meta) so snapshots see both at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogPosition {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
}
