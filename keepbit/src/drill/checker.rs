//! The verdict on one round: the recorded history against the state read back after
//! healing. Lists, counters and unique inserts expose lost, duplicated and phantom
//! writes; registers are checked for linearizability.
//!
//! `Unknown` operations are given the benefit of the doubt both ways: they may or may not
//! have taken effect. `Fail` operations must not have.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::{Action, Event, Outcome};
use super::linearizability::{check_register, Verdict};

/// One broken guarantee on one key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub key: String,
    /// One sentence saying what went wrong.
    pub detail: String,
    /// The smallest sub-history that shows it (empty when the final state alone does).
    pub events: Vec<Event>,
}

/// Everything found wrong in one round.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub lost: Vec<Violation>,
    pub duplicated: Vec<Violation>,
    pub phantom: Vec<Violation>,
    pub nonlinearizable: Vec<Violation>,
    /// The failover journal recorded a cause the scenario rules out, or no failover.
    #[serde(default)]
    pub journal: Vec<Violation>,
    /// Leadership changed in a round whose fault must not cause a failover.
    #[serde(default)]
    pub leadership: Vec<Violation>,
    /// Keys without a verdict: the register search ran out of budget, or the key was not
    /// read back.
    pub undecided: Vec<String>,
    pub keys_checked: usize,
}

impl CheckReport {
    /// No violation (undecided keys are not violations).
    pub fn ok(&self) -> bool {
        self.violations() == 0
    }

    pub fn violations(&self) -> usize {
        self.lost.len()
            + self.duplicated.len()
            + self.phantom.len()
            + self.nonlinearizable.len()
            + self.journal.len()
            + self.leadership.len()
    }
}

/// What the cluster holds after healing, read back from the primary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    pub lists: BTreeMap<String, Vec<String>>,
    /// `None`: the counter does not exist (0).
    pub counters: BTreeMap<String, Option<i64>>,
    pub inserts: BTreeMap<String, Option<String>>,
    pub registers: BTreeMap<String, Option<String>>,
}

/// The client id of the synthetic final register read in a violation's events.
pub const FINAL_READ_CLIENT: u32 = u32::MAX;

/// How a `ReadList` records its reply in `Outcome::Ok { value }`: a JSON array of strings.
pub fn encode_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

/// The inverse of [`encode_list`]; nil is the empty list, anything unparsable is `None`.
pub fn decode_list(value: Option<&str>) -> Option<Vec<String>> {
    value.map_or(Some(Vec::new()), |v| serde_json::from_str(v).ok())
}

/// Checks a round's history against the final state; `budget_per_key` bounds each
/// register's linearizability search.
pub fn check(events: &[Event], fin: &FinalState, budget_per_key: Duration) -> CheckReport {
    let mut by_kind = ByKind::default();
    for e in events {
        let map = match e.action {
            Action::Append { .. } | Action::ReadList { .. } => &mut by_kind.lists,
            Action::Incr { .. } => &mut by_kind.counters,
            Action::Insert { .. } => &mut by_kind.inserts,
            Action::Write { .. } | Action::Read { .. } => &mut by_kind.registers,
        };
        map.entry(e.action.key()).or_default().push(e);
    }
    let end_us = events.iter().map(|e| e.invoke_us.max(e.complete_us)).max().unwrap_or(0);
    let final_id = events.iter().map(|e| e.id).max().map_or(0, |id| id.saturating_add(1));
    let mut report = CheckReport::default();
    let lists = keys(&by_kind.lists, &fin.lists);
    let counters = keys(&by_kind.counters, &fin.counters);
    let inserts = keys(&by_kind.inserts, &fin.inserts);
    let registers = keys(&by_kind.registers, &fin.registers);
    report.keys_checked = lists.len() + counters.len() + inserts.len() + registers.len();
    for key in lists {
        check_list(key, of(&by_kind.lists, key), fin.lists.get(key), &mut report);
    }
    for key in counters {
        check_counter(key, of(&by_kind.counters, key), fin.counters.get(key), &mut report);
    }
    for key in inserts {
        check_insert(key, of(&by_kind.inserts, key), fin.inserts.get(key), &mut report);
    }
    for key in registers {
        let mut history: Vec<Event> = of(&by_kind.registers, key).iter().map(|&e| e.clone()).collect();
        if let Some(value) = fin.registers.get(key) {
            history.push(final_read(key, value.clone(), final_id, end_us));
        }
        check_register_key(key, &history, budget_per_key, &mut report);
    }
    report
}

