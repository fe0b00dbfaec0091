//! The peer server: accepts peer connections, checks each hello and answers Raft and application requests.
//! Snapshot chunks are assembled per sender ([`super::assembly`]) and installed when complete.

use super::assembly::{Assembly, Step};
use super::*;

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
    /// A peer's connection closed (end of stream or reset, not an idle timeout): the
    /// crash detector's cue (`raft::crash`).
    fn connection_closed(&self, _from: NodeId) {}
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
    auth: PeerAuth,
    limits: PeerLimits,
    /// Peers must open TLS before the hello (`cluster.tls`).
    tls: Option<crate::tls::TlsAcceptor>,
    /// Connections per source address that have not finished their handshake.
    handshaking: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// Snapshots arriving in chunks, one per sender.
    snapshots: std::sync::Mutex<Assembly>,
}

/// One connection's place among its source's pending handshakes; freed on drop.
struct HandshakeSlot<'a> {
    ctx: &'a ServerCtx,
    ip: std::net::IpAddr,
}

impl ServerCtx {
    fn snapshots(&self) -> std::sync::MutexGuard<'_, Assembly> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handshaking(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::net::IpAddr, usize>> {
        self.handshaking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handshake slot for `ip`, unless it already has `handshakes_per_source_max`.
    fn begin_handshake(&self, ip: std::net::IpAddr) -> Option<HandshakeSlot<'_>> {
        let mut pending = self.handshaking();
        let n = pending.entry(ip).or_insert(0);
        if *n >= self.limits.handshakes_per_source_max {
            return None;
        }
        *n += 1;
        Some(HandshakeSlot { ctx: self, ip })
    }
}

impl Drop for HandshakeSlot<'_> {
    fn drop(&mut self) {
        let mut pending = self.ctx.handshaking();
        if let Some(n) = pending.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.ip);
            }
        }
    }
}

/// Serves peers on `listener` with [`PeerLimits::default`] until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    raft: impl RaftHandle,
    auth: PeerAuth,
    app: Arc<dyn AppHandler>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_limits(listener, raft, auth, app, PeerLimits::default(), shutdown).await;
}

/// Serves peers on `listener` until `shutdown` resolves, one task per connection; open
/// connections are dropped on shutdown. A peer that fails the hello or sends a malformed frame
/// is logged and disconnected; nothing a peer sends can stop the listener.
pub async fn serve_with_limits(
    listener: TcpListener,
    raft: impl RaftHandle,
    auth: PeerAuth,
    app: Arc<dyn AppHandler>,
    limits: PeerLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_tls(listener, raft, auth, app, limits, None, shutdown).await;
}

/// [`serve_with_limits`], with TLS before the hello when `tls` is given: a peer whose
/// certificate does not chain to the cluster CA is refused like one that fails the hello.
pub async fn serve_with_tls(
    listener: TcpListener,
    raft: impl RaftHandle,
    auth: PeerAuth,
    app: Arc<dyn AppHandler>,
    limits: PeerLimits,
    tls: Option<crate::tls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.inbound_conns_max));
    let ttl = ms(limits.snapshot_partial_ttl_ms);
    let snapshots = Assembly::new(limits.snapshot_len_max_bytes, ttl, SNAPSHOT_SENDERS_MAX).into();
    let ctx = Arc::new(ServerCtx {
        raft: Box::new(raft),
        app,
        auth,
        limits,
        tls,
        handshaking: Default::default(),
        snapshots,
    });
    let mut conns = JoinSet::new();
    let mut prune = tokio::time::interval(ttl.max(Duration::from_millis(10)));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            _ = prune.tick() => {
                ctx.snapshots().prune(std::time::Instant::now());
                continue;
            }
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
    let Some(slot) = ctx.begin_handshake(peer.ip()) else {
        let max = ctx.limits.handshakes_per_source_max;
        tracing::debug!(peer = %peer, "refused peer connection: {max} handshakes pending from this address");
        return;
    };
    match &ctx.tls {
        None => {
            let Some(from) = admit(peer, ctx, handshake(&mut io, ctx)).await else { return };
            drop(slot);
            serve_requests(io, peer, from, ctx).await;
        }
        Some(tls) => {
            let secured = async {
                let mut io = tls.accept(io).await.map_err(|e| format!("TLS: {e}"))?;
                let from = handshake(&mut io, ctx).await?;
                Ok((io, from))
            };
            let Some((io, from)) = admit(peer, ctx, secured).await else { return };
            drop(slot);
            serve_requests(io, peer, from, ctx).await;
        }
    }
}

/// Runs `admission` (TLS if on, then the hello) within the handshake timeout; `None`,
/// logged, if the peer was refused.
async fn admit<T>(peer: SocketAddr, ctx: &ServerCtx, admission: impl Future<Output = Result<T, String>>) -> Option<T> {
    let handshake_timeout = ms(ctx.limits.handshake_timeout_ms);
    let reason = match tokio::time::timeout(handshake_timeout, admission).await {
        Ok(Ok(admitted)) => return Some(admitted),
        Ok(Err(reason)) => reason,
        Err(_) => format!("no hello within {handshake_timeout:?}"),
    };
    tracing::warn!(peer = %peer, reason = %reason, "refused peer connection");
    None
}

/// Answers one request at a time until the peer leaves or breaks the protocol.
async fn serve_requests<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, peer: SocketAddr, from: NodeId, ctx: &ServerCtx) {
    tracing::debug!(peer = %peer, from, "peer connected");
    let idle = ms(ctx.limits.conn_idle_timeout_ms);
    let progress = ms(ctx.limits.read_progress_timeout_ms);
    loop {
        let payload = match read_frame(&mut io, ctx.limits.frame_len_max_bytes, idle, progress).await {
            Ok(p) => p,
            Err(e @ FrameError::Idle(_)) => {
                tracing::debug!(peer = %peer, from, "peer connection ends: {e}");
                return;
            }
            Err(e @ (FrameError::Closed | FrameError::Truncated | FrameError::Io(_))) => {
                tracing::debug!(peer = %peer, from, "peer connection ends: {e}");
                ctx.raft.connection_closed(from);
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
            ctx.raft.connection_closed(from);
            return;
        };
        if let Err(e) = send_response(&mut io, &resp, ctx).await {
            tracing::debug!(peer = %peer, from, "cannot answer peer: {e}");
            ctx.raft.connection_closed(from);
            return;
        }
    }
}

/// Runs the handshake and returns the peer's node id; or why it was refused.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, ctx: &ServerCtx) -> Result<NodeId, String> {
    super::handshake::accept(io, &ctx.auth, ms(ctx.limits.handshake_timeout_ms)).await
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
    if let PeerRequest::SnapshotChunk { head, .. } = &req {
        // The last chunk is answered once the whole snapshot is installed.
        let len = if head.done { head.total_len } else { 0 };
        budget += transfer_budget(usize::try_from(len).unwrap_or(usize::MAX), ctx.limits.snapshot_bytes_per_s_min);
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
        PeerRequest::SnapshotChunk { vote, meta, head, data } => {
            let step = ctx.snapshots().receive(from, meta.last_log_id, &head, data, std::time::Instant::now());
            PeerResponse::SnapshotChunk(match step {
                Ok(Step::Have(n)) => Ok(ChunkReply::Have(n)),
                Ok(Step::Complete(data)) => {
                    ctx.raft.snapshot(vote, Snapshot { meta, snapshot: data }).await.map(ChunkReply::Installed)
                }
                Err(e) => {
                    tracing::warn!(from, "refused a snapshot chunk: {e}");
                    Err(format!("snapshot chunk refused: {e}"))
                }
            })
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
