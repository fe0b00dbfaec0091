//! The cluster's side of a proactive switchover (the policy is `health::policy`, the
//! sampler in `server::health` runs it): each node keeps its own health as a target
//! ([`LocalHealth`], answered to `AppRequest::Health`), and [`Cluster::proactive_switchover`]
//! runs the planned switchover of `switchover` to a chosen standby after announcing the
//! triggering check to every voter (`AppRequest::Handover`), so the new primary journals
//! the change as `proactive: <check>`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::app::{AppRequest, AppResponse};
use super::cluster::Cluster;
use super::switchover::{FailoverError, Phase};
use super::types::NodeId;
use crate::health::Status;
use crate::store::journal::Cause;

/// This node's own health as a switchover target: 0 before the first evaluation, else
/// `Status::level() + 1`.
#[derive(Default)]
pub struct LocalHealth(AtomicU8);

impl Cluster {
    /// The sampler's latest verdict on this node as a switchover target.
    pub fn set_local_health(&self, status: Status) {
        self.local_health.0.store(status.level() as u8 + 1, Ordering::Relaxed);
    }

    /// `Status::level` of this node as a target, `None` before the first evaluation.
    pub fn local_health(&self) -> Option<u8> {
        self.local_health.0.load(Ordering::Relaxed).checked_sub(1)
    }

    async fn ask(&self, id: NodeId, req: &AppRequest, timeout: Duration) -> Option<AppResponse> {
        let member = self.role().members.into_iter().find(|m| m.0 == id)?.1;
        let bytes = postcard::to_stdvec(req).ok()?;
        let answer = self.network.call_app(&member.addr, bytes, timeout).await.ok()?;
        postcard::from_bytes(&answer).ok()
    }

    /// Each other voter's own health as it reports it, asked concurrently; a voter that
    /// does not answer within `timeout` is left out.
    pub async fn standby_health(&self, timeout: Duration) -> BTreeMap<NodeId, Status> {
        let voters: Vec<NodeId> = self.role().members.iter().filter(|m| m.2 && m.0 != self.id).map(|m| m.0).collect();
        let asks = voters.iter().map(|&id| async move { (id, self.ask(id, &AppRequest::Health, timeout).await) });
        let levels = [Status::Ok, Status::Degraded, Status::Failing];
        futures::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(|(id, r)| match r {
                Some(AppResponse::Health(Some(l))) => levels.get(l as usize).map(|s| (id, *s)),
                _ => None,
            })
            .collect()
    }

    /// Hands leadership to `to` because `check` kept failing here: the planned switchover
    /// (writes held, wait for `to` to match, transfer, fallback), with `check` announced
    /// to every voter first. Returns the new primary.
    pub async fn proactive_switchover(
        &self,
        to: NodeId,
        check: &'static str,
        timeout: Duration,
    ) -> Result<NodeId, FailoverError> {
        let started = Instant::now();
        let reset = self.switchover.begin()?;
        if !self.is_primary() {
            return Err(FailoverError::Replica);
        }
        let deadline = started + timeout;
        self.switchover.gate.close();
        let target = self.wait_for_sync(Some(to), false, deadline).await?;
        let voters = self.candidates().voters.into_iter().filter(|&v| v != self.id);
        let announce = AppRequest::Handover { check: check.to_string() };
        let rpc_timeout = Duration::from_millis(self.config.election_timeout_min_ms);
        futures::future::join_all(voters.map(|v| self.ask(v, &announce, rpc_timeout))).await;
        self.switchover.set(Phase::InProgress);
        tracing::info!("proactive switchover ({check}): handing leadership to node {target}");
        let new = self.hand_over(target, deadline, Cause::Proactive(check.to_string())).await;
        drop(reset);
        match &new {
            Ok(new) => {
                tracing::info!("proactive switchover: node {new} is primary, {:?} after start", started.elapsed())
            }
            Err(e) => tracing::warn!("proactive switchover to node {to} failed: {e}"),
        }
        new
    }
}
