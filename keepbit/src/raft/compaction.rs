//! When to snapshot, and how much log to keep behind a snapshot, by entries and by bytes.
//!
//! openraft's own policy counts entries only and fires at the same index on every node, so
//! every node would build a snapshot (and take its memory spike) at once, however large the
//! entries. openraft runs with `SnapshotPolicy::Never`; [`run`] follows its metrics and
//! triggers a snapshot when the entries *or* bytes applied since the last one pass this
//! node's thresholds ([`staggered`]: scaled by 1.0–1.4 from the node id), and purges the log
//! behind a snapshot down to `log_keep_entries` and `log_keep_bytes`. The decisions are the
//! pure functions [`should_snapshot`] and [`purge_upto`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;

use super::cluster::Raft;
use super::log_store::LogStore;
use super::types::NodeId;
use crate::config::ClusterConfig;

/// Snapshot after this many entries or bytes applied since the last snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub entries: u64,
    pub bytes: u64,
}

/// Applied since the last snapshot (or the last trigger).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Since {
    pub entries: u64,
    pub bytes: u64,
}

/// `entries` and `bytes` scaled by `1 + (node_id % 5) / 10`, so the nodes of a cluster
/// build their snapshots at different indexes.
pub fn staggered(node_id: NodeId, entries: u64, bytes: u64) -> Thresholds {
    let tenths = 10 + node_id % 5;
    let scale = |n: u64| n.saturating_mul(tenths) / 10;
    Thresholds { entries: scale(entries).max(1), bytes: scale(bytes).max(1) }
}

pub fn should_snapshot(since: Since, t: Thresholds) -> bool {
    since.entries >= t.entries || since.bytes >= t.bytes
}

/// The last index to purge so that the log kept behind a snapshot holds at most
/// `keep_entries` entries and `keep_bytes` bytes. `behind` lists `(index, bytes)` of the
/// entries at or before the snapshot, newest first; `None` if all of them fit.
pub fn purge_upto(behind: impl IntoIterator<Item = (u64, u64)>, keep_entries: u64, keep_bytes: u64) -> Option<u64> {
    let (mut kept, mut bytes) = (0u64, 0u64);
    for (index, size) in behind {
        kept += 1;
        bytes = bytes.saturating_add(size);
        if kept > keep_entries || bytes > keep_bytes {
            return Some(index);
        }
    }
    None
}

/// What [`run`] needs from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub thresholds: Thresholds,
    pub keep_entries: u64,
    pub keep_bytes: u64,
}

impl Policy {
    pub fn of(cc: &ClusterConfig) -> Policy {
        Policy {
            thresholds: staggered(cc.node_id, cc.snapshot_entries, cc.snapshot_bytes),
            keep_entries: cc.log_keep_entries,
            keep_bytes: cc.log_keep_bytes,
        }
    }
}

/// Where the count restarts: the last snapshot (or trigger), and the applied-bytes
/// counter then.
#[derive(Clone, Copy, Default)]
struct Base {
    index: u64,
    bytes: u64,
}

/// Follows `raft`'s metrics until it stops: triggers snapshots by [`should_snapshot`] and,
/// after each new snapshot, purges by [`purge_upto`]. `applied_bytes` counts the entry
/// bytes the state machine has applied.
pub async fn run(raft: Raft, log: LogStore, applied_bytes: Arc<AtomicU64>, policy: Policy) {
    let mut rx = raft.metrics();
    let mut snapshot = None;
    let mut base = Base::default();
    loop {
        let (applied, snap) = {
            let m = rx.borrow_watched();
            (m.last_applied.map_or(0, |l| l.index), m.snapshot)
        };
        let bytes = applied_bytes.load(Ordering::Relaxed);
        if snap != snapshot {
            snapshot = snap;
            let index = snap.map_or(0, |l| l.index);
            base = Base { index, bytes };
            purge_behind(&raft, &log, index, policy).await;
        }
        let since = Since { entries: applied.saturating_sub(base.index), bytes: bytes.saturating_sub(base.bytes) };
        if should_snapshot(since, policy.thresholds) {
            // Counted from here until the snapshot lands, so a slow build is not triggered again.
            base = Base { index: applied, bytes };
            tracing::debug!(applied, ?since, "triggering a snapshot");
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn purge_behind(raft: &Raft, log: &LogStore, snapshot_index: u64, policy: Policy) {
    let behind = log.sizes_newest_first(snapshot_index, policy.keep_entries.saturating_add(1));
    if let Some(upto) = purge_upto(behind, policy.keep_entries, policy.keep_bytes) {
        tracing::debug!(upto, "purging the log behind the snapshot");
        let _ = raft.trigger().purge_log(upto).await;
    }
}

#[cfg(test)]
#[path = "compaction_tests.rs"]
mod tests;
