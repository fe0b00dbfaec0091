//! The failover journal in a drill: after each round, the records written since the
//! round's first fault are read from the primary (`KEEPBIT EVENTS`), and the first one's
//! cause and MTTR are reported next to the client-observed gap. A cause the scenario
//! rules out fails the round (kill-primary must be a crash or heartbeat timeout, never a
//! planned switchover).

use std::time::{Duration, Instant};

use super::checker::Violation;
use super::nemesis;
use super::scenario::{Fault, Scenario, Setup, Target};
use crate::console::events::{self, EventView};

/// How a scenario's first failover must be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The fault deposes the primary, so a record must exist.
    pub required: bool,
    /// Cause prefixes allowed; `None`: anything but a planned switchover.
    pub causes: Option<&'static [&'static str]>,
    /// A later record must have this cause (a failback once the old primary is back).
    pub then: Option<&'static str>,
}

impl Expected {
    /// How many records the journal must hold before the round can be judged.
    pub fn records(&self) -> usize {
        usize::from(self.required) + usize::from(self.then.is_some())
    }
}

const CRASH_OR_TIMEOUT: &[&str] = &["crash", "heartbeat timeout"];
const TIMEOUT: &[&str] = &["heartbeat timeout"];
const CUT_OFF: &[&str] = &["heartbeat timeout", "partition"];
const SWITCHOVER: &[&str] = &["planned switchover"];
const PROACTIVE_FSYNC: &[&str] = &["proactive: fsync"];

/// What the scenario's first fault calls for.
pub fn expected(s: &Scenario) -> Expected {
    let first = s.steps.iter().map(|st| st.fault).find(|f| !f.is_heal());
    let (required, causes) = match first {
        Some(Fault::Kill(Target::Primary)) => (true, Some(CRASH_OR_TIMEOUT)),
        Some(Fault::Pause(Target::Primary)) => (true, Some(TIMEOUT)),
        Some(Fault::Isolate(Target::Primary) | Fault::Halves) => (true, Some(CUT_OFF)),
        // The bridge node may keep (or win) leadership: no failover is certain.
        Some(Fault::Bridge) => (false, Some(CUT_OFF)),
        Some(Fault::Switchover) => (true, Some(SWITCHOVER)),
        // The primary's fsync check turns degraded; the proactive switchover moves it.
        Some(Fault::SlowDisk(Target::Primary)) => (true, Some(PROACTIVE_FSYNC)),
        _ => (false, None),
    };
    let then = (s.setup == Setup::Failback).then_some("failback");
    Expected { required, causes, then }
}

/// The journal's verdict on a round: the first record after the fault (oldest first in
/// `records`), its cause and MTTR, and a violation if the cause is wrong or missing.
pub fn judge(s: &Scenario, records: &[EventView]) -> (Option<String>, Option<f64>, Vec<Violation>) {
    let want = expected(s);
    let Some(first) = records.first() else {
        let missing = want.required.then(|| Violation {
            key: "journal".into(),
            detail: format!("{}: the primary was lost but the journal recorded no failover", s.name),
            events: Vec::new(),
        });
        return (None, None, missing.into_iter().collect());
    };
    let allowed = match want.causes {
        Some(prefixes) => prefixes.iter().any(|p| first.cause.starts_with(p)),
        None => first.cause != "planned switchover",
    };
    let violation = (!allowed).then(|| Violation {
        key: "journal".into(),
        detail: format!(
            "{}: the journal recorded term {} ({:?} -> {}) as {:?}; expected {}",
            s.name,
            first.term,
            first.old_primary,
            first.new_primary,
            first.cause,
            want.causes.map_or("anything but a planned switchover".into(), |c| c.join(" or "))
        ),
        events: Vec::new(),
    });
    let mut violations: Vec<Violation> = violation.into_iter().collect();
    if let Some(then) = want.then.filter(|t| !records[1..].iter().any(|r| r.cause.starts_with(t))) {
        let later: Vec<&str> = records[1..].iter().map(|r| r.cause.as_str()).collect();
        violations.push(Violation {
            key: "journal".into(),
            detail: format!("{}: no {then:?} record after the first failover (later: {later:?})", s.name),
            events: Vec::new(),
        });
    }
    (Some(first.cause.clone()), first.mttr_ms.map(|m| m as f64), violations)
}

