//! Membership changes: a node joins as a learner and is promoted to voter only once it
//! has answered and caught up; removal takes a voter or learner out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::ChangeMembers;

use super::cluster::Cluster;
use super::types::{Member, NodeId};
use crate::error::ExecError;

/// A learner within this many entries of the leader's last log index has caught up: close
/// enough that promoting it cannot leave the cluster waiting on a long transfer to reach
/// quorum (openraft's own threshold, 5,000 entries, is far looser).
pub const CAUGHT_UP_LAG_ENTRIES: u64 = 100;

impl Cluster {
    /// Adds `id` as a learner, waits until it has replicated to within
    /// [`CAUGHT_UP_LAG_ENTRIES`] of the leader, then makes it a voter. A node that does not
    /// answer or catch up within `add_node_timeout_ms` is taken out again and never votes.
    pub async fn add_node(&self, id: NodeId, member: Member) -> Result<(), ExecError> {
        if !self.is_primary() {
            return self.forward(super::app::AppRequest::AddNode { id, member }).await.map(|_| ());
        }
        let failed = |e: String| ExecError::Membership(e);
        if self.role().members.iter().any(|m| m.0 == id && m.2) {
            return Err(failed(format!("node {id} is already a voter")));
        }
        let nodes = BTreeMap::from([(id, member)]);
        self.raft.change_membership(ChangeMembers::AddNodes(nodes), true).await.map_err(|e| failed(e.to_string()))?;
        let timeout = Duration::from_millis(self.config.add_node_timeout_ms);
        if let Err(lag) = self.wait_caught_up(id, timeout).await {
            let removed = self.raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false).await;
            let cleanup = match removed {
                Ok(_) => "it was taken out again".to_string(),
                Err(e) => format!("taking it out again failed too ({e}); remove it with KEEPBIT CLUSTER REMOVE {id}"),
            };
            return Err(failed(format!("node {id} did not catch up within {timeout:?} ({lag}); {cleanup}")));
        }
        let voters = BTreeSet::from([id]);
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(|e| failed(e.to_string()))?;
        tracing::info!("node {id} caught up and is now a voter");
        Ok(())
    }

    /// Waits until learner `id` has matched the leader's log to within
    /// [`CAUGHT_UP_LAG_ENTRIES`]; on timeout, says how far it got.
    async fn wait_caught_up(&self, id: NodeId, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.raft.metrics();
        let mut logged = Instant::now();
        loop {
            let (matched, last) = {
                let m = rx.borrow_and_update();
                let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned()).flatten().map(|l| l.index);
                (matched, m.last_log_index.unwrap_or(0))
            };
            match matched {
                Some(matched) if last.saturating_sub(matched) <= CAUGHT_UP_LAG_ENTRIES => return Ok(()),
                _ if Instant::now() >= deadline => {
                    return Err(match matched {
                        None => "it never answered".to_string(),
                        Some(m) => format!("it reached entry {m} of {last}"),
                    })
                }
                _ => {}
            }
            if logged.elapsed() >= Duration::from_secs(2) {
                tracing::info!("adding node {id}: replicated {matched:?} of {last} entries");
                logged = Instant::now();
            }
            let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(200));
            let _ = tokio::time::timeout(wait, rx.changed()).await;
        }
    }

    pub async fn remove_node(&self, id: NodeId) -> Result<(), ExecError> {
        if !self.is_primary() {
            return self.forward(super::app::AppRequest::RemoveNode { id }).await.map(|_| ());
        }
        let members = self.role().members;
        let Some(voter) = members.iter().find(|m| m.0 == id).map(|m| m.2) else {
            return Err(ExecError::Membership(format!("node {id} is not a member")));
        };
        if voter && members.iter().filter(|m| m.2).count() == 1 {
            return Err(ExecError::Membership("cannot remove the last voter".into()));
        }
        let ids = BTreeSet::from([id]);
        let change = if voter { ChangeMembers::RemoveVoters(ids) } else { ChangeMembers::RemoveNodes(ids) };
        self.raft.change_membership(change, false).await.map_err(|e| ExecError::Membership(e.to_string()))?;
        Ok(())
    }
}