type Group<'a> = BTreeMap<&'a str, Vec<&'a Event>>;

#[derive(Default)]
struct ByKind<'a> {
    lists: Group<'a>,
    counters: Group<'a>,
    inserts: Group<'a>,
    registers: Group<'a>,
}

fn of<'g, 'a>(group: &'g Group<'a>, key: &str) -> &'g [&'a Event] {
    group.get(key).map_or(&[], Vec::as_slice)
}

/// Keys with events or a read-back value.
fn keys<'a, V>(group: &Group<'a>, fin: &'a BTreeMap<String, V>) -> BTreeSet<&'a str> {
    group.keys().copied().chain(fin.keys().map(String::as_str)).collect()
}

fn check_list(key: &str, events: &[&Event], fin: Option<&Vec<String>>, report: &mut CheckReport) {
    let mut appends: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for &e in events {
        if let Action::Append { value, .. } = &e.action {
            appends.entry(value).or_default().push(e);
        }
    }
    let mut seen_in_reads = BTreeSet::new();
    for &read in events.iter().filter(|e| matches!(e.action, Action::ReadList { .. })) {
        let Outcome::Ok { value } = &read.outcome else {
            continue;
        };
        let Some(values) = decode_list(value.as_deref()) else {
            undecided(report, key);
            continue;
        };
        for value in values {
            let attempts = appends.get(value.as_str()).map_or(&[][..], Vec::as_slice);
            let Some(why) = unexplained(attempts, read.complete_us) else {
                continue;
            };
            if seen_in_reads.insert(value.clone()) {
                let detail = format!("a list read {} returned {value}, {why}", at(read));
                report.phantom.push(violation(key, detail, attempts.iter().copied().chain([read])));
            }
        }
    }
    let Some(list) = fin else {
        return undecided(report, key);
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for value in list {
        *counts.entry(value).or_default() += 1;
    }
    for (value, attempts) in &appends {
        for &acked in attempts.iter().filter(|e| e.ok()).take(1) {
            if !counts.contains_key(value) {
                let detail = format!("value {value} acknowledged {} is missing from the final list", at(acked));
                report.lost.push(violation(key, detail, [acked]));
            }
        }
    }
    for (value, n) in counts {
        let attempts = appends.get(value).map_or(&[][..], Vec::as_slice);
        if n > 1 {
            let detail = format!("value {value} appears {n} times in the final list");
            report.duplicated.push(violation(key, detail, attempts.iter().copied()));
        }
        if let Some(why) = unexplained(attempts, u64::MAX) {
            let detail = format!("the final list holds {value}, {why}");
            report.phantom.push(violation(key, detail, attempts.iter().copied()));
        }
    }
}

/// Why a value seen at `seen_us` cannot have been written by any of `attempts`, if so.
fn unexplained(attempts: &[&Event], seen_us: u64) -> Option<String> {
    let Some(first) = attempts.iter().min_by_key(|e| e.invoke_us) else {
        return Some("which no client ever wrote".into());
    };
    if attempts.iter().all(|e| matches!(e.outcome, Outcome::Fail { .. })) {
        return Some(format!("whose write failed {} (a failed write was applied)", at(first)));
    }
    (first.invoke_us > seen_us).then(|| {
        let invoked = secs(first.invoke_us);
        format!("before any client wrote it (first invoked at {invoked} s by client {})", first.client)
    })
}

fn check_counter(key: &str, events: &[&Event], fin: Option<&Option<i64>>, report: &mut CheckReport) {
    let Some(&value) = fin else {
        return undecided(report, key);
    };
    let value = value.unwrap_or(0);
    let acked: Vec<&Event> = events.iter().copied().filter(|e| e.ok()).collect();
    let a = acked.len() as i64;
    let u = events.iter().filter(|e| e.unknown()).count() as i64;
    // An acknowledged INCR's reply is the counter after it: replies above the final value
    // show which increments were lost, replies above a + u that some were applied twice.
    let replied_above = |limit: i64| {
        acked.iter().copied().filter(move |e| match &e.outcome {
            Outcome::Ok { value: Some(r) } => r.parse::<i64>().is_ok_and(|r| r > limit),
            _ => false,
        })
    };
    if value < a {
        let detail = format!("the counter ends at {value} but {a} increments were acknowledged ({u} more unknown)");
        let shown: Vec<&Event> = replied_above(value).collect();
        let events = if shown.is_empty() { acked.clone() } else { shown };
        report.lost.push(violation(key, detail, events));
    }
    if value > a + u {
        let detail = format!("the counter ends at {value} but only {a} increments were acknowledged and {u} unknown");
        report.duplicated.push(violation(key, detail, replied_above(a + u)));
    }
}

fn check_insert(key: &str, events: &[&Event], fin: Option<&Option<String>>, report: &mut CheckReport) {
    let Some(value) = fin else {
        return undecided(report, key);
    };
    let held = value.as_deref();
    for &e in events.iter().filter(|e| e.ok()) {
        let Action::Insert { value: inserted, .. } = &e.action else {
            continue;
        };
        if held != Some(inserted.as_str()) {
            let now = held.map_or("the key is missing".to_string(), |h| format!("the key holds {h}"));
            let detail = format!("insert of {inserted} acknowledged {} is gone: {now}", at(e));
            report.lost.push(violation(key, detail, [e]));
        }
    }
    let Some(held) = held else { return };
    let attempts: Vec<&Event> =
        events.iter().copied().filter(|e| matches!(&e.action, Action::Insert { value, .. } if value == held)).collect();
    if let Some(why) = unexplained(&attempts, u64::MAX) {
        let detail = format!("the key holds {held}, {why}");
        report.phantom.push(violation(key, detail, attempts));
    }
}

fn check_register_key(key: &str, history: &[Event], budget: Duration, report: &mut CheckReport) {
    match check_register(history, None, budget) {
        Verdict::Linearizable => {}
        Verdict::Undecided => undecided(report, key),
        Verdict::NotLinearizable { minimal } => {
            let mut detail = format!(
                "no order of these {} operations respects both real time and a register's semantics:",
                minimal.len()
            );
            for (i, e) in minimal.iter().enumerate() {
                let _ = write!(detail, "{} {}", if i == 0 { "" } else { ";" }, describe(e));
            }
            report.nonlinearizable.push(Violation { key: key.into(), detail, events: minimal });
        }
    }
}

/// A read after every event, returning what was read back after healing.
fn final_read(key: &str, value: Option<String>, id: u64, end_us: u64) -> Event {
    Event {
        id,
        client: FINAL_READ_CLIENT,
        action: Action::Read { key: key.into() },
        invoke_us: end_us.saturating_add(1),
        complete_us: end_us.saturating_add(2),
        outcome: Outcome::Ok { value },
        node: "final read-back".into(),
    }
}

fn undecided(report: &mut CheckReport, key: &str) {
    if report.undecided.last().map(String::as_str) != Some(key) {
        report.undecided.push(key.into());
    }
}

fn violation<'a>(key: &str, detail: String, events: impl IntoIterator<Item = &'a Event>) -> Violation {
    let mut events: Vec<Event> = events.into_iter().cloned().collect();
    events.sort_by_key(|e| (e.invoke_us, e.id));
    Violation { key: key.into(), detail, events }
}

