//! The failover journal: one [`FailoverRecord`] per leadership change, part of the
//! replicated state. The new primary writes its record as an op (`OpKind::Journal`) right
//! after it wins, and completes it with a second op (`OpKind::JournalUpdate`) once its
//! first write has committed and the cause is settled; every node applies both alike, so
//! every node holds the same journal, kept in snapshots and across restarts.
//!
//! The journal keeps the newest [`JOURNAL_RECORDS_MAX`] records; older ones are dropped
//! when a new one is applied.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Records kept: the newest thousand leadership changes (a few hundred KiB at most).
pub const JOURNAL_RECORDS_MAX: usize = 1000;

/// Why leadership changed, as the new primary saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// The old primary's process is gone: connecting to it was refused (`crash: <what>`).
    Crash(String),
    /// The old primary stopped sending heartbeats but its host still accepts
    /// connections: a hung or paused process (or one the new side cannot tell apart).
    HeartbeatTimeout,
    /// The old primary could not be reached at all (connections time out before they are
    /// established) while a quorum elected this node: it is cut off, without a quorum.
    PartitionNoQuorum,
    /// Leadership was handed over on request (a transfer-leader request).
    PlannedSwitchover,
    /// A health check made the old primary hand over before failing (`proactive: <check>`).
    Proactive(String),
    /// No primary was known since this node started: the first leader after a cluster
    /// start or restart.
    Restart,
    /// Leadership moved back to a higher-priority member or `preferred_primary` once it
    /// had been caught up for `failback_quiet_ms` (a planned switchover).
    Failback,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Crash(what) => write!(f, "crash: {what}"),
            Cause::HeartbeatTimeout => f.write_str("heartbeat timeout"),
            Cause::PartitionNoQuorum => f.write_str("partition (no quorum)"),
            Cause::PlannedSwitchover => f.write_str("planned switchover"),
            Cause::Proactive(check) => write!(f, "proactive: {check}"),
            Cause::Restart => f.write_str("restart"),
            Cause::Failback => f.write_str("failback"),
        }
    }
}

impl Cause {
    /// The `cause` label of `keepbit_failovers_total`: the kind alone, so a crash's or a
    /// check's detail never makes a new series.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::Crash(_) => "crash",
            Cause::HeartbeatTimeout => "heartbeat_timeout",
            Cause::PartitionNoQuorum => "partition",
            Cause::PlannedSwitchover => "planned_switchover",
            Cause::Proactive(_) => "proactive",
            Cause::Restart => "restart",
            Cause::Failback => "failback",
        }
    }

    /// Whether this change is a failover: every cause but `restart` (the first leader
    /// after a cluster start is no lost primary).
    pub fn is_failover(&self) -> bool {
        *self != Cause::Restart
    }
}

/// One leadership change. Times are the new primary's wall clock, in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRecord {
    /// The term the new primary leads.
    pub term: u64,
    /// The primary before (the leader that last replicated to the new one), if known.
    pub old_primary: Option<u64>,
    pub new_primary: u64,
    pub cause: Cause,
    /// When the old primary last reached the new one (its last AppendEntries).
    pub last_contact_ms: Option<u64>,
    /// When the new primary started its election (its first vote request after the last
    /// contact; the election timer firing).
    pub detected_ms: Option<u64>,
    /// When it became primary (leader with a quorum's acknowledgement).
    pub elected_ms: u64,
    /// When its first write in the new term (this record) committed; `None` until the
    /// record is completed.
    pub first_commit_ms: Option<u64>,
}

impl FailoverRecord {
    /// The measured unavailability window (MTTR of this event): first write committed
    /// minus the last contact with the old primary (or, without one, the detection).
    pub fn mttr_ms(&self) -> Option<u64> {
        let from = self.last_contact_ms.or(self.detected_ms)?;
        Some(self.first_commit_ms?.saturating_sub(from))
    }
}

/// The bounded journal, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Journal {
    records: VecDeque<FailoverRecord>,
}

