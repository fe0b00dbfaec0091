//! Who serves what: the role decision as a pure function of what openraft reports
//! ([`Facts`]), and the thin loop that follows openraft's metrics, publishes the
//! [`RoleView`] and logs every leadership change; a win starts the failover journal's
//! record ([`super::journal`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;
use openraft::ServerState;

use super::cluster::Cluster;
use super::journal::{self, Won};
use super::types::{Member, NodeId, TypeConfig};

/// Who serves what, as last derived from openraft's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// Voters and learners: (id, member, is_voter).
    pub members: Vec<(NodeId, Member, bool)>,
    /// On the primary: log index each peer has matched.
    pub matched: BTreeMap<NodeId, u64>,
}

/// What the role decision reads, as plain data (ages instead of instants).
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub me: NodeId,
    pub is_leader: bool,
    pub term: u64,
    /// The leader openraft names (it keeps naming itself after losing its lease).
    pub named_leader: Option<NodeId>,
    /// Milliseconds since a quorum last acknowledged this node as leader.
    pub quorum_acked_ago_ms: Option<u64>,
    /// The leader that last replicated to this node, and how many milliseconds ago.
    pub contact: Option<(NodeId, u64)>,
    pub members: Vec<(NodeId, Member, bool)>,
    pub last_log_index: u64,
    pub last_applied: u64,
    pub committed: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub matched: BTreeMap<NodeId, u64>,
    /// Bytes of this node's writes proposed and not yet committed.
    pub writes_in_flight_bytes: u64,
}

/// How fast a large write is assumed to reach a quorum's disks (send, decode, write and
/// fsync on every node, on a loaded machine). While one is in flight the followers answer
/// heartbeats only once it is on their disks (openraft acknowledges an AppendEntries,
/// empty or not, after the log I/O before it is flushed), so the leader's lease lapses
/// for its transfer time; that must cost the transfer time, not the primary.
pub const LARGE_WRITE_BYTES_PER_MS: u64 = 32 << 10;

/// The role decision. A leader is primary only while a quorum has acknowledged it
/// within the lease (or it is the only voter): without that openraft refuses its
/// writes, and clients must move on. A leader is named (to ROLE, INFO and Sentinel
/// discovery) only if it is this node while primary, or a node that has reached this
/// one within the lease, so no client is sent to a node that cannot commit.
///
/// While this node's own writes are in flight, the leader's lease here stretches by their
/// transfer time at [`LARGE_WRITE_BYTES_PER_MS`]. That only keeps admitting writes and
/// keeps clients connected; reads are still checked against openraft's own lease (see
/// `routing::barrier`), so no read is served stale.
pub fn derive_role(f: &Facts, lease_ms: u64) -> RoleView {
    let voters = f.members.iter().filter(|m| m.2).count();
    let write_lease_ms = lease_ms + f.writes_in_flight_bytes / LARGE_WRITE_BYTES_PER_MS;
    let acked_for_writes = f.quorum_acked_ago_ms.is_some_and(|a| a <= write_lease_ms);
    let is_primary = f.is_leader && (acked_for_writes || voters == 1);
    let leader = f
        .named_leader
        .and_then(|id| f.members.iter().find(|m| m.0 == id))
        .filter(|m| match m.0 == f.me {
            true => is_primary,
            false => f.contact.is_some_and(|(id, age)| id == m.0 && age <= lease_ms),
        })
        .map(|m| (m.0, m.1.clone()));
    RoleView {
        is_primary,
        term: f.term,
        leader,
        last_log_index: f.last_log_index,
        last_applied: f.last_applied,
        committed: f.committed,
        snapshot_index: f.snapshot_index,
        purged_index: f.purged_index,
        members: f.members.clone(),
        matched: f.matched.clone(),
    }
}

type Metrics = openraft::RaftMetrics<TypeConfig>;

fn age_ms(at: std::time::Instant) -> u64 {
    at.elapsed().as_millis() as u64
}

/// Reads openraft's metrics and this node's last leader contact into [`Facts`].
pub fn facts(m: &Metrics, me: NodeId, contact: Option<(NodeId, std::time::Instant)>) -> Facts {
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    Facts {
        me,
        is_leader: m.state == ServerState::Leader,
        term: m.current_term,
        named_leader: m.current_leader,
        quorum_acked_ago_ms: m.last_quorum_acked.as_ref().map(|t| t.elapsed().as_millis() as u64),
        contact: contact.map(|(id, at)| (id, age_ms(at))),
        members: membership.nodes().map(|(id, n)| (*id, n.clone(), voters.contains(id))).collect(),
        last_log_index: m.last_log_index.unwrap_or(0),
        last_applied: m.last_applied.as_ref().map_or(0, |l| l.index),
        committed: m.local_committed.as_ref().map_or(0, |l| l.index),
        snapshot_index: m.snapshot.as_ref().map_or(0, |l| l.index),
        purged_index: m.purged.as_ref().map_or(0, |l| l.index),
        matched: m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.as_ref().map_or(0, |l| l.index))).collect())
            .unwrap_or_default(),
        writes_in_flight_bytes: 0,
    }
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// The leader that last replicated to this node, and when.
pub type LeaderContact = Arc<Mutex<Option<(NodeId, std::time::Instant)>>>;

