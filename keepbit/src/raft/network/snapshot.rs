//! Sending a snapshot in chunks, resuming where the receiver stands.
//!
//! Each attempt first asks the receiver how much of this snapshot it holds (an empty chunk
//! at offset 0: the receiver answers any chunk that is not at its offset with the offset it
//! holds, see `peer::assembly`), then sends from there, one chunk per call, each call with
//! its own deadline and its own pooled connection, so heartbeats and votes never queue
//! behind it. A chunk whose call fails is sent again a few times (the answer says whether
//! it had arrived); then the error goes to openraft, whose next attempt resumes the same way.

use std::ops::Range;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError};
use openraft::network::RPCTypes;
use openraft::raft::SnapshotResponse;

use super::super::peer::{transfer_budget, ChunkHead, ChunkReply, OutFrame, PeerResponse};
use super::super::types::{Snapshot, SnapshotMeta, TypeConfig, Vote};
use super::{PeerClient, PeerError};

/// Calls per chunk before its error goes back to openraft.
const CHUNK_ATTEMPTS: usize = 3;

/// The chunk to send when the receiver holds `have` of `total` bytes: from `have`, at most
/// `chunk` bytes. A receiver claiming more than the snapshot holds breaks the protocol.
pub(super) fn next_chunk(have: u64, total: usize, chunk: usize) -> Result<Range<usize>, String> {
    let start = usize::try_from(have)
        .ok()
        .filter(|&start| start <= total)
        .ok_or_else(|| format!("receiver reports {have} bytes of a {total}-byte snapshot"))?;
    Ok(start..total.min(start.saturating_add(chunk.max(1))))
}

/// Calls one snapshot may take: every chunk four times over (the receiver may lose its
/// partial copy and ask for the start again), so a receiver that never advances ends it.
pub(super) fn calls_max(total: usize, chunk: usize) -> usize {
    (total / chunk.max(1) + 2) * 4
}

impl PeerClient {
    /// Sends `snapshot` chunk by chunk; the receiver installs it after the last one.
    /// `soft_ttl` is openraft's deadline for one call.
    pub(super) async fn stream_snapshot(
        &self,
        vote: &Vote,
        snapshot: Snapshot,
        soft_ttl: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, RPCError<TypeConfig>> {
        let Snapshot { meta, snapshot: data } = snapshot;
        let chunk = self.pools.limits.snapshot_chunk_bytes;
        let total_len = data.len() as u64;
        let mut head = ChunkHead { total_len, crc32c: crc32c::crc32c(&data), offset: 0, done: false };
        // The first call is the probe: no data, not done.
        let mut range = 0..0;
        let mut probe = true;
        for _ in 0..calls_max(data.len(), chunk) {
            head.offset = range.start as u64;
            head.done = !probe && range.end == data.len();
            match self.send_chunk(vote, &meta, &head, &data[range.clone()], soft_ttl).await? {
                ChunkReply::Installed(resp) => return Ok(resp),
                ChunkReply::Have(have) => {
                    range = next_chunk(have, data.len(), chunk).map_err(|reason| self.protocol(reason))?;
                }
            }
            probe = false;
        }
        Err(self.protocol(format!("snapshot of {total_len} bytes made no progress")))
    }

    async fn send_chunk(
        &self,
        vote: &Vote,
        meta: &SnapshotMeta,
        head: &ChunkHead,
        bytes: &[u8],
        soft_ttl: Duration,
    ) -> Result<ChunkReply, RPCError<TypeConfig>> {
        let (action, limits) = (RPCTypes::InstallSnapshot, &self.pools.limits);
        // The last chunk is answered after the receiver installed the whole snapshot.
        let installed = if head.done { usize::try_from(head.total_len).unwrap_or(usize::MAX) } else { 0 };
        let timeout = soft_ttl + transfer_budget(bytes.len().saturating_add(installed), limits.snapshot_bytes_per_s_min);
        let frame =
            OutFrame::snapshot_chunk(vote, meta, head, bytes.to_vec(), limits.frame_len_max_bytes).map_err(|e| {
                tracing::error!(target_node = self.target, "cannot send snapshot chunk: {e}");
                let e = PeerError::TooLarge { addr: self.addr.clone(), reason: e.to_string() };
                self.rpc_error(e, action, timeout)
            })?;
        let mut attempt = 1;
        loop {
            let err = match self.pools.call(self.node_id, &self.addr, &frame, timeout).await {
                Ok(PeerResponse::SnapshotChunk(r)) => return self.remote(r),
                Ok(other) => return Err(self.unexpected(other, "snapshot chunk")),
                Err(e) => e,
            };
            let transient = err.outcome_unknown() || matches!(err, PeerError::Unreachable { .. });
            if !transient || attempt >= CHUNK_ATTEMPTS {
                return Err(self.rpc_error(err, action, timeout));
            }
            tracing::debug!(target_node = self.target, offset = head.offset, "snapshot chunk failed, again: {err}");
            attempt += 1;
        }
    }

    fn protocol(&self, reason: String) -> RPCError<TypeConfig> {
        RPCError::Network(NetworkError::new(&PeerError::Protocol { addr: self.addr.clone(), reason }))
    }
}
