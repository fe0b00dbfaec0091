//! The live dashboard on the admin port (`GET /`): this node's view of the cluster as one
//! server-rendered HTML page with inline SVG, refreshed by the browser every two seconds.
//!
//! [`gather`] is the shell: it reads the role view, the health report, this node's phi
//! of its peers and the failover journal into a plain [`View`]; [`html::render`] is a pure
//! function of that view (tested as data in `tests.rs`).

pub mod html;
#[cfg(test)]
mod tests;

use super::health::role_name;
use super::Server;
use crate::health::{Check, Status};
use crate::raft::cluster::Cluster;
use crate::raft::role::RoleView;
use crate::store::journal::FailoverRecord;

/// Journal records shown: the newest twenty.
pub const JOURNAL_SHOWN: usize = 20;

/// Everything the dashboard shows, as this node sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// This node's id (0 on a standalone node).
    pub node_id: u64,
    /// This node's role: primary, standby or standalone.
    pub role: String,
    /// This node's wall clock when the view was taken (Unix ms).
    pub now_ms: u64,
    pub term: u64,
    pub committed: u64,
    pub applied: u64,
    pub last_log_index: u64,
    pub members: Vec<MemberView>,
    /// The newest journal records, newest first.
    pub journal: Vec<FailoverRecord>,
}

/// One member of the cluster as this node knows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberView {
    pub id: u64,
    pub client_addr: String,
    /// primary, standby, learner or unknown.
    pub role: String,
    pub this_node: bool,
    /// `None`: this node has no view of the member's health.
    pub health: Option<Status>,
    pub reasons: Vec<String>,
    /// Entries behind the primary, where this node knows it (the primary knows every
    /// peer's; a standby its own).
    pub lag_entries: Option<u64>,
    /// On the primary: the log index the member has matched.
    pub matched_index: Option<u64>,
}

/// This node's own health: the overall status and the reason of every check that is
/// not ok; `None` until the sampler has run once.
fn own_health(ticks: u64, status: Status, checks: &[Check]) -> (Option<Status>, Vec<String>) {
    if ticks == 0 {
        return (None, vec!["not measured yet".into()]);
    }
    let reasons = checks.iter().filter(|c| c.status != Status::Ok).map(|c| format!("{}: {}", c.name, c.reason));
    (Some(status), reasons.collect())
}

/// A peer's health as this node's failure detector sees it: the primary watches every
/// other voter, a standby the primary; anyone else this node cannot judge.
fn peer_health(c: &Cluster, v: &RoleView, id: u64, voter: bool, phi_threshold: f64) -> (Option<Status>, Vec<String>) {
    let watched = match v.is_primary {
        true => voter,
        false => v.leader.as_ref().is_some_and(|l| l.0 == id),
    };
    if !watched {
        return (None, vec!["not watched from this node".into()]);
    }
    match c.arrivals.phi(id) {
        None => (None, vec!["not heard from yet".into()]),
        Some(phi) if phi > phi_threshold => {
            (Some(Status::Degraded), vec![format!("suspected (phi {phi:.1} > {phi_threshold})")])
        }
        Some(phi) => (Some(Status::Ok), vec![format!("phi {phi:.1} (suspected above {phi_threshold})")]),
    }
}

/// The role a member has in this node's view.
fn member_role(v: &RoleView, id: u64, voter: bool) -> &'static str {
    if v.leader.as_ref().is_some_and(|l| l.0 == id) {
        "primary"
    } else if !voter {
        "learner"
    } else if v.leader.is_some() || v.is_primary {
        "standby"
    } else {
        "unknown"
    }
}

fn cluster_members(srv: &Server, c: &Cluster, v: &RoleView) -> Vec<MemberView> {
    let phi_threshold = srv.config().health.phi_threshold;
    let report = srv.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut members = Vec::with_capacity(v.members.len());
    for (id, member, voter) in &v.members {
        let this_node = *id == c.id;
        let (health, reasons) = match this_node {
            true => own_health(report.ticks, report.status, &report.checks),
            false => peer_health(c, v, *id, *voter, phi_threshold),
        };
        let matched_index = v.is_primary.then(|| v.matched.get(id).copied()).flatten();
        let lag_entries = match (v.is_primary, this_node) {
            (true, true) => Some(0),
            (true, false) => matched_index.map(|m| v.last_log_index.saturating_sub(m)),
            (false, true) => c.standby_lag_entries(),
            (false, false) => None,
        };
        let role = match this_node {
            true => role_name(srv),
            false => member_role(v, *id, *voter),
        };
        members.push(MemberView {
            id: *id,
            client_addr: member.client_addr.clone(),
            role: role.into(),
            this_node,
            health,
            reasons,
            lag_entries,
            matched_index,
        });
    }
    members
}

/// This node's view of the cluster, now.
pub fn gather(srv: &Server) -> View {
    let journal = srv.node.machine.journal(JOURNAL_SHOWN);
    let now_ms = srv.node.now_ms();
    let role = role_name(srv).to_string();
    let Some(c) = &srv.cluster else {
        let config = srv.config();
        let report = srv.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (health, reasons) = own_health(report.ticks, report.status, &report.checks);
        let me = MemberView {
            client_addr: format!("{}:{}", config.bind, config.port),
            role: role.clone(),
            this_node: true,
            health,
            reasons,
            ..MemberView::default()
        };
        return View { role, now_ms, members: vec![me], journal, ..View::default() };
    };
    let v = c.role();
    View {
        node_id: c.id,
        role,
        now_ms,
        term: v.term,
        committed: v.committed,
        applied: v.last_applied,
        last_log_index: v.last_log_index,
        members: cluster_members(srv, c, &v),
        journal,
    }
}
