//! The client side of the peer network: openraft's `RaftNetworkFactory` / `RaftNetworkV2`
//! over pooled TCP connections, plus [`Network::call_app`] for application requests.
//! Snapshots go in chunks that resume where the receiver stands ([`snapshot`]).
//!
//! Every call has a deadline (openraft's `soft_ttl`, or the caller's), dialing has its own
//! shorter one, and a connection goes back to the pool only after a clean request/response;
//! on any error it is dropped. Outgoing connections bind this node's own IP first, so tests
//! can partition nodes by source address. What each call ran into is noted per peer
//! ([`seen`]) for the failover journal.

mod seen;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, OptionalSend};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::peer::handshake::{self, DialError};
pub use super::peer::PeerLimits;
use super::peer::{
    decode_payload, ms, read_frame, transfer_budget, write_parts, FrameError, OutFrame, PeerAuth, PeerRequest,
    PeerResponse, RemoteResult,
};
use super::types::{Entry, Member, NodeId, Snapshot, TypeConfig, Vote};
use crate::health::phi::PeerArrivals;
use crate::tls::PeerTls;
pub use seen::{Campaign, Failure as SeenFailure, Observations, PeerSeen, SeenSince};

/// Why a peer call failed. `Timeout` and `ConnectionLost` leave the outcome unknown: the
/// request may have run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("peer {addr} did not answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("peer {addr} refused the connection: {reason}")]
    Refused { addr: String, reason: String },
    #[error("protocol error with peer {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("connection to peer {addr} lost mid-request: {reason}")]
    ConnectionLost { addr: String, reason: String },
    #[error("peer {addr} failed the request: {reason}")]
    Remote { addr: String, reason: String },
    #[error("request to peer {addr} too large: {reason}")]
    TooLarge { addr: String, reason: String },
}

impl PeerError {
    /// The request may have been carried out.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, PeerError::Timeout { .. } | PeerError::ConnectionLost { .. })
    }
}

/// A byte stream to a peer.
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerIo for T {}

/// Opens connections: the seam a deterministic simulation replaces.
pub trait Dialer: Send + Sync + 'static {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn PeerIo>>>;
}

/// TCP from this node's own IP (port 0), so a firewall rule on the source address cuts it.
pub struct BoundTcpDialer {
    pub own_ip: IpAddr,
}

impl Dialer for BoundTcpDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn PeerIo>>> {
        let own_ip = self.own_ip;
        Box::pin(async move {
            let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            if own_ip.is_ipv4() == addr.is_ipv4() && !own_ip.is_unspecified() {
                let local = SocketAddr::new(own_ip, 0);
                socket.bind(local).map_err(|e| io::Error::new(e.kind(), format!("bind {local}: {e}")))?;
            }
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn PeerIo>)
        })
    }
}

/// TLS over another dialer (`cluster.tls`): the peer's certificate must chain to the
/// cluster CA, and ours is shown to it; the hello follows inside the TLS session.
pub struct TlsDialer {
    pub inner: Arc<dyn Dialer>,
    pub tls: PeerTls,
}

impl Dialer for TlsDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn PeerIo>>> {
        let (plain, tls) = (self.inner.dial(addr), self.tls.clone());
        Box::pin(async move {
            let stream = tls.connect(addr.ip(), plain.await?).await?;
            Ok(Box::new(stream) as Box<dyn PeerIo>)
        })
    }
}

struct IdleConn {
    io: Box<dyn PeerIo>,
    since: Instant,
}

#[derive(Default)]
struct PeerSlot {
    idle: Vec<IdleConn>,
    in_flight: Option<Arc<Semaphore>>,
}

/// Connection pools for every target, shared by all clients of one node.
pub struct Pools {
    auth: PeerAuth,
    limits: PeerLimits,
    dialer: Arc<dyn Dialer>,
    /// By target address; one entry per peer ever called.
    peers: Mutex<HashMap<String, PeerSlot>>,
    observed: Arc<Observations>,
}

/// How far a call got, so a deadline that strikes can be told apart: while dialing (no
/// TCP connection) or after (connected, no answer).
const PHASE_WAITING: u8 = 0;
const PHASE_DIALING: u8 = 1;
const PHASE_CONNECTED: u8 = 2;

