//! The peer protocol and its server side.
//!
//! A connection carries length-delimited frames, `[len: u32 BE][postcard payload]`. It opens
//! with the [`handshake`]: both sides prove they know the cluster secret without sending it.
//! After that the dialer sends one [`PeerRequest`] at a time and reads its [`PeerResponse`]
//! before sending the next. Snapshots go in chunks, assembled by the receiver ([`assembly`]).
//!
//! The codec is a set of small pure functions ([`encode_frame`], [`frame_len`], [`split_frame`],
//! [`decode_payload`], [`decode_request`]); the async helpers that move frames over a socket
//! only add timeouts and bounded buffering around them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::types::{NodeId, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// First field of every [`Hello`]: "KBPR".
pub const PEER_MAGIC: u32 = u32::from_be_bytes(*b"KBPR");
/// Bumped on any incompatible change to the frames below.
pub const PEER_PROTOCOL_VERSION: u16 = 3;
pub const FRAME_HEADER_BYTES: usize = 4;
/// Granularity of socket reads and writes: buffers grow and timeouts restart per chunk.
const IO_CHUNK_BYTES: usize = 1 << 20;
/// Position of `PeerRequest::SnapshotChunk` in the enum: the chunk fast path writes and parses
/// the variant by hand so the data is never copied byte by byte through serde.
const SNAPSHOT_VARIANT: u32 = 3;

pub const SNAPSHOT_CHUNK_BYTES_DEFAULT: usize = 4 << 20;
/// Senders whose partial snapshots a server keeps at once (a leader and its successor).
pub const SNAPSHOT_SENDERS_MAX: usize = 2;

/// Limits of the peer network, both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Largest frame accepted or sent: one entry or one AppendEntries batch, one
    /// snapshot chunk, plus overhead (`ClusterConfig::peer_frame_len_bytes`).
    pub frame_len_max_bytes: usize,
    /// Snapshot data bytes per chunk sent.
    pub snapshot_chunk_bytes: usize,
    /// Server: largest snapshot accepted (it is assembled in memory).
    pub snapshot_len_max_bytes: u64,
    /// Server: a partial snapshot that gets no chunk for this long is dropped.
    pub snapshot_partial_ttl_ms: u64,
    /// Dialing (resolve + TCP connect) must finish within this.
    pub connect_timeout_ms: u64,
    /// Idle pooled connections kept per target.
    pub idle_conns_per_peer_max: usize,
    /// A pooled connection idle longer than this is closed instead of reused (keep it below
    /// the server's `conn_idle_timeout_ms`).
    pub idle_conn_ttl_ms: u64,
    /// Most entry payload bytes one AppendEntries carries (at least one entry is always
    /// sent); openraft's batches are counted in entries, and 300 large entries would not fit
    /// a frame. The rest follows in the next request.
    pub append_bytes_max: usize,
    /// A heartbeat (an empty AppendEntries) may take this long before it counts as lost;
    /// openraft's own deadline is 3/4 of the heartbeat interval, which a loaded node
    /// misses while it moves a large entry, and a lost heartbeat costs the leader its
    /// lease. Keep it below the lease (`election_timeout_max_ms`).
    pub heartbeat_timeout_min_ms: u64,
    /// Concurrent calls per target; a call waits (within its deadline) for a slot.
    pub calls_in_flight_per_peer_max: usize,
    /// A snapshot chunk's deadline is `soft_ttl + len / this`, the last one's also counts
    /// the whole snapshot (the receiver installs it before answering).
    pub snapshot_bytes_per_s_min: u64,
    /// Server: the whole hello exchange must finish within this.
    pub handshake_timeout_ms: u64,
    /// Server: a connection with no request for this long is closed.
    pub conn_idle_timeout_ms: u64,
    /// Server: a frame that has started must make progress at least this often.
    pub read_progress_timeout_ms: u64,
    /// Server: a request handler (raft or app) gets this long before an error is answered.
    pub handler_timeout_ms: u64,
    /// Server: open inbound connections; more are closed at once.
    pub inbound_conns_max: usize,
    /// Server: connections from one source address still in their handshake; more are
    /// closed at once, so one host cannot hold every slot with connections that never
    /// authenticate.
    pub handshakes_per_source_max: usize,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            frame_len_max_bytes: crate::config::peer_frame_len_bytes(64 << 20, SNAPSHOT_CHUNK_BYTES_DEFAULT),
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
            snapshot_len_max_bytes: 64 << 30,
            snapshot_partial_ttl_ms: 60_000,
            connect_timeout_ms: 1_000,
            idle_conns_per_peer_max: 4,
            idle_conn_ttl_ms: 30_000,
            calls_in_flight_per_peer_max: 64,
            append_bytes_max: crate::config::APPEND_BATCH_BYTES,
            heartbeat_timeout_min_ms: 0,
            snapshot_bytes_per_s_min: 8 << 20,
            handshake_timeout_ms: 5_000,
            conn_idle_timeout_ms: 120_000,
            read_progress_timeout_ms: 10_000,
            handler_timeout_ms: 30_000,
            inbound_conns_max: 256,
            handshakes_per_source_max: 8,
        }
    }
}

