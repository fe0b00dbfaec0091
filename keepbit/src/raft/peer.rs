//! The peer protocol and its server side.
//!
//! A connection carries length-delimited frames, `[len: u32 BE][postcard payload]`. The dialer
//! opens with a [`Hello`] (magic, version, cluster secret, node id); the server answers
//! [`HelloReply::Ok`] or refuses and closes. After that the dialer sends one [`PeerRequest`] at a
//! time and reads its [`PeerResponse`] before sending the next.
//!
//! The codec is a set of small pure functions ([`encode_frame`], [`frame_len`], [`split_frame`],
//! [`decode_payload`], [`decode_request`]); the async helpers that move frames over a socket
//! only add timeouts and bounded buffering around them.

use std::fmt;
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
pub const PEER_PROTOCOL_VERSION: u16 = 1;
pub const FRAME_HEADER_BYTES: usize = 4;
/// Hello frames (and their replies) are tiny; an unauthenticated peer can make us buffer at
/// most this much.
pub const HELLO_LEN_MAX_BYTES: usize = 4096;
/// Granularity of socket reads and writes: buffers grow and timeouts restart per chunk.
const IO_CHUNK_BYTES: usize = 1 << 20;
/// Position of `PeerRequest::Snapshot` in the enum: the snapshot fast path writes and parses
/// the variant by hand so the data is never copied byte by byte through serde.
const SNAPSHOT_VARIANT: u32 = 3;

/// Limits of the peer network, both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Largest frame accepted or sent; a full snapshot travels in one frame.
    pub frame_len_max_bytes: usize,
    /// Dialing (resolve + TCP connect) must finish within this.
    pub connect_timeout_ms: u64,
    /// Idle pooled connections kept per target.
    pub idle_conns_per_peer_max: usize,
    /// A pooled connection idle longer than this is closed instead of reused (keep it below
    /// the server's `conn_idle_timeout_ms`).
    pub idle_conn_ttl_ms: u64,
    /// Concurrent calls per target; a call waits (within its deadline) for a slot.
    pub calls_in_flight_per_peer_max: usize,
    /// A full snapshot's deadline is `soft_ttl + len / this` (openraft's snapshot TTL is
    /// sized for an RPC, not for sending hundreds of MiB).
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
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            frame_len_max_bytes: 512 << 20,
            connect_timeout_ms: 1_000,
            idle_conns_per_peer_max: 4,
            idle_conn_ttl_ms: 30_000,
            calls_in_flight_per_peer_max: 64,
            snapshot_bytes_per_s_min: 8 << 20,
            handshake_timeout_ms: 5_000,
            conn_idle_timeout_ms: 120_000,
            read_progress_timeout_ms: 10_000,
            handler_timeout_ms: 30_000,
            inbound_conns_max: 256,
        }
    }
}

pub(crate) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

// ------------------------------------------------------------------ wire types

/// The first frame on every connection.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: u32,
    pub version: u16,
    pub cluster_secret: String,
    pub from: NodeId,
}

impl Hello {
    pub fn new(cluster_secret: String, from: NodeId) -> Self {
        Hello { magic: PEER_MAGIC, version: PEER_PROTOCOL_VERSION, cluster_secret, from }
    }
}