impl Pools {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, PeerSlot>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `frame` to `addr` and reads the answer, all within `timeout`.
    /// `from` is announced in the hello of any new connection.
    async fn call(
        &self,
        from: NodeId,
        addr: &str,
        frame: &OutFrame,
        timeout: Duration,
    ) -> Result<PeerResponse, PeerError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || PeerError::Timeout { addr: addr.to_owned(), timeout_ms: timeout.as_millis() as u64 };
        let phase = AtomicU8::new(PHASE_WAITING);
        match tokio::time::timeout_at(deadline, self.exchange(from, addr, frame, deadline, &phase)).await {
            Ok(Err(Failure::TimedOut)) | Err(_) => {
                match phase.load(Ordering::Relaxed) {
                    PHASE_DIALING => self.observed.note(addr, SeenFailure::Unconnected),
                    PHASE_CONNECTED => self.observed.note(addr, SeenFailure::Unanswered),
                    _ => {}
                }
                Err(timed_out())
            }
            Ok(Err(Failure::Peer(e))) => Err(e),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    async fn exchange(
        &self,
        from: NodeId,
        addr: &str,
        frame: &OutFrame,
        deadline: Instant,
        phase: &AtomicU8,
    ) -> Result<PeerResponse, Failure> {
        let slots = self.in_flight(addr);
        let _slot = slots.acquire().await.map_err(|_| Failure::TimedOut)?;
        let mut io = match self.take_idle(addr) {
            Some(io) => io,
            None => {
                phase.store(PHASE_DIALING, Ordering::Relaxed);
                self.connect(from, addr, deadline, phase).await?
            }
        };
        phase.store(PHASE_CONNECTED, Ordering::Relaxed);
        let wait = deadline.saturating_duration_since(Instant::now());
        let failed = |e| frame_failure(addr, Phase::Request, e);
        write_parts(&mut io, &frame.parts(), wait).await.map_err(failed)?;
        let payload = read_frame(&mut io, self.limits.frame_len_max_bytes, wait, wait).await.map_err(failed)?;
        let resp = decode_payload::<PeerResponse>(&payload).map_err(failed)?;
        self.put_idle(addr, io);
        Ok(resp)
    }

    /// Dials (within `connect_timeout_ms`) and says hello (within the call's deadline).
    async fn connect(
        &self,
        from: NodeId,
        addr: &str,
        deadline: Instant,
        phase: &AtomicU8,
    ) -> Result<Box<dyn PeerIo>, Failure> {
        let unreachable = |reason| Failure::Peer(PeerError::Unreachable { addr: addr.to_owned(), reason });
        let connect_timeout = ms(self.limits.connect_timeout_ms);
        let connect_by = deadline.min(Instant::now() + connect_timeout);
        let dialing = async {
            let target = resolve(addr).await?;
            self.dialer.dial(target).await
        };
        let mut io = match tokio::time::timeout_at(connect_by, dialing).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => {
                let refused = e.kind() == io::ErrorKind::ConnectionRefused;
                self.observed.note(addr, if refused { SeenFailure::Refused } else { SeenFailure::Unconnected });
                return Err(unreachable(e.to_string()));
            }
            Err(_) => {
                self.observed.note(addr, SeenFailure::Unconnected);
                return Err(unreachable(format!("no connection within {connect_timeout:?}")));
            }
        };
        phase.store(PHASE_CONNECTED, Ordering::Relaxed);
        let wait = deadline.saturating_duration_since(Instant::now());
        match handshake::dial(&mut io, &self.auth, from, wait).await {
            Ok(()) => Ok(io),
            Err(DialError::Frame(e)) => Err(frame_failure(addr, Phase::Hello, e)),
            Err(DialError::Refused(reason)) => Err(Failure::Peer(PeerError::Refused { addr: addr.to_owned(), reason })),
        }
    }

