//! Priorities and failback: which member should lead, and when the primary hands over.
//!
//! Every member has a `priority` (`[cluster] peers`, default 1) and the cluster may name a
//! `preferred_primary`. Members are ranked by [`rank`]: a priority above 0 first, then the
//! preferred primary, then the higher priority. The primary runs [`watch`]: every few
//! heartbeats it notes which voters are reachable and caught up, and since when
//! ([`Readiness`]), and [`decide`] (pure) says whether to hand over:
//!
//! - a primary with priority 0 hands over at once to the best-ranked ready voter (a
//!   planned switchover);
//! - any other primary hands over to a better-ranked voter only once that voter has been
//!   ready for `failback_quiet_ms` (journaled as `failback`). Every move goes strictly up
//!   the ranking, so leadership cannot flap between two members.
//!
//! openraft 0.10 has no per-node "never campaign" switch, so a priority-0 node can still
//! win an election when its timer fires first (or when its log is the only complete one).
//! Keepbit keeps that short instead: its crash fast path never campaigns and it refuses to
//! campaign when asked (`AppRequest::Elect`); a switchover never picks it; and if it does
//! win, it hands leadership on as soon as a voter with priority is caught up.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::switchover::{Candidates, FailoverRequest, Phase};
use super::types::NodeId;
use crate::store::journal::Cause;

/// A voter this many entries or fewer behind the leader's last log index counts as
/// caught up (writes keep arriving; the switchover itself waits for an exact match).
pub const CAUGHT_UP_LAG: u64 = 64;

/// Leadership preference: (has a priority, is the preferred primary, priority).
pub fn rank(id: NodeId, priority: u32, preferred: Option<NodeId>) -> (bool, bool, u32) {
    (priority > 0, preferred == Some(id), priority)
}

/// The voters (other than the leader) that are reachable within the lease and caught up.
pub fn ready(c: &Candidates) -> Vec<NodeId> {
    c.voters
        .iter()
        .copied()
        .filter(|id| {
            *id != c.me
                && c.online.contains(id)
                && c.matched.get(id).is_some_and(|&m| m + CAUGHT_UP_LAG >= c.last_log_index)
        })
        .collect()
}

/// Since when each voter has been ready without a break.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    since: BTreeMap<NodeId, Instant>,
}

impl Readiness {
    /// Notes the voters ready `now`: those newly ready start counting, the others drop out.
    pub fn update(&mut self, now: Instant, ready: &[NodeId]) {
        self.since.retain(|id, _| ready.contains(id));
        for &id in ready {
            self.since.entry(id).or_insert(now);
        }
    }

    /// How long each voter has been ready, as of `now`.
    pub fn ages(&self, now: Instant) -> BTreeMap<NodeId, Duration> {
        self.since.iter().map(|(&id, &at)| (id, now.saturating_duration_since(at))).collect()
    }
}

/// What [`decide`] reads, as plain data.
#[derive(Clone, Debug, Default)]
pub struct Standing {
    pub me: NodeId,
    /// Priority per member; a member not listed has priority 1.
    pub priorities: BTreeMap<NodeId, u32>,
    pub preferred: Option<NodeId>,
    /// How long each ready voter has been ready ([`Readiness::ages`]).
    pub ready_for: BTreeMap<NodeId, Duration>,
    pub quiet: Duration,
}

impl Standing {
    fn priority(&self, id: NodeId) -> u32 {
        self.priorities.get(&id).copied().unwrap_or(1)
    }

    fn rank(&self, id: NodeId) -> (bool, bool, u32) {
        rank(id, self.priority(id), self.preferred)
    }
}

/// Whether the primary should hand over now, to whom, and the cause the new primary
/// journals: the best-ranked ready voter ranked above this node (lowest id among equals),
/// at once if this node has priority 0, else once it has been ready for the quiet period.
pub fn decide(s: &Standing) -> Option<(NodeId, Cause)> {
    let never_primary = s.priority(s.me) == 0;
    let eligible = |(&id, &age): (&NodeId, &Duration)| {
        id != s.me && s.priority(id) > 0 && s.rank(id) > s.rank(s.me) && (never_primary || age >= s.quiet)
    };
    let best =
        s.ready_for.iter().filter(|e| eligible(*e)).map(|(&id, _)| id).max_by_key(|&id| (s.rank(id), Reverse(id)))?;
    Some((best, if never_primary { Cause::PlannedSwitchover } else { Cause::Failback }))
}

