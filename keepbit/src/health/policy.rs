//! The proactive switchover policy as a pure function: [`decide`] reads this primary's
//! checks (with how long each has been bad), what it knows of each voter standby and the
//! journal's recent leadership changes, and answers whether to hand leadership over now,
//! to whom, and because of which check. The sampler (`server::health`) gathers the input
//! each tick and carries out the answer through the planned-switchover path.
//!
//! Triggers, each only once it has lasted `proactive_sustain_ms`: `fsync`, `disk` and
//! `memory` at degraded or worse (slow fsyncs, a nearly full disk, memory near its
//! limit), `event_loop` and `peers` at failing (repeated stalls; no quorum reachable while
//! leading). Anti-flap: nothing within `proactive_cooldown_ms` of the last leadership
//! change, at most `proactive_max_per_hour` proactive moves in the last hour (cluster
//! wide, read from the journal), and never onto a standby that is unreachable, behind, or
//! itself not ok (or whose health is unknown).

use super::{Check, HealthConfig, Status};

/// A standby counts as caught up within this many entries of the primary's last log
/// index (the switchover then waits for it to match exactly, with writes held).
pub const CAUGHT_UP_ENTRIES: u64 = 100;

/// One hour, the window of the proactive-move cap.
pub const HOUR_MS: u64 = 3_600_000;

/// The `[health] proactive*` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub enabled: bool,
    pub sustain_ms: u64,
    pub cooldown_ms: u64,
    pub max_per_hour: u64,
}

impl From<&HealthConfig> for Policy {
    fn from(h: &HealthConfig) -> Policy {
        Policy {
            enabled: h.proactive,
            sustain_ms: h.proactive_sustain_ms,
            cooldown_ms: h.proactive_cooldown_ms,
            max_per_hour: h.proactive_max_per_hour,
        }
    }
}

/// One of this node's checks, and for how long it has been at least degraded / failing.
#[derive(Clone, Debug, PartialEq)]
pub struct Watched {
    pub check: Check,
    pub degraded_for_ms: u64,
    pub failing_for_ms: u64,
}

/// A voter standby as the primary knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Standby {
    pub id: u64,
    /// Heard from within the phi threshold.
    pub reachable: bool,
    /// The primary's last log index minus the index this standby matched.
    pub lag_entries: u64,
    /// Its own resource checks as it reported them (`None`: no answer).
    pub health: Option<Status>,
}

/// Everything [`decide`] reads. Times are Unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterHealth {
    pub is_primary: bool,
    pub own: Vec<Watched>,
    pub standbys: Vec<Standby>,
    /// When the newest leadership change happened (the journal's newest record).
    pub last_change_ms: Option<u64>,
    /// When each recorded proactive move happened (the journal's `proactive:` records).
    pub proactive_moves_ms: Vec<u64>,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hand leadership to `to` because `check` has been bad for long enough.
    Switchover { to: u64, check: &'static str, reason: String },
    /// `check` would trigger a move, but `why` forbids it now (logged, nothing done).
    Hold { check: &'static str, why: &'static str },
}

/// The status at which a check triggers a move, if it ever does. Replication and apply
/// lag never do: they describe a standby, or catch up by themselves.
pub fn trigger_level(check: &str) -> Option<Status> {
    match check {
        "fsync" | "disk" | "memory" => Some(Status::Degraded),
        "event_loop" | "peers" => Some(Status::Failing),
        _ => None,
    }
}

/// Whether a standby's own check counts for its health as a target: `peers` and
/// `replication_lag` mostly describe the primary it follows, so they are left out.
pub fn counts_for_target(check: &str) -> bool {
    !matches!(check, "peers" | "replication_lag")
}

/// The first check (in report order) that has been at its trigger level for `sustain_ms`.
fn triggered(own: &[Watched], sustain_ms: u64) -> Option<&Watched> {
    own.iter().find(|w| match trigger_level(w.check.name) {
        Some(Status::Failing) => w.check.status == Status::Failing && w.failing_for_ms >= sustain_ms,
        Some(_) => w.check.status >= Status::Degraded && w.degraded_for_ms >= sustain_ms,
        None => false,
    })
}

/// The healthiest caught-up standby: reachable, reported ok, least behind, lowest id.
fn target(standbys: &[Standby]) -> Option<&Standby> {
    standbys
        .iter()
        .filter(|s| s.reachable && s.health == Some(Status::Ok) && s.lag_entries <= CAUGHT_UP_ENTRIES)
        .min_by_key(|s| (s.lag_entries, s.id))
}

