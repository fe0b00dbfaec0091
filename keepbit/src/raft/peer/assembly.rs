//! Snapshots travel in chunks: the receiver's assembly of them, as plain data.
//!
//! A sender streams one snapshot as a sequence of [`PeerRequest::SnapshotChunk`]s, each
//! carrying a [`ChunkHead`]: the snapshot's length and checksum (with its `last_log_id`,
//! they identify it), the chunk's offset, and whether it is the last. The receiver keeps
//! at most one partial snapshot per sending node and answers every chunk with the number
//! of bytes it now holds ([`Step::Have`]); a chunk at any other offset (a duplicate, a
//! gap, a probe after a dropped connection) only gets that answer, so the sender resumes
//! from there instead of starting over. A chunk of a different snapshot replaces the
//! partial one; one that has not grown for `ttl` is dropped; a snapshot over `len_max`
//! is refused before anything is stored.
//!
//! [`PeerRequest::SnapshotChunk`]: super::PeerRequest::SnapshotChunk

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openraft::raft::SnapshotResponse;
use serde::{Deserialize, Serialize};

use super::super::types::{LogId, NodeId, TypeConfig};

/// Where a chunk belongs. With the snapshot's `last_log_id`, `total_len` and `crc32c`
/// identify the snapshot; the checksum is verified once all of it has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkHead {
    pub total_len: u64,
    pub crc32c: u32,
    pub offset: u64,
    /// The last chunk: the receiver installs the snapshot when it ends at `total_len`.
    pub done: bool,
}

/// The receiver's answer to a chunk.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum ChunkReply {
    /// The receiver holds the snapshot's first `n` bytes: send from there.
    Have(u64),
    /// The last chunk completed the snapshot and openraft installed it.
    Installed(SnapshotResponse<TypeConfig>),
}

/// What a received chunk leads to.
#[derive(Debug, PartialEq)]
pub enum Step {
    Have(u64),
    /// All of it, checksum verified: install it.
    Complete(Vec<u8>),
}

/// Why a chunk was refused; the partial snapshot, if any, is dropped with it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("snapshot of {total_len} bytes exceeds the limit of {max} bytes")]
    TooLarge { total_len: u64, max: u64 },
    #[error("chunk of {len} bytes at offset {offset} runs past the snapshot's {total_len} bytes")]
    PastEnd { offset: u64, len: u64, total_len: u64 },
    #[error("last chunk ends at byte {end} of a {total_len}-byte snapshot")]
    EndsEarly { end: u64, total_len: u64 },
    #[error("snapshot checksum mismatch: announced {announced:08x}, received data has {actual:08x}")]
    Checksum { announced: u32, actual: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SnapshotKey {
    last_log_id: Option<LogId>,
    total_len: u64,
    crc32c: u32,
}

struct Partial {
    key: SnapshotKey,
    data: Vec<u8>,
    touched: Instant,
}

/// The partial snapshots a peer server holds, one per sending node.
pub struct Assembly {
    partials: HashMap<NodeId, Partial>,
    len_max: u64,
    ttl: Duration,
    senders_max: usize,
}

impl Assembly {
    /// At most `senders_max` partial snapshots (the least recently grown one goes first),
    /// each at most `len_max` bytes and dropped after `ttl` without a chunk.
    pub fn new(len_max: u64, ttl: Duration, senders_max: usize) -> Assembly {
        Assembly { partials: HashMap::new(), len_max, ttl, senders_max: senders_max.max(1) }
    }

    /// Takes one chunk of the snapshot `from` is sending.
    pub fn receive(
        &mut self,
        from: NodeId,
        last_log_id: Option<LogId>,
        head: &ChunkHead,
        data: Vec<u8>,
        now: Instant,
    ) -> Result<Step, ChunkError> {
        self.prune(now);
        if head.total_len > self.len_max {
            self.partials.remove(&from);
            return Err(ChunkError::TooLarge { total_len: head.total_len, max: self.len_max });
        }
        let key = SnapshotKey { last_log_id, total_len: head.total_len, crc32c: head.crc32c };
        let partial = self.partial(from, key, now);
        partial.touched = now;
        let held = partial.data.len() as u64;
        if head.offset != held {
            return Ok(Step::Have(held));
        }
        let end = held + data.len() as u64;
        if end > head.total_len {
            self.partials.remove(&from);
            return Err(ChunkError::PastEnd { offset: head.offset, len: data.len() as u64, total_len: head.total_len });
        }
        append(&mut partial.data, data, head.total_len);
        if !head.done {
            return Ok(Step::Have(end));
        }
        let Some(done) = self.partials.remove(&from) else { return Ok(Step::Have(end)) };
        if end != head.total_len {
            return Err(ChunkError::EndsEarly { end, total_len: head.total_len });
        }
        let actual = crc32c::crc32c(&done.data);
        if actual != head.crc32c {
            return Err(ChunkError::Checksum { announced: head.crc32c, actual });
        }
        Ok(Step::Complete(done.data))
    }

    /// `from`'s partial snapshot of `key`, replacing one of another snapshot and making
    /// room among the senders.
    fn partial(&mut self, from: NodeId, key: SnapshotKey, now: Instant) -> &mut Partial {
        if self.partials.get(&from).is_some_and(|p| p.key != key) {
            self.partials.remove(&from);
        }
        if !self.partials.contains_key(&from) && self.partials.len() >= self.senders_max {
            let oldest = self.partials.iter().min_by_key(|(_, p)| p.touched).map(|(&id, _)| id);
            if let Some(id) = oldest {
                self.partials.remove(&id);
            }
        }
        self.partials.entry(from).or_insert_with(|| Partial { key, data: Vec::new(), touched: now })
    }

    /// Drops partial snapshots that have not grown for `ttl`.
    pub fn prune(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.partials.retain(|_, p| now.saturating_duration_since(p.touched) <= ttl);
    }

    /// Bytes held for `from`'s partial snapshot, if it has one.
    pub fn held(&self, from: NodeId) -> Option<u64> {
        self.partials.get(&from).map(|p| p.data.len() as u64)
    }
}

/// Appends `data`, growing the buffer by doubling but never past `total_len`, so a
/// snapshot's length costs memory only as its bytes actually arrive.
fn append(buf: &mut Vec<u8>, data: Vec<u8>, total_len: u64) {
    if buf.is_empty() {
        *buf = data;
        return;
    }
    let spare = buf.capacity() - buf.len();
    if spare < data.len() {
        let to_end = (total_len as usize).saturating_sub(buf.len());
        buf.reserve_exact(data.len().max(buf.capacity().min(to_end)));
    }
    buf.extend_from_slice(&data);
}

#[cfg(test)]
#[path = "assembly_tests.rs"]
mod tests;