/// Never prints the secret.
impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("magic", &self.magic)
            .field("version", &self.version)
            .field("cluster_secret", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    Ok,
    Refused { reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// Keep at index [`SNAPSHOT_VARIANT`].
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
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
    Snapshot(RemoteResult<SnapshotResponse<TypeConfig>>),
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
            PeerResponse::Snapshot(_) => "snapshot",
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

/// Decodes a request, moving a snapshot's data out of the frame instead of through serde.
pub fn decode_request(mut payload: Vec<u8>) -> Result<PeerRequest, FrameError> {
    let decode = |e: postcard::Error| FrameError::Decode(e.to_string());
    let (variant, rest) = postcard::take_from_bytes::<u32>(&payload).map_err(decode)?;
    if variant != SNAPSHOT_VARIANT {
        return decode_payload(&payload);
    }
    let ((vote, meta, data_len), data) =
        postcard::take_from_bytes::<(Vote, SnapshotMeta, u64)>(rest).map_err(decode)?;
    if data.len() as u64 != data_len {
        return Err(FrameError::Decode(format!("snapshot announces {data_len} bytes, frame holds {}", data.len())));
    }
    let head_len = payload.len() - data.len();
    payload.drain(..head_len);
    Ok(PeerRequest::Snapshot { vote, meta, data: payload })
}

/// A frame ready to send, in two parts so a snapshot's data is written from where it lies.
pub struct OutFrame {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl OutFrame {
    pub fn message<T: Serialize + ?Sized>(msg: &T, frame_len_max_bytes: usize) -> Result<Self, FrameError> {
        Ok(OutFrame { head: encode_frame(msg, frame_len_max_bytes)?, body: Vec::new() })
    }

    /// `PeerRequest::Snapshot { vote, meta, data }`, byte for byte, without copying `data`.
    pub fn snapshot(
        vote: &Vote,
        meta: &SnapshotMeta,
        data: Vec<u8>,
        frame_len_max_bytes: usize,
    ) -> Result<Self, FrameError> {
        let fields = (SNAPSHOT_VARIANT, vote, meta, data.len() as u64);
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

/// Constant-time in the content of `given` (time depends only on `expected.len()`).
pub fn secrets_match(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// Why a hello is refused, or `Ok` to accept it.
pub fn check_hello(hello: &Hello, secret: &str) -> Result<(), String> {
    if hello.magic != PEER_MAGIC {
        return Err(format!("bad magic {:#010x}", hello.magic));
    }
    if hello.version != PEER_PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} unsupported (this node speaks {PEER_PROTOCOL_VERSION})",
            hello.version
        ));
    }
    if !secrets_match(secret.as_bytes(), hello.cluster_secret.as_bytes()) {
        return Err("wrong cluster secret".to_owned());
    }
    Ok(())
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

// ------------------------------------------------------------------ server

/// Answers [`PeerRequest::App`]: forwarded client writes and other application calls.
pub trait AppHandler: Send + Sync + 'static {
    fn handle(&self, from: NodeId, req: Vec<u8>) -> BoxFuture<'static, Vec<u8>>;
}

/// The local raft node as the server sees it; implemented for `openraft::Raft`, and by fakes
/// in tests. Errors come back as text and travel to the caller.
pub trait RaftHandle: Send + Sync + 'static {
    fn append(
        &self,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'static, RemoteResult<AppendEntriesResponse<TypeConfig>>>;
    fn vote(&self, req: VoteRequest<TypeConfig>) -> BoxFuture<'static, RemoteResult<VoteResponse<TypeConfig>>>;
    fn pre_vote(&self, req: VoteRequest<TypeConfig>) -> BoxFuture<'static, RemoteResult<VoteResponse<TypeConfig>>>;
    fn snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> BoxFuture<'static, RemoteResult<SnapshotResponse<TypeConfig>>>;
    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> BoxFuture<'static, RemoteResult<TransferLeaderResponse<TypeConfig>>>;
}

impl<SM> RaftHandle for openraft::Raft<TypeConfig, SM>
where
    SM: RaftStateMachine<TypeConfig, SnapshotData = Vec<u8>>,
{
    fn append(
        &self,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'static, RemoteResult<AppendEntriesResponse<TypeConfig>>> {
        let raft = self.clone();
        Box::pin(async move { raft.append_entries(req).await.map_err(|e| e.to_string()) })
    }

    fn vote(&self, req: VoteRequest<TypeConfig>) -> BoxFuture<'static, RemoteResult<VoteResponse<TypeConfig>>> {
        let raft = self.clone();
        Box::pin(async move { raft.vote(req).await.map_err(|e| e.to_string()) })
    }

    fn pre_vote(&self, req: VoteRequest<TypeConfig>) -> BoxFuture<'static, RemoteResult<VoteResponse<TypeConfig>>> {
        let raft = self.clone();
        Box::pin(async move { raft.pre_vote(req).await.map_err(|e| e.to_string()) })
    }

    fn snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> BoxFuture<'static, RemoteResult<SnapshotResponse<TypeConfig>>> {
        let raft = self.clone();
        Box::pin(async move { raft.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string()) })
    }

    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> BoxFuture<'static, RemoteResult<TransferLeaderResponse<TypeConfig>>> {
        let raft = self.clone();
        Box::pin(async move { raft.handle_transfer_leader(req).await.map_err(|e| e.to_string()) })
    }
}

