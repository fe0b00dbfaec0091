//! The client side of the peer network: openraft's `RaftNetworkFactory` / `RaftNetworkV2`
//! over pooled TCP connections, plus [`Network::call_app`] for application requests.
//!
//! Every call has a deadline (openraft's `soft_ttl`, or the caller's), dialing has its own
//! shorter one, and a connection goes back to the pool only after a clean request/response;
//! on any error it is dropped. Outgoing connections bind this node's own IP first, so tests
//! can partition nodes by source address.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
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
use openraft::OptionalSend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use super::peer::PeerLimits;
use super::peer::{
    decode_payload, encode_frame, ms, read_frame, transfer_budget, write_parts, FrameError, Hello, HelloReply,
    OutFrame, PeerRequest, PeerResponse, RemoteResult, HELLO_LEN_MAX_BYTES,
};
use super::types::{Node, NodeId, Snapshot, TypeConfig, Vote};

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
    secret: String,
    limits: PeerLimits,
    dialer: Arc<dyn Dialer>,
    /// By target address; one entry per peer ever called.
    peers: Mutex<HashMap<String, PeerSlot>>,
}

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
        match tokio::time::timeout_at(deadline, self.exchange(from, addr, frame, deadline)).await {
            Ok(Err(Failure::TimedOut)) | Err(_) => Err(timed_out()),
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
    ) -> Result<PeerResponse, Failure> {
        let slots = self.in_flight(addr);
        let _slot = slots.acquire().await.map_err(|_| Failure::TimedOut)?;
        let mut io = match self.take_idle(addr) {
            Some(io) => io,
            None => self.connect(from, addr, deadline).await?,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        let failed = |e| frame_failure(addr, Phase::Request, e);
        write_parts(&mut io, &frame.parts(), wait).await.map_err(failed)?;
        let payload = read_frame(&mut io, self.limits.frame_len_max_bytes, wait, wait).await.map_err(failed)?;
        let resp = decode_payload::<PeerResponse>(&payload).map_err(failed)?;
        self.put_idle(addr, io);
        Ok(resp)
    }

    /// Dials (within `connect_timeout_ms`) and says hello (within the call's deadline).
    async fn connect(&self, from: NodeId, addr: &str, deadline: Instant) -> Result<Box<dyn PeerIo>, Failure> {
        let unreachable = |reason| Failure::Peer(PeerError::Unreachable { addr: addr.to_owned(), reason });
        let connect_timeout = ms(self.limits.connect_timeout_ms);
        let connect_by = deadline.min(Instant::now() + connect_timeout);
        let dialing = async {
            let target = resolve(addr).await?;
            self.dialer.dial(target).await
        };
        let mut io = match tokio::time::timeout_at(connect_by, dialing).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable(format!("no connection within {connect_timeout:?}"))),
        };
        let failed = |e| frame_failure(addr, Phase::Hello, e);
        let hello = encode_frame(&Hello::new(self.secret.clone(), from), HELLO_LEN_MAX_BYTES).map_err(failed)?;
        let wait = deadline.saturating_duration_since(Instant::now());
        write_parts(&mut io, &[&hello], wait).await.map_err(failed)?;
        let payload = read_frame(&mut io, HELLO_LEN_MAX_BYTES, wait, wait).await.map_err(failed)?;
        match decode_payload::<HelloReply>(&payload).map_err(failed)? {
            HelloReply::Ok => Ok(io),
            HelloReply::Refused { reason } => Err(Failure::Peer(PeerError::Refused { addr: addr.to_owned(), reason })),
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

/// An idle connection has nothing to read: EOF or stray bytes mean it is unusable.
fn is_open(io: &mut Box<dyn PeerIo>) -> bool {
    let mut probe = [0u8; 1];
    io.read(&mut probe).now_or_never().is_none()
}

async fn resolve(addr: &str) -> io::Result<SocketAddr> {
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
}

impl Network {
    /// Dials from `own_ip` (port 0). Set this node's id with [`Network::with_node_id`]
    /// before cloning; until then hellos announce node 0.
    pub fn new(own_ip: IpAddr, secret: String, limits: PeerLimits) -> Self {
        Network::with_dialer(Arc::new(BoundTcpDialer { own_ip }), secret, limits)
    }

    pub fn with_dialer(dialer: Arc<dyn Dialer>, secret: String, limits: PeerLimits) -> Self {
        let pools = Pools { secret, limits, dialer, peers: Mutex::new(HashMap::new()) };
        Network { pools: Arc::new(pools), node_id: 0 }
    }

    /// The id announced in hellos (peers see it as `from`) and reported in timeouts.
    pub fn with_node_id(mut self, node_id: NodeId) -> Self {
        self.node_id = node_id;
        self
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

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient { pools: self.pools.clone(), node_id: self.node_id, target, addr: node.addr.clone() }
    }
}

/// openraft's connection to one target; all clients share the node's [`Pools`].
pub struct PeerClient {
    pools: Arc<Pools>,
    node_id: NodeId,
    target: NodeId,
    addr: String,
}

impl PeerClient {
    async fn rpc(
        &self,
        req: &PeerRequest,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<TypeConfig>> {
        let timeout = option.soft_ttl();
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
        match self.rpc(&PeerRequest::Append(rpc), RPCTypes::AppendEntries, &option).await? {
            PeerResponse::Append(r) => self.remote(r),
            other => Err(self.unexpected(other, "append")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
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
        match self.rpc(&PeerRequest::PreVote(rpc), RPCTypes::Vote, &option).await? {
            PeerResponse::PreVote(r) => self.remote(r),
            other => Err(self.unexpected(other, "pre-vote")),
        }
    }

    /// The deadline is `soft_ttl` plus the time to move the data at
    /// `snapshot_bytes_per_s_min`; `cancel` abandons the transfer (and its connection).
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let action = RPCTypes::InstallSnapshot;
        let limits = &self.pools.limits;
        let timeout = option.soft_ttl() + transfer_budget(snapshot.snapshot.len(), limits.snapshot_bytes_per_s_min);
        let frame =
            OutFrame::snapshot(&vote, &snapshot.meta, snapshot.snapshot, limits.frame_len_max_bytes).map_err(|e| {
                tracing::error!(target_node = self.target, "cannot send snapshot: {e}");
                let e = PeerError::TooLarge { addr: self.addr.clone(), reason: e.to_string() };
                self.rpc_error(e, action, timeout)
            })?;
        let resp = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = self.pools.call(self.node_id, &self.addr, &frame, timeout) => r.map_err(|e| self.rpc_error(e, action, timeout))?,
        };
        match resp {
            PeerResponse::Snapshot(r) => Ok(self.remote(r)?),
            other => Err(self.unexpected(other, "snapshot").into()),
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::raft::peer::{serve_with_limits, AppHandler, RaftHandle};
    use crate::raft::types::SnapshotMeta;

    const SECRET: &str = "cluster-secret";
    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Answers `"{from}:{req}"`.
    struct Echo;

    impl AppHandler for Echo {
        fn handle(&self, from: NodeId, req: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
            Box::pin(async move { [format!("{from}:").into_bytes(), req].concat() })
        }
    }

    #[derive(Default)]
    struct FakeRaft {
        /// Every call fails remotely, like a stopped raft.
        fail: bool,
        /// `snapshot` never answers.
        hang_snapshot: bool,
        snapshots_bytes: Arc<AtomicUsize>,
    }

    impl FakeRaft {
        fn answer<T: Send + 'static>(&self, ok: T) -> BoxFuture<'static, RemoteResult<T>> {
            let r = if self.fail { Err("fatal: raft stopped".to_owned()) } else { Ok(ok) };
            Box::pin(async move { r })
        }
    }

    impl RaftHandle for FakeRaft {
        fn append(
            &self,
            _: AppendEntriesRequest<TypeConfig>,
        ) -> BoxFuture<'static, RemoteResult<AppendEntriesResponse<TypeConfig>>> {
            self.answer(AppendEntriesResponse::Success)
        }
        fn vote(&self, req: VoteRequest<TypeConfig>) -> BoxFuture<'static, RemoteResult<VoteResponse<TypeConfig>>> {
            self.answer(VoteResponse::new(req.vote, None, true))
        }
        fn pre_vote(&self, req: VoteRequest<TypeConfig>) -> BoxFuture<'static, RemoteResult<VoteResponse<TypeConfig>>> {
            self.answer(VoteResponse::new(req.vote, None, false))
        }
        fn snapshot(
            &self,
            vote: Vote,
            snapshot: Snapshot,
        ) -> BoxFuture<'static, RemoteResult<SnapshotResponse<TypeConfig>>> {
            if self.hang_snapshot {
                return Box::pin(futures::future::pending());
            }
            self.snapshots_bytes.fetch_add(snapshot.snapshot.len(), Ordering::SeqCst);
            self.answer(SnapshotResponse::new(vote))
        }
        fn transfer_leader(
            &self,
            _: TransferLeaderRequest<TypeConfig>,
        ) -> BoxFuture<'static, RemoteResult<TransferLeaderResponse<TypeConfig>>> {
            self.answer(Ok(()))
        }
    }

    struct TestServer {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        task: JoinHandle<()>,
    }

    impl TestServer {
        async fn stop(self) {
            let _ = self.stop.send(());
            tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("serve returns").expect("join");
        }
    }

    async fn start_on(listener: TcpListener, raft: FakeRaft) -> TestServer {
        start_with(listener, raft, PeerLimits::default()).await
    }

    async fn start_with(listener: TcpListener, raft: FakeRaft, limits: PeerLimits) -> TestServer {
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_with_limits(listener, raft, SECRET.into(), Arc::new(Echo), limits, async {
            let _ = stopped.await;
        }));
        TestServer { addr, stop, task }
    }

    async fn start(raft: FakeRaft) -> TestServer {
        start_on(TcpListener::bind("127.0.0.1:0").await.expect("bind"), raft).await
    }

    fn network(secret: &str) -> Network {
        Network::new(LOCALHOST, secret.into(), PeerLimits::default()).with_node_id(1)
    }

    async fn client(net: &mut Network, addr: SocketAddr) -> PeerClient {
        net.new_client(2, &Node::new(addr.to_string(), "")).await
    }

    fn option() -> RPCOption {
        RPCOption::new(Duration::from_secs(4))
    }

    const T: Duration = Duration::from_secs(2);

    async fn wait_for(condition: impl Fn() -> bool, deadline: Duration) {
        let started = Instant::now();
        while !condition() {
            assert!(started.elapsed() < deadline, "condition not met within {deadline:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Reads until the server closes: EOF or reset, never data, within 2 s.
    async fn assert_closed_by_server(mut s: TcpStream) {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(T, s.read(&mut buf)).await.expect("server closes the connection") {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("server sent {n} bytes instead of closing"),
        }
    }

    /// An application request reaches the handler with our node id and comes back; the
    /// connection returns to the pool and is reused.
    #[tokio::test]
    async fn app_request_roundtrip_reuses_the_connection() {
        let server = start(FakeRaft::default()).await;
        let net = network(SECRET);
        let addr = server.addr.to_string();
        assert_eq!(net.call_app(&addr, b"ping".to_vec(), T).await.expect("call"), b"1:ping");
        assert_eq!(net.call_app(&addr, b"again".to_vec(), T).await.expect("call"), b"1:again");
        assert_eq!(net.pools.idle_count(&addr), 1, "one connection served both calls");
        server.stop().await;
    }

    /// A wrong cluster secret is refused, and the server goes on serving others.
    #[tokio::test]
    async fn wrong_secret_is_refused_and_server_keeps_serving() {
        let server = start(FakeRaft::default()).await;
        let addr = server.addr.to_string();
        let err = network("not-the-secret").call_app(&addr, b"x".to_vec(), T).await.expect_err("refused");
        assert!(matches!(&err, PeerError::Refused { reason, .. } if reason.contains("secret")), "{err}");
        assert_eq!(network(SECRET).call_app(&addr, b"ok".to_vec(), T).await.expect("call"), b"1:ok");
        server.stop().await;
    }

    /// Garbage, an oversized hello header, and an oversized request header after a good hello
    /// each close only their own connection.
    #[tokio::test]
    async fn malformed_frames_close_only_their_connection() {
        let server = start(FakeRaft::default()).await;

        let mut garbage = TcpStream::connect(server.addr).await.expect("connect");
        garbage.write_all(&[0, 0, 0, 8, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8]).await.expect("write");
        assert_closed_by_server(garbage).await;

        let mut resp_client = TcpStream::connect(server.addr).await.expect("connect");
        resp_client.write_all(b"*1\r\n$4\r\nPING\r\n").await.expect("write");
        assert_closed_by_server(resp_client).await;

        let mut oversize = TcpStream::connect(server.addr).await.expect("connect");
        let hello = encode_frame(&Hello::new(SECRET.into(), 9), HELLO_LEN_MAX_BYTES).expect("hello");
        oversize.write_all(&hello).await.expect("write");
        let reply = read_frame(&mut oversize, HELLO_LEN_MAX_BYTES, T, T).await.expect("hello reply");
        assert_eq!(decode_payload::<HelloReply>(&reply).expect("decode"), HelloReply::Ok);
        oversize.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
        assert_closed_by_server(oversize).await;

        assert_eq!(network(SECRET).call_app(&server.addr.to_string(), b"ok".to_vec(), T).await.expect("call"), b"1:ok");
        server.stop().await;
    }

    /// A peer that connects and goes quiet, before or after its hello, is disconnected.
    #[tokio::test]
    async fn silent_inbound_connections_are_closed() {
        let limits = PeerLimits { handshake_timeout_ms: 200, conn_idle_timeout_ms: 200, ..PeerLimits::default() };
        let server =
            start_with(TcpListener::bind("127.0.0.1:0").await.expect("bind"), FakeRaft::default(), limits).await;

        let mute = TcpStream::connect(server.addr).await.expect("connect");
        assert_closed_by_server(mute).await;

        let mut idle = TcpStream::connect(server.addr).await.expect("connect");
        let hello = encode_frame(&Hello::new(SECRET.into(), 9), HELLO_LEN_MAX_BYTES).expect("hello");
        idle.write_all(&hello).await.expect("write");
        let reply = read_frame(&mut idle, HELLO_LEN_MAX_BYTES, T, T).await.expect("hello reply");
        assert_eq!(decode_payload::<HelloReply>(&reply).expect("decode"), HelloReply::Ok);
        assert_closed_by_server(idle).await;
        server.stop().await;
    }

    /// Nothing listening: Unreachable, for app calls and raft RPCs alike.
    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let addr = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        let mut net = network(SECRET);
        let err = net.call_app(&addr.to_string(), b"x".to_vec(), T).await.expect_err("nobody there");
        assert!(matches!(err, PeerError::Unreachable { .. }), "{err}");
        let vote = VoteRequest::new(Vote::new(1, 1), None);
        let err = client(&mut net, addr).await.vote(vote, option()).await.expect_err("nobody there");
        assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
    }

    /// A peer that accepts but never answers yields Timeout, close to the deadline.
    #[tokio::test]
    async fn silent_peer_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind"); // never accepts
        let addr = listener.local_addr().expect("addr");
        let mut net = network(SECRET);
        let started = Instant::now();
        let err = net.call_app(&addr.to_string(), b"x".to_vec(), Duration::from_millis(300)).await.expect_err("silent");
        assert!(matches!(err, PeerError::Timeout { timeout_ms: 300, .. }), "{err}");
        assert!(err.outcome_unknown());
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        let vote = VoteRequest::new(Vote::new(1, 1), None);
        let err = client(&mut net, addr)
            .await
            .vote(vote, RPCOption::new(Duration::from_millis(400)))
            .await
            .expect_err("silent");
        assert!(matches!(&err, RPCError::Timeout(t) if t.target == 2 && t.id == 1), "{err}");
    }

    /// Every raft RPC goes through and comes back, the snapshot data intact.
    #[tokio::test]
    async fn raft_rpcs_roundtrip() {
        let raft = FakeRaft::default();
        let received = raft.snapshots_bytes.clone();
        let server = start(raft).await;
        let mut net = network(SECRET);
        let mut c = client(&mut net, server.addr).await;
        let v = Vote::new_committed(2, 1);

        let append = AppendEntriesRequest { vote: v, prev_log_id: None, entries: vec![], leader_commit: None };
        assert_eq!(c.append_entries(append, option()).await.expect("append"), AppendEntriesResponse::Success);
        assert!(c.vote(VoteRequest::new(v, None), option()).await.expect("vote").vote_granted);
        assert!(!c.pre_vote(VoteRequest::new(v, None), option()).await.expect("pre-vote").vote_granted);
        let tl = TransferLeaderRequest::new(v, 2, None);
        assert_eq!(c.transfer_leader(tl, option()).await.expect("transfer"), Ok(()));

        let snapshot = Snapshot { meta: SnapshotMeta::default(), snapshot: vec![7; 300_000] };
        let resp = c.full_snapshot(v, snapshot, futures::future::pending(), option()).await.expect("snapshot");
        assert_eq!(resp, SnapshotResponse::new(v));
        assert_eq!(received.load(Ordering::SeqCst), 300_000);
        server.stop().await;
    }

    /// A raft error on the receiver reaches openraft as Unreachable (back off).
    #[tokio::test]
    async fn remote_raft_error_is_unreachable() {
        let server = start(FakeRaft { fail: true, ..FakeRaft::default() }).await;
        let mut net = network(SECRET);
        let err = client(&mut net, server.addr).await.vote(VoteRequest::new(Vote::new(1, 1), None), option()).await;
        assert!(matches!(&err, Err(RPCError::Unreachable(u)) if u.to_string().contains("raft stopped")), "{err:?}");
        server.stop().await;
    }

    /// Resolving `cancel` abandons a snapshot transfer with Closed.
    #[tokio::test]
    async fn snapshot_cancel_returns_closed() {
        let server = start(FakeRaft { hang_snapshot: true, ..FakeRaft::default() }).await;
        let mut net = network(SECRET);
        let snapshot = Snapshot { meta: SnapshotMeta::default(), snapshot: vec![1; 1000] };
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ReplicationClosed::new("test")
        };
        let started = Instant::now();
        let err = client(&mut net, server.addr).await.full_snapshot(Vote::new(1, 1), snapshot, cancel, option()).await;
        assert!(matches!(err, Err(StreamingError::Closed(_))), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        server.stop().await;
    }

    /// A pooled connection whose server went away is discarded, not used for the next call.
    #[tokio::test]
    async fn closed_pooled_connection_is_not_reused() {
        let server = start(FakeRaft::default()).await;
        let addr = server.addr;
        let net = network(SECRET);
        net.call_app(&addr.to_string(), b"1".to_vec(), T).await.expect("call");
        assert_eq!(net.pools.idle_count(&addr.to_string()), 1);
        server.stop().await; // drops its connections
        let server = start_on(TcpListener::bind(addr).await.expect("rebind"), FakeRaft::default()).await;
        wait_for(|| net.pools.idle_open_count(&addr.to_string()) == 0, T).await; // the FIN has arrived
        assert_eq!(net.call_app(&addr.to_string(), b"2".to_vec(), T).await.expect("call"), b"1:2");
        server.stop().await;
    }

    /// Outgoing connections come from the node's own IP, so firewall rules can single it out.
    #[tokio::test]
    async fn dials_from_own_ip() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let own_ip: IpAddr = "127.0.0.2".parse().expect("ip");
        let dialed = BoundTcpDialer { own_ip }.dial(addr);
        let (accepted, dialed) = tokio::join!(listener.accept(), dialed);
        dialed.expect("dial");
        assert_eq!(accepted.expect("accept").1.ip(), own_ip);
    }
}