impl Journal {
    /// Appends a record (one per term: a second one for the same term replaces it),
    /// dropping the oldest beyond [`JOURNAL_RECORDS_MAX`].
    pub fn record(&mut self, record: FailoverRecord) {
        if let Some(same) = self.records.iter_mut().find(|r| r.term == record.term) {
            *same = record;
            return;
        }
        self.records.push_back(record);
        while self.records.len() > JOURNAL_RECORDS_MAX {
            self.records.pop_front();
        }
    }

    /// Completes the record of `term`: its first commit time and its settled cause.
    /// False if there is no such record (dropped, or never written).
    pub fn complete(&mut self, term: u64, first_commit_ms: u64, cause: Cause) -> bool {
        match self.records.iter_mut().rev().find(|r| r.term == term) {
            Some(r) => {
                r.first_commit_ms = Some(first_commit_ms);
                r.cause = cause;
                true
            }
            None => false,
        }
    }

    /// The newest `count` records, newest first.
    pub fn newest(&self, count: usize) -> Vec<FailoverRecord> {
        self.records.iter().rev().take(count).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, oldest first (snapshots).
    pub fn to_vec(&self) -> Vec<FailoverRecord> {
        self.records.iter().cloned().collect()
    }

    pub fn from_vec(records: Vec<FailoverRecord>) -> Journal {
        let mut j = Journal::default();
        for r in records {
            j.record(r);
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(term: u64) -> FailoverRecord {
        FailoverRecord {
            term,
            old_primary: Some(1),
            new_primary: 2,
            cause: Cause::HeartbeatTimeout,
            last_contact_ms: Some(1000),
            detected_ms: Some(1200),
            elected_ms: 1250,
            first_commit_ms: None,
        }
    }

    /// The journal keeps the newest records, one per term, and completes them in place.
    #[test]
    fn journal_is_bounded_and_completed_in_place() {
        let mut j = Journal::default();
        for t in 1..=(JOURNAL_RECORDS_MAX as u64 + 5) {
            j.record(rec(t));
        }
        assert_eq!(j.len(), JOURNAL_RECORDS_MAX);
        assert_eq!(j.newest(2).iter().map(|r| r.term).collect::<Vec<_>>(), vec![1005, 1004]);
        assert_eq!(j.to_vec()[0].term, 6, "the oldest were dropped");
        assert!(j.complete(1005, 1300, Cause::Crash("connection refused".into())));
        assert!(!j.complete(1, 1300, Cause::Restart), "dropped records cannot be completed");
        let newest = &j.newest(1)[0];
        assert_eq!(newest.mttr_ms(), Some(300));
        assert_eq!(newest.cause.to_string(), "crash: connection refused");
        j.record(rec(1005));
        assert_eq!(j.len(), JOURNAL_RECORDS_MAX, "a record for a known term replaces it");
        assert_eq!(Journal::from_vec(j.to_vec()), j);
    }

    /// The causes read as the journal shows them.
    #[test]
    fn causes_display_as_documented() {
        let shown: Vec<String> = [
            Cause::Crash("connection refused".into()),
            Cause::HeartbeatTimeout,
            Cause::PartitionNoQuorum,
            Cause::PlannedSwitchover,
            Cause::Proactive("disk full".into()),
            Cause::Restart,
            Cause::Failback,
        ]
        .iter()
        .map(Cause::to_string)
        .collect();
        assert_eq!(
            shown,
            [
                "crash: connection refused",
                "heartbeat timeout",
                "partition (no quorum)",
                "planned switchover",
                "proactive: disk full",
                "restart",
                "failback"
            ]
        );
        let labels: Vec<&str> = [
            Cause::Crash("connection refused".into()),
            Cause::HeartbeatTimeout,
            Cause::PartitionNoQuorum,
            Cause::Proactive("disk full".into()),
            Cause::Restart,
        ]
        .iter()
        .map(Cause::label)
        .collect();
        assert_eq!(labels, ["crash", "heartbeat_timeout", "partition", "proactive", "restart"]);
        assert!(!Cause::Restart.is_failover() && Cause::PlannedSwitchover.is_failover());
        let r = FailoverRecord { last_contact_ms: None, first_commit_ms: Some(1400), ..rec(3) };
        assert_eq!(r.mttr_ms(), Some(200), "without a last contact, MTTR counts from the detection");
    }
}