struct ServerCtx {
    raft: Box<dyn RaftHandle>,
    app: Arc<dyn AppHandler>,
    secret: String,
    limits: PeerLimits,
}

/// Serves peers on `listener` with [`PeerLimits::default`] until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    raft: impl RaftHandle,
    secret: String,
    app: Arc<dyn AppHandler>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_limits(listener, raft, secret, app, PeerLimits::default(), shutdown).await;
}

/// Serves peers on `listener` until `shutdown` resolves, one task per connection; open
/// connections are dropped on shutdown. A peer that fails the hello or sends a malformed frame
/// is logged and disconnected; nothing a peer sends can stop the listener.
pub async fn serve_with_limits(
    listener: TcpListener,
    raft: impl RaftHandle,
    secret: String,
    app: Arc<dyn AppHandler>,
    limits: PeerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.inbound_conns_max));
    let ctx = Arc::new(ServerCtx { raft: Box::new(raft), app, secret, limits });
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        reap(&mut conns);
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!("peer accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let max = ctx.limits.inbound_conns_max;
            tracing::warn!(peer = %peer, reason = %format!("{max} connections open (inbound_conns_max)"), "refused peer connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        conns.spawn(async move {
            serve_conn(stream, peer, &ctx).await;
            drop(slot);
        });
    }
    conns.shutdown().await;
}

fn reap(conns: &mut JoinSet<()>) {
    while let Some(done) = conns.try_join_next() {
        if let Err(e) = done {
            if e.is_panic() {
                tracing::warn!("peer connection task panicked: {e}");
            }
        }
    }
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, peer: SocketAddr, ctx: &ServerCtx) {
    let handshake_timeout = ms(ctx.limits.handshake_timeout_ms);
    let from = match tokio::time::timeout(handshake_timeout, handshake(&mut io, ctx)).await {
        Ok(Ok(from)) => from,
        Ok(Err(reason)) => {
            tracing::warn!(peer = %peer, reason = %reason, "refused peer connection");
            return;
        }
        Err(_) => {
            let reason = format!("no hello within {handshake_timeout:?}");
            tracing::warn!(peer = %peer, reason = %reason, "refused peer connection");
            return;
        }
    };
    tracing::debug!(peer = %peer, from, "peer connected");
    let idle = ms(ctx.limits.conn_idle_timeout_ms);
    let progress = ms(ctx.limits.read_progress_timeout_ms);
    loop {
        let payload = match read_frame(&mut io, ctx.limits.frame_len_max_bytes, idle, progress).await {
            Ok(p) => p,
            Err(e @ (FrameError::Closed | FrameError::Idle(_))) => {
                tracing::debug!(peer = %peer, from, "peer connection ends: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!(peer = %peer, from, reason = %e, "dropped peer connection: bad frame");
                return;
            }
        };
        let req = match decode_request(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(peer = %peer, from, reason = %e, "dropped peer connection: malformed request");
                let _ = send_response(&mut io, &PeerResponse::Error(format!("malformed request: {e}")), ctx).await;
                return;
            }
        };
        let Some(resp) = handle_request(&mut io, req, from, ctx).await else {
            tracing::debug!(peer = %peer, from, "peer went away during a request");
            return;
        };
        if let Err(e) = send_response(&mut io, &resp, ctx).await {
            tracing::debug!(peer = %peer, from, "cannot answer peer: {e}");
            return;
        }
    }
}

/// Reads and checks the hello, answers it, and returns the peer's node id; or why it was
/// refused.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, ctx: &ServerCtx) -> Result<NodeId, String> {
    let timeout = ms(ctx.limits.handshake_timeout_ms);
    let payload =
        read_frame(io, HELLO_LEN_MAX_BYTES, timeout, timeout).await.map_err(|e| format!("bad hello frame: {e}"))?;
    let hello: Hello = decode_payload(&payload).map_err(|e| format!("malformed hello: {e}"))?;
    let verdict = check_hello(&hello, &ctx.secret);
    let reply = match &verdict {
        Ok(()) => HelloReply::Ok,
        Err(reason) => HelloReply::Refused { reason: reason.clone() },
    };
    let frame = encode_frame(&reply, HELLO_LEN_MAX_BYTES).map_err(|e| format!("cannot answer hello: {e}"))?;
    let sent = write_parts(io, &[&frame], timeout).await;
    verdict.map_err(|reason| format!("{reason} (node {})", hello.from))?;
    sent.map_err(|e| format!("cannot answer hello: {e}"))?;
    Ok(hello.from)
}