/// After a handover that did not happen, the primary waits this long before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// The primary's loop: hands leadership over when [`decide`] says so.
pub async fn watch(cluster: Weak<Cluster>) {
    let mut readiness = Readiness::default();
    let mut retry_at = Instant::now();
    loop {
        let Some(c) = cluster.upgrade() else { return };
        let tick = Duration::from_millis((c.config.heartbeat_ms * 5).clamp(20, 500));
        if !c.is_primary() || c.failover_phase() != Phase::None {
            readiness = Readiness::default();
        } else {
            let now = Instant::now();
            let candidates = c.candidates();
            readiness.update(now, &ready(&candidates));
            let standing = Standing {
                me: c.id,
                priorities: candidates.voters.iter().map(|&v| (v, c.config.priority_of(v))).collect(),
                preferred: c.config.preferred_primary,
                ready_for: readiness.ages(now),
                quiet: Duration::from_millis(c.config.failback_quiet_ms),
            };
            if let Some((to, cause)) = decide(&standing).filter(|_| now >= retry_at) {
                tracing::info!("priority: handing leadership to node {to} ({cause})");
                let to_addr = c.role().members.into_iter().find(|m| m.0 == to).map(|m| m.1.client_addr);
                let req = FailoverRequest { to: to_addr, ..FailoverRequest::default() };
                if let Err(e) = c.switch_over(req, cause).await {
                    tracing::warn!("priority: handover to node {to} did not happen: {e}");
                    retry_at = Instant::now() + RETRY;
                }
                readiness = Readiness::default();
            }
        }
        drop(c);
        tokio::time::sleep(tick).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_secs(10);

    fn standing(me: NodeId, priorities: &[(NodeId, u32)], ready_s: &[(NodeId, u64)]) -> Standing {
        Standing {
            me,
            priorities: priorities.iter().copied().collect(),
            preferred: None,
            ready_for: ready_s.iter().map(|&(id, s)| (id, Duration::from_secs(s))).collect(),
            quiet: QUIET,
        }
    }

    /// (case, standing, hand over to, cause)
    #[test]
    fn handover_decisions() {
        let failback = Some("failback");
        let planned = Some("planned switchover");
        let preferred =
            |me, pref, ready: &[(NodeId, u64)]| Standing { preferred: Some(pref), ..standing(me, &[], ready) };
        let cases: Vec<(&str, Standing, Option<NodeId>, Option<&str>)> = vec![
            ("equal priorities: stay", standing(1, &[], &[(2, 60), (3, 60)]), None, None),
            ("priority 0 leads: hand over at once", standing(3, &[(3, 0)], &[(1, 0), (2, 0)]), Some(1), planned),
            ("priority 0 leads, nobody ready: stay", standing(3, &[(3, 0)], &[]), None, None),
            ("priority 0 leads, only another 0 ready: stay", standing(3, &[(3, 0), (2, 0)], &[(2, 9)]), None, None),
            (
                "priority 0 picks the highest priority",
                standing(3, &[(3, 0), (2, 5)], &[(1, 0), (2, 0)]),
                Some(2),
                planned,
            ),
            ("higher priority ready for the quiet period", standing(1, &[(2, 2)], &[(2, 10)]), Some(2), failback),
            ("higher priority, not ready long enough", standing(1, &[(2, 2)], &[(2, 9)]), None, None),
            ("lower priority is never a target", standing(1, &[(1, 3), (2, 2)], &[(2, 60)]), None, None),
            ("the highest of several", standing(1, &[(2, 2), (3, 3)], &[(2, 60), (3, 60)]), Some(3), failback),
            ("preferred primary back and quiet", preferred(1, 2, &[(2, 10), (3, 60)]), Some(2), failback),
            ("preferred primary back, not yet quiet", preferred(1, 2, &[(2, 1), (3, 60)]), None, None),
            ("the preferred primary leads: stay", preferred(2, 2, &[(1, 60), (3, 60)]), None, None),
            (
                "preferred outranks a higher priority (no flapping between them)",
                Standing { preferred: Some(2), ..standing(3, &[(3, 5)], &[(2, 10)]) },
                Some(2),
                failback,
            ),
            (
                "the higher priority does not take it back from the preferred one",
                Standing { preferred: Some(2), ..standing(2, &[(3, 5)], &[(3, 60)]) },
                None,
                None,
            ),
        ];
        for (case, s, to, cause) in cases {
            let got = decide(&s);
            assert_eq!(got.as_ref().map(|g| g.0), to, "{case}");
            assert_eq!(got.map(|g| g.1.to_string()).as_deref(), cause, "{case}");
        }
    }

    /// Readiness counts from when a voter became ready and restarts after any break.
    #[test]
    fn readiness_restarts_after_a_break() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = Readiness::default();
        r.update(at(0), &[2, 3]);
        r.update(at(100), &[2]);
        r.update(at(200), &[2, 3]);
        let ages = r.ages(at(300));
        assert_eq!(ages.get(&2), Some(&Duration::from_millis(300)));
        assert_eq!(ages.get(&3), Some(&Duration::from_millis(100)), "3 dropped out at 100 ms");
    }

    /// Ready: another voter, online, within CAUGHT_UP_LAG of the leader's last index.
    #[test]
    fn ready_voters() {
        let c = Candidates {
            me: 1,
            voters: vec![1, 2, 3, 4],
            matched: [(1, 500), (2, 500 - CAUGHT_UP_LAG), (3, 500 - CAUGHT_UP_LAG - 1), (4, 500), (5, 500)].into(),
            online: [2, 3, 5].into(),
            last_log_index: 500,
            ..Candidates::default()
        };
        assert_eq!(ready(&c), vec![2], "3 is behind, 4 offline, 5 a learner, 1 this node");
    }
}