/// Records elected at or after `since_unix_ms`, oldest first, read from the primary once
/// there are `wanted` and all are complete (or after `deadline`, as they are). `Err` if none could be read.
pub async fn read(
    addrs: &[String],
    since_unix_ms: u64,
    wanted: usize,
    deadline: Duration,
) -> Result<Vec<EventView>, String> {
    let end = Instant::now() + deadline;
    let mut last = Err("no primary to ask".to_string());
    loop {
        if let Some(primary) = nemesis::primary_of(addrs).await {
            last = events::fetch(&primary, None, 100).await.map_err(|e| format!("{primary}: {e}")).map(|mut list| {
                list.retain(|e| e.elected_ms >= since_unix_ms);
                list.reverse();
                list
            });
        }
        let settled = last.as_ref().is_ok_and(|l| l.iter().all(|e| e.first_commit_ms.is_some()) && l.len() >= wanted);
        if settled || Instant::now() >= end {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::scenario::find;

    fn record(cause: &str, mttr_ms: Option<u64>) -> EventView {
        EventView {
            term: 3,
            old_primary: Some(1),
            new_primary: 2,
            cause: cause.into(),
            mttr_ms,
            ..EventView::default()
        }
    }

    /// (scenario, recorded cause or none, passes)
    #[test]
    fn causes_each_scenario_allows() {
        let cases = [
            ("kill-primary", Some("crash: connection refused"), true),
            ("kill-primary", Some("heartbeat timeout"), true),
            ("kill-primary", Some("planned switchover"), false),
            ("kill-primary", Some("partition (no quorum)"), false),
            ("kill-primary", None, false),
            ("flap", Some("crash: connection refused"), true),
            ("pause-primary", Some("heartbeat timeout"), true),
            ("pause-primary", Some("crash: connection refused"), false),
            ("partition-primary", Some("partition (no quorum)"), true),
            ("partition-primary", Some("heartbeat timeout"), true),
            ("partition-halves", Some("planned switchover"), false),
            ("partition-bridge", None, true),
            ("kill-standby", None, true),
            ("kill-majority", Some("restart"), true),
            ("rolling-restart", Some("crash: connection refused"), true),
            ("rolling-restart", Some("planned switchover"), false),
            ("slow-disk-primary", Some("proactive: fsync"), true),
            ("slow-disk-primary", Some("heartbeat timeout"), false),
            ("slow-disk-primary", Some("proactive: disk"), false),
            ("slow-disk-primary", None, false),
            ("crash-loop", None, true),
            ("crash-loop", Some("planned switchover"), false),
        ];
        for (name, cause, passes) in cases {
            let s = find(name).expect("scenario");
            let records: Vec<EventView> = cause.map(|c| record(c, Some(250))).into_iter().collect();
            let (shown, mttr, violations) = judge(s, &records);
            assert_eq!(violations.is_empty(), passes, "{name} with {cause:?}: {violations:?}");
            assert_eq!(shown.as_deref(), cause, "{name}");
            assert_eq!(mttr, cause.map(|_| 250.0), "{name}");
        }
    }

    /// A failback round needs the crash (or timeout) record and then a `failback` one.
    #[test]
    fn a_failback_round_needs_a_later_failback_record() {
        let s = find("failback").expect("scenario");
        assert_eq!(expected(s).records(), 2);
        let pass = [record("crash: connection refused", Some(80)), record("failback", Some(5))];
        assert_eq!(judge(s, &pass).2, Vec::new());
        assert_eq!(judge(s, &pass).0.as_deref(), Some("crash: connection refused"));
        for later in [vec![], vec![record("heartbeat timeout", None)]] {
            let records: Vec<EventView> = std::iter::once(record("crash: x", Some(80))).chain(later).collect();
            assert_eq!(judge(s, &records).2.len(), 1, "{records:?}");
        }
        assert_eq!(expected(find("kill-primary").expect("kill-primary")).records(), 1);
    }
}
