//! `keepbit drill`: scripted fault scenarios against a cluster, with every client
//! operation recorded and checked afterwards.
//!
//! - [`history`]: operations as invoke → ok | fail | unknown.
//! - [`linearizability`]: a Wing–Gong/Lowe search (with memoisation) over one register's
//!   history; `unknown` writes may or may not take effect.
//! - [`checker`]: lost, duplicated and phantom writes from the final read-back, and the
//!   per-key linearizability verdicts.
//! - [`scenario`]: scenarios as data (steps and timings); [`nemesis`] carries them out.
//! - [`workload`]: concurrent clients that discover the primary as real clients do.
//! - [`report`]: progress line, summary table, JSON and a self-contained HTML timeline.
//! - [`journal`]: the failover journal's record of each round: its cause is checked
//!   against the scenario, its MTTR shown next to the client-observed gap.

pub mod checker;
pub mod gap;
pub mod history;
pub mod journal;
pub mod linearizability;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod scenario;
pub mod workload;

use serde::{Deserialize, Serialize};

use history::Event;

/// A fault or heal instant, as shown on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Microseconds since the round started.
    pub at_us: u64,
    /// `fault` or `heal`.
    pub kind: String,
    /// What was done: `kill -9 node 2 (primary)`.
    pub what: String,
}

/// A leadership change seen during a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderChange {
    pub at_us: u64,
    pub term: u64,
    /// New primary's node id; `None` while there is none.
    pub leader: Option<u64>,
}

/// Availability figures for one round (milliseconds; `None` when not applicable, e.g. no
/// primary was lost).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// From the fault to the first moment no node claimed the old primary's leadership.
    pub detection_ms: Option<f64>,
    /// From the fault to a new primary being reported.
    pub new_primary_ms: Option<f64>,
    /// From the fault to the first acknowledged write after it.
    pub write_gap_ms: Option<f64>,
    pub failovers: u32,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    /// The cause the failover journal recorded for the first leadership change after
    /// the fault, and that record's MTTR (last contact to first commit).
    #[serde(default)]
    pub journal_cause: Option<String>,
    #[serde(default)]
    pub journal_mttr_ms: Option<f64>,
}

/// Everything one round produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub scenario: String,
    pub round: u32,
    pub duration_us: u64,
    pub events: Vec<Event>,
    pub marks: Vec<Mark>,
    pub leaders: Vec<LeaderChange>,
    pub availability: Availability,
    pub check: checker::CheckReport,
}
