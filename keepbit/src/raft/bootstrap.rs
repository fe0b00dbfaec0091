//! Forming the cluster on first start, and never again: a node whose data directory is
//! empty asks its peers first, and if they already form a cluster it takes that cluster's
//! log instead of forming one, and votes only once it has caught up.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use super::app::{AppRequest, AppResponse};
use super::cluster::Cluster;
use super::types::{Member, NodeId};

impl Cluster {
    pub(super) async fn bootstrap(&self) -> anyhow::Result<()> {
        if self.raft.is_initialized().await? {
            return Ok(());
        }
        let cc = &self.config;
        if cc.join {
            // Forming a cluster here would give this node a log of its own; it must take
            // the running cluster's log when the primary adds it.
            tracing::info!("node {} waits to be added to a running cluster (join = true)", cc.node_id);
            return Ok(());
        }
        let formed: Vec<(NodeId, u64)> =
            self.peers_progress().await.into_iter().filter(|p| p.1).map(|p| (p.0, p.2)).collect();
        if let Some(committed) = formed.iter().map(|p| p.1).max() {
            // This node's disk is empty but the cluster exists: it may have been a member
            // whose data was wiped. Forming again could fork the log; voting before it has
            // caught up could repeat a vote it forgot.
            self.vote_gate.require_catch_up(committed);
            tracing::warn!(
                "node {} starts with an empty data directory, but nodes {:?} already form cluster {} \
                 (committed up to {committed}): not forming a cluster; taking its log from the primary, \
                 and not voting until caught up",
                cc.node_id,
                formed.iter().map(|p| p.0).collect::<Vec<_>>(),
                cc.name
            );
            return Ok(());
        }
        let members: BTreeMap<NodeId, Member> =
            cc.peers.iter().map(|p| (p.id, Member::new(p.addr.clone(), p.client_addr.clone()))).collect();
        // Every node proposes the same initial membership; whichever runs first forms
        // the cluster, the others find it already formed.
        match self.raft.initialize(members).await {
            Ok(()) => tracing::info!("formed cluster {} with {} members", cc.name, cc.peers.len()),
            Err(e) => tracing::info!("cluster already formed: {e}"),
        }
        Ok(())
    }

    /// Whether this node belongs to a formed cluster, and its commit index.
    pub async fn progress(&self) -> (bool, u64) {
        let initialized = self.raft.is_initialized().await.unwrap_or(false);
        let committed = self.raft.metrics().borrow_watched().local_committed.as_ref().map_or(0, |l| l.index);
        (initialized, committed)
    }

    /// Asks every other configured peer whether it belongs to a formed cluster: (id,
    /// formed, committed) of those that answered.
    async fn peers_progress(&self) -> Vec<(NodeId, bool, u64)> {
        let Ok(req) = postcard::to_stdvec(&AppRequest::Progress) else { return Vec::new() };
        let timeout = Duration::from_millis((self.config.election_timeout_max_ms * 5).max(500));
        let asks = self.config.peers.iter().filter(|p| p.id != self.id).map(|p| {
            let req = req.clone();
            async move {
                let resp = self.network.call_app(&p.addr, req, timeout).await.ok()?;
                match postcard::from_bytes(&resp).ok()? {
                    AppResponse::Progress { initialized, committed } => Some((p.id, initialized, committed)),
                    _ => None,
                }
            }
        });
        futures::future::join_all(asks).await.into_iter().flatten().collect()
    }
}