    fn in_flight(&self, addr: &str) -> Arc<Semaphore> {
        let mut peers = self.lock();
        let slot = peers.entry(addr.to_owned()).or_default();
        let max = self.limits.calls_in_flight_per_peer_max;
        slot.in_flight.get_or_insert_with(|| Arc::new(Semaphore::new(max))).clone()
    }

    /// The most recently used idle connection that is young and still open.
    fn take_idle(&self, addr: &str) -> Option<Box<dyn PeerIo>> {
        let ttl = ms(self.limits.idle_conn_ttl_ms);
        loop {
            let conn = self.lock().get_mut(addr)?.idle.pop()?;
            if conn.since.elapsed() > ttl {
                continue;
            }
            let mut io = conn.io;
            if is_open(&mut io) {
                return Some(io);
            }
        }
    }

    fn put_idle(&self, addr: &str, io: Box<dyn PeerIo>) {
        let ttl = ms(self.limits.idle_conn_ttl_ms);
        let mut peers = self.lock();
        let slot = peers.entry(addr.to_owned()).or_default();
        slot.idle.retain(|c| c.since.elapsed() <= ttl);
        if slot.idle.len() < self.limits.idle_conns_per_peer_max {
            slot.idle.push(IdleConn { io, since: Instant::now() });
        }
    }

    #[cfg(test)]
    fn idle_count(&self, addr: &str) -> usize {
        self.lock().get(addr).map_or(0, |s| s.idle.len())
    }

    #[cfg(test)]
    fn idle_open_count(&self, addr: &str) -> usize {
        self.lock().get_mut(addr).map_or(0, |s| s.idle.iter_mut().map(|c| usize::from(is_open(&mut c.io))).sum())
    }
}

/// A failure inside a call; the deadline becomes a `PeerError` only at the top.
enum Failure {
    TimedOut,
    Peer(PeerError),
}

/// Where in a call a frame error happened.
#[derive(Clone, Copy)]
enum Phase {
    /// Nothing sent yet: a closed connection means the peer would not take us.
    Hello,
    /// The request may be out: a closed connection leaves its outcome unknown.
    Request,
}

fn frame_failure(addr: &str, phase: Phase, e: FrameError) -> Failure {
    let addr = addr.to_owned();
    let reason = match phase {
        Phase::Hello => format!("hello: {e}"),
        Phase::Request => e.to_string(),
    };
    let err = match (e, phase) {
        (FrameError::Idle(_) | FrameError::Stalled(_), _) => return Failure::TimedOut,
        (FrameError::Oversize { .. } | FrameError::Decode(_) | FrameError::Encode(_), _) => {
            PeerError::Protocol { addr, reason }
        }
        (FrameError::Closed | FrameError::Truncated | FrameError::Io(_), Phase::Hello) => {
            PeerError::Unreachable { addr, reason }
        }
        (FrameError::Closed | FrameError::Truncated | FrameError::Io(_), Phase::Request) => {
            PeerError::ConnectionLost { addr, reason }
        }
    };
    Failure::Peer(err)
}

/// Bytes an entry adds to an AppendEntries frame, roughly: its payload plus the log id.
fn entry_bytes(e: &Entry) -> usize {
    const OVERHEAD: usize = 64;
    match &e.payload {
        EntryPayload::Normal(r) => r.0.len() + OVERHEAD,
        EntryPayload::Membership(m) => m.nodes().count() * 128 + OVERHEAD,
        EntryPayload::Blank => OVERHEAD,
    }
}

/// Keeps the longest prefix of `entries` within `budget` bytes, but at least one entry;
/// true if any were dropped (they follow in the next request).
fn fit_entries(entries: &mut Vec<Entry>, budget: usize) -> bool {
    let mut used = 0usize;
    let keep = entries
        .iter()
        .position(|e| {
            used = used.saturating_add(entry_bytes(e));
            used > budget
        })
        .map_or(entries.len(), |i| i.max(1));
    let truncated = keep < entries.len();
    entries.truncate(keep);
    truncated
}

/// An idle connection has nothing to read: EOF or stray bytes mean it is unusable.
fn is_open(io: &mut Box<dyn PeerIo>) -> bool {
    let mut probe = [0u8; 1];
    io.read(&mut probe).now_or_never().is_none()
}

