//! `ContactRecorder`: hands peer RPCs to openraft, noting when a leader last reached this
//! node. A standby names a primary (ROLE, SENTINEL, INFO) only while that primary keeps
//! reaching it, so a standby cut off together with the old primary does not send clients
//! there. Votes pass a [`VoteGate`] first. A leader's contact also ends this node's
//! campaign, and a transfer-leader request is noted (both for the failover journal).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;

use futures::future::BoxFuture;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};

use super::cluster::Raft;
use super::crash::CrashProbe;
use super::network::Observations;
use super::peer::RaftHandle;
use super::role::LeaderContact;
use super::types::{NodeId, Snapshot, TypeConfig, Vote};
use crate::health::phi::PeerArrivals;

pub struct ContactRecorder {
    pub raft: Raft,
    pub contact: LeaderContact,
    pub gate: Arc<VoteGate>,
    /// Arrivals of the leader's appends (health's phi detector).
    pub arrivals: Arc<PeerArrivals>,
    /// The leader's commit index as its last append carried it (a standby's lag).
    pub leader_commit: Arc<AtomicU64>,
    /// What the failover journal needs to hear: the leader's contact, transfer requests.
    pub observed: Arc<Observations>,
    pub crash: Arc<CrashProbe>,
}

/// When this node may grant votes. openraft keeps the leader lease a follower honours
/// (no vote for another leader while the current one is fresh) in memory only, and a node
/// whose disk was wiped has forgotten whom it voted for; either could help elect a second
/// leader while the first still serves lease reads, or vote twice in one term.
pub struct VoteGate {
    /// No vote before this: the lease a restarted node may have been honouring has run
    /// out by then (with a margin for clock drift and scheduling).
    quiet_until: Instant,
    /// No vote until this node has applied this index (0: no such wait).
    catch_up_to: AtomicU64,
}

impl VoteGate {
    /// A gate for a node that starts now and honours leases of `lease`.
    pub fn starting(lease: Duration) -> VoteGate {
        VoteGate { quiet_until: Instant::now() + quiet_period(lease), catch_up_to: AtomicU64::new(0) }
    }

    /// Refuse votes until this node has applied `index` (it started with an empty disk).
    pub fn require_catch_up(&self, index: u64) {
        self.catch_up_to.fetch_max(index, Ordering::Relaxed);
    }

    /// Why a vote must be refused now, if it must.
    pub fn refusal(&self, now: Instant, applied: u64) -> Option<String> {
        vote_refusal(now, self.quiet_until, applied, self.catch_up_to.load(Ordering::Relaxed))
    }
}

/// The start-up quiet period for a lease: the lease plus a quarter of it (at least 10 ms).
pub fn quiet_period(lease: Duration) -> Duration {
    lease + (lease / 4).max(Duration::from_millis(10))
}

/// Pure rule behind [`VoteGate::refusal`].
pub fn vote_refusal(now: Instant, quiet_until: Instant, applied: u64, catch_up_to: u64) -> Option<String> {
    if now < quiet_until {
        return Some(format!("not voting for another {:?} after start-up (a lease may still hold)", quiet_until - now));
    }
    (applied < catch_up_to).then(|| format!("not voting until caught up (applied {applied} of {catch_up_to})"))
}

type Remote<T> = BoxFuture<'static, Result<T, String>>;

impl ContactRecorder {
    fn refusal(&self) -> Option<String> {
        let applied = self.raft.metrics().borrow_watched().last_applied.as_ref().map_or(0, |l| l.index);
        let refusal = self.gate.refusal(Instant::now(), applied);
        if let Some(reason) = &refusal {
            tracing::debug!("refused a vote request: {reason}");
        }
        refusal
    }
}

impl RaftHandle for ContactRecorder {
    fn append(&self, req: AppendEntriesRequest<TypeConfig>) -> Remote<AppendEntriesResponse<TypeConfig>> {
        let (raft, contact) = (self.raft.clone(), self.contact.clone());
        let (arrivals, leader_commit) = (self.arrivals.clone(), self.leader_commit.clone());
        let observed = self.observed.clone();
        let leader = req.vote.leader_id.node_id;
        let commit = req.leader_commit.as_ref().map_or(0, |l| l.index);
        Box::pin(async move {
            let resp = raft.append_entries(req).await.map_err(|e| e.to_string())?;
            if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
                *contact.lock().unwrap_or_else(|e| e.into_inner()) = Some((leader, std::time::Instant::now()));
                arrivals.heartbeat(leader);
                leader_commit.store(commit, Ordering::Relaxed);
                observed.leader_heard();
            }
            Ok(resp)
        })
    }

    fn vote(&self, req: VoteRequest<TypeConfig>) -> Remote<VoteResponse<TypeConfig>> {
        match self.refusal() {
            Some(reason) => Box::pin(async move { Err(reason) }),
            None => RaftHandle::vote(&self.raft, req),
        }
    }

    fn pre_vote(&self, req: VoteRequest<TypeConfig>) -> Remote<VoteResponse<TypeConfig>> {
        match self.refusal() {
            Some(reason) => Box::pin(async move { Err(reason) }),
            None => RaftHandle::pre_vote(&self.raft, req),
        }
    }

    fn snapshot(&self, vote: Vote, snapshot: Snapshot) -> Remote<SnapshotResponse<TypeConfig>> {
        RaftHandle::snapshot(&self.raft, vote, snapshot)
    }

    fn transfer_leader(&self, req: TransferLeaderRequest<TypeConfig>) -> Remote<TransferLeaderResponse<TypeConfig>> {
        self.observed.transfer_requested();
        RaftHandle::transfer_leader(&self.raft, req)
    }

    fn connection_closed(&self, from: NodeId) {
        let (raft, crash) = (self.raft.clone(), self.crash.clone());
        tokio::spawn(async move { crash.connection_closed(raft, from).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (case, ms since start, applied, catch-up index, refused)
    #[test]
    fn vote_gate_rules() {
        let start = Instant::now();
        let quiet_until = start + quiet_period(Duration::from_millis(120));
        let cases = [
            ("inside the quiet period", 100, 10, 0, true),
            ("just before it ends (lease 120 ms + 30 ms margin)", 149, 10, 0, true),
            ("after the quiet period", 151, 10, 0, false),
            ("after it, but not caught up", 500, 9, 10, true),
            ("after it and caught up", 500, 10, 10, false),
        ];
        for (case, ms, applied, catch_up, refused) in cases {
            let now = start + Duration::from_millis(ms);
            let got = vote_refusal(now, quiet_until, applied, catch_up);
            assert_eq!(got.is_some(), refused, "{case}: {got:?}");
        }
        assert_eq!(quiet_period(Duration::from_millis(20)), Duration::from_millis(30), "at least 10 ms of margin");
    }
}
