//! Planned switchover (`FAILOVER`, `keepbit failover`): a small state machine with a
//! deadline around openraft's leadership transfer.
//!
//! 1. *waiting-for-sync*: new writes are held ([`WriteGate`]); once those in flight have
//!    finished, a voter that has matched this leader's last log index is chosen
//!    ([`choose_target`], pure; the named one once it has matched, else the best ranked by
//!    priority, never one with priority 0).
//! 2. *failover-in-progress*: the target is told why (`AppRequest::Announce`, the cause it
//!    journals: planned switchover, `failback`, …), then `trigger().transfer_leader(target)`. openraft then refuses
//!    writes on this node until a new leader appears and offers no abort or timeout, so
//!    Keepbit owns them: if no leader has taken over after `election_timeout_min`, another
//!    caught-up voter is told to campaign (`AppRequest::Elect`) — the fallback for a target
//!    that died mid-transfer.
//! 3. Done once a new primary confirms it is primary, so discovery names it at once; held
//!    writes are released (and answered by the new role).
//!
//! ABORT works while waiting for sync; once the transfer is triggered it cannot be taken
//! back (openraft has no such call), and it takes milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;
use openraft::ServerState;
use tokio::sync::{watch, Notify};

use super::app::{AppRequest, AppResponse};
use super::cluster::Cluster;
use super::priority::rank;
use super::types::NodeId;
use crate::store::journal::Cause;

/// `master_failover_state` in INFO replication (Redis's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    None,
    WaitingForSync,
    InProgress,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::None => "no-failover",
            Phase::WaitingForSync => "waiting-for-sync",
            Phase::InProgress => "failover-in-progress",
        }
    }
}

/// Why a FAILOVER did not happen, in Redis's words where Redis has them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailoverError {
    #[error("FAILOVER already in progress.")]
    InProgress,
    #[error("FAILOVER is not valid when server is a replica.")]
    Replica,
    #[error("FAILOVER requires connected replicas.")]
    NoReplicas,
    #[error("FAILOVER with force option requires both a timeout and target HOST and IP.")]
    ForceNeedsTarget,
    #[error("FAILOVER target HOST and PORT is not a replica.")]
    NotAReplica,
    #[error("FAILOVER target replica is not online.")]
    NotOnline,
    #[error("FAILOVER target has priority 0 and never becomes primary.")]
    NeverPrimary,
    #[error("No failover in progress.")]
    NothingToAbort,
    #[error("FAILOVER cannot be aborted: the leadership transfer is already under way")]
    TooLateToAbort,
    #[error("Failover manually aborted")]
    Aborted,
    #[error("FAILOVER timed out: no replica caught up before the timeout; writes resumed here")]
    NeverCaughtUp,
    #[error("FAILOVER timed out: leadership was handed over but no new primary confirmed it yet")]
    NoNewPrimary,
}

/// What the target choice reads, as plain data.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    pub me: NodeId,
    /// Voter ids (learners never take over).
    pub voters: Vec<NodeId>,
    /// The log index each peer has matched.
    pub matched: BTreeMap<NodeId, u64>,
    /// Peers that acknowledged this leader within the lease.
    pub online: BTreeSet<NodeId>,
    /// This leader's last log index.
    pub last_log_index: u64,
    /// Priority per member (`[cluster] peers`); a member not listed has priority 1.
    pub priorities: BTreeMap<NodeId, u32>,
    pub preferred: Option<NodeId>,
}

impl Candidates {
    fn priority(&self, id: NodeId) -> u32 {
        self.priorities.get(&id).copied().unwrap_or(1)
    }
}

/// Checks a named target: a voter other than this node, and online.
pub fn check_target(c: &Candidates, wanted: NodeId) -> Result<(), FailoverError> {
    if wanted == c.me || !c.voters.contains(&wanted) {
        return Err(FailoverError::NotAReplica);
    }
    if c.priority(wanted) == 0 {
        return Err(FailoverError::NeverPrimary);
    }
    if !c.online.contains(&wanted) {
        return Err(FailoverError::NotOnline);
    }
    Ok(())
}

