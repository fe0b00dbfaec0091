//! `ContactRecorder`: hands peer RPCs to openraft, noting when a leader last reached this
//! node. A standby names a primary (ROLE, SENTINEL, INFO) only while that primary keeps
//! reaching it, so a standby cut off together with the old primary does not send clients
//! there.

use futures::future::BoxFuture;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};

use super::cluster::Raft;
use super::peer::RaftHandle;
use super::role::LeaderContact;
use super::types::{Snapshot, TypeConfig, Vote};

pub struct ContactRecorder {
    pub raft: Raft,
    pub contact: LeaderContact,
}

type Remote<T> = BoxFuture<'static, Result<T, String>>;

impl RaftHandle for ContactRecorder {
    fn append(&self, req: AppendEntriesRequest<TypeConfig>) -> Remote<AppendEntriesResponse<TypeConfig>> {
        let (raft, contact) = (self.raft.clone(), self.contact.clone());
        let leader = req.vote.leader_id.node_id;
        Box::pin(async move {
            let resp = raft.append_entries(req).await.map_err(|e| e.to_string())?;
            if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
                *contact.lock().unwrap_or_else(|e| e.into_inner()) = Some((leader, std::time::Instant::now()));
            }
            Ok(resp)
        })
    }

    fn vote(&self, req: VoteRequest<TypeConfig>) -> Remote<VoteResponse<TypeConfig>> {
        RaftHandle::vote(&self.raft, req)
    }

    fn pre_vote(&self, req: VoteRequest<TypeConfig>) -> Remote<VoteResponse<TypeConfig>> {
        RaftHandle::pre_vote(&self.raft, req)
    }

    fn snapshot(&self, vote: Vote, snapshot: Snapshot) -> Remote<SnapshotResponse<TypeConfig>> {
        RaftHandle::snapshot(&self.raft, vote, snapshot)
    }

    fn transfer_leader(&self, req: TransferLeaderRequest<TypeConfig>) -> Remote<TransferLeaderResponse<TypeConfig>> {
        RaftHandle::transfer_leader(&self.raft, req)
    }
}
