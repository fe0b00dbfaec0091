//! `Op`: the deterministic unit of change, and what the replicated log stores.
//!
//! An op is Redis's own propagation form (as in its AOF and replication stream): the
//! argument vector of a write command, rewritten by the primary so that applying it
//! needs no clock and no randomness — `SET k v EX 10` becomes `SET k v PXAT <abs>`,
//! `EXPIRE k 10` becomes `PEXPIREAT k <abs>`, SPOP names the members it pops. The time
//! the op runs at and a seed for any choice left to apply travel inside it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::journal::{Cause, FailoverRecord};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Database the command runs in (a MULTI block may SELECT another).
    pub db: u32,
    /// Wall-clock time of the primary when it created the op; keys expired at this time
    /// are absent while the op applies.
    pub now_ms: u64,
    /// Seeds the choices apply still has to make (SPOP inside MULTI).
    pub seed: u64,
    pub kind: OpKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpKind {
    /// One write command's rewritten arguments (name first).
    Cmd(Vec<Bytes>),
    /// A MULTI/EXEC block: every queued command, in order, applied atomically.
    Multi(Vec<Vec<Bytes>>),
    /// Delete these keys of `db` if they have expired by `now_ms` (active expiry).
    Expire(Vec<Bytes>),
    /// A MULTI/EXEC block after WATCH: applied only if every watched key is still at the
    /// version the watching client saw (`Db::version`); otherwise nothing happens and
    /// EXEC answers a null array. Checked when applied, on every node alike, so a write
    /// that commits between WATCH and EXEC aborts the block wherever it was proposed.
    WatchedMulti { watched: Vec<Watched>, cmds: Vec<Vec<Bytes>> },
    /// A leadership change, written by the new primary right after it wins (version 3).
    Journal(FailoverRecord),
    /// Completes the journal record of `term`: when its first write committed, and the
    /// cause as finally settled (version 3).
    JournalUpdate { term: u64, first_commit_ms: u64, cause: Cause },
}

/// One WATCHed key: its database, name, and the version the client saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    pub db: u32,
    pub key: Bytes,
    pub version: u64,
}

/// Version byte that prefixes every encoded op. Bump it when `Op` changes shape, and
/// keep decoding the old versions.
pub const OP_VERSION: u8 = 3;
/// Version 1 lacked `OpKind::WatchedMulti`, version 2 the journal kinds; new kinds are
/// appended to `OpKind`, so their encodings are otherwise the same.
const OP_VERSION_1: u8 = 1;
const OP_VERSION_2: u8 = 2;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpDecodeError {
    #[error("empty op")]
    Empty,
    #[error("unsupported op version {0}")]
    Version(u8),
    #[error("malformed op: {0}")]
    Malformed(String),
}

impl Op {
    /// Compact binary form: `[version][postcard(op)]`. Only the journal kinds need
    /// version 3; every other op is still written as version 2, which it is byte for
    /// byte, so a node of the previous version (in a rolling upgrade) applies it and only
    /// skips the journal entries, which change nothing else.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let version = match self.kind {
            OpKind::Journal(_) | OpKind::JournalUpdate { .. } => OP_VERSION,
            _ => OP_VERSION_2,
        };
        let mut out = vec![version];
        out.extend(postcard::to_stdvec(self)?);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Op, OpDecodeError> {
        match bytes.split_first() {
            None => Err(OpDecodeError::Empty),
            Some((&(OP_VERSION | OP_VERSION_2 | OP_VERSION_1), body)) => {
                postcard::from_bytes(body).map_err(|e| OpDecodeError::Malformed(e.to_string()))
            }
            Some((&v, _)) => Err(OpDecodeError::Version(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_through_the_versioned_encoding() {
        let op = Op {
            db: 3,
            now_ms: 1_700_000_000_000,
            seed: 42,
            kind: OpKind::Multi(vec![vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from(vec![0u8, 255])]]),
        };
        let wire = op.encode().expect("encode");
        assert_eq!(wire[0], OP_VERSION_2, "ops version 2 can read are written as version 2");
        assert_eq!(Op::decode(&wire).expect("decode"), op);
        assert_eq!(Op::decode(&[]), Err(OpDecodeError::Empty));
        assert_eq!(Op::decode(&[9, 1, 2]), Err(OpDecodeError::Version(9)));
        assert!(matches!(Op::decode(&wire[..wire.len() - 1]), Err(OpDecodeError::Malformed(_))));
    }

    /// Ops logged by earlier versions still decode: their kinds kept their positions.
    #[test]
    fn older_op_versions_still_decode() {
        let op = Op { db: 0, now_ms: 5, seed: 1, kind: OpKind::Cmd(vec![Bytes::from("SET"), Bytes::from("k")]) };
        let body = postcard::to_stdvec(&op).expect("encode");
        for version in [OP_VERSION_1, OP_VERSION_2] {
            let mut wire = vec![version];
            wire.extend(&body);
            assert_eq!(Op::decode(&wire).expect("decode"), op, "version {version}");
        }
        // A version-2 WatchedMulti (variant 3) is still variant 3.
        let watched = OpKind::WatchedMulti { watched: vec![], cmds: vec![] };
        assert_eq!(postcard::to_stdvec(&watched).expect("encode")[0], 3);
        let journal = Op {
            db: 0,
            now_ms: 5,
            seed: 0,
            kind: OpKind::JournalUpdate { term: 4, first_commit_ms: 9, cause: Cause::HeartbeatTimeout },
        };
        let wire = journal.encode().expect("encode");
        assert_eq!(wire[0], OP_VERSION);
        assert_eq!(Op::decode(&wire).expect("decode"), journal);
    }
}
