//! The drill's JSON document: counts, not events.

use super::*;

/// The machine-readable report: per-scenario summaries and, per round, availability,
/// marks, leaders and the check (violations with their sub-histories). Events are
/// counted, not listed.
pub fn to_json(rounds: &[Round]) -> Value {
    let summaries = summarize(rounds);
    json!({
        "pass": passed(rounds),
        "verdict": verdict(rounds, &summaries),
        "scenarios": summaries,
        "rounds": rounds.iter().map(round_json).collect::<Vec<_>>(),
    })
}

pub(super) fn round_json(round: &Round) -> Value {
    let counts = EventCounts::of(&round.events);
    json!({
        "scenario": round.scenario,
        "round": round.round,
        "duration_us": round.duration_us,
        "pass": round.check.ok(),
        "events": counts,
        "availability": round.availability,
        "marks": round.marks,
        "leaders": round.leaders,
        "check": check_json(&round.check),
    })
}

#[derive(Debug, Default, Serialize)]
pub(super) struct EventCounts {
    pub(super) total: usize,
    pub(super) ok: usize,
    pub(super) failed: usize,
    pub(super) unknown: usize,
    pub(super) writes: usize,
    pub(super) reads: usize,
}

impl EventCounts {
    pub(super) fn of(events: &[Event]) -> Self {
        let mut counts = Self { total: events.len(), ..Self::default() };
        for event in events {
            match event.outcome {
                Outcome::Ok { .. } => counts.ok += 1,
                Outcome::Fail { .. } => counts.failed += 1,
                Outcome::Unknown { .. } => counts.unknown += 1,
            }
            if event.action.is_write() {
                counts.writes += 1;
            } else {
                counts.reads += 1;
            }
        }
        counts
    }
}

pub(super) fn check_json(check: &CheckReport) -> Value {
    json!({
        "keys_checked": check.keys_checked,
        "undecided": check.undecided,
        "lost": violations_json(&check.lost),
        "duplicated": violations_json(&check.duplicated),
        "phantom": violations_json(&check.phantom),
        "nonlinearizable": violations_json(&check.nonlinearizable),
        "journal": violations_json(&check.journal),
        "leadership": violations_json(&check.leadership),
    })
}

pub(super) fn violations_json(violations: &[Violation]) -> Value {
    let shown: Vec<Value> = violations
        .iter()
        .take(VIOLATIONS_SHOWN_MAX)
        .map(|v| {
            let events = &v.events[..v.events.len().min(VIOLATION_EVENTS_MAX)];
            json!({
                "key": v.key,
                "detail": v.detail,
                "events": events,
                "events_omitted": v.events.len() - events.len(),
            })
        })
        .collect();
    json!({
        "count": violations.len(),
        "omitted": violations.len() - shown.len(),
        "shown": shown,
    })
}