/// The voter to hand over to: one with a priority above 0 that is online and has matched
/// the leader's last log index (the named one, once it has), the best ranked
/// ([`rank`]: preferred primary, then priority), the lowest id among equals; `None` while
/// none has.
pub fn choose_target(c: &Candidates, wanted: Option<NodeId>) -> Option<NodeId> {
    let ready = |id: &NodeId| {
        *id != c.me
            && c.priority(*id) > 0
            && c.voters.contains(id)
            && c.online.contains(id)
            && c.matched.get(id).is_some_and(|&m| m >= c.last_log_index)
    };
    match wanted {
        Some(id) => ready(&id).then_some(id),
        None => c
            .voters
            .iter()
            .copied()
            .filter(ready)
            .max_by_key(|&id| (rank(id, c.priority(id), c.preferred), std::cmp::Reverse(id))),
    }
}

/// Holds new writes while a switchover waits for sync, and counts those in flight.
#[derive(Default)]
pub struct WriteGate {
    paused: watch::Sender<bool>,
    in_flight: AtomicUsize,
    drained: Notify,
}

/// A write admitted through the gate; counted until dropped.
pub struct Admitted<'a>(&'a WriteGate);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// The longest a write is held: the switchover always reopens the gate before its own
/// deadline; this only bounds a wait if that were ever to go wrong.
const HOLD_MAX: Duration = Duration::from_secs(60);

impl WriteGate {
    /// Waits while the gate is closed, then counts the write in flight.
    pub async fn admit(&self) -> Admitted<'_> {
        let mut rx = self.paused.subscribe();
        let _ = tokio::time::timeout(HOLD_MAX, rx.wait_for(|p| !*p)).await;
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Admitted(self)
    }

    pub(super) fn close(&self) {
        self.paused.send_replace(true);
    }

    fn open(&self) {
        self.paused.send_replace(false);
    }

    /// Waits until no admitted write is in flight, or `deadline`.
    async fn drained(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.drained.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return self.in_flight.load(Ordering::Acquire) == 0;
            }
        }
    }
}

/// The switchover's shared state on a node.
#[derive(Default)]
pub struct Switchover {
    pub gate: WriteGate,
    phase: Mutex<Phase>,
    /// Set by ABORT (sticky, so one that arrives before the wait starts is not lost).
    aborted: std::sync::atomic::AtomicBool,
    abort: Notify,
}

/// Puts the phase back and reopens the gate however the switchover ends.
pub(super) struct Reset<'a>(&'a Switchover);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        *self.0.phase.lock().unwrap_or_else(|e| e.into_inner()) = Phase::None;
        self.0.gate.open();
    }
}

impl Switchover {
    pub fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    /// Enters waiting-for-sync unless a switchover is already running.
    pub(super) fn begin(&self) -> Result<Reset<'_>, FailoverError> {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if *phase != Phase::None {
            return Err(FailoverError::InProgress);
        }
        *phase = Phase::WaitingForSync;
        self.aborted.store(false, Ordering::Release);
        Ok(Reset(self))
    }

    /// FAILOVER ABORT.
    pub fn abort(&self) -> Result<(), FailoverError> {
        match self.phase() {
            Phase::None => Err(FailoverError::NothingToAbort),
            Phase::InProgress => Err(FailoverError::TooLateToAbort),
            Phase::WaitingForSync => {
                self.aborted.store(true, Ordering::Release);
                self.abort.notify_waiters();
                Ok(())
            }
        }
    }
}

/// What FAILOVER asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverRequest {
    /// The named target's client address (`TO host port`).
    pub to: Option<String>,
    pub timeout: Option<Duration>,
    /// Hand over to the named target at the timeout even if it has not caught up.
    pub force: bool,
}

