//! Snapshots in chunks: the sender's resume logic, and transfers through a real server.

use std::pin::Pin;
use std::sync::atomic::AtomicI64;
use std::task::{Context, Poll};

use super::snapshot::{calls_max, next_chunk};
use super::*;

#[test]
fn the_next_chunk_starts_where_the_receiver_stands() {
    assert_eq!(next_chunk(0, 10_000, 4_000), Ok(0..4_000));
    assert_eq!(next_chunk(4_000, 10_000, 4_000), Ok(4_000..8_000));
    assert_eq!(next_chunk(8_000, 10_000, 4_000), Ok(8_000..10_000), "the last chunk is short");
    assert_eq!(next_chunk(10_000, 10_000, 4_000), Ok(10_000..10_000), "all there: an empty last chunk");
    assert_eq!(next_chunk(0, 0, 4_000), Ok(0..0), "an empty snapshot");
    assert!(next_chunk(10_001, 10_000, 4_000).is_err(), "a receiver holding more than there is");
    assert!(next_chunk(u64::MAX, 10_000, 4_000).is_err());
    assert_eq!(calls_max(10_000, 4_000), 16);
}

/// Writes fail (a broken connection) once the shared byte budget is spent; counts what got out.
struct Flaky {
    inner: Box<dyn PeerIo>,
    budget: Arc<AtomicI64>,
    written: Arc<AtomicUsize>,
}

impl AsyncRead for Flaky {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Flaky {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let left = self.budget.load(Ordering::SeqCst);
        if left <= 0 {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let r = Pin::new(&mut self.inner).poll_write(cx, &buf[..n]);
        if let Poll::Ready(Ok(w)) = &r {
            self.budget.fetch_sub(*w as i64, Ordering::SeqCst);
            self.written.fetch_add(*w, Ordering::SeqCst);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct FlakyDialer {
    budget: Arc<AtomicI64>,
    written: Arc<AtomicUsize>,
}

impl Dialer for FlakyDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn PeerIo>>> {
        let tcp = BoundTcpDialer { own_ip: LOCALHOST }.dial(addr);
        let (budget, written) = (self.budget.clone(), self.written.clone());
        Box::pin(async move { Ok(Box::new(Flaky { inner: tcp.await?, budget, written }) as Box<dyn PeerIo>) })
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn installed(raft: &FakeRaft) -> Arc<Mutex<Vec<u8>>> {
    raft.last_snapshot.clone()
}

/// A transfer whose connection breaks after four of ten chunks fails; the next attempt
/// asks the receiver where it stands and sends only the rest (60 000 of 100 000 bytes
/// plus frame headers), and the receiver installs exactly the sender's bytes.
#[tokio::test]
async fn an_interrupted_snapshot_resumes_from_the_receivers_offset() {
    let raft = FakeRaft::default();
    let got = installed(&raft);
    let server = start(raft).await;
    let (budget, written) = (Arc::new(AtomicI64::new(45_000)), Arc::new(AtomicUsize::new(0)));
    let dialer = FlakyDialer { budget: budget.clone(), written: written.clone() };
    let limits = PeerLimits { snapshot_chunk_bytes: 10_000, ..PeerLimits::default() };
    let mut net = Network::with_dialer(Arc::new(dialer), SECRET.into(), limits).with_node_id(1);
    let mut c = client(&mut net, server.addr).await;
    let data = pattern(100_000);
    let snap = || Snapshot { meta: SnapshotMeta::default(), snapshot: data.clone() };
    let v = Vote::new_committed(2, 1);
    let cut = c.full_snapshot(v, snap(), futures::future::pending(), option()).await;
    assert!(cut.is_err(), "the transfer went through a broken connection: {cut:?}");
    assert!(got.lock().unwrap_or_else(PoisonError::into_inner).is_empty(), "installed a partial snapshot");
    budget.store(i64::MAX, Ordering::SeqCst);
    let before = written.load(Ordering::SeqCst);
    let resp = c.full_snapshot(v, snap(), futures::future::pending(), option()).await.expect("resumed");
    assert_eq!(resp, SnapshotResponse::new(v));
    let resent = written.load(Ordering::SeqCst) - before;
    assert!((60_000..65_000).contains(&resent), "the resumed attempt sent {resent} bytes");
    assert!(*got.lock().unwrap_or_else(PoisonError::into_inner) == data, "installed other bytes");
    server.stop().await;
}

/// A snapshot 16 times the peer frame limit goes through in chunks, intact.
#[tokio::test]
async fn a_snapshot_larger_than_a_frame_goes_through_in_chunks() {
    let limits = PeerLimits { frame_len_max_bytes: 64 << 10, snapshot_chunk_bytes: 16 << 10, ..PeerLimits::default() };
    let raft = FakeRaft::default();
    let got = installed(&raft);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = start_with(listener, raft, limits.clone()).await;
    let mut net = Network::new(LOCALHOST, SECRET.into(), limits).with_node_id(1);
    let data = pattern(1 << 20);
    let v = Vote::new_committed(2, 1);
    let snapshot = Snapshot { meta: SnapshotMeta::default(), snapshot: data.clone() };
    let mut c = client(&mut net, server.addr).await;
    let resp = c.full_snapshot(v, snapshot, futures::future::pending(), option()).await.expect("snapshot");
    assert_eq!(resp, SnapshotResponse::new(v));
    assert!(*got.lock().unwrap_or_else(PoisonError::into_inner) == data, "installed other bytes");
    server.stop().await;
}

/// Votes and heartbeats never wait behind a snapshot: while the receiver is still
/// installing one (it never finishes here), a vote and an empty append are answered.
#[tokio::test]
async fn votes_and_heartbeats_pass_a_snapshot_in_flight() {
    let raft = FakeRaft { hang_snapshot: true, ..FakeRaft::default() };
    let installing = raft.snapshots_started.clone();
    let server = start(raft).await;
    let mut net = network(SECRET);
    let mut snap_client = client(&mut net, server.addr).await;
    let v = Vote::new_committed(2, 1);
    let snapshot = Snapshot { meta: SnapshotMeta::default(), snapshot: pattern(100_000) };
    let transfer = tokio::spawn(async move {
        snap_client.full_snapshot(v, snapshot, futures::future::pending(), option()).await.map(|_| ())
    });
    wait_for(|| installing.load(Ordering::SeqCst) == 1, T).await;
    let mut c = client(&mut net, server.addr).await;
    let started = Instant::now();
    assert!(c.vote(VoteRequest::new(v, None), option()).await.expect("vote").vote_granted);
    let heartbeat = AppendEntriesRequest { vote: v, prev_log_id: None, entries: vec![], leader_commit: None };
    assert_eq!(c.append_entries(heartbeat, option()).await.expect("append"), AppendEntriesResponse::Success);
    assert!(started.elapsed() < T, "took {:?}", started.elapsed());
    assert!(!transfer.is_finished(), "the install was supposed to hang");
    transfer.abort();
    server.stop().await;
}
