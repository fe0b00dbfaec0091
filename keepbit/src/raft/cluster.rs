//! `Cluster`: a node's membership in a replicated Keepbit cluster. Wires openraft to our
//! log store, state machine and peer network; forms the cluster from static config;
//! proposes ops; answers who the primary is; and reacts to leadership changes (logging
//! them, and closing client connections of a demoted primary so pools reconnect).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::Instant as _;
use openraft::{ReadPolicy, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use super::log_store::{FsyncPolicy, LogOptions, LogStore};
use super::network::{Network, PeerLimits};
use super::peer::{self, AppHandler};
use super::state_machine::StateMachine;
use super::types::{Node as Member, NodeId, Request, Response, TypeConfig};
use crate::config::{ClusterConfig, Config, Fsync, Mode, ReadConsistency};
use crate::error::CmdError;
use crate::node::Node;
use crate::reply::Reply;
use crate::store::Op;

pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Requests one node sends another on behalf of clients (inside the peer protocol's
/// opaque application frames).
#[derive(Debug, Serialize, Deserialize)]
pub enum AppRequest {
    /// A write received by a standby in active-active mode.
    Write {
        db: u32,
        args: Vec<Bytes>,
    },
    /// A MULTI block received by a standby in active-active mode.
    Exec {
        db: u32,
        cmds: Vec<Vec<Bytes>>,
    },
    /// The primary's commit index, for a linearizable read on a standby.
    ReadIndex,
    /// Membership changes from `keepbit cluster add/remove` on any node.
    AddNode {
        id: NodeId,
        node: Member,
    },
    RemoveNode {
        id: NodeId,
    },
    /// Whether the receiver is primary now (discovery double-checks before naming it).
    IsPrimary,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AppResponse {
    Reply { reply: Reply, db_after: usize },
    ReadIndex(u64),
    IsPrimary(bool),
}

/// Who serves what, as last seen in openraft's metrics.
#[derive(Clone, Debug, Default)]
pub struct RoleView {
    pub is_primary: bool,
    pub term: u64,
    pub leader: Option<(NodeId, Member)>,
    pub last_log_index: u64,
    pub last_applied: u64,
    pub committed: u64,
    /// Last log index covered by this node's snapshot, and the last index purged from
    /// its log (0: none).
    pub snapshot_index: u64,
    pub purged_index: u64,
    /// Voters and learners: (id, node, is_voter).
    pub members: Vec<(NodeId, Member, bool)>,
    /// On the primary: log index each peer has matched.
    pub matched: BTreeMap<NodeId, u64>,
}

pub struct Cluster {
    pub raft: Raft,
    pub id: NodeId,
    pub config: ClusterConfig,
    network: Network,
    role: Mutex<RoleView>,
    /// Whether this node is primary (leader with a live lease); writes in flight watch it.
    primary: tokio::sync::watch::Sender<bool>,
    /// The leader that last replicated to this node, and when.
    leader_contact: LeaderContact,
}

type LeaderContact = Arc<Mutex<Option<(NodeId, std::time::Instant)>>>;

/// Hands peer RPCs to openraft, noting when a leader last reached this node: a standby
/// names a primary (ROLE, SENTINEL, INFO) only while that primary keeps reaching it, so
/// a standby cut off with the old primary does not send clients there.
struct ContactRecorder {
    raft: Raft,
    contact: LeaderContact,
}

impl peer::RaftHandle for ContactRecorder {
    fn append(
        &self,
        req: openraft::raft::AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'static, Result<openraft::raft::AppendEntriesResponse<TypeConfig>, String>> {
        let (raft, contact) = (self.raft.clone(), self.contact.clone());
        let leader = req.vote.leader_id.node_id;
        Box::pin(async move {
            let resp = raft.append_entries(req).await.map_err(|e| e.to_string())?;
            if !matches!(resp, openraft::raft::AppendEntriesResponse::HigherVote(_)) {
                *contact.lock().unwrap_or_else(|e| e.into_inner()) = Some((leader, std::time::Instant::now()));
            }
            Ok(resp)
        })
    }

    fn vote(
        &self,
        req: openraft::raft::VoteRequest<TypeConfig>,
    ) -> BoxFuture<'static, Result<openraft::raft::VoteResponse<TypeConfig>, String>> {
        peer::RaftHandle::vote(&self.raft, req)
    }

    fn pre_vote(
        &self,
        req: openraft::raft::VoteRequest<TypeConfig>,
    ) -> BoxFuture<'static, Result<openraft::raft::VoteResponse<TypeConfig>, String>> {
        peer::RaftHandle::pre_vote(&self.raft, req)
    }

    fn snapshot(
        &self,
        vote: super::types::Vote,
        snapshot: super::types::Snapshot,
    ) -> BoxFuture<'static, Result<openraft::raft::SnapshotResponse<TypeConfig>, String>> {
        peer::RaftHandle::snapshot(&self.raft, vote, snapshot)
    }

    fn transfer_leader(
        &self,
        req: openraft::raft::TransferLeaderRequest<TypeConfig>,
    ) -> BoxFuture<'static, Result<openraft::raft::TransferLeaderResponse<TypeConfig>, String>> {
        peer::RaftHandle::transfer_leader(&self.raft, req)
    }
}