/// Used when FAILOVER names no TIMEOUT: every wait has a deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Cluster {
    pub(super) fn candidates(&self) -> Candidates {
        let m = self.raft.metrics().borrow_watched().clone();
        let lease = Duration::from_millis(self.config.election_timeout_max_ms);
        let online = m
            .heartbeat
            .as_ref()
            .map(|h| {
                h.iter()
                    .filter(|(_, at)| at.as_ref().is_some_and(|t| t.elapsed() <= lease))
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        let view = self.role();
        Candidates {
            me: self.id,
            voters: view.members.iter().filter(|m| m.2).map(|m| m.0).collect(),
            matched: view.matched,
            online,
            last_log_index: m.last_log_index.unwrap_or(0),
            priorities: view.members.iter().map(|m| (m.0, self.config.priority_of(m.0))).collect(),
            preferred: self.config.preferred_primary,
        }
    }

    pub fn failover_phase(&self) -> Phase {
        self.switchover.phase()
    }

    pub fn abort_failover(&self) -> Result<(), FailoverError> {
        self.switchover.abort()
    }

    /// Runs a planned switchover from this node (which must be primary); returns the new
    /// primary once it has confirmed it is primary.
    pub async fn failover(&self, req: FailoverRequest) -> Result<NodeId, FailoverError> {
        self.switch_over(req, Cause::PlannedSwitchover).await
    }

    /// [`Cluster::failover`] for a reason: the new primary journals `cause` (announced to
    /// it before the transfer).
    pub async fn switch_over(&self, req: FailoverRequest, cause: Cause) -> Result<NodeId, FailoverError> {
        let started = Instant::now();
        let reset = self.switchover.begin()?;
        if !self.is_primary() {
            return Err(FailoverError::Replica);
        }
        let c = self.candidates();
        if !c.voters.iter().any(|&v| v != self.id) {
            return Err(FailoverError::NoReplicas);
        }
        if req.force && (req.timeout.is_none() || req.to.is_none()) {
            return Err(FailoverError::ForceNeedsTarget);
        }
        let wanted = match &req.to {
            Some(addr) => {
                let view = self.role();
                let id = view.members.iter().find(|m| m.1.client_addr == *addr).map(|m| m.0);
                let id = id.ok_or(FailoverError::NotAReplica)?;
                check_target(&c, id)?;
                Some(id)
            }
            None => None,
        };
        let deadline = started + req.timeout.unwrap_or(DEFAULT_TIMEOUT);
        self.switchover.gate.close();
        let target = self.wait_for_sync(wanted, req.force, deadline).await?;
        self.switchover.set(Phase::InProgress);
        tracing::info!("switchover: handing leadership to node {target} ({:?} after FAILOVER)", started.elapsed());
        let new = self.hand_over(target, deadline, cause).await;
        drop(reset);
        if let Ok(new) = new {
            tracing::info!("switchover: node {new} is primary, {:?} after FAILOVER", started.elapsed());
        }
        new
    }

    /// Waits for writes in flight to finish and a target to catch up.
    pub(super) async fn wait_for_sync(
        &self,
        wanted: Option<NodeId>,
        force: bool,
        deadline: Instant,
    ) -> Result<NodeId, FailoverError> {
        let abort = self.switchover.abort.notified();
        tokio::pin!(abort);
        abort.as_mut().enable();
        let mut rx = self.raft.metrics();
        if !self.switchover.aborted.load(Ordering::Acquire) {
            tokio::select! {
                _ = &mut abort => return Err(FailoverError::Aborted),
                _ = self.switchover.gate.drained(deadline) => {}
            }
        }
        loop {
            if self.switchover.aborted.load(Ordering::Acquire) {
                return Err(FailoverError::Aborted);
            }
            if let Some(t) = choose_target(&self.candidates(), wanted) {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                return match wanted {
                    Some(t) if force => Ok(t),
                    _ => Err(FailoverError::NeverCaughtUp),
                };
            }
            let tick = deadline.min(Instant::now() + Duration::from_millis(5));
            tokio::select! {
                _ = &mut abort => return Err(FailoverError::Aborted),
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(tick.into()) => {}
            }
        }
    }

    /// Triggers the transfer and waits for a new primary; after `election_timeout_min`
    /// without one, tells another caught-up voter to campaign.
    pub(super) async fn hand_over(
        &self,
        target: NodeId,
        deadline: Instant,
        cause: Cause,
    ) -> Result<NodeId, FailoverError> {
        let before = self.candidates();
        self.announce(target, &cause).await;
        if self.raft.trigger().transfer_leader(target).await.is_err() {
            return Err(FailoverError::NoNewPrimary);
        }
        let fallback_at = Instant::now() + Duration::from_millis(self.config.election_timeout_min_ms);
        // The handover may take past the sync timeout; it is bounded by two elections.
        let deadline = deadline.max(Instant::now() + Duration::from_millis(self.config.election_timeout_max_ms * 4));
        let mut fell_back = false;
        loop {
            if let Some(new) = self.confirmed_new_primary().await {
                return Ok(new);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FailoverError::NoNewPrimary);
            }
            if !fell_back && now >= fallback_at && self.raft.metrics().borrow_watched().state == ServerState::Leader {
                fell_back = true;
                let others = Candidates {
                    voters: before.voters.iter().copied().filter(|&v| v != target).collect(),
                    ..before.clone()
                };
                let other = choose_target(&others, None)
                    .or_else(|| others.voters.iter().copied().find(|&v| v != self.id && others.priority(v) > 0));
                if let Some(other) = other {
                    tracing::warn!("switchover: node {target} did not take over; asking node {other} to campaign");
                    self.announce(other, &cause).await;
                    self.ask_to_campaign(other).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A node other than this one that this node follows and that says it is primary.
    async fn confirmed_new_primary(&self) -> Option<NodeId> {
        if self.raft.metrics().borrow_watched().state == ServerState::Leader {
            return None;
        }
        self.confirmed_primary().await.map(|p| p.0).filter(|&p| p != self.id)
    }

    async fn ask_to_campaign(&self, id: NodeId) {
        let term = self.raft.metrics().borrow_watched().current_term;
        if let Err(e) = self.call_peer(id, &AppRequest::Elect { from: self.id, term }).await {
            tracing::warn!("switchover: node {id} did not start an election: {e}");
        }
    }

    /// Tells `id` why it is about to be asked to take over, so it journals that cause; a
    /// node that misses it journals a planned switchover.
    async fn announce(&self, id: NodeId, cause: &Cause) {
        if let Err(e) = self.call_peer(id, &AppRequest::Announce(cause.clone())).await {
            tracing::warn!("switchover: node {id} did not take the announcement ({cause}): {e}");
        }
    }

    async fn call_peer(&self, id: NodeId, req: &AppRequest) -> Result<(), String> {
        let member = self.role().members.into_iter().find(|m| m.0 == id).map(|m| m.1).ok_or("not a member")?;
        let bytes = postcard::to_stdvec(req).map_err(|e| e.to_string())?;
        let timeout = Duration::from_millis(self.config.election_timeout_min_ms);
        match self.network.call_app(&member.addr, bytes, timeout).await.map(|r| postcard::from_bytes(&r)) {
            Ok(Ok(AppResponse::Done)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_at(last: u64, matched: &[(NodeId, u64)]) -> Candidates {
        Candidates {
            me: 1,
            voters: vec![1, 2, 3],
            matched: matched.iter().copied().collect(),
            online: [2, 3].into(),
            last_log_index: last,
            ..Candidates::default()
        }
    }

    /// (case, candidates, named target, chosen)
    #[test]
    fn target_choice() {
        let with_learner = Candidates { matched: [(2, 9), (3, 9), (4, 10)].into(), ..leader_at(10, &[]) };
        let offline = Candidates { online: [3].into(), ..leader_at(10, &[(2, 10), (3, 10)]) };
        let matched = || leader_at(10, &[(2, 10), (3, 10)]);
        let zero_3 = Candidates { priorities: [(2, 0), (3, 0)].into(), ..matched() };
        let two_3 = Candidates { priorities: [(3, 2)].into(), ..matched() };
        let preferred_3 = Candidates { preferred: Some(3), priorities: [(2, 5)].into(), ..matched() };
        let cases: Vec<(&str, Candidates, Option<NodeId>, Option<NodeId>)> = vec![
            ("both matched: the lowest id", leader_at(10, &[(2, 10), (3, 10)]), None, Some(2)),
            ("only one matched: that one", leader_at(10, &[(2, 9), (3, 10)]), None, Some(3)),
            ("none matched yet: wait", leader_at(10, &[(2, 9), (3, 8)]), None, None),
            ("no replication reported yet: wait", leader_at(10, &[]), None, None),
            ("named and matched", leader_at(10, &[(2, 10), (3, 10)]), Some(3), Some(3)),
            ("named but behind: wait, even if another matched", leader_at(10, &[(2, 10), (3, 9)]), Some(3), None),
            ("a matched learner is never chosen", with_learner, None, None),
            ("an offline voter is never chosen", offline, None, Some(3)),
            ("never this node", leader_at(10, &[(1, 10)]), Some(1), None),
            ("never a priority-0 voter", zero_3.clone(), None, None),
            ("not even when named", zero_3, Some(3), None),
            ("the higher priority first", two_3, None, Some(3)),
            ("the preferred primary first", preferred_3, None, Some(3)),
        ];
        for (case, c, wanted, chosen) in cases {
            assert_eq!(choose_target(&c, wanted), chosen, "{case}");
        }
    }

    #[test]
    fn named_targets_are_checked() {
        let c = Candidates { voters: vec![1, 2, 3, 4], online: [2].into(), ..leader_at(10, &[]) };
        assert_eq!(check_target(&c, 2), Ok(()));
        assert_eq!(check_target(&c, 1), Err(FailoverError::NotAReplica), "this node");
        assert_eq!(check_target(&c, 9), Err(FailoverError::NotAReplica), "not a member");
        assert_eq!(check_target(&c, 4), Err(FailoverError::NotOnline));
        let zero = Candidates { priorities: [(2, 0)].into(), ..c.clone() };
        assert_eq!(check_target(&zero, 2), Err(FailoverError::NeverPrimary));
        let learner = Candidates { voters: vec![1, 2], online: [2, 3].into(), ..leader_at(10, &[]) };
        assert_eq!(check_target(&learner, 3), Err(FailoverError::NotAReplica), "a learner");
    }

    /// ABORT with nothing running, and while waiting, and too late.
    #[test]
    fn abort_by_phase() {
        let s = Switchover::default();
        assert_eq!(s.abort(), Err(FailoverError::NothingToAbort));
        let reset = s.begin().expect("begin");
        assert_eq!(s.begin().err(), Some(FailoverError::InProgress));
        assert_eq!(s.abort(), Ok(()));
        assert!(s.aborted.load(Ordering::Acquire), "an ABORT before the wait starts is kept");
        s.set(Phase::InProgress);
        assert_eq!(s.abort(), Err(FailoverError::TooLateToAbort));
        drop(reset);
        assert_eq!(s.phase(), Phase::None);
    }

    /// A closed gate holds writes; opening it lets them through; drained waits for them.
    #[tokio::test]
    async fn the_gate_holds_writes_until_opened() {
        let g = std::sync::Arc::new(WriteGate::default());
        let w = g.admit().await;
        g.close();
        assert!(!g.drained(Instant::now() + Duration::from_millis(20)).await, "one in flight");
        drop(w);
        assert!(g.drained(Instant::now() + Duration::from_millis(20)).await);
        let held = tokio::spawn({
            let g = g.clone();
            async move {
                let _w = g.admit().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!held.is_finished(), "held while closed");
        g.open();
        tokio::time::timeout(Duration::from_secs(5), held).await.expect("released").expect("task");
    }
}
