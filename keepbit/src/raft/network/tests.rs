//! Peer network (client side) tests.

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
    /// Calls of `snapshot`, counted as they start.
    snapshots_started: Arc<AtomicUsize>,
    /// The data of the last snapshot installed.
    last_snapshot: Arc<Mutex<Vec<u8>>>,
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
        self.snapshots_started.fetch_add(1, Ordering::SeqCst);
        if self.hang_snapshot {
            return Box::pin(futures::future::pending());
        }
        self.snapshots_bytes.fetch_add(snapshot.snapshot.len(), Ordering::SeqCst);
        *self.last_snapshot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot.snapshot;
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
    net.new_client(2, &Member::new(addr.to_string(), "")).await
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
    handshake::dial(&mut oversize, &SECRET.into(), 9, T).await.expect("handshake");
    oversize.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
    assert_closed_by_server(oversize).await;

    assert_eq!(network(SECRET).call_app(&server.addr.to_string(), b"ok".to_vec(), T).await.expect("call"), b"1:ok");
    server.stop().await;
}

/// A peer that connects and goes quiet, before or after its hello, is disconnected.
#[tokio::test]
async fn silent_inbound_connections_are_closed() {
    let limits = PeerLimits { handshake_timeout_ms: 200, conn_idle_timeout_ms: 200, ..PeerLimits::default() };
    let server = start_with(TcpListener::bind("127.0.0.1:0").await.expect("bind"), FakeRaft::default(), limits).await;

    let mute = TcpStream::connect(server.addr).await.expect("connect");
    assert_closed_by_server(mute).await;

    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    handshake::dial(&mut idle, &SECRET.into(), 9, T).await.expect("handshake");
    assert_closed_by_server(idle).await;
    server.stop().await;
}

/// Connections from one address that never finish their handshake hold at most
/// `handshakes_per_source_max` slots: more from there are closed at once, while another
/// address is still served, and the first address is served again once they time out.
#[tokio::test]
async fn one_source_cannot_hold_every_handshake_slot() {
    let limits = PeerLimits { handshakes_per_source_max: 2, handshake_timeout_ms: 1_000, ..PeerLimits::default() };
    let server = start_with(TcpListener::bind("127.0.0.1:0").await.expect("bind"), FakeRaft::default(), limits).await;
    let addr = server.addr.to_string();
    let mute: Vec<TcpStream> = futures::future::join_all((0..2).map(|_| TcpStream::connect(server.addr)))
        .await
        .into_iter()
        .map(|s| s.expect("connect"))
        .collect();
    // Let the server take both in, then a third from the same address is closed at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    assert_closed_by_server(third).await;
    assert!(started.elapsed() < Duration::from_millis(900), "closed by the limit, not by the handshake timeout");
    let other =
        Network::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), SECRET.into(), PeerLimits::default()).with_node_id(2);
    assert_eq!(other.call_app(&addr, b"x".to_vec(), T).await.expect("another address is served"), b"2:x");
    for s in mute {
        assert_closed_by_server(s).await;
    }
    assert_eq!(network(SECRET).call_app(&addr, b"y".to_vec(), T).await.expect("served again"), b"1:y");
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
    let err =
        client(&mut net, addr).await.vote(vote, RPCOption::new(Duration::from_millis(400))).await.expect_err("silent");
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

fn sized_entry(index: u64, payload_bytes: usize) -> Entry {
    let log_id = openraft::LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 1 }, index);
    Entry { log_id, payload: EntryPayload::Normal(crate::raft::types::Request(vec![0u8; payload_bytes].into())) }
}

/// AppendEntries batches are cut by bytes, never below one entry.
#[test]
fn append_batches_are_cut_by_bytes() {
    let mut batch: Vec<Entry> = (1..=10).map(|i| sized_entry(i, 1000)).collect();
    assert!(fit_entries(&mut batch, 3_500), "cut");
    assert_eq!(batch.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2, 3]);
    let mut big = vec![sized_entry(1, 10_000), sized_entry(2, 10)];
    assert!(fit_entries(&mut big, 1_000));
    assert_eq!(big.len(), 1, "an entry over the budget still goes, alone");
    let mut small: Vec<Entry> = (1..=3).map(|i| sized_entry(i, 10)).collect();
    assert!(!fit_entries(&mut small, 1_000));
    assert_eq!(small.len(), 3);
    assert!(!fit_entries(&mut Vec::new(), 1_000), "a heartbeat stays a heartbeat");
}

#[path = "snapshot_tests.rs"]
mod snapshot_tests;
