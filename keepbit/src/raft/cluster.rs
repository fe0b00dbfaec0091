//! `Cluster`: this node's membership in a replicated Keepbit cluster. Wires openraft to
//! our log store, state machine and peer network; forms the cluster from static config;
//! proposes ops and waits for them to commit; and publishes who the primary is.
//! Routing of client requests by role is in [`super::routing`], the role decision in
//! [`super::role`], the peer application protocol in [`super::app`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::SnapshotPolicy;
use tokio::sync::watch;

use super::app::{self, AppRequest, AppResponse};
use super::compaction;
use super::contact::{ContactRecorder, VoteGate};
use super::crash::CrashProbe;
use super::log_store::{LogOptions, LogStore};
use super::network::{Network, PeerLimits};
use super::peer;
use super::peer::PeerAuth;
use super::role::{self, LeaderContact, RoleView};
use super::state_machine::StateMachine;
use super::switchover::Switchover;
use super::types::{LogPosition, Member, NodeId, Request, Response, TypeConfig};
use crate::clock::Clock;
use crate::config::{ClusterConfig, Config};
use crate::error::{ExecError, OutcomeUnknown};
use crate::health::phi::PeerArrivals;
use crate::machine::{Machine, Written};
use crate::metrics::{FsyncProbe, LoopProbe, Metrics};
use crate::store::Op;
use crate::tls::PeerTls;

pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

pub struct Cluster {
    pub raft: Raft,
    pub id: NodeId,
    pub config: ClusterConfig,
    pub machine: Arc<Machine<LogPosition>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) network: Network,
    role: Mutex<RoleView>,
    /// Whether this node is primary (leader with a live lease); writes in flight, and
    /// the server (to close clients of a demoted primary), watch it.
    primary: watch::Sender<bool>,
    /// The leader that last replicated to this node, and when.
    pub(super) leader_contact: LeaderContact,
    /// When this node may grant votes (after start-up, after catching up).
    pub(super) vote_gate: Arc<VoteGate>,
    /// Bytes of this node's proposals not yet committed (see `role::derive_role`).
    pub(super) writes_in_flight_bytes: AtomicU64,
    /// This node's metrics (leader changes are counted as the role is followed).
    pub metrics: Arc<Metrics>,
    /// When each peer was last heard from (answers to our appends; the leader's appends).
    pub arrivals: Arc<PeerArrivals>,
    /// The commit index the leader's last append carried.
    pub leader_commit: Arc<AtomicU64>,
    /// Log fsync latencies and write errors (the fsync health check).
    pub fsync_probe: Option<Arc<FsyncProbe>>,
    /// How late a periodic task runs on the replication runtime (heartbeats run there).
    pub loop_probe: Arc<LoopProbe>,
    /// A planned switchover's phase and the gate that holds writes during it.
    pub(super) switchover: Switchover,
    /// This node's own health as a switchover target, for the primary to ask (`proactive`).
    pub(super) local_health: super::proactive::LocalHealth,
}

/// Counts an entry's bytes as in flight until dropped.
struct InFlight<'a>(&'a AtomicU64, u64);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicU64, bytes: u64) -> InFlight<'a> {
        counter.fetch_add(bytes, Relaxed);
        InFlight(counter, bytes)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Relaxed);
    }
}

/// How long a membership change forwarded to the primary may take.
const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

fn raft_config(cc: &ClusterConfig) -> anyhow::Result<openraft::Config> {
    Ok(openraft::Config {
        cluster_name: cc.name.clone(),
        heartbeat_interval: cc.heartbeat_ms,
        election_timeout_min: cc.election_timeout_min_ms,
        election_timeout_max: cc.election_timeout_max_ms,
        enable_pre_vote: Some(true),
        // By entries or bytes, staggered per node: raft::compaction triggers them.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: cc.log_keep_entries,
        install_snapshot_timeout: 30_000,
        // A restarted leader must not resume leadership in its old term: the committed
        // index it reloads is persisted lazily, so it can be behind what this leader
        // acknowledged before the crash, and a read served at it would miss acknowledged
        // writes. An election gives the new term a fresh blank entry that reads wait for.
        enable_leader_restore: Some(false),
        // A follower whose disk was wiped comes back with an empty log; without this the
        // leader's Raft core panics on seeing the follower's log go backwards (found by
        // tests/cluster.rs a_wiped_node_rejoins_…). It is safe here because such a node
        // does not vote until it has caught up again (bootstrap.rs, contact.rs).
        allow_log_reversion: Some(true),
        ..Default::default()
    }
    .validate()?)
}

