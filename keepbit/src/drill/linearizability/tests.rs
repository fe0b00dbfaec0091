//! Linearizability checker tests.

use super::*;

const BUDGET: Duration = Duration::from_secs(10);

fn event(id: u64, action: Action, (invoke_us, complete_us): (u64, u64), value: Option<&str>) -> Event {
    let outcome = Outcome::Ok { value: value.map(String::from) };
    Event { id, client: id as u32, action, invoke_us, complete_us, outcome, node: "n1".into() }
}

fn write(id: u64, value: &str, span: (u64, u64)) -> Event {
    event(id, Action::Write { key: "r".into(), value: value.into() }, span, None)
}

fn unknown_write(id: u64, value: &str, span: (u64, u64)) -> Event {
    let outcome = Outcome::Unknown { reason: "timeout".into() };
    Event { outcome, ..write(id, value, span) }
}

fn read(id: u64, value: Option<&str>, span: (u64, u64)) -> Event {
    event(id, Action::Read { key: "r".into() }, span, value)
}

fn minimal(verdict: Verdict) -> Vec<u64> {
    match verdict {
        Verdict::NotLinearizable { minimal } => minimal.iter().map(|e| e.id).collect(),
        other => panic!("expected NotLinearizable, got {other:?}"),
    }
}

/// Operations one after another, each read seeing the last write, are linearizable.
#[test]
fn sequential_history_is_linearizable() {
    let h = [
        read(1, None, (0, 1)),
        write(2, "1", (2, 3)),
        read(3, Some("1"), (4, 5)),
        write(4, "2", (6, 7)),
        read(5, Some("2"), (8, 9)),
    ];
    assert_eq!(check_register(&h, None, BUDGET), Verdict::Linearizable);
}

/// A read overlapping a write may see either the old or the new value.
#[test]
fn read_concurrent_with_write_may_see_either_value() {
    for seen in [Some("0"), Some("1")] {
        let h = [write(1, "1", (0, 100)), read(2, seen, (10, 20))];
        assert_eq!(check_register(&h, Some("0".into()), BUDGET), Verdict::Linearizable);
    }
}

/// Once a read saw the new value, a later read may not see the old one again, even
/// while the write is still in flight.
#[test]
fn reads_cannot_go_back_in_time_during_a_write() {
    let h = [write(1, "1", (0, 100)), read(2, Some("1"), (10, 20)), read(3, Some("0"), (30, 40))];
    assert_eq!(minimal(check_register(&h, Some("0".into()), BUDGET)), vec![1, 2, 3]);
}

/// The classic stale read: a read starting after `SET 1` completed returns the old 0.
/// The unrelated operations around it are shrunk away.
#[test]
fn stale_read_is_caught_with_exactly_the_two_operations() {
    let h = [
        write(1, "1", (0, 10)),
        read(2, Some("0"), (20, 30)),
        read(3, Some("1"), (40, 50)),
        write(4, "2", (60, 70)),
        read(5, Some("2"), (80, 90)),
    ];
    assert_eq!(minimal(check_register(&h, Some("0".into()), BUDGET)), vec![1, 2]);
}

/// Lost update: after the second write completed, non-overlapping reads see the first.
#[test]
fn lost_update_is_caught() {
    let h =
        [write(1, "1", (0, 10)), write(2, "2", (20, 30)), read(3, Some("1"), (40, 50)), read(4, Some("1"), (60, 70))];
    let ids = minimal(check_register(&h, None, BUDGET));
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[..2], [1, 2]);
}

/// An unknown write may take effect long after the client gave up on it.
#[test]
fn unknown_write_read_later_is_fine() {
    let h = [unknown_write(1, "1", (0, 10)), read(2, None, (20, 30)), read(3, Some("1"), (100, 110))];
    assert_eq!(check_register(&h, None, BUDGET), Verdict::Linearizable);
}

/// An unknown write may never take effect.
#[test]
fn unknown_write_never_read_is_fine() {
    let h = [unknown_write(1, "1", (0, 10)), read(2, None, (20, 30)), read(3, None, (100, 110))];
    assert_eq!(check_register(&h, None, BUDGET), Verdict::Linearizable);
}

/// An unknown write takes effect at most once: its value cannot reappear after being
/// overwritten by a write that completed after it was seen.
#[test]
fn unknown_write_takes_effect_at_most_once() {
    let h = [
        unknown_write(1, "1", (0, 10)),
        read(2, Some("1"), (20, 30)),
        write(3, "2", (40, 50)),
        read(4, Some("1"), (60, 70)),
    ];
    assert_eq!(minimal(check_register(&h, None, BUDGET)), vec![1, 2, 3, 4]);
}

/// A read cannot see a value before the write of it was invoked, unknown or not.
#[test]
fn unknown_write_cannot_be_seen_before_its_invoke() {
    let h = [read(1, Some("1"), (0, 10)), unknown_write(2, "1", (20, 30))];
    assert_eq!(minimal(check_register(&h, None, BUDGET)), vec![1, 2]);
}

