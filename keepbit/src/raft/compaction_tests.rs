//! Snapshot and purge decisions as data.

use super::*;

const MIB: u64 = 1 << 20;

#[test]
fn thresholds_are_staggered_by_node_id() {
    let t: Vec<Thresholds> = (1..=6).map(|id| staggered(id, 10_000, 64 * MIB)).collect();
    let entries: Vec<u64> = t.iter().map(|t| t.entries).collect();
    assert_eq!(entries, [11_000, 12_000, 13_000, 14_000, 10_000, 11_000]);
    assert_eq!(t[0].bytes, 64 * MIB * 11 / 10);
    assert_eq!(staggered(3, u64::MAX, 1), Thresholds { entries: u64::MAX / 10, bytes: 1 }, "no overflow");
}

#[test]
fn a_snapshot_is_due_on_entries_or_bytes() {
    let t = Thresholds { entries: 100, bytes: 64 * MIB };
    let cases = [
        (Since { entries: 0, bytes: 0 }, false),
        (Since { entries: 99, bytes: 64 * MIB - 1 }, false),
        (Since { entries: 100, bytes: 0 }, true),
        (Since { entries: 3, bytes: 64 * MIB }, true),
    ];
    for (since, due) in cases {
        assert_eq!(should_snapshot(since, t), due, "{since:?}");
    }
}

#[test]
fn the_log_behind_a_snapshot_is_kept_within_entries_and_bytes() {
    // Newest first: index 10 down to 1, 1 MiB each except index 7 (8 MiB).
    let behind = || (1..=10u64).rev().map(|i| (i, if i == 7 { 8 * MIB } else { MIB }));
    assert_eq!(purge_upto(behind(), 100, 100 * MIB), None, "everything fits");
    assert_eq!(purge_upto(behind(), 4, 100 * MIB), Some(6), "by entries: keep 10..=7");
    assert_eq!(purge_upto(behind(), 100, 10 * MIB), Some(7), "by bytes: 7 would make 11 MiB");
    assert_eq!(purge_upto(behind(), 100, 0), Some(10), "keep nothing");
    assert_eq!(purge_upto(std::iter::empty(), 0, 0), None);
}