/// `addr` (`ip:port` or `name:port`) as a socket address; a name is looked up now.
pub(crate) async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to nothing")))
}

/// The node's peer network: openraft's client factory, and application calls to peers.
#[derive(Clone)]
pub struct Network {
    pools: Arc<Pools>,
    node_id: NodeId,
    /// Answered appends (heartbeats included) are noted here per peer (health's phi).
    arrivals: Option<Arc<PeerArrivals>>,
}

impl Network {
    /// Dials from `own_ip` (port 0). Set this node's id with [`Network::with_node_id`]
    /// before cloning; until then hellos announce node 0.
    pub fn new(own_ip: IpAddr, auth: PeerAuth, limits: PeerLimits) -> Self {
        Network::with_dialer(Arc::new(BoundTcpDialer { own_ip }), auth, limits)
    }

    /// [`Network::new`], over TLS when `tls` is given.
    pub fn with_tls(own_ip: IpAddr, tls: Option<PeerTls>, auth: PeerAuth, limits: PeerLimits) -> Self {
        let tcp: Arc<dyn Dialer> = Arc::new(BoundTcpDialer { own_ip });
        let dialer: Arc<dyn Dialer> = match tls {
            Some(tls) => Arc::new(TlsDialer { inner: tcp, tls }),
            None => tcp,
        };
        Network::with_dialer(dialer, auth, limits)
    }

    pub fn with_dialer(dialer: Arc<dyn Dialer>, auth: PeerAuth, limits: PeerLimits) -> Self {
        let observed = Arc::new(Observations::default());
        let pools = Pools { auth, limits, dialer, peers: Mutex::new(HashMap::new()), observed };
        Network { pools: Arc::new(pools), node_id: 0, arrivals: None }
    }

    /// Notes every answered append per peer in `arrivals`.
    pub fn with_arrivals(mut self, arrivals: Arc<PeerArrivals>) -> Self {
        self.arrivals = Some(arrivals);
        self
    }

    /// The id announced in hellos (peers see it as `from`) and reported in timeouts.
    pub fn with_node_id(mut self, node_id: NodeId) -> Self {
        self.node_id = node_id;
        self
    }

    /// What calls to each peer ran into, and this node's campaign (failover journal).
    pub fn observations(&self) -> Arc<Observations> {
        self.pools.observed.clone()
    }

