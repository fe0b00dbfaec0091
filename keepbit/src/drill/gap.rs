//! The client-observed write gap of a round, from its own timeline: each fault that hit
//! the node the leader timeline shows as primary at that instant is a start, and the gap
//! is the longest wait from such a start to the first write acknowledged after it. A
//! rolling restart is one step but many faults (one per node restarted), so the restart of
//! whichever node was primary then counts, not only the first fault or the step's end.

use super::history::Event;
use super::LeaderChange;

/// One fault as it took effect: when, and which nodes it hit (empty: not known, e.g. an
/// external cluster's fault command, so it counts as touching the primary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub at_us: u64,
    pub nodes: Vec<u64>,
}

/// The primary the timeline shows at `at_us`: the last leader reported at or before it.
pub fn primary_at(leaders: &[LeaderChange], at_us: u64) -> Option<u64> {
    leaders.iter().rev().filter(|l| l.at_us <= at_us).find_map(|l| l.leader)
}

/// The instants of the faults that hit the primary of the moment; if none did, the first
/// fault's (a standby fault still has a gap worth reporting, normally none).
pub fn primary_faults(hits: &[Hit], leaders: &[LeaderChange]) -> Vec<u64> {
    let touching: Vec<u64> = hits
        .iter()
        .filter(|h| h.nodes.is_empty() || primary_at(leaders, h.at_us).is_some_and(|p| h.nodes.contains(&p)))
        .map(|h| h.at_us)
        .collect();
    if touching.is_empty() {
        hits.iter().map(|h| h.at_us).min().into_iter().collect()
    } else {
        touching
    }
}

/// The longest wait, over [`primary_faults`], from the fault to the first write
/// acknowledged after it (milliseconds); `None` if no write was acknowledged after any.
pub fn write_gap_ms(events: &[Event], hits: &[Hit], leaders: &[LeaderChange]) -> Option<f64> {
    let mut acks: Vec<u64> = events.iter().filter(|e| e.ok() && e.action.is_write()).map(|e| e.complete_us).collect();
    acks.sort_unstable();
    primary_faults(hits, leaders)
        .into_iter()
        .filter_map(|t| acks.iter().find(|&&c| c > t).map(|c| (c - t) as f64 / 1000.0))
        .reduce(f64::max)
}

/// How many times leadership changed during a round: the number of term increases the
/// leader timeline shows after its first entry (a new term is an election, whoever won it
/// and even if nobody did).
pub fn leadership_changes(leaders: &[LeaderChange]) -> u32 {
    leaders.windows(2).filter(|w| w[1].term > w[0].term).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::history::{Action, Outcome};

    fn ack(ms: u64) -> Event {
        Event {
            id: ms,
            client: 0,
            action: Action::Incr { key: "c".into() },
            invoke_us: ms * 1000 - 100,
            complete_us: ms * 1000,
            outcome: Outcome::Ok { value: None },
            node: "n".into(),
        }
    }

    fn leader(ms: u64, id: u64) -> LeaderChange {
        LeaderChange { at_us: ms * 1000, term: id, leader: Some(id) }
    }

    fn hit(ms: u64, node: u64) -> Hit {
        Hit { at_us: ms * 1000, nodes: vec![node] }
    }

    /// A rolling restart of nodes 1, 2, 3 with node 2 primary: restarting 1 costs
    /// nothing, restarting 2 stops writes for 300 ms. The old measurement took the step's
    /// end (after node 3 rejoined) and reported the 2 ms to the next ack.
    #[test]
    fn a_rolling_restart_is_measured_from_the_primary_restart() {
        let mut acks: Vec<u64> = (1000..=1998).step_by(2).collect();
        acks.extend((2300..=4000).step_by(2));
        let events: Vec<Event> = acks.into_iter().map(ack).collect();
        let leaders = [leader(0, 2), LeaderChange { at_us: 2_000_000, term: 2, leader: None }, leader(2290, 1)];
        let hits = [hit(1500, 1), hit(1999, 2), hit(3000, 3)];
        assert_eq!(primary_faults(&hits, &leaders), vec![1_999_000], "only node 2 was primary when hit");
        assert_eq!(write_gap_ms(&events, &hits, &leaders), Some(301.0));
        let step_end_only = [Hit { at_us: 3_999_000, nodes: vec![] }];
        assert_eq!(write_gap_ms(&events, &step_end_only, &leaders), Some(1.0), "what the old measurement saw");
    }

    /// Two primary faults in a round: the longer gap counts. Standby faults alone: the
    /// first one's. An unknown target counts as the primary.
    #[test]
    fn every_primary_fault_counts() {
        let events: Vec<Event> = [100, 200, 500, 900, 1000, 1700].into_iter().map(ack).collect();
        let leaders = [leader(0, 1), leader(450, 2)];
        assert_eq!(write_gap_ms(&events, &[hit(300, 1), hit(800, 2)], &leaders), Some(200.0));
        assert_eq!(write_gap_ms(&events, &[hit(150, 3), hit(950, 3)], &leaders), Some(50.0), "first fault");
        let unknown = [Hit { at_us: 1_100_000, nodes: vec![] }];
        assert_eq!(write_gap_ms(&events, &unknown, &leaders), Some(600.0));
        assert_eq!(write_gap_ms(&events, &[hit(1800, 2)], &leaders), None, "no ack after it");
    }

    /// A primary that stops answering for a moment (leader unknown within the same term)
    /// is no leadership change; a new term is, with or without a leader.
    #[test]
    fn leadership_changes_count_new_terms() {
        let gone = LeaderChange { at_us: 500_000, term: 1, leader: None };
        assert_eq!(leadership_changes(&[leader(0, 1), gone.clone(), leader(600, 1)]), 0);
        assert_eq!(leadership_changes(&[]), 0);
        let leaderless = LeaderChange { at_us: 700_000, term: 2, leader: None };
        assert_eq!(leadership_changes(&[leader(0, 1), gone, leader(600, 1), leaderless, leader(900, 3)]), 2);
    }
}