/// Runs the request; `None` if the peer closed (or broke the one-request-at-a-time rule)
/// meanwhile, which abandons the handler.
async fn handle_request<S: AsyncRead + Unpin>(
    io: &mut S,
    req: PeerRequest,
    from: NodeId,
    ctx: &ServerCtx,
) -> Option<PeerResponse> {
    let mut budget = ms(ctx.limits.handler_timeout_ms);
    if let PeerRequest::Snapshot { data, .. } = &req {
        budget += transfer_budget(data.len(), ctx.limits.snapshot_bytes_per_s_min);
    }
    let work = tokio::time::timeout(budget, dispatch(ctx, from, req));
    let mut probe = [0u8; 1];
    tokio::select! {
        r = work => Some(r.unwrap_or_else(|_| PeerResponse::Error(format!("handler timed out after {budget:?}")))),
        _ = io.read(&mut probe) => None,
    }
}

/// Time to move `len_bytes` at `bytes_per_s` (the minimum acceptable rate).
pub(crate) fn transfer_budget(len_bytes: usize, bytes_per_s: u64) -> Duration {
    ms((len_bytes as u64).saturating_mul(1000) / bytes_per_s.max(1))
}

async fn dispatch(ctx: &ServerCtx, from: NodeId, req: PeerRequest) -> PeerResponse {
    match req {
        PeerRequest::Append(r) => PeerResponse::Append(ctx.raft.append(r).await),
        PeerRequest::Vote(r) => PeerResponse::Vote(ctx.raft.vote(r).await),
        PeerRequest::PreVote(r) => PeerResponse::PreVote(ctx.raft.pre_vote(r).await),
        PeerRequest::Snapshot { vote, meta, data } => {
            PeerResponse::Snapshot(ctx.raft.snapshot(vote, Snapshot { meta, snapshot: data }).await)
        }
        PeerRequest::TransferLeader(r) => PeerResponse::TransferLeader(ctx.raft.transfer_leader(r).await),
        PeerRequest::App(r) => PeerResponse::App(ctx.app.handle(from, r).await),
    }
}