pub(crate) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

// ------------------------------------------------------------------ wire types

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// One chunk of a snapshot ([`assembly`]). Keep at index [`SNAPSHOT_VARIANT`].
    SnapshotChunk {
        vote: Vote,
        meta: SnapshotMeta,
        head: ChunkHead,
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// An opaque application request (forwarded client writes …), answered by [`AppHandler`].
    App(Vec<u8>),
}

/// The receiver's error, as text: the client only needs to know the call failed remotely.
pub type RemoteResult<T> = Result<T, String>;

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    Append(RemoteResult<AppendEntriesResponse<TypeConfig>>),
    Vote(RemoteResult<VoteResponse<TypeConfig>>),
    PreVote(RemoteResult<VoteResponse<TypeConfig>>),
    SnapshotChunk(RemoteResult<ChunkReply>),
    TransferLeader(RemoteResult<TransferLeaderResponse<TypeConfig>>),
    App(Vec<u8>),
    /// The server could not run the request at all (malformed, handler timed out, answer
    /// too large).
    Error(String),
}

impl PeerResponse {
    /// For logs and errors: never the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerResponse::Append(_) => "append",
            PeerResponse::Vote(_) => "vote",
            PeerResponse::PreVote(_) => "pre-vote",
            PeerResponse::SnapshotChunk(_) => "snapshot",
            PeerResponse::TransferLeader(_) => "transfer-leader",
            PeerResponse::App(_) => "app",
            PeerResponse::Error(_) => "error",
        }
    }
}

// ------------------------------------------------------------------ codec (pure)

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    Oversize { len_bytes: u64, max_bytes: usize },
    #[error("malformed payload: {0}")]
    Decode(String),
    #[error("cannot encode payload: {0}")]
    Encode(String),
    #[error("connection closed")]
    Closed,
    #[error("connection closed mid-frame")]
    Truncated,
    #[error("no frame within {0:?}")]
    Idle(Duration),
    #[error("no progress within {0:?}")]
    Stalled(Duration),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The header value for a payload of `len_bytes`; the header itself caps it at `u32::MAX`.
fn check_len(len_bytes: u64, max_bytes: usize) -> Result<u32, FrameError> {
    match u32::try_from(len_bytes) {
        Ok(len) if len_bytes <= max_bytes as u64 => Ok(len),
        _ => Err(FrameError::Oversize { len_bytes, max_bytes }),
    }
}

