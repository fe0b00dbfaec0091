//! Proactive switchover, driven by the health sampler: each tick it tells the cluster this
//! node's own health as a switchover target, tracks how long each check has been bad and,
//! on the primary, runs the pure policy (`health::policy::decide`) over its checks, the
//! voters' reported health and lag, and the journal's recent leadership changes; a
//! `Switchover` action starts `Cluster::proactive_switchover` (the FAILOVER path) in its
//! own task. Standbys are asked for their health only while one of this primary's checks
//! is at its trigger level, so a healthy cluster pays nothing for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::health::policy::{
    counts_for_target, decide, trigger_level, Action, ClusterHealth, Policy, Standby, Watched,
};
use crate::health::{Check, HealthConfig, Status};
use crate::raft::cluster::Cluster;
use crate::raft::switchover::DEFAULT_TIMEOUT;
use crate::store::journal::Cause;

/// Journal records read for the cooldown and the hourly cap (more than any cap needs).
const JOURNAL_READ: usize = 100;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What the proactive policy remembers between ticks.
pub struct Proactive {
    policy: Policy,
    phi_threshold: f64,
    /// How long standbys get to report their health (one sampling interval).
    ask_timeout: Duration,
    /// Per check: since when it has been at least degraded, and at least failing.
    bad_since: BTreeMap<&'static str, (Option<Instant>, Option<Instant>)>,
    /// The term last seen, and when (Unix ms) it was first seen: a leadership change this
    /// node saw even before the journal records it.
    term_seen: (u64, u64),
    /// The last hold logged, so a lasting one is logged once.
    held: Option<Action>,
    /// A proactive switchover from this node is running.
    running: Arc<AtomicBool>,
}

impl Proactive {
    pub fn new(cfg: &HealthConfig) -> Proactive {
        Proactive {
            policy: Policy::from(cfg),
            phi_threshold: cfg.phi_threshold,
            ask_timeout: Duration::from_millis(cfg.interval_ms.max(50)),
            bad_since: BTreeMap::new(),
            term_seen: (0, unix_ms()),
            held: None,
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Notes when each check turned bad; returns them with how long they have been.
    fn watch(&mut self, checks: &[Check], now: Instant) -> Vec<Watched> {
        let ms = |since: Option<Instant>| since.map_or(0, |t| (now - t).as_millis() as u64);
        checks
            .iter()
            .map(|c| {
                let since = self.bad_since.entry(c.name).or_default();
                let at_least = |s: Status, was: Option<Instant>| (c.status >= s).then(|| was.unwrap_or(now));
                *since = (at_least(Status::Degraded, since.0), at_least(Status::Failing, since.1));
                Watched { check: c.clone(), degraded_for_ms: ms(since.0), failing_for_ms: ms(since.1) }
            })
            .collect()
    }

    /// One tick on a cluster node, after the checks ran.
    pub async fn tick(&mut self, c: &Arc<Cluster>, checks: &[Check]) {
        let as_target = checks.iter().filter(|ch| counts_for_target(ch.name)).map(|ch| ch.status).max();
        c.set_local_health(as_target.unwrap_or_default());
        let own = self.watch(checks, Instant::now());
        let v = c.role();
        if v.term != self.term_seen.0 {
            self.term_seen = (v.term, unix_ms());
        }
        let at_trigger = own.iter().any(|w| trigger_level(w.check.name).is_some_and(|l| w.check.status >= l));
        if !self.policy.enabled || !v.is_primary || !at_trigger || self.running.load(Ordering::Acquire) {
            self.held = None;
            return;
        }
        let reported = c.standby_health(self.ask_timeout).await;
        let standbys = v
            .members
            .iter()
            .filter(|m| m.2 && m.0 != c.id)
            .map(|m| Standby {
                id: m.0,
                reachable: c.arrivals.phi(m.0).unwrap_or(0.0) <= self.phi_threshold,
                lag_entries: v.last_log_index.saturating_sub(v.matched.get(&m.0).copied().unwrap_or(0)),
                health: reported.get(&m.0).copied(),
            })
            .collect();
        let journal = c.machine.journal(JOURNAL_READ);
        let newest = journal.iter().map(|r| r.elected_ms).max();
        let health = ClusterHealth {
            is_primary: true,
            own,
            standbys,
            last_change_ms: Some(newest.unwrap_or(0).max(self.term_seen.1)),
            proactive_moves_ms: journal
                .iter()
                .filter(|r| matches!(r.cause, Cause::Proactive(_)))
                .map(|r| r.elected_ms)
                .collect(),
        };
        for action in decide(&health, &self.policy, unix_ms()) {
            self.act(c, action);
        }
    }

    fn act(&mut self, c: &Arc<Cluster>, action: Action) {
        match action {
            Action::Switchover { to, check, reason } => {
                self.held = None;
                tracing::warn!("proactive switchover: {check} ({reason}); handing leadership to node {to}");
                self.running.store(true, Ordering::Release);
                let (c, running) = (c.clone(), self.running.clone());
                tokio::spawn(async move {
                    let _ = c.proactive_switchover(to, check, DEFAULT_TIMEOUT).await;
                    running.store(false, Ordering::Release);
                });
            }
            Action::Hold { check, why } => {
                if self.held.as_ref() != Some(&action) {
                    tracing::info!("proactive switchover held: {check} is bad, but {why}");
                    self.held = Some(Action::Hold { check, why });
                }
            }
        }
    }
}