/// How long a membership change forwarded to the primary may take.
const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn tryagain(msg: &str) -> Reply {
    CmdError::Coded(format!("TRYAGAIN {msg}")).to_reply()
}

pub fn readonly_write() -> Reply {
    CmdError::Coded("READONLY You can't write against a read only replica.".into()).to_reply()
}

impl Cluster {
    /// Starts replication for `node`: opens storage, binds the peer port, forms the
    /// cluster on first start, and begins watching leadership.
    pub async fn start(node: Arc<Node>, config: &Config) -> anyhow::Result<Arc<Cluster>> {
        let cc = config.cluster.clone().ok_or_else(|| anyhow::anyhow!("no [cluster] section"))?;
        let me = cc.me().cloned().ok_or_else(|| anyhow::anyhow!("node {} is not in cluster.peers", cc.node_id))?;
        let peer_addr: SocketAddr = me.addr.parse()?;
        let dir = config.data_dir.join("raft");
        let fsync = match cc.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Batch => FsyncPolicy::Batch,
            Fsync::Os => FsyncPolicy::Os,
        };
        let log = LogStore::open(&dir.join("log"), LogOptions { fsync, ..LogOptions::default() }).await?;
        let sm = StateMachine::open(&dir.join("state"), node.clone())?;
        let limits = PeerLimits { frame_len_max_bytes: cc.peer_frame_len_max_bytes, ..PeerLimits::default() };
        let network = Network::new(peer_addr.ip(), cc.secret.clone(), limits.clone()).with_node_id(cc.node_id);
        let raft_config = openraft::Config {
            cluster_name: cc.name.clone(),
            heartbeat_interval: cc.heartbeat_ms,
            election_timeout_min: cc.election_timeout_min_ms,
            election_timeout_max: cc.election_timeout_max_ms,
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cc.snapshot_entries),
            max_in_snapshot_log_to_keep: cc.log_keep_entries,
            install_snapshot_timeout: 30_000,
            // A restarted leader must not resume leadership in its old term: the committed
            // index it reloads is persisted lazily, so it can be behind what this leader
            // acknowledged before the crash, and a read served at it would miss
            // acknowledged writes. An election gives the new term a fresh blank entry that
            // reads wait for.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
        .validate()?;
        let raft = Raft::new(cc.node_id, Arc::new(raft_config), network.clone(), log, sm).await?;
        let listener = tokio::net::TcpListener::bind(peer_addr).await?;
        tracing::info!("node {} peer port {peer_addr}", cc.node_id);
        let cluster = Arc::new(Cluster {
            raft: raft.clone(),
            id: cc.node_id,
            config: cc.clone(),
            network,
            role: Mutex::new(RoleView::default()),
            primary: tokio::sync::watch::Sender::new(false),
            leader_contact: Arc::new(Mutex::new(None)),
        });
        let handler: Arc<dyn AppHandler> = Arc::new(Handler { node: Arc::downgrade(&node) });
        tokio::spawn(peer::serve_with_limits(
            listener,
            ContactRecorder { raft: raft.clone(), contact: cluster.leader_contact.clone() },
            cc.secret.clone(),
            handler,
            limits,
            std::future::pending::<()>(),
        ));
        if cc.join && !raft.is_initialized().await? {
            // Forming a cluster here would give this node a log of its own; it must take
            // the running cluster's log when the primary adds it.
            tracing::info!("node {} waits to be added to a running cluster (join = true)", cc.node_id);
        } else if !raft.is_initialized().await? {
            let members: BTreeMap<NodeId, Member> =
                cc.peers.iter().map(|p| (p.id, Member::new(p.addr.clone(), p.client_addr.clone()))).collect();
            // Every node proposes the same initial membership; whichever runs first forms
            // the cluster, the others find it already formed.
            match raft.initialize(members).await {
                Ok(()) => tracing::info!("formed cluster {} with {} members", cc.name, cc.peers.len()),
                Err(e) => tracing::info!("cluster already formed: {e}"),
            }
        }
        node.attach_cluster(cluster.clone());
        tokio::spawn(watch_leadership(Arc::downgrade(&cluster), Arc::downgrade(&node)));
        Ok(cluster)
    }

    pub fn is_primary(&self) -> bool {
        *self.primary.borrow()
    }

    pub fn role(&self) -> RoleView {
        self.role.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The primary's client address, if one is known.
    pub fn primary_client_addr(&self) -> Option<String> {
        self.role().leader.map(|(_, m)| m.client_addr)
    }

    /// Proposes an op and waits for it to be committed and applied here, or for this
    /// node to stop being primary: a primary that lost its quorum cannot commit, and its
    /// client must not wait for the quorum to come back (the outcome is then unknown).
    pub async fn submit_op(&self, op: Op) -> (Reply, usize) {
        let db = op.db as usize;
        let mut primary = self.primary.subscribe();
        let demoted = async move {
            if !*primary.borrow_and_update() || primary.wait_for(|p| !*p).await.is_err() {
                // Not primary to begin with: openraft answers (ForwardToLeader).
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            written = self.raft.client_write(Request(Bytes::from(op.encode()))) => match written {
                Ok(resp) => {
                    let Response { reply, db_after } = resp.data;
                    (reply, db_after)
                }
                Err(e) => (self.write_error(e), db),
            },
            () = demoted => (tryagain("this node stopped being primary before the write committed; its outcome is unknown"), db),
        }
    }

    fn write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Reply {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) if f.leader_id.is_some_and(|l| l != self.id) => {
                readonly_write()
            }
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                tryagain("no primary with a quorum right now; retry shortly")
            }
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
                tryagain("leadership changed before the write committed; its outcome is unknown")
            }
            RaftError::APIError(other) => CmdError::err(other.to_string()).to_reply(),
            RaftError::Fatal(f) => CmdError::err(format!("replication stopped: {f}")).to_reply(),
        }
    }

    /// The answer a write gets on this node without being proposed or forwarded: READONLY
    /// on an active-passive standby, TRYAGAIN while no primary is known. `None` when the
    /// write can go ahead (this node is primary, or forwards to it).
    pub fn write_refused(&self) -> Option<Reply> {
        if self.is_primary() {
            return None;
        }
        if self.role().leader.is_none() {
            return Some(tryagain("no primary with a quorum right now; retry shortly"));
        }
        (self.config.mode == Mode::ActivePassive).then(readonly_write)
    }

    /// Runs a write: proposed here on the primary; forwarded to it from a standby in
    /// active-active mode; refused with READONLY from a standby in active-passive mode.
    pub async fn write(&self, node: &Node, db: usize, args: &[Bytes]) -> Reply {
        if self.is_primary() {
            if self.config.unsafe_ack_before_commit {
                return self.ack_before_commit(node.make_op(db, args));
            }
            return self.submit_op(node.make_op(db, args)).await.0;
        }
        if let Some(refused) = self.write_refused() {
            return refused;
        }
        let req = AppRequest::Write { db: db as u32, args: args.to_vec() };
        match self.forward(req).await {
            Ok(AppResponse::Reply { reply, .. }) => reply,
            Ok(_) => CmdError::err("unexpected reply from the primary").to_reply(),
            Err(reply) => reply,
        }
    }

    /// The deliberately broken write path (testing the drill only): answers at once and
    /// proposes the op a moment later, so a crash in between loses an acknowledged write.
    fn ack_before_commit(&self, op: Op) -> Reply {
        let raft = self.raft.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = raft.client_write(Request(Bytes::from(op.encode()))).await;
        });
        Reply::Int(1)
    }

    /// Forwards a MULTI block to the primary (active-active standby).
    pub async fn forward_exec(&self, db: usize, cmds: Vec<Vec<Bytes>>) -> (Reply, usize) {
        match self.forward(AppRequest::Exec { db: db as u32, cmds }).await {
            Ok(AppResponse::Reply { reply, db_after }) => (reply, db_after),
            Ok(_) => (CmdError::err("unexpected reply from the primary").to_reply(), db),
            Err(reply) => (reply, db),
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

    async fn forward(&self, req: AppRequest) -> Result<AppResponse, Reply> {
        let Some((_, leader)) = self.role().leader else {
            return Err(tryagain("no primary right now; retry shortly"));
        };
        let bytes = postcard::to_stdvec(&req).map_err(|e| CmdError::err(e.to_string()).to_reply())?;
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
            .map_err(|e| tryagain(&format!("cannot reach the primary: {e}")))?;
        postcard::from_bytes(&resp).map_err(|e| CmdError::err(format!("bad reply from the primary: {e}")).to_reply())
    }

    /// Waits until a read here may be served under the configured consistency. `Err` is
    /// the reply to send instead.
    pub async fn read_barrier(&self, readonly_conn: bool) -> Result<(), Reply> {
        if self.is_primary() {
            if self.config.read_consistency == ReadConsistency::Stale {
                return Ok(());
            }
            if self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await.is_ok() {
                return Ok(());
            }
            return match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                Ok(_) => Ok(()),
                Err(_) => Err(tryagain("this node lost its quorum; retry on the new primary")),
            };
        }
        if readonly_conn
            || (self.config.mode == Mode::ActiveActive && self.config.read_consistency == ReadConsistency::Stale)
        {
            return Ok(());
        }
        if self.config.mode == Mode::ActivePassive {
            let primary = self.primary_client_addr().unwrap_or_else(|| "unknown (election in progress)".into());
            return Err(CmdError::Coded(format!(
                "READONLY This node is a standby; the primary is {primary}. Send READONLY to read possibly stale data here."
            ))
            .to_reply());
        }
        // Active-active linearizable read: wait until this node has applied what the
        // primary had committed when asked.
        let index = match self.forward(AppRequest::ReadIndex).await? {
            AppResponse::ReadIndex(i) => i,
            _ => return Err(CmdError::err("unexpected reply from the primary").to_reply()),
        };
        let wait = Duration::from_millis(self.config.election_timeout_max_ms * 10);
        self.raft
            .wait(Some(wait))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|_| tryagain("this node is too far behind the primary; retry"))
    }

    /// The commit index a linearizable read must see (primary only).
    async fn read_index(&self) -> Result<u64, String> {
        let read = self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await.map_err(|e| e.to_string())?;
        Ok(read.log_id().index)
    }

    pub async fn add_node(&self, id: NodeId, member: Member) -> Result<(), String> {
        if !self.is_primary() {
            return match self.forward(AppRequest::AddNode { id, node: member }).await {
                Ok(_) => Ok(()),
                Err(Reply::Error(e)) => Err(e),
                Err(_) => Err("forwarding failed".into()),
            };
        }
        self.raft.add_learner(id, member, true).await.map_err(|e| e.to_string())?;
        let mut voters: BTreeSet<NodeId> = self.role().members.iter().filter(|m| m.2).map(|m| m.0).collect();
        voters.insert(id);
        self.raft.change_membership(voters, false).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    pub async fn remove_node(&self, id: NodeId) -> Result<(), String> {
        if !self.is_primary() {
            return match self.forward(AppRequest::RemoveNode { id }).await {
                Ok(_) => Ok(()),
                Err(Reply::Error(e)) => Err(e),
                Err(_) => Err("forwarding failed".into()),
            };
        }
        let voters: BTreeSet<NodeId> = self.role().members.iter().filter(|m| m.2 && m.0 != id).map(|m| m.0).collect();
        if voters.is_empty() {
            return Err("cannot remove the last voter".into());
        }
        self.raft.change_membership(voters, false).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Serves application requests from peers.
struct Handler {
    node: Weak<Node>,
}

impl AppHandler for Handler {
    fn handle(&self, _from: NodeId, req: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let node = self.node.upgrade();
        Box::pin(async move {
            let resp = match (node, postcard::from_bytes::<AppRequest>(&req)) {
                (Some(node), Ok(req)) => handle_app(&node, req).await,
                (None, _) => AppResponse::Reply { reply: tryagain("node shutting down"), db_after: 0 },
                (_, Err(e)) => AppResponse::Reply {
                    reply: CmdError::err(format!("bad peer request: {e}")).to_reply(),
                    db_after: 0,
                },
            };
            postcard::to_stdvec(&resp).unwrap_or_default()
        })
    }
}

async fn handle_app(node: &Node, req: AppRequest) -> AppResponse {
    let Some(cluster) = node.cluster() else {
        return AppResponse::Reply { reply: CmdError::err("not a cluster node").to_reply(), db_after: 0 };
    };
    let not_primary =
        || AppResponse::Reply { reply: tryagain("this node is no longer the primary; retry"), db_after: 0 };
    match req {
        AppRequest::Write { db, args } => {
            if !cluster.is_primary() || args.is_empty() {
                return not_primary();
            }
            let (reply, db_after) = cluster.submit_op(node.make_op(db as usize, &args)).await;
            AppResponse::Reply { reply, db_after }
        }
        AppRequest::Exec { db, cmds } => {
            if !cluster.is_primary() {
                return not_primary();
            }
            let flag = Arc::new(AtomicBool::new(false));
            match node.exec(db as usize, &cmds, &flag).await {
                Some((reply, db_after)) => AppResponse::Reply { reply, db_after },
                None => AppResponse::Reply { reply: Reply::NilArray, db_after: db as usize },
            }
        }
        AppRequest::IsPrimary => AppResponse::IsPrimary(cluster.is_primary()),
        AppRequest::ReadIndex => match cluster.read_index().await {
            Ok(i) => AppResponse::ReadIndex(i),
            Err(e) => AppResponse::Reply { reply: tryagain(&e), db_after: 0 },
        },
        AppRequest::AddNode { id, node: member } => match cluster.add_node(id, member).await {
            Ok(()) => AppResponse::Reply { reply: Reply::Ok, db_after: 0 },
            Err(e) => AppResponse::Reply { reply: CmdError::err(e).to_reply(), db_after: 0 },
        },
        AppRequest::RemoveNode { id } => match cluster.remove_node(id).await {
            Ok(()) => AppResponse::Reply { reply: Reply::Ok, db_after: 0 },
            Err(e) => AppResponse::Reply { reply: CmdError::err(e).to_reply(), db_after: 0 },
        },
    }
}

/// Follows openraft's metrics: keeps the role view current, logs every leadership change
/// with its term and time, and closes clients of a primary that has been demoted.
async fn watch_leadership(cluster: Weak<Cluster>, node: Weak<Node>) {
    let Some(c) = cluster.upgrade() else { return };
    let mut rx = c.raft.metrics();
    let lease_ms = c.config.election_timeout_max_ms;
    drop(c);
    let mut last_leader: Option<NodeId> = None;
    let mut was_primary = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let (Some(c), Some(node)) = (cluster.upgrade(), node.upgrade()) else { return };
        let m = rx.borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members: Vec<(NodeId, Member, bool)> =
            membership.nodes().map(|(id, n)| (*id, n.clone(), voters.contains(id))).collect();
        let leader = m.current_leader.and_then(|id| members.iter().find(|x| x.0 == id).map(|x| (id, x.1.clone())));
        // A leader that has not heard from a quorum within its lease is not a primary:
        // openraft refuses its writes, and clients must move on.
        let lease_ok = m.last_quorum_acked.as_ref().is_some_and(|t| t.elapsed().as_millis() as u64 <= lease_ms)
            || voters.len() == 1;
        let is_primary = m.state == ServerState::Leader && lease_ok;
        // openraft's leader keeps naming itself after its lease has expired (it may have
        // been replaced meanwhile): then no primary is known here, so ROLE and Sentinel
        // discovery never send clients to a node that cannot commit.
        let leader = leader.filter(|l| {
            if l.0 == c.id {
                return is_primary;
            }
            let contact = *c.leader_contact.lock().unwrap_or_else(|e| e.into_inner());
            contact.is_some_and(|(id, at)| id == l.0 && at.elapsed().as_millis() as u64 <= lease_ms)
        });
        let view = RoleView {
            is_primary,
            term: m.current_term,
            leader: leader.clone(),
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied: m.last_applied.as_ref().map_or(0, |l| l.index),
            committed: m.local_committed.as_ref().map_or(0, |l| l.index),
            snapshot_index: m.snapshot.as_ref().map_or(0, |l| l.index),
            purged_index: m.purged.as_ref().map_or(0, |l| l.index),
            members,
            matched: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.as_ref().map_or(0, |l| l.index))).collect())
                .unwrap_or_default(),
        };
        *c.role.lock().unwrap_or_else(|e| e.into_inner()) = view;
        c.primary.send_if_modified(|p| std::mem::replace(p, is_primary) != is_primary);
        let leader_id = leader.as_ref().map(|l| l.0);
        if leader_id != last_leader {
            tracing::info!(
                "leadership change: term {} leader {:?} (was {:?}) at unix_ms {}",
                m.current_term,
                leader_id,
                last_leader,
                now_ms()
            );
            last_leader = leader_id;
        }
        if was_primary && !is_primary {
            tracing::warn!("node {} is no longer primary (term {}): closing client connections", c.id, m.current_term);
            for client in node.clients.all() {
                if !client.is_pubsub() {
                    client.kill("primary demoted");
                }
            }
        }
        was_primary = is_primary;
    }
}