    /// Sends an opaque application request to the peer at `target_addr` ("ip:port") and
    /// returns its handler's answer.
    pub async fn call_app(&self, target_addr: &str, req: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, PeerError> {
        let frame = OutFrame::message(&PeerRequest::App(req), self.pools.limits.frame_len_max_bytes)
            .map_err(|e| PeerError::TooLarge { addr: target_addr.to_owned(), reason: e.to_string() })?;
        match self.pools.call(self.node_id, target_addr, &frame, timeout).await? {
            PeerResponse::App(answer) => Ok(answer),
            PeerResponse::Error(reason) => Err(PeerError::Remote { addr: target_addr.to_owned(), reason }),
            other => Err(PeerError::Protocol {
                addr: target_addr.to_owned(),
                reason: format!("{} response to an app request", other.kind()),
            }),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        let arrivals = self.arrivals.clone();
        PeerClient { pools: self.pools.clone(), node_id: self.node_id, target, addr: node.addr.clone(), arrivals }
    }
}

/// openraft's connection to one target; all clients share the node's [`Pools`].
pub struct PeerClient {
    pools: Arc<Pools>,
    node_id: NodeId,
    target: NodeId,
    addr: String,
    arrivals: Option<Arc<PeerArrivals>>,
}

impl PeerClient {
    async fn rpc(
        &self,
        req: &PeerRequest,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<TypeConfig>> {
        self.rpc_within(req, action, option.soft_ttl()).await
    }

    async fn rpc_within(
        &self,
        req: &PeerRequest,
        action: RPCTypes,
        timeout: Duration,
    ) -> Result<PeerResponse, RPCError<TypeConfig>> {
        let frame = OutFrame::message(req, self.pools.limits.frame_len_max_bytes).map_err(|e| {
            let e = PeerError::TooLarge { addr: self.addr.clone(), reason: e.to_string() };
            self.rpc_error(e, action, timeout)
        })?;
        self.pools.call(self.node_id, &self.addr, &frame, timeout).await.map_err(|e| self.rpc_error(e, action, timeout))
    }

    /// Unreachable makes openraft back off (node down, refused, failing); Network and
    /// Timeout make it retry soon.
    fn rpc_error(&self, e: PeerError, action: RPCTypes, timeout: Duration) -> RPCError<TypeConfig> {
        tracing::debug!(target_node = self.target, "peer rpc {action} failed: {e}");
        match e {
            PeerError::Timeout { .. } => {
                RPCError::Timeout(Timeout { action, id: self.node_id, target: self.target, timeout })
            }
            PeerError::Unreachable { .. }
            | PeerError::Refused { .. }
            | PeerError::Remote { .. }
            | PeerError::TooLarge { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            PeerError::Protocol { .. } | PeerError::ConnectionLost { .. } => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn remote<T>(&self, r: RemoteResult<T>) -> Result<T, RPCError<TypeConfig>> {
        r.map_err(|reason| {
            RPCError::Unreachable(Unreachable::new(&PeerError::Remote { addr: self.addr.clone(), reason }))
        })
    }

    fn unexpected(&self, resp: PeerResponse, asked: &str) -> RPCError<TypeConfig> {
        match resp {
            PeerResponse::Error(reason) => {
                RPCError::Unreachable(Unreachable::new(&PeerError::Remote { addr: self.addr.clone(), reason }))
            }
            other => RPCError::Network(NetworkError::new(&PeerError::Protocol {
                addr: self.addr.clone(),
                reason: format!("{} response to a {asked} request", other.kind()),
            })),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut rpc = rpc;
        let truncated = fit_entries(&mut rpc.entries, self.pools.limits.append_bytes_max);
        let last_sent = rpc.entries.last().map(|e| e.log_id);
        // openraft gives every append the heartbeat's deadline (15 ms here); a batch of
        // large entries gets the time to move its bytes on top, as snapshots do, instead
        // of timing out and being sent again forever.
        let bytes: usize = rpc.entries.iter().map(entry_bytes).sum();
        let floor = ms(self.pools.limits.heartbeat_timeout_min_ms);
        let timeout = option.soft_ttl().max(floor) + transfer_budget(bytes, self.pools.limits.snapshot_bytes_per_s_min);
        let answer = self.rpc_within(&PeerRequest::Append(rpc), RPCTypes::AppendEntries, timeout).await?;
        if let (Some(arrivals), PeerResponse::Append(_)) = (&self.arrivals, &answer) {
            arrivals.heartbeat(self.target);
        }
        match answer {
            PeerResponse::Append(Ok(AppendEntriesResponse::Success)) if truncated => {
                Ok(AppendEntriesResponse::PartialSuccess(last_sent))
            }
            PeerResponse::Append(r) => self.remote(r),
            other => Err(self.unexpected(other, "append")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.pools.observed.campaigning();
        match self.rpc(&PeerRequest::Vote(rpc), RPCTypes::Vote, &option).await? {
            PeerResponse::Vote(r) => self.remote(r),
            other => Err(self.unexpected(other, "vote")),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.pools.observed.campaigning();
        match self.rpc(&PeerRequest::PreVote(rpc), RPCTypes::Vote, &option).await? {
            PeerResponse::PreVote(r) => self.remote(r),
            other => Err(self.unexpected(other, "pre-vote")),
        }
    }

    /// Streams the snapshot in chunks ([`snapshot`]), each with its own deadline;
    /// `cancel` abandons the transfer (and the connection of the chunk in flight).
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = self.stream_snapshot(&vote, snapshot, option.soft_ttl()) => Ok(r?),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.rpc(&PeerRequest::TransferLeader(req), RPCTypes::TransferLeader, &option).await? {
            PeerResponse::TransferLeader(r) => self.remote(r),
            other => Err(self.unexpected(other, "transfer-leader")),
        }
    }
}

mod snapshot;
#[cfg(test)]
mod tests;