fn secs(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

/// `at 1.234 s (client 3, node 127.0.0.1:6381)`, using the completion time.
fn at(e: &Event) -> String {
    format!("at {} s (client {}, node {})", secs(e.complete_us), e.client, e.node)
}

/// `SET 1 ok by client 1 over 0.000–0.010 s`.
fn describe(e: &Event) -> String {
    let span = format!("{}–{} s", secs(e.invoke_us), secs(e.complete_us));
    if e.client == FINAL_READ_CLIENT {
        let Outcome::Ok { value } = &e.outcome else {
            return "the final read-back".into();
        };
        return format!("the final read-back → {}", value.as_deref().unwrap_or("nil"));
    }
    let op = match (&e.action, &e.outcome) {
        (Action::Read { .. }, Outcome::Ok { value }) => {
            format!("GET → {}", value.as_deref().unwrap_or("nil"))
        }
        (Action::Write { value, .. }, Outcome::Unknown { .. }) => {
            format!("SET {value} (outcome unknown)")
        }
        (Action::Write { value, .. }, _) => format!("SET {value} ok"),
        (action, _) => format!("{action:?}"),
    };
    format!("{op} by client {} over {span}", e.client)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(10);

    fn event(id: u64, action: Action, outcome: Outcome) -> Event {
        let invoke_us = id * 1_000;
        Event { id, client: 3, action, invoke_us, complete_us: invoke_us + 500, outcome, node: "127.0.0.1:6381".into() }
    }

    fn ok(value: Option<&str>) -> Outcome {
        Outcome::Ok { value: value.map(String::from) }
    }

    fn fail() -> Outcome {
        Outcome::Fail { reason: "READONLY".into() }
    }

    fn unknown() -> Outcome {
        Outcome::Unknown { reason: "timeout".into() }
    }

    fn append(id: u64, value: &str, outcome: Outcome) -> Event {
        event(id, Action::Append { key: "l".into(), value: value.into() }, outcome)
    }

    fn read_list(id: u64, values: &[&str]) -> Event {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        event(id, Action::ReadList { key: "l".into() }, ok(Some(&encode_list(&values))))
    }

    fn incr(id: u64, outcome: Outcome) -> Event {
        event(id, Action::Incr { key: "c".into() }, outcome)
    }

    fn insert(id: u64, key: &str, value: &str, outcome: Outcome) -> Event {
        event(id, Action::Insert { key: key.into(), value: value.into() }, outcome)
    }

    fn list(values: &[&str]) -> FinalState {
        let values = values.iter().map(|v| v.to_string()).collect();
        FinalState { lists: BTreeMap::from([("l".into(), values)]), ..FinalState::default() }
    }

    fn counter(value: Option<i64>) -> FinalState {
        FinalState { counters: BTreeMap::from([("c".into(), value)]), ..FinalState::default() }
    }

    fn inserted(key: &str, value: Option<&str>) -> FinalState {
        FinalState { inserts: BTreeMap::from([(key.into(), value.map(String::from))]), ..FinalState::default() }
    }

    fn ids(v: &Violation) -> Vec<u64> {
        v.events.iter().map(|e| e.id).collect()
    }

    /// A history where every acknowledged write survived once, failed writes vanished and
    /// unknown ones went either way, on every kind of key, passes.
    #[test]
    fn clean_history_passes() {
        let events = [
            append(1, "a1", ok(None)),
            append(2, "a2", fail()),
            append(3, "a3", unknown()),
            append(4, "a4", unknown()),
            read_list(5, &["a1", "a3"]),
            incr(6, ok(Some("1"))),
            incr(7, unknown()),
            insert(8, "i1", "x", ok(None)),
            insert(9, "i2", "y", fail()),
            insert(10, "i3", "z", unknown()),
            event(11, Action::Write { key: "r".into(), value: "1".into() }, ok(None)),
            event(12, Action::Read { key: "r".into() }, ok(Some("1"))),
        ];
        let mut fin = list(&["a1", "a3"]);
        fin.counters.insert("c".into(), Some(2));
        fin.inserts.extend([("i1".into(), Some("x".into())), ("i2".into(), None), ("i3".into(), Some("z".into()))]);
        fin.registers.insert("r".into(), Some("1".into()));
        let report = check(&events, &fin, BUDGET);
        assert_eq!(report, CheckReport { keys_checked: 6, ..CheckReport::default() });
        assert!(report.ok());
    }

    /// An acknowledged append missing from the final list is lost, in one sentence.
    #[test]
    fn acknowledged_append_missing_is_lost() {
        let mut a7 = append(1, "a7", ok(None));
        a7.complete_us = 1_234_000;
        let report = check(&[a7, append(2, "a8", ok(None))], &list(&["a8"]), BUDGET);
        assert_eq!(report.violations(), 1);
        assert_eq!(
            report.lost[0].detail,
            "value a7 acknowledged at 1.234 s (client 3, node 127.0.0.1:6381) is missing from the final list"
        );
        assert_eq!(ids(&report.lost[0]), [1]);
    }

    /// A value twice in the final list was duplicated (a retried append applied twice).
    #[test]
    fn value_twice_in_the_list_is_duplicated() {
        let report = check(&[append(1, "a1", unknown()), append(2, "a1", ok(None))], &list(&["a1", "a1"]), BUDGET);
        assert_eq!(report.violations(), 1);
        assert_eq!(ids(&report.duplicated[0]), [1, 2]);
        assert!(check(&[append(1, "a1", unknown())], &list(&["a1"]), BUDGET).ok());
    }

    /// A value nobody appended, or whose every append failed, is a phantom.
    #[test]
    fn unwritten_or_failed_values_in_the_list_are_phantoms() {
        let report = check(&[append(1, "a1", fail())], &list(&["a1", "zz"]), BUDGET);
        assert_eq!(report.phantom.len(), 2);
        assert!(report.phantom[0].detail.contains("a failed write was applied"), "{:?}", report.phantom);
        assert_eq!(ids(&report.phantom[0]), [1]);
        assert!(report.phantom[1].detail.contains("which no client ever wrote"));
        assert!(check(&[append(1, "a1", fail())], &list(&[]), BUDGET).ok());
    }

    /// A list read may only show values some append could have written by then.
    #[test]
    fn list_reads_show_only_appended_values() {
        let events = [read_list(1, &["a2"]), append(2, "a2", ok(None)), read_list(3, &["a2", "zz"])];
        let report = check(&events, &list(&["a2"]), BUDGET);
        let details: Vec<&str> = report.phantom.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(report.violations(), 2, "{details:?}");
        assert!(details[0].contains("before any client wrote it"));
        assert!(details[1].contains("returned zz, which no client ever wrote"));
        let events = [append(1, "a1", unknown()), read_list(2, &["a1"]), read_list(3, &[])];
        assert!(check(&events, &list(&["a1"]), BUDGET).ok());
    }

    /// Fewer increments than were acknowledged is loss; the acknowledged INCRs whose reply
    /// exceeds the final value are the ones shown.
    #[test]
    fn counter_below_acknowledged_increments_is_lost() {
        let events = [incr(1, ok(Some("1"))), incr(2, ok(Some("2"))), incr(3, ok(Some("3")))];
        let report = check(&events, &counter(Some(1)), BUDGET);
        assert_eq!(report.violations(), 1);
        assert_eq!(ids(&report.lost[0]), [2, 3]);
        assert_eq!(check(&events[..1], &counter(None), BUDGET).lost.len(), 1, "a missing counter is 0");
        assert!(check(&events, &counter(Some(3)), BUDGET).ok());
    }

    /// More than acknowledged plus unknown increments is duplication; unknown ones may
    /// count or not.
    #[test]
    fn counter_above_possible_increments_is_duplicated() {
        let events = [incr(1, ok(Some("1"))), incr(2, unknown()), incr(3, fail())];
        let report = check(&events, &counter(Some(3)), BUDGET);
        assert_eq!(report.violations(), 1);
        assert_eq!(report.duplicated.len(), 1);
        assert!(check(&events, &counter(Some(1)), BUDGET).ok());
        assert!(check(&events, &counter(Some(2)), BUDGET).ok());
        assert!(check(&[incr(1, fail())], &counter(None), BUDGET).ok());
    }

    /// An acknowledged insert must be there with its own value.
    #[test]
    fn acknowledged_insert_missing_or_changed_is_lost() {
        let events = [insert(1, "i", "x", ok(None))];
        let missing = check(&events, &inserted("i", None), BUDGET);
        assert_eq!(missing.violations(), 1);
        assert!(missing.lost[0].detail.ends_with("is gone: the key is missing"));
        let changed = check(&events, &inserted("i", Some("w")), BUDGET);
        assert_eq!((changed.lost.len(), changed.phantom.len()), (1, 1));
        assert!(check(&events, &inserted("i", Some("x")), BUDGET).ok());
    }

    /// An insert value that nobody wrote, or whose insert failed, is a phantom.
    #[test]
    fn unwritten_or_failed_insert_present_is_phantom() {
        let events = [insert(1, "i", "x", fail())];
        let report = check(&events, &inserted("i", Some("x")), BUDGET);
        assert_eq!(report.violations(), 1);
        assert!(report.phantom[0].detail.contains("failed"));
        assert_eq!(check(&[], &inserted("i", Some("x")), BUDGET).phantom.len(), 1);
        assert!(check(&events, &inserted("i", None), BUDGET).ok());
        assert!(check(&[insert(1, "i", "x", unknown())], &inserted("i", Some("x")), BUDGET).ok());
    }

    /// The final read-back takes part in the register check: a value read back that was
    /// overwritten by a later acknowledged write is a linearizability violation.
    #[test]
    fn register_final_state_must_be_linearizable() {
        let events = [
            event(1, Action::Write { key: "r".into(), value: "1".into() }, ok(None)),
            event(2, Action::Write { key: "r".into(), value: "2".into() }, ok(None)),
        ];
        let fin =
            |v: &str| FinalState { registers: BTreeMap::from([("r".into(), Some(v.into()))]), ..FinalState::default() };
        let report = check(&events, &fin("1"), BUDGET);
        assert_eq!(report.violations(), 1);
        let v = &report.nonlinearizable[0];
        assert_eq!(ids(v), [1, 2, 3]);
        assert_eq!(v.events[2].client, FINAL_READ_CLIENT);
        assert!(v.detail.ends_with("the final read-back → 1"), "{}", v.detail);
        assert!(check(&events, &fin("2"), BUDGET).ok());
    }

    /// No time for the search, or no read-back, leaves the key undecided, not failed.
    #[test]
    fn keys_without_a_verdict_are_undecided() {
        let events = [
            event(1, Action::Write { key: "r".into(), value: "1".into() }, ok(None)),
            event(2, Action::Read { key: "r".into() }, ok(Some("1"))),
            append(3, "a1", ok(None)),
        ];
        let report = check(&events, &FinalState::default(), Duration::ZERO);
        assert!(report.ok());
        assert_eq!(report.undecided, ["l", "r"]);
        assert_eq!(report.keys_checked, 2);
    }

    /// Lists round-trip through the recorded reply; nil is the empty list.
    #[test]
    fn list_replies_round_trip() {
        let values = vec!["a,1".to_string(), "\"b\"".to_string()];
        assert_eq!(decode_list(Some(&encode_list(&values))), Some(values));
        assert_eq!(decode_list(None), Some(Vec::new()));
        assert_eq!(decode_list(Some("OK")), None);
    }
}
