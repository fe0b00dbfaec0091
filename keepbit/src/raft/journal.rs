//! Writing the failover journal: when this node becomes primary in a new term, it records
//! the leadership change (`OpKind::Journal`) from its own observations, then completes
//! the record (`OpKind::JournalUpdate`) with the time that first write committed and the
//! settled cause.
//!
//! What the new primary can observe, and how [`classify`] reads it:
//!
//! - a proactive handover announced by the old primary shortly before winning →
//!   `proactive: <check>` (the check that made it hand over);
//! - a transfer-leader request received shortly before winning → the reason the old
//!   primary announced with it (`failback`, `proactive: …`), else planned switchover;
//! - no leader has reached this node since it started → restart (a cluster start or
//!   restart: the old primary is then the journal's last new primary);
//! - a call to the old primary (the pre-vote, vote or first appends) after the last
//!   contact was refused → `crash: connection refused` (its process is gone);
//! - calls to it never established a TCP connection → `partition (no quorum)`: it is cut
//!   off, and since this node won with a quorum, the old primary has none;
//! - otherwise (connected but unanswered, or nothing learnt yet) → heartbeat timeout: the
//!   old primary is hung or paused, or cannot be told apart from one.
//!
//! A crash is seen at once; the other causes may take a few RPC deadlines to show, so
//! the cause is settled for up to [`settle_window`] after the first commit. Detection is
//! the first (pre-)vote request this node sent after the last contact (its election
//! timer firing); elected is when the role loop first saw it primary (within 20 ms).

use std::sync::Weak;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cluster::Cluster;
use super::network::{Campaign, SeenSince};
use super::types::NodeId;
use crate::store::journal::{Cause, FailoverRecord};
use crate::store::{Op, OpKind};

/// What the new primary knows when it classifies a leadership change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub me: NodeId,
    /// The old primary, if known.
    pub old_primary: Option<NodeId>,
    /// A leader reached this node since it started.
    pub had_contact: bool,
    /// The old primary asked this node to take over (transfer-leader) just before.
    pub transfer_requested: bool,
    /// The old primary announced a proactive handover because of this check just before.
    pub proactive: Option<&'static str>,
    /// Why, as the old primary announced it before asking (`AppRequest::Announce`).
    pub announced: Option<Cause>,
    /// What calls to the old primary met since its last contact.
    pub old_seen: SeenSince,
}

/// The cause of a leadership change, from what the new primary observed.
pub fn classify(o: &Observed) -> Cause {
    if let Some(check) = o.proactive {
        return Cause::Proactive(check.to_string());
    }
    if o.transfer_requested {
        return o.announced.clone().unwrap_or(Cause::PlannedSwitchover);
    }
    if !o.had_contact {
        return Cause::Restart;
    }
    if o.old_primary.is_none_or(|old| old == o.me) {
        return Cause::HeartbeatTimeout;
    }
    if o.old_seen.refused {
        Cause::Crash("connection refused".into())
    } else if o.old_seen.unconnected {
        Cause::PartitionNoQuorum
    } else {
        Cause::HeartbeatTimeout
    }
}

/// How long after the first commit the cause may still change from a heartbeat timeout
/// to a crash or partition (connection attempts to the old primary need their deadlines).
pub fn settle_window(election_timeout_max_ms: u64) -> Duration {
    Duration::from_millis((4 * election_timeout_max_ms).max(500))
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Converts instants to the wall clock from one reading of both clocks, so instants in
/// order stay in order in milliseconds.
struct WallClock {
    unix_ms: u64,
    at: Instant,
}

impl WallClock {
    fn now() -> WallClock {
        WallClock { unix_ms: unix_ms(), at: Instant::now() }
    }

    fn unix_ms_of(&self, at: Instant) -> u64 {
        self.unix_ms.saturating_sub(self.at.saturating_duration_since(at).as_millis() as u64)
    }
}

/// This node won the election for `term` and is primary since `elected`: what it saw.
pub struct Won {
    pub term: u64,
    pub elected: Instant,
    /// The leader that last replicated to this node, and when.
    pub contact: Option<(NodeId, Instant)>,
    pub campaign: Campaign,
}

impl Cluster {
    fn observe(&self, won: &Won, old_primary: Option<NodeId>) -> Observed {
        let lease = Duration::from_millis(self.config.election_timeout_max_ms);
        let old_addr = old_primary.and_then(|id| self.role().members.into_iter().find(|m| m.0 == id)).map(|m| m.1.addr);
        let since = won.contact.map(|c| c.1);
        let fresh = |t: &Instant| t.elapsed() <= 4 * lease;
        Observed {
            me: self.id,
            old_primary,
            had_contact: won.contact.is_some(),
            transfer_requested: won.campaign.transfer_requested.as_ref().is_some_and(fresh),
            proactive: won.campaign.proactive.filter(|p| fresh(&p.1)).map(|p| p.0),
            announced: won.campaign.announced.as_ref().filter(|a| fresh(&a.1)).map(|a| a.0.clone()),
            old_seen: old_addr.map(|a| self.network.observations().peer(&a).since(since)).unwrap_or_default(),
        }
    }

    async fn journal_op(&self, kind: OpKind) -> bool {
        let op = Op { db: 0, now_ms: self.clock.now_ms(), seed: 0, kind };
        match self.submit_op(&op).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("could not write the failover journal: {e}");
                false
            }
        }
    }
}

