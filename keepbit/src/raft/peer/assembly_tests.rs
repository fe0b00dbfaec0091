//! The receiver's chunk assembly, step by step as data.

use openraft::impls::leader_id_adv::LeaderId;

use super::*;

const TTL: Duration = Duration::from_secs(60);

fn log_id(index: u64) -> Option<super::LogId> {
    Some(openraft::LogId::new(LeaderId { term: 1, node_id: 1 }, index))
}

/// The chunks of `data` in `chunk`-byte pieces, each with its head.
fn chunks(data: &[u8], chunk: usize) -> Vec<(ChunkHead, Vec<u8>)> {
    let crc32c = crc32c::crc32c(data);
    let total_len = data.len() as u64;
    data.chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            let offset = (i * chunk) as u64;
            let done = offset + c.len() as u64 == total_len;
            (ChunkHead { total_len, crc32c, offset, done }, c.to_vec())
        })
        .collect()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn in_order_chunks_complete_the_snapshot() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let now = Instant::now();
    let snap = data(10_000);
    let steps: Vec<Step> =
        chunks(&snap, 4_000).into_iter().map(|(h, d)| a.receive(1, log_id(9), &h, d, now).expect("taken")).collect();
    assert_eq!(steps, vec![Step::Have(4_000), Step::Have(8_000), Step::Complete(snap)]);
    assert_eq!(a.held(1), None, "a completed snapshot is no longer held");
}

#[test]
fn a_duplicate_chunk_is_answered_with_the_offset_held() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let now = Instant::now();
    let c = chunks(&data(10_000), 4_000);
    assert_eq!(a.receive(1, log_id(9), &c[0].0, c[0].1.clone(), now), Ok(Step::Have(4_000)));
    assert_eq!(a.receive(1, log_id(9), &c[0].0, c[0].1.clone(), now), Ok(Step::Have(4_000)));
    assert_eq!(a.held(1), Some(4_000), "the duplicate was not appended");
}

#[test]
fn a_gap_or_a_probe_reports_the_offset_held() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let now = Instant::now();
    let c = chunks(&data(10_000), 4_000);
    assert_eq!(a.receive(1, log_id(9), &c[0].0, c[0].1.clone(), now), Ok(Step::Have(4_000)));
    assert_eq!(a.receive(1, log_id(9), &c[2].0, c[2].1.clone(), now), Ok(Step::Have(4_000)), "gap");
    let probe = ChunkHead { offset: 0, done: false, ..c[0].0 };
    assert_eq!(a.receive(1, log_id(9), &probe, Vec::new(), now), Ok(Step::Have(4_000)), "probe");
    assert_eq!(a.receive(1, log_id(9), &c[1].0, c[1].1.clone(), now), Ok(Step::Have(8_000)));
}

#[test]
fn a_new_snapshot_replaces_the_partial_one() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let now = Instant::now();
    let old = chunks(&data(10_000), 4_000);
    assert_eq!(a.receive(1, log_id(9), &old[0].0, old[0].1.clone(), now), Ok(Step::Have(4_000)));
    // A newer snapshot (another last log id) starts over at 0, even at the old offset.
    let new_snap = data(6_000);
    let new = chunks(&new_snap, 4_000);
    assert_eq!(a.receive(1, log_id(12), &old[1].0, old[1].1.clone(), now), Ok(Step::Have(0)));
    assert_eq!(a.receive(1, log_id(12), &new[1].0, new[1].1.clone(), now), Ok(Step::Have(0)));
    assert_eq!(a.receive(1, log_id(12), &new[0].0, new[0].1.clone(), now), Ok(Step::Have(4_000)));
    assert_eq!(a.receive(1, log_id(12), &new[1].0, new[1].1.clone(), now), Ok(Step::Complete(new_snap)));
}

#[test]
fn an_oversize_snapshot_is_refused_before_anything_is_kept() {
    let mut a = Assembly::new(5_000, TTL, 2);
    let now = Instant::now();
    let c = chunks(&data(10_000), 4_000);
    assert_eq!(
        a.receive(1, log_id(9), &c[0].0, c[0].1.clone(), now),
        Err(ChunkError::TooLarge { total_len: 10_000, max: 5_000 })
    );
    assert_eq!(a.held(1), None);
}

#[test]
fn a_chunk_past_the_end_or_a_bad_checksum_is_refused_and_dropped() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let now = Instant::now();
    let c = chunks(&data(6_000), 4_000);
    assert_eq!(a.receive(1, log_id(9), &c[0].0, c[0].1.clone(), now), Ok(Step::Have(4_000)));
    let long = vec![0u8; 3_000];
    let err = a.receive(1, log_id(9), &c[1].0, long, now);
    assert_eq!(err, Err(ChunkError::PastEnd { offset: 4_000, len: 3_000, total_len: 6_000 }));
    assert_eq!(a.held(1), None);
    assert_eq!(a.receive(1, log_id(9), &c[0].0, c[0].1.clone(), now), Ok(Step::Have(4_000)));
    let err = a.receive(1, log_id(9), &c[1].0, vec![0u8; 2_000], now);
    assert!(matches!(err, Err(ChunkError::Checksum { .. })), "{err:?}");
    let early = ChunkHead { done: true, ..c[0].0 };
    let err = a.receive(1, log_id(9), &early, c[0].1.clone(), now);
    assert_eq!(err, Err(ChunkError::EndsEarly { end: 4_000, total_len: 6_000 }));
}

#[test]
fn a_stale_partial_snapshot_is_dropped_after_the_ttl() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let start = Instant::now();
    let c = chunks(&data(10_000), 4_000);
    assert_eq!(a.receive(1, log_id(9), &c[0].0, c[0].1.clone(), start), Ok(Step::Have(4_000)));
    a.prune(start + TTL);
    assert_eq!(a.held(1), Some(4_000), "still within the ttl");
    a.prune(start + TTL + Duration::from_millis(1));
    assert_eq!(a.held(1), None);
}

#[test]
fn each_sender_has_its_own_partial_and_the_oldest_makes_room() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let start = Instant::now();
    let c = chunks(&data(10_000), 4_000);
    for (i, from) in [1, 2, 3].into_iter().enumerate() {
        let now = start + Duration::from_millis(i as u64);
        assert_eq!(a.receive(from, log_id(9), &c[0].0, c[0].1.clone(), now), Ok(Step::Have(4_000)));
    }
    assert_eq!((a.held(1), a.held(2), a.held(3)), (None, Some(4_000), Some(4_000)));
}

#[test]
fn an_empty_snapshot_completes_with_one_empty_last_chunk() {
    let mut a = Assembly::new(1 << 20, TTL, 2);
    let head = ChunkHead { total_len: 0, crc32c: crc32c::crc32c(&[]), offset: 0, done: true };
    assert_eq!(a.receive(1, log_id(9), &head, Vec::new(), Instant::now()), Ok(Step::Complete(Vec::new())));
}
