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

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Request,
        R = Response,
);

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;