/// This node's dialing source IP and where its peer listener may bind, from its own
/// `addr`. An IP literal binds exactly there and dials from that IP (so a firewall rule
/// on it cuts the node off), as ever. A DNS name, whose address may change (a re-created
/// pod), binds every interface on its port: `[::]` first (dual-stack on Linux, so IPv4
/// peers connect too), `0.0.0.0` where IPv6 is unavailable; and dials from whatever
/// source the kernel picks (an unspecified own IP binds nothing).
fn peer_listen(addr: &str) -> anyhow::Result<(IpAddr, Vec<SocketAddr>)> {
    if let Ok(sock) = addr.parse::<SocketAddr>() {
        return Ok((sock.ip(), vec![sock]));
    }
    let (_, port) = crate::config::host_port(addr).map_err(|why| anyhow::anyhow!("peer address {addr:?}: {why}"))?;
    let any = [IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    Ok((Ipv4Addr::UNSPECIFIED.into(), any.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()))
}

/// A listener on the first of `addrs` that can be bound; the last error if none can.
async fn bind_first(addrs: &[SocketAddr]) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in addrs {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(anyhow::anyhow!("cannot bind the peer port on {addr}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no peer address to bind")))
}

impl Cluster {
    /// Starts replication for `machine`: opens storage, binds the peer port (speaking
    /// `tls` when given), forms the cluster on first start, and begins following leadership.
    pub async fn start(
        machine: Arc<Machine<LogPosition>>,
        clock: Arc<dyn Clock>,
        config: Config,
        tls: Option<PeerTls>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Cluster>> {
        let cc = config.cluster.clone().ok_or_else(|| anyhow::anyhow!("no [cluster] section"))?;
        let me = cc.me().cloned().ok_or_else(|| anyhow::anyhow!("node {} is not in cluster.peers", cc.node_id))?;
        let (own_ip, listen) = peer_listen(&me.addr)?;
        let dir = config.data_dir.join("raft");
        let probe = Some(Arc::new(FsyncProbe::new(metrics.fsync_seconds.clone())));
        let log_opts = LogOptions { fsync: cc.fsync, ..LogOptions::default() };
        let log = LogStore::open_probed(&dir.join("log"), log_opts, probe.clone()).await?;
        let sm = StateMachine::open(&dir.join("state"), machine.clone())?;
        let applied_bytes = sm.applied_bytes();
        let log_sizes = log.clone();
        let limits = PeerLimits {
            frame_len_max_bytes: cc.peer_frame_len_bytes(),
            snapshot_chunk_bytes: cc.snapshot_chunk_bytes,
            heartbeat_timeout_min_ms: cc.election_timeout_max_ms / 2,
            ..PeerLimits::default()
        };
        // Every member must apply ops alike: what must match is checked in each handshake.
        let auth = PeerAuth { secret: cc.secret.clone(), params: format!("databases={}", config.databases) };
        let arrivals = Arc::new(PeerArrivals::new(cc.heartbeat_ms as f64));
        let network = Network::with_tls(own_ip, tls.clone(), auth.clone(), limits.clone())
            .with_node_id(cc.node_id)
            .with_arrivals(arrivals.clone());
        let raft = Raft::new(cc.node_id, Arc::new(raft_config(&cc)?), network.clone(), log, sm).await?;
        tokio::spawn(compaction::run(raft.clone(), log_sizes, applied_bytes, compaction::Policy::of(&cc)));
        let listener = bind_first(&listen).await?;
        tracing::info!("node {} peer port {} ({})", cc.node_id, listener.local_addr()?, me.addr);
        let cluster = Arc::new(Cluster {
            raft: raft.clone(),
            id: cc.node_id,
            config: cc.clone(),
            machine,
            clock,
            network,
            role: Mutex::new(RoleView::default()),
            primary: watch::Sender::new(false),
            leader_contact: LeaderContact::default(),
            vote_gate: Arc::new(VoteGate::starting(Duration::from_millis(cc.election_timeout_max_ms))),
            writes_in_flight_bytes: AtomicU64::new(0),
            arrivals,
            leader_commit: Arc::new(AtomicU64::new(0)),
            fsync_probe: probe,
            loop_probe: Arc::new(LoopProbe::new(
                metrics.stall_seconds.clone(),
                config.health.stall_ms,
                config.health.interval_ms,
                config.health.window_s * 1000,
            )),
            metrics,
            switchover: Switchover::default(),
            local_health: Default::default(),
        });
        // Spawned from here, the probe ticks on the runtime replication runs on.
        let interval = Duration::from_millis(config.health.interval_ms);
        tokio::spawn(LoopProbe::run(Arc::downgrade(&cluster.loop_probe), interval));
        tokio::spawn(peer::serve_with_tls(
            listener,
            ContactRecorder {
                raft: raft.clone(),
                contact: cluster.leader_contact.clone(),
                gate: cluster.vote_gate.clone(),
                arrivals: cluster.arrivals.clone(),
                leader_commit: cluster.leader_commit.clone(),
                observed: cluster.network.observations(),
                crash: Arc::new(CrashProbe::new(cc.node_id, own_ip, cluster.network.clone(), &cc)),
            },
            auth,
            app::handler(&cluster),
            limits,
            tls.map(|t| t.acceptor),
            std::future::pending::<()>(),
        ));
        cluster.bootstrap().await?;
        tokio::spawn(role::follow(Arc::downgrade(&cluster)));
        tokio::spawn(super::priority::watch(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// Forms the cluster from the static peer list the first time, unless this node was
    /// told to wait to be added (`join = true`).
    pub fn is_primary(&self) -> bool {
        *self.primary.borrow()
    }

    /// How long a lapsed lease may take to come back before this node counts as demoted:
    /// under load a heartbeat round can miss the lease by a little, and the leader then
    /// regains it in the same term; that is no reason to drop writes or connections.
    pub fn demotion_grace(&self) -> Duration {
        Duration::from_millis(self.config.election_timeout_max_ms)
    }

    /// Changes of `is_primary` (the server closes clients of a demoted primary).
    pub fn primary_changes(&self) -> watch::Receiver<bool> {
        self.primary.subscribe()
    }

    /// Resolves when replication has stopped for good (openraft's fatal error: a storage
    /// failure such as a full disk, a panicked core), with the reason. The node cannot
    /// recover by itself; the caller should exit so a supervisor restarts it.
    pub async fn stopped(&self) -> String {
        let mut rx = self.raft.metrics();
        loop {
            if let Err(fatal) = &rx.borrow_watched().running_state {
                return fatal.to_string();
            }
            if rx.changed().await.is_err() {
                return "the Raft core stopped".into();
            }
        }
    }

    pub fn role(&self) -> RoleView {
        self.role.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn publish_role(&self, view: RoleView) {
        let is_primary = view.is_primary;
        *self.role.lock().unwrap_or_else(|e| e.into_inner()) = view;
        self.primary.send_if_modified(|p| std::mem::replace(p, is_primary) != is_primary);
    }

    /// On a standby, how many entries the primary has committed that this node has not
    /// applied yet (as the primary's last append said); `None` on the primary.
    pub fn standby_lag_entries(&self) -> Option<u64> {
        let view = self.role();
        if view.is_primary {
            return None;
        }
        let commit = self.leader_commit.load(std::sync::atomic::Ordering::Relaxed).max(view.committed);
        Some(commit.saturating_sub(view.last_applied))
    }

    /// The primary's client address, if one is known.
    pub fn primary_client_addr(&self) -> Option<String> {
        self.role().leader.map(|(_, m)| m.client_addr)
    }

    /// Proposes an op and waits for it to be committed and applied here, or for this
    /// node to stop being primary: a primary that lost its quorum cannot commit, and its
    /// client must not wait for the quorum to come back (the outcome is then unknown).
    pub async fn submit_op(&self, op: &Op) -> Result<Written, ExecError> {
        let entry = Request(Bytes::from(op.encode().map_err(|e| ExecError::Fatal(e.to_string()))?));
        let max = self.config.max_entry_bytes;
        if entry.0.len() > max {
            return Err(ExecError::TooLarge { bytes: entry.0.len(), max });
        }
        let _in_flight = InFlight::new(&self.writes_in_flight_bytes, entry.0.len() as u64);
        let mut primary = self.primary.subscribe();
        let grace = self.demotion_grace();
        let demoted = async move {
            if !*primary.borrow_and_update() || !demotion(&mut primary, grace).await {
                // Not primary to begin with: openraft answers (ForwardToLeader).
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            written = self.raft.client_write(entry) => match written {
                Ok(resp) => {
                    let Response { reply, db_after } = resp.data;
                    Ok(Written { reply, db_after })
                }
                Err(e) => Err(self.write_error(e)),
            },
            () = demoted => Err(ExecError::OutcomeUnknown(OutcomeUnknown::Demoted)),
        }
    }

    fn write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ExecError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) if f.leader_id.is_some_and(|l| l != self.id) => {
                ExecError::NotPrimary
            }
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ExecError::NoPrimary,
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
                ExecError::OutcomeUnknown(OutcomeUnknown::LeaderChanged)
            }
            RaftError::APIError(other) => ExecError::Membership(other.to_string()),
            RaftError::Fatal(f) => ExecError::Fatal(f.to_string()),
        }
    }

    /// The primary as this node knows it, confirmed by asking it: a standby cut off
    /// together with a deposed primary keeps hearing from it, but must not send clients
    /// there.
    pub async fn confirmed_primary(&self) -> Option<(NodeId, Member)> {
        let (id, member) = self.role().leader?;
        if id == self.id {
            return self.is_primary().then_some((id, member));
        }
        let bytes = postcard::to_stdvec(&AppRequest::IsPrimary).ok()?;
        let timeout = Duration::from_millis(self.config.election_timeout_max_ms.max(100));
        let resp = self.network.call_app(&member.addr, bytes, timeout).await.ok()?;
        match postcard::from_bytes(&resp) {
            Ok(AppResponse::IsPrimary(true)) => Some((id, member)),
            _ => None,
        }
    }

    /// Sends `req` to the primary and returns its answer; a failure the primary reported
    /// comes back as the same `ExecError`.
    pub(super) async fn forward(&self, req: AppRequest) -> Result<AppResponse, ExecError> {
        let Some((_, leader)) = self.role().leader else {
            return Err(ExecError::NoPrimary);
        };
        let bytes = postcard::to_stdvec(&req).map_err(|e| ExecError::Peer(e.to_string()))?;
        let timeout = match req {
            // Adding a node waits for it to catch up, which takes as long as the data does
            // (bounded by the peer server's handler timeout).
            AppRequest::AddNode { .. } | AppRequest::RemoveNode { .. } => MEMBERSHIP_CHANGE_TIMEOUT,
            _ => Duration::from_millis(self.config.election_timeout_max_ms * 10),
        };
        let resp = self
            .network
            .call_app(&leader.addr, bytes, timeout)
            .await
            .map_err(|e| ExecError::Unreachable(e.to_string()))?;
        match postcard::from_bytes(&resp).map_err(|e| ExecError::Peer(e.to_string()))? {
            AppResponse::Failed(e) => Err(e),
            ok => Ok(ok),
        }
    }

    /// The commit index a linearizable read must see (primary only).
    pub(super) async fn read_index(&self) -> Result<u64, ExecError> {
        let read =
            self.raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex).await.map_err(|_| ExecError::NoQuorum)?;
        Ok(read.log_id().index)
    }
}

/// Waits, from being primary, until `primary` has been false for longer than `grace`;
/// false if the channel closed first.
pub async fn demotion(primary: &mut watch::Receiver<bool>, grace: Duration) -> bool {
    loop {
        if primary.wait_for(|p| !*p).await.is_err() {
            return false;
        }
        match tokio::time::timeout(grace, primary.wait_for(|p| *p)).await {
            Ok(Ok(_)) => continue,
            Ok(Err(_)) => return false,
            Err(_) => return true,
        }
    }
}