/// Records the leadership change this node's win made, then completes the record.
pub async fn record(cluster: Weak<Cluster>, won: Won) {
    let Some(mut c) = cluster.upgrade() else { return };
    let old_primary = match won.contact {
        Some((id, _)) => Some(id),
        None => c.machine.journal(1).first().map(|r| r.new_primary),
    };
    let wall = WallClock::now();
    let record = FailoverRecord {
        term: won.term,
        old_primary,
        new_primary: c.id,
        cause: classify(&c.observe(&won, old_primary)),
        last_contact_ms: won.contact.map(|(_, at)| wall.unix_ms_of(at)),
        detected_ms: won.campaign.started.map(|at| wall.unix_ms_of(at)),
        elected_ms: wall.unix_ms_of(won.elected),
        first_commit_ms: None,
    };
    tracing::info!("failover journal: term {} primary {:?} -> {} ({})", won.term, old_primary, c.id, record.cause);
    if !c.journal_op(OpKind::Journal(record.clone())).await {
        return;
    }
    let first_commit_ms = unix_ms();
    let settle_by = Instant::now() + settle_window(c.config.election_timeout_max_ms);
    let cause = loop {
        let cause = classify(&c.observe(&won, old_primary));
        if cause != Cause::HeartbeatTimeout || Instant::now() >= settle_by {
            break cause;
        }
        drop(c);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(again) = cluster.upgrade() else { return };
        c = again;
    };
    let completed = FailoverRecord { first_commit_ms: Some(first_commit_ms), cause: cause.clone(), ..record };
    if c.journal_op(OpKind::JournalUpdate { term: won.term, first_commit_ms, cause }).await {
        count_failover(&c, &completed);
    }
}

/// Counts a completed record in this node's metrics (only the node that wrote it does,
/// so a failover counts once in the cluster): every cause but `restart`, with its MTTR.
fn count_failover(c: &Cluster, completed: &FailoverRecord) {
    if !completed.cause.is_failover() {
        return;
    }
    let Some(mttr_ms) = completed.mttr_ms() else {
        tracing::warn!("failover of term {} has no MTTR; not counted", completed.term);
        return;
    };
    c.metrics.failover(completed.cause.label(), mttr_ms as f64 / 1000.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(refused: bool, unconnected: bool, unanswered: bool) -> SeenSince {
        SeenSince { refused, unconnected, unanswered }
    }

    /// (case, observations, cause)
    #[test]
    fn causes_from_observations() {
        let base = Observed { me: 2, old_primary: Some(1), had_contact: true, ..Observed::default() };
        let asked = Observed { transfer_requested: true, ..base.clone() };
        let cases = [
            (
                "old primary refused connections",
                Observed { old_seen: seen(true, false, true), ..base.clone() },
                "crash: connection refused",
            ),
            (
                "connected but unanswered",
                Observed { old_seen: seen(false, false, true), ..base.clone() },
                "heartbeat timeout",
            ),
            ("nothing learnt about it yet", base.clone(), "heartbeat timeout"),
            (
                "never connected",
                Observed { old_seen: seen(false, true, true), ..base.clone() },
                "partition (no quorum)",
            ),
            (
                "refused wins over unconnected",
                Observed { old_seen: seen(true, true, false), ..base.clone() },
                "crash: connection refused",
            ),
            (
                "asked to take over",
                Observed { transfer_requested: true, old_seen: seen(true, false, false), ..base.clone() },
                "planned switchover",
            ),
            (
                "asked to take over for a failback",
                Observed { announced: Some(Cause::Failback), ..asked.clone() },
                "failback",
            ),
            (
                "the reason another mechanism announced",
                Observed { announced: Some(Cause::Proactive("disk".into())), ..asked.clone() },
                "proactive: disk",
            ),
            (
                "an announcement without a transfer request is no switchover",
                Observed { announced: Some(Cause::Failback), old_seen: seen(true, false, false), ..base.clone() },
                "crash: connection refused",
            ),
            ("no leader since this node started", Observed { had_contact: false, ..base.clone() }, "restart"),
            (
                "asked to take over after a proactive announcement",
                Observed { transfer_requested: true, proactive: Some("fsync"), ..base.clone() },
                "proactive: fsync",
            ),
            (
                "announced, then the fallback's election (no transfer request)",
                Observed { proactive: Some("disk"), old_seen: seen(false, false, true), ..base.clone() },
                "proactive: disk",
            ),
            (
                "this node led before",
                Observed { old_primary: Some(2), old_seen: seen(true, false, false), ..base },
                "heartbeat timeout",
            ),
        ];
        for (case, observed, cause) in cases {
            assert_eq!(classify(&observed).to_string(), cause, "{case}");
        }
        assert_eq!(settle_window(120), Duration::from_millis(500));
        assert_eq!(settle_window(300), Duration::from_millis(1200));
    }
}