/// Follows openraft's metrics (and a 20 ms tick, since leases expire without a metrics
/// change): keeps the role view current and logs every leadership change with its term
/// and time. Whoever cares about demotion watches `Cluster::primary_changes`.
pub async fn follow(cluster: Weak<Cluster>) {
    let Some(c) = cluster.upgrade() else { return };
    let mut rx = c.raft.metrics();
    let lease_ms = c.config.election_timeout_max_ms;
    drop(c);
    let mut last_leader: Option<NodeId> = None;
    // The last leader named, through gaps without one: a lease blip is no change.
    let mut last_known: Option<NodeId> = None;
    // The last term this node journaled its own win for (one record per term).
    let mut journaled_term = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let Some(c) = cluster.upgrade() else { return };
        let contact = *c.leader_contact.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = facts(&rx.borrow_watched(), c.id, contact);
        f.writes_in_flight_bytes = c.writes_in_flight_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let view = derive_role(&f, lease_ms);
        let leader_id = view.leader.as_ref().map(|l| l.0);
        if leader_id != last_leader {
            tracing::info!(
                "leadership change: term {} leader {:?} (was {:?}) at unix_ms {}",
                view.term,
                leader_id,
                last_leader,
                unix_ms()
            );
            if leader_id.is_some_and(|id| last_known != Some(id)) {
                c.metrics.leader_changes.inc();
                last_known = leader_id;
            }
            last_leader = leader_id;
        }
        if view.is_primary && view.term > journaled_term {
            journaled_term = view.term;
            let campaign = c.network.observations().take_campaign();
            let won = Won { term: view.term, elected: std::time::Instant::now(), contact, campaign };
            tokio::spawn(journal::record(cluster.clone(), won));
        }
        c.publish_role(view);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE_MS: u64 = 120;

    fn members(n: u64) -> Vec<(NodeId, Member, bool)> {
        (1..=n).map(|id| (id, Member::new(format!("p{id}"), format!("c{id}")), true)).collect()
    }

    fn leader(acked_ago_ms: Option<u64>) -> Facts {
        Facts {
            me: 1,
            is_leader: true,
            named_leader: Some(1),
            quorum_acked_ago_ms: acked_ago_ms,
            members: members(3),
            ..Facts::default()
        }
    }

    fn follower(contact: Option<(NodeId, u64)>) -> Facts {
        Facts { me: 2, named_leader: Some(1), contact, members: members(3), ..Facts::default() }
    }

    /// (case, facts, is primary, leader named)
    #[test]
    fn role_decisions() {
        let single = Facts { members: members(1), ..leader(None) };
        let learner = {
            let mut f = follower(Some((1, 10)));
            f.members.push((4, Member::new("p4", "c4"), false));
            f.me = 4;
            f
        };
        let cases: Vec<(&str, Facts, bool, Option<NodeId>)> = vec![
            ("leader acknowledged within its lease", leader(Some(30)), true, Some(1)),
            ("leader acknowledged exactly at the lease", leader(Some(LEASE_MS)), true, Some(1)),
            ("leader whose lease ran out", leader(Some(LEASE_MS + 1)), false, None),
            ("leader never acknowledged", leader(None), false, None),
            ("single voter needs no quorum acknowledgement", single, true, Some(1)),
            ("follower with fresh contact from the leader", follower(Some((1, 10))), false, Some(1)),
            ("follower with stale contact", follower(Some((1, LEASE_MS + 1))), false, None),
            ("follower never reached", follower(None), false, None),
            ("follower reached by another node than the named leader", follower(Some((3, 5))), false, None),
            ("learner reached by the leader", learner, false, Some(1)),
            (
                "leader past its lease while 64 MiB of its writes are in flight",
                Facts { writes_in_flight_bytes: 64 << 20, ..leader(Some(LEASE_MS + 1500)) },
                true,
                Some(1),
            ),
            (
                "leader past its lease plus the transfer time of its writes",
                Facts { writes_in_flight_bytes: 64 << 20, ..leader(Some(LEASE_MS + 2100)) },
                false,
                None,
            ),
            (
                "a follower is never primary, whatever is in flight",
                Facts { writes_in_flight_bytes: 64 << 20, ..follower(Some((1, 10))) },
                false,
                Some(1),
            ),
        ];
        for (case, facts, primary, named) in cases {
            let view = derive_role(&facts, LEASE_MS);
            assert_eq!(view.is_primary, primary, "{case}: primary");
            assert_eq!(view.leader.map(|l| l.0), named, "{case}: leader named");
        }
    }

    /// The counters pass through unchanged.
    #[test]
    fn role_view_carries_the_log_positions() {
        let f =
            Facts { term: 7, last_log_index: 9, last_applied: 8, committed: 8, snapshot_index: 5, ..leader(Some(1)) };
        let v = derive_role(&f, LEASE_MS);
        assert_eq!((v.term, v.last_log_index, v.last_applied, v.committed, v.snapshot_index), (7, 9, 8, 8, 5));
        assert_eq!(v.members.len(), 3);
    }
}