/// `msg` as one frame, header included.
pub fn encode_frame<T: Serialize + ?Sized>(msg: &T, frame_len_max_bytes: usize) -> Result<Vec<u8>, FrameError> {
    let mut frame =
        postcard::to_extend(msg, vec![0u8; FRAME_HEADER_BYTES]).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = check_len((frame.len() - FRAME_HEADER_BYTES) as u64, frame_len_max_bytes)?;
    frame[..FRAME_HEADER_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// The payload length a header announces, refused before anything is allocated for it.
pub fn frame_len(header: [u8; FRAME_HEADER_BYTES], frame_len_max_bytes: usize) -> Result<usize, FrameError> {
    let len = check_len(u64::from(u32::from_be_bytes(header)), frame_len_max_bytes)?;
    Ok(len as usize)
}

/// The first whole frame in `buf`: `Ok(None)` while incomplete, else its payload and the
/// number of bytes it used.
pub fn split_frame(buf: &[u8], frame_len_max_bytes: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some((header, rest)) = buf.split_first_chunk::<FRAME_HEADER_BYTES>() else {
        return Ok(None);
    };
    let len = frame_len(*header, frame_len_max_bytes)?;
    Ok(rest.get(..len).map(|payload| (payload, FRAME_HEADER_BYTES + len)))
}

/// Decodes exactly one value: trailing bytes are an error, not ignored.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (value, rest) = postcard::take_from_bytes(payload).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// Decodes a request, moving a snapshot chunk's data out of the frame instead of through serde.
pub fn decode_request(mut payload: Vec<u8>) -> Result<PeerRequest, FrameError> {
    let decode = |e: postcard::Error| FrameError::Decode(e.to_string());
    let (variant, rest) = postcard::take_from_bytes::<u32>(&payload).map_err(decode)?;
    if variant != SNAPSHOT_VARIANT {
        return decode_payload(&payload);
    }
    let ((vote, meta, head, data_len), data) =
        postcard::take_from_bytes::<(Vote, SnapshotMeta, ChunkHead, u64)>(rest).map_err(decode)?;
    if data.len() as u64 != data_len {
        return Err(FrameError::Decode(format!("snapshot chunk announces {data_len} bytes, frame holds {}", data.len())));
    }
    let head_len = payload.len() - data.len();
    payload.drain(..head_len);
    Ok(PeerRequest::SnapshotChunk { vote, meta, head, data: payload })
}

/// A frame ready to send, in two parts so a snapshot chunk's data is written as it is.
pub struct OutFrame {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl OutFrame {
    pub fn message<T: Serialize + ?Sized>(msg: &T, frame_len_max_bytes: usize) -> Result<Self, FrameError> {
        Ok(OutFrame { head: encode_frame(msg, frame_len_max_bytes)?, body: Vec::new() })
    }

    /// `PeerRequest::SnapshotChunk { vote, meta, head, data }`, byte for byte, without
    /// passing `data` through serde.
    pub fn snapshot_chunk(
        vote: &Vote,
        meta: &SnapshotMeta,
        head: &ChunkHead,
        data: Vec<u8>,
        frame_len_max_bytes: usize,
    ) -> Result<Self, FrameError> {
        let fields = (SNAPSHOT_VARIANT, vote, meta, head, data.len() as u64);
        let mut head = postcard::to_extend(&fields, vec![0u8; FRAME_HEADER_BYTES])
            .map_err(|e| FrameError::Encode(e.to_string()))?;
        let payload_len = (head.len() - FRAME_HEADER_BYTES) as u64 + data.len() as u64;
        let len = check_len(payload_len, frame_len_max_bytes)?;
        head[..FRAME_HEADER_BYTES].copy_from_slice(&len.to_be_bytes());
        Ok(OutFrame { head, body: data })
    }

    pub fn parts(&self) -> [&[u8]; 2] {
        [&self.head, &self.body]
    }

    pub fn len_bytes(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

// ------------------------------------------------------------------ frame I/O

/// Reads one frame. `idle` bounds the wait for its first byte, `progress` every later read.
/// The buffer grows as data arrives (doubling, capped at the announced length), so a lying
/// header costs nothing until the bytes are actually sent.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    frame_len_max_bytes: usize,
    idle: Duration,
    progress: Duration,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let first = tokio::time::timeout(idle, r.read(&mut header)).await.map_err(|_| FrameError::Idle(idle))??;
    if first == 0 {
        return Err(FrameError::Closed);
    }
    match tokio::time::timeout(progress, r.read_exact(&mut header[first..])).await {
        Err(_) => return Err(FrameError::Stalled(progress)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Truncated),
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(_)) => {}
    }
    let len = frame_len(header, frame_len_max_bytes)?;
    let mut payload = Vec::with_capacity(len.min(IO_CHUNK_BYTES));
    while payload.len() < len {
        if payload.len() == payload.capacity() {
            payload.reserve_exact((len - payload.len()).min(payload.capacity().max(IO_CHUNK_BYTES)));
        }
        let remaining = (len - payload.len()) as u64;
        let n = tokio::time::timeout(progress, (&mut *r).take(remaining).read_buf(&mut payload))
            .await
            .map_err(|_| FrameError::Stalled(progress))??;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(payload)
}

/// Writes `parts` back to back and flushes; every chunk must go out within `progress`.
pub(crate) async fn write_parts<W: AsyncWrite + Unpin>(
    w: &mut W,
    parts: &[&[u8]],
    progress: Duration,
) -> Result<(), FrameError> {
    for part in parts {
        for chunk in part.chunks(IO_CHUNK_BYTES) {
            tokio::time::timeout(progress, w.write_all(chunk)).await.map_err(|_| FrameError::Stalled(progress))??;
        }
    }
    tokio::time::timeout(progress, w.flush()).await.map_err(|_| FrameError::Stalled(progress))??;
    Ok(())
}

pub mod assembly;
pub mod handshake;
mod server;
#[cfg(test)]
mod tests;

pub use assembly::{ChunkHead, ChunkReply};
pub use handshake::{Hello, HelloReply, PeerAuth, HELLO_LEN_MAX_BYTES};
pub use server::*;