async fn send_response<S: AsyncWrite + Unpin>(
    io: &mut S,
    resp: &PeerResponse,
    ctx: &ServerCtx,
) -> Result<(), FrameError> {
    let max = ctx.limits.frame_len_max_bytes;
    let frame = match encode_frame(resp, max) {
        Ok(f) => f,
        Err(e) => encode_frame(&PeerResponse::Error(format!("cannot send {} response: {e}", resp.kind())), max)?,
    };
    write_parts(io, &[&frame], ms(ctx.limits.read_progress_timeout_ms)).await
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::{EntryPayload, LogId};
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::raft::types::{Entry, Request};

    const MAX: usize = 1 << 20;

    fn vote() -> Vote {
        Vote::new_committed(3, 1)
    }

    fn log_id(index: u64) -> super::super::types::LogId {
        LogId::new(LeaderId { term: 3, node_id: 1 }, index)
    }

    fn meta() -> SnapshotMeta {
        SnapshotMeta { last_log_id: Some(log_id(9)), last_membership: Default::default() }
    }

    fn roundtrip<T: Serialize + DeserializeOwned>(v: &T) -> T {
        let frame = encode_frame(v, MAX).expect("encode");
        let (payload, used) = split_frame(&frame, MAX).expect("split").expect("complete");
        assert_eq!(used, frame.len());
        decode_payload(payload).expect("decode")
    }

    /// The header is the big-endian payload length and the payload decodes back.
    #[test]
    fn frame_roundtrip() {
        let frame = encode_frame(&HelloReply::Ok, MAX).expect("encode");
        let len = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(len, frame.len() - FRAME_HEADER_BYTES);
        assert_eq!(roundtrip(&HelloReply::Refused { reason: "x".into() }), HelloReply::Refused { reason: "x".into() });
        let hello = Hello::new("s3cret".into(), 7);
        assert_eq!(roundtrip(&hello), hello);
        assert!(!format!("{hello:?}").contains("s3cret"), "Debug must not print the secret");
    }

    /// A partial header or body is "incomplete", never an error; two frames split one by one.
    #[test]
    fn partial_frames_are_incomplete() {
        let a = encode_frame(&PeerResponse::App(vec![1, 2, 3]), MAX).expect("encode");
        let b = encode_frame(&PeerResponse::Error("e".into()), MAX).expect("encode");
        for cut in 0..a.len() {
            assert!(split_frame(&a[..cut], MAX).expect("no error").is_none(), "cut at {cut}");
        }
        let both = [a.clone(), b.clone()].concat();
        let (p, used) = split_frame(&both, MAX).expect("ok").expect("first");
        assert_eq!(used, a.len());
        assert!(matches!(decode_payload::<PeerResponse>(p), Ok(PeerResponse::App(v)) if v == [1, 2, 3]));
        let (p, used) = split_frame(&both[used..], MAX).expect("ok").expect("second");
        assert_eq!(used, b.len());
        assert!(matches!(decode_payload::<PeerResponse>(p), Ok(PeerResponse::Error(_))));
    }

    /// An oversized header is refused from the 4 header bytes alone, on both ends.
    #[test]
    fn oversize_is_refused() {
        assert!(matches!(frame_len(u32::MAX.to_be_bytes(), MAX), Err(FrameError::Oversize { .. })));
        assert!(matches!(frame_len((MAX as u32).to_be_bytes(), MAX), Ok(n) if n == MAX));
        assert!(matches!(split_frame(&(MAX as u32 + 1).to_be_bytes(), MAX), Err(FrameError::Oversize { .. })));
        let big = PeerRequest::App(vec![0; 100]);
        assert!(matches!(encode_frame(&big, 50), Err(FrameError::Oversize { .. })));
        assert!(matches!(OutFrame::snapshot(&vote(), &meta(), vec![0; 100], 50), Err(FrameError::Oversize { .. })));
    }

    /// Garbage and trailing bytes are decode errors, not panics.
    #[test]
    fn garbage_is_a_decode_error() {
        for garbage in [&[][..], &[0xff; 16][..], &[9, 1, 2][..], b"*1\r\n$4\r\nPING\r\n"] {
            assert!(decode_payload::<PeerRequest>(garbage).is_err(), "{garbage:?}");
            assert!(decode_payload::<Hello>(garbage).is_err(), "{garbage:?}");
            assert!(decode_request(garbage.to_vec()).is_err(), "{garbage:?}");
        }
        let mut ok = postcard::to_allocvec(&HelloReply::Ok).expect("encode");
        ok.push(0);
        assert!(matches!(decode_payload::<HelloReply>(&ok), Err(FrameError::Decode(_))));
        // Snapshot variant whose data length disagrees with the frame.
        let frame = OutFrame::snapshot(&vote(), &meta(), vec![1, 2, 3], MAX).expect("encode");
        let mut payload = [&frame.head[FRAME_HEADER_BYTES..], &frame.body[..]].concat();
        payload.pop();
        assert!(matches!(decode_request(payload), Err(FrameError::Decode(_))));
    }

    /// The hand-built snapshot frame is exactly serde's encoding, and the fast decode path
    /// gives back the same request.
    #[test]
    fn snapshot_frame_matches_serde() {
        let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let out = OutFrame::snapshot(&vote(), &meta(), data.clone(), MAX).expect("encode");
        let via_serde = encode_frame(&PeerRequest::Snapshot { vote: vote(), meta: meta(), data: data.clone() }, MAX)
            .expect("encode");
        assert_eq!([&out.head[..], &out.body[..]].concat(), via_serde);
        assert_eq!(out.len_bytes(), via_serde.len());
        let req = decode_request(via_serde[FRAME_HEADER_BYTES..].to_vec()).expect("decode");
        let PeerRequest::Snapshot { vote: v, meta: m, data: d } = req else { panic!("not a snapshot: {req:?}") };
        assert_eq!((v, m, d), (vote(), meta(), data));
    }

    /// Every openraft message survives postcard (a positional format: no skipped fields).
    #[test]
    fn raft_messages_roundtrip() {
        let entry: Entry =
            openraft::Entry { log_id: log_id(5), payload: EntryPayload::Normal(Request(Bytes::from_static(b"op"))) };
        let append = AppendEntriesRequest::<TypeConfig> {
            vote: vote(),
            prev_log_id: Some(log_id(4)),
            entries: vec![entry.clone(), openraft::Entry { log_id: log_id(6), payload: EntryPayload::Blank }],
            leader_commit: Some(log_id(3)),
        };
        let PeerRequest::Append(back) = roundtrip(&PeerRequest::Append(append)) else { panic!("variant") };
        assert_eq!(back.entries, vec![entry, openraft::Entry { log_id: log_id(6), payload: EntryPayload::Blank }]);
        assert_eq!((back.vote, back.prev_log_id, back.leader_commit), (vote(), Some(log_id(4)), Some(log_id(3))));

        let mut vr = VoteRequest::<TypeConfig>::new(Vote::new(4, 2), Some(log_id(8)));
        vr.leadership_transfer = true;
        let PeerRequest::PreVote(back) = roundtrip(&PeerRequest::PreVote(vr.clone())) else { panic!("variant") };
        assert_eq!(back, vr);
        let tl = TransferLeaderRequest::<TypeConfig>::new(vote(), 2, Some(log_id(9)));
        let PeerRequest::TransferLeader(back) = roundtrip(&PeerRequest::TransferLeader(tl.clone())) else { panic!() };
        assert_eq!(back, tl);

        let resp = PeerResponse::Append(Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(5)))));
        assert!(
            matches!(roundtrip(&resp), PeerResponse::Append(Ok(AppendEntriesResponse::PartialSuccess(Some(l)))) if l == log_id(5))
        );
        let resp = PeerResponse::Vote(Ok(VoteResponse::new(vote(), Some(log_id(2)), true)));
        assert!(
            matches!(roundtrip(&resp), PeerResponse::Vote(Ok(v)) if v == VoteResponse::new(vote(), Some(log_id(2)), true))
        );
        let resp = PeerResponse::Snapshot(Ok(SnapshotResponse::new(vote())));
        assert!(matches!(roundtrip(&resp), PeerResponse::Snapshot(Ok(s)) if s == SnapshotResponse::new(vote())));
        let resp = PeerResponse::TransferLeader(Ok(Ok(())));
        assert!(matches!(roundtrip(&resp), PeerResponse::TransferLeader(Ok(Ok(())))));
        let resp = PeerResponse::Vote(Err("stopped".into()));
        assert!(matches!(roundtrip(&resp), PeerResponse::Vote(Err(e)) if e == "stopped"));
    }

    /// The secret check compares whole secrets; magic and version are checked first.
    #[test]
    fn hello_checks() {
        assert!(secrets_match(b"abc", b"abc"));
        assert!(secrets_match(b"", b""));
        for wrong in [&b"abd"[..], b"ab", b"abcd", b""] {
            assert!(!secrets_match(b"abc", wrong), "{wrong:?}");
        }
        assert!(check_hello(&Hello::new("abc".into(), 1), "abc").is_ok());
        assert!(check_hello(&Hello::new("abx".into(), 1), "abc").is_err_and(|r| r.contains("secret")));
        let old = Hello { version: 0, ..Hello::new("abc".into(), 1) };
        assert!(check_hello(&old, "abc").is_err_and(|r| r.contains("version")));
        let alien = Hello { magic: 1, ..Hello::new("abc".into(), 1) };
        assert!(check_hello(&alien, "abc").is_err_and(|r| r.contains("magic")));
    }

    /// `read_frame` reassembles a frame sent in pieces and tells clean close, truncation,
    /// idleness and stalls apart.
    #[tokio::test]
    async fn read_frame_over_a_stream() {
        let t = Duration::from_millis(200);
        let frame = encode_frame(&PeerResponse::App(vec![7; 3000]), MAX).expect("encode");

        let (mut a, mut b) = tokio::io::duplex(64);
        let sent = frame.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(7) {
                a.write_all(piece).await.expect("write");
            }
            a
        });
        let payload = read_frame(&mut b, MAX, t, t).await.expect("frame");
        assert!(matches!(decode_payload::<PeerResponse>(&payload), Ok(PeerResponse::App(v)) if v.len() == 3000));
        drop(writer.await.expect("join"));
        assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Closed)));

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&frame[..10]).await.expect("write");
        drop(a);
        assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Truncated)));

        let (mut a, mut b) = tokio::io::duplex(64);
        assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Idle(_))));
        a.write_all(&frame[..10]).await.expect("write");
        assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Stalled(_))));

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
        assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Oversize { .. })));
    }
}