/// The policy: at most one action per call.
pub fn decide(h: &ClusterHealth, p: &Policy, now_ms: u64) -> Vec<Action> {
    if !p.enabled || !h.is_primary {
        return Vec::new();
    }
    let Some(bad) = triggered(&h.own, p.sustain_ms) else { return Vec::new() };
    let check = bad.check.name;
    let hold = |why| vec![Action::Hold { check, why }];
    if h.last_change_ms.is_some_and(|t| now_ms.saturating_sub(t) < p.cooldown_ms) {
        return hold("cooldown after the last leadership change");
    }
    let recent = h.proactive_moves_ms.iter().filter(|&&t| now_ms.saturating_sub(t) < HOUR_MS).count();
    if recent as u64 >= p.max_per_hour {
        return hold("hourly cap of proactive moves reached");
    }
    match target(&h.standbys) {
        Some(s) => vec![Action::Switchover { to: s.id, check, reason: bad.check.reason.clone() }],
        None => hold("no reachable, caught-up, healthy standby"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10 * HOUR_MS;
    const POLICY: Policy = Policy { enabled: true, sustain_ms: 5_000, cooldown_ms: 60_000, max_per_hour: 2 };

    fn watched(name: &'static str, status: Status, degraded_for_ms: u64, failing_for_ms: u64) -> Watched {
        Watched { check: Check { name, status, reason: format!("{name} reason") }, degraded_for_ms, failing_for_ms }
    }

    fn standby(id: u64, reachable: bool, lag_entries: u64, health: Option<Status>) -> Standby {
        Standby { id, reachable, lag_entries, health }
    }

    /// A primary whose fsync has been degraded for 6 s, two healthy caught-up standbys,
    /// the last leadership change 2 minutes ago, no proactive move yet.
    fn slow_fsync() -> ClusterHealth {
        ClusterHealth {
            is_primary: true,
            own: vec![
                watched("event_loop", Status::Ok, 0, 0),
                watched("fsync", Status::Degraded, 6_000, 0),
                watched("memory", Status::Ok, 0, 0),
            ],
            standbys: vec![standby(2, true, 0, Some(Status::Ok)), standby(3, true, 0, Some(Status::Ok))],
            last_change_ms: Some(NOW - 120_000),
            proactive_moves_ms: vec![],
        }
    }

    fn with_own(own: Vec<Watched>) -> ClusterHealth {
        ClusterHealth { own, ..slow_fsync() }
    }

    fn with_standbys(standbys: Vec<Standby>) -> ClusterHealth {
        ClusterHealth { standbys, ..slow_fsync() }
    }

    fn move_to(to: u64, check: &'static str) -> Vec<Action> {
        vec![Action::Switchover { to, check, reason: format!("{check} reason") }]
    }

    fn hold(check: &'static str, why: &'static str) -> Vec<Action> {
        vec![Action::Hold { check, why }]
    }

    fn run(cases: Vec<(&str, ClusterHealth, Policy, Vec<Action>)>) {
        for (case, input, policy, want) in cases {
            assert_eq!(decide(&input, &policy, NOW), want, "{case}");
        }
    }

    /// Which checks trigger, and only once sustained: (case, input, policy, actions)
    #[test]
    fn triggers() {
        let off = Policy { enabled: false, ..POLICY };
        let cases: Vec<(&str, ClusterHealth, Policy, Vec<Action>)> = vec![
            ("sustained slow fsync: the lowest healthy caught-up id", slow_fsync(), POLICY, move_to(2, "fsync")),
            ("switched off", slow_fsync(), off, vec![]),
            ("not primary", ClusterHealth { is_primary: false, ..slow_fsync() }, POLICY, vec![]),
            ("brief slow fsync", with_own(vec![watched("fsync", Status::Degraded, 4_999, 0)]), POLICY, vec![]),
            ("all ok", with_own(vec![watched("fsync", Status::Ok, 0, 0)]), POLICY, vec![]),
            (
                "recovered (ok, old durations ignored)",
                with_own(vec![watched("fsync", Status::Ok, 9_000, 0)]),
                POLICY,
                vec![],
            ),
            (
                "nearly full disk",
                with_own(vec![watched("disk", Status::Degraded, 5_000, 0)]),
                POLICY,
                move_to(2, "disk"),
            ),
            (
                "memory near maxmemory",
                with_own(vec![watched("memory", Status::Failing, 8_000, 8_000)]),
                POLICY,
                move_to(2, "memory"),
            ),
            (
                "one stall is not repeated stalls",
                with_own(vec![watched("event_loop", Status::Degraded, 60_000, 0)]),
                POLICY,
                vec![],
            ),
            (
                "repeated stalls",
                with_own(vec![watched("event_loop", Status::Failing, 9_000, 6_000)]),
                POLICY,
                move_to(2, "event_loop"),
            ),
            (
                "repeated stalls, briefly",
                with_own(vec![watched("event_loop", Status::Failing, 9_000, 1_000)]),
                POLICY,
                vec![],
            ),
            (
                "lost a majority while leading",
                with_own(vec![watched("peers", Status::Failing, 5_000, 5_000)]),
                POLICY,
                move_to(2, "peers"),
            ),
            ("a suspected peer alone", with_own(vec![watched("peers", Status::Degraded, 60_000, 0)]), POLICY, vec![]),
            (
                "apply lag never triggers",
                with_own(vec![watched("apply_lag", Status::Failing, 60_000, 60_000)]),
                POLICY,
                vec![],
            ),
            (
                "the first triggered check in report order names the move",
                with_own(vec![
                    watched("fsync", Status::Failing, 7_000, 7_000),
                    watched("disk", Status::Degraded, 7_000, 0),
                ]),
                POLICY,
                move_to(2, "fsync"),
            ),
        ];
        run(cases);
    }

    /// Anti-flap and the target choice: (case, input, policy, actions)
    #[test]
    fn anti_flap_and_targets() {
        let cooldown = "cooldown after the last leadership change";
        let cap = "hourly cap of proactive moves reached";
        let none = "no reachable, caught-up, healthy standby";
        let cases: Vec<(&str, ClusterHealth, Policy, Vec<Action>)> = vec![
            (
                "within the cooldown",
                ClusterHealth { last_change_ms: Some(NOW - 59_999), ..slow_fsync() },
                POLICY,
                hold("fsync", cooldown),
            ),
            (
                "just past the cooldown",
                ClusterHealth { last_change_ms: Some(NOW - 60_000), ..slow_fsync() },
                POLICY,
                move_to(2, "fsync"),
            ),
            (
                "no change recorded yet",
                ClusterHealth { last_change_ms: None, ..slow_fsync() },
                POLICY,
                move_to(2, "fsync"),
            ),
            (
                "hourly cap reached",
                ClusterHealth { proactive_moves_ms: vec![NOW - 3_000_000, NOW - 200_000], ..slow_fsync() },
                POLICY,
                hold("fsync", cap),
            ),
            (
                "a move over an hour ago no longer counts",
                ClusterHealth { proactive_moves_ms: vec![NOW - HOUR_MS, NOW - 200_000], ..slow_fsync() },
                POLICY,
                move_to(2, "fsync"),
            ),
            (
                "a degraded standby is refused: the healthy one",
                with_standbys(vec![standby(2, true, 0, Some(Status::Degraded)), standby(3, true, 5, Some(Status::Ok))]),
                POLICY,
                move_to(3, "fsync"),
            ),
            (
                "every standby degraded or failing",
                with_standbys(vec![
                    standby(2, true, 0, Some(Status::Degraded)),
                    standby(3, true, 0, Some(Status::Failing)),
                ]),
                POLICY,
                hold("fsync", none),
            ),
            ("health unknown is refused", with_standbys(vec![standby(2, true, 0, None)]), POLICY, hold("fsync", none)),
            (
                "unreachable is refused",
                with_standbys(vec![standby(2, false, 0, Some(Status::Ok))]),
                POLICY,
                hold("fsync", none),
            ),
            (
                "no caught-up standby",
                with_standbys(vec![standby(2, true, CAUGHT_UP_ENTRIES + 1, Some(Status::Ok))]),
                POLICY,
                hold("fsync", none),
            ),
            (
                "the least behind among healthy ones",
                with_standbys(vec![standby(2, true, 40, Some(Status::Ok)), standby(3, true, 3, Some(Status::Ok))]),
                POLICY,
                move_to(3, "fsync"),
            ),
            ("no standby at all", with_standbys(vec![]), POLICY, hold("fsync", none)),
        ];
        run(cases);
    }

    #[test]
    fn config_maps_to_the_policy() {
        let p = Policy::from(&HealthConfig::default());
        assert!(p.enabled);
        assert!(p.sustain_ms > 0 && p.cooldown_ms >= p.sustain_ms && p.max_per_hour > 0, "{p:?}");
    }
}