/// A value nobody wrote (a failed write counts as not written) cannot be read.
#[test]
fn read_of_a_value_never_written_is_caught() {
    let mut failed = write(1, "9", (0, 10));
    failed.outcome = Outcome::Fail { reason: "READONLY".into() };
    let h = [failed, write(2, "1", (20, 30)), read(3, Some("9"), (40, 50))];
    assert_eq!(minimal(check_register(&h, None, BUDGET)), vec![3]);
}

/// Empty histories, backwards clocks, duplicate values and unknown reads never panic.
#[test]
fn odd_inputs_do_not_panic() {
    assert_eq!(check_register(&[], None, Duration::ZERO), Verdict::Linearizable);
    let mut unknown_read = read(9, Some("never written"), (5, 1));
    unknown_read.outcome = Outcome::Unknown { reason: "timeout".into() };
    let h = [
        write(1, "1", (50, 10)),
        write(2, "1", (60, 70)),
        read(3, Some("1"), (80, 75)),
        unknown_read,
        unknown_write(4, "1", (u64::MAX, u64::MAX)),
    ];
    assert_eq!(check_register(&h, None, BUDGET), Verdict::Linearizable);
}

/// A small deterministic generator (splitmix64), so the tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// A real register driven by concurrent clients: each operation takes effect at a
/// random instant inside its interval; some writes time out (unknown) and then take
/// effect late or never. `repeat`: values come from a small set instead of being unique.
fn simulated(seed: u64, clients: u64, ops_per_client: u64, repeat: bool) -> (Vec<Event>, u64) {
    let mut rng = Rng(seed);
    let mut timed: Vec<(u64, Event)> = Vec::new();
    let mut id = 0;
    for client in 0..clients {
        let mut now = rng.below(20);
        for _ in 0..ops_per_client {
            id += 1;
            let invoke = now + rng.below(10);
            let complete = invoke + 1 + rng.below(60);
            let at = invoke + rng.below(complete - invoke + 1);
            let mut e = if rng.below(2) == 0 {
                let value = if repeat { rng.below(8) } else { id };
                write(id, &value.to_string(), (invoke, complete))
            } else {
                read(id, None, (invoke, complete))
            };
            e.client = client as u32;
            let mut effect_at = at;
            if e.action.is_write() && rng.below(10) == 0 {
                e.outcome = Outcome::Unknown { reason: "timeout".into() };
                effect_at = if rng.below(2) == 0 { u64::MAX } else { invoke + rng.below(500) };
            }
            timed.push((effect_at, e));
            now = complete;
        }
    }
    timed.sort_by_key(|(at, e)| (*at, e.id));
    let mut register: Option<String> = None;
    for (at, e) in &mut timed {
        match &e.action {
            Action::Write { value, .. } if *at != u64::MAX => register = Some(value.clone()),
            Action::Read { .. } => e.outcome = Outcome::Ok { value: register.clone() },
            _ => {}
        }
    }
    let end = timed.iter().map(|(_, e)| e.complete_us).max().unwrap_or(0);
    let mut events: Vec<Event> = timed.into_iter().map(|(_, e)| e).collect();
    events.sort_by_key(|e| e.id);
    (events, end)
}

/// Histories of a real register under concurrency are linearizable; with 600
/// operations this needs the explored-state cache to finish quickly.
#[test]
fn simulated_register_histories_are_linearizable() {
    for seed in 0..6 {
        let (events, _) = simulated(seed, 6, 100, seed % 2 == 0);
        assert_eq!(check_register(&events, None, BUDGET), Verdict::Linearizable, "seed {seed}");
    }
}

/// A stale read appended to a large good history is found, and shrunk to the write it
/// read, the write that overwrote it, and the read itself. (Values are unique, as the
/// workload's are: an unknown write of a value read throughout the history stays a
/// candidate throughout, and refuting every placement is exponential.)
#[test]
fn stale_read_in_a_large_history_is_shrunk() {
    let (mut events, end) = simulated(7, 6, 100, false);
    events.push(write(10_001, "fresh", (end + 10, end + 20)));
    events.push(write(10_002, "old", (end + 30, end + 40)));
    events.push(write(10_003, "new", (end + 50, end + 60)));
    events.push(read(10_004, Some("old"), (end + 70, end + 80)));
    assert_eq!(minimal(check_register(&events, None, BUDGET)), vec![10_002, 10_003, 10_004]);
}

/// With no time at all, a nontrivial history gets no verdict rather than a wrong one.
#[test]
fn zero_budget_is_undecided() {
    let (events, _) = simulated(3, 4, 50, true);
    assert_eq!(check_register(&events, None, Duration::ZERO), Verdict::Undecided);
}
