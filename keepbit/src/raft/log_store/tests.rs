//! Log store tests.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::type_config::TypeConfigExt;
use openraft::EntryPayload;

use super::*;
use crate::raft::types::Request;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let pid = std::process::id();
        TempDir(std::env::temp_dir().join(format!("keepbit-log-{name}-{pid}-{nanos}")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(LeaderId { term, node_id: 1 }, index)
}

fn entry(term: u64, index: u64, data_bytes: usize) -> Entry {
    let data = Bytes::from(vec![(index % 251) as u8; data_bytes]);
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(Request(data)) }
}

fn entries(term: u64, indexes: std::ops::Range<u64>, data_bytes: usize) -> Vec<Entry> {
    indexes.map(|i| entry(term, i, data_bytes)).collect()
}

fn tiny_segments() -> LogOptions {
    LogOptions { segment_size_bytes: 4096, fsync: Fsync::Batch }
}

async fn open(dir: &TempDir, opts: LogOptions) -> LogStore {
    LogStore::open(&dir.0, opts).await.expect("open")
}

/// Appends and waits for the durability callback.
async fn append_durably(store: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.expect("append");
    rx.await.expect("callback dropped").expect("flush failed");
}

async fn read_all(store: &mut LogStore) -> Vec<Entry> {
    store.try_get_log_entries(..).await.expect("read")
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

/// Appended entries and the vote come back unchanged after a reopen, and appending continues.
#[tokio::test]
async fn reopen_returns_the_same_entries_and_vote() {
    let dir = TempDir::new("reopen");
    let mut store = open(&dir, LogOptions::default()).await;
    let vote = Vote::new(3, 1);
    store.save_vote(&vote).await.expect("save_vote");
    let written = entries(3, 0..10, 100);
    append_durably(&mut store, written.clone()).await;
    assert_eq!(read_all(&mut store).await, written);
    drop(store);

    let mut store = open(&dir, LogOptions::default()).await;
    assert_eq!(read_all(&mut store).await, written);
    assert_eq!(store.read_vote().await.expect("read_vote"), Some(vote));
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(3, 9)));
    assert_eq!(state.last_purged_log_id, None);
    append_durably(&mut store, vec![entry(3, 10, 100)]).await;
    assert_eq!(store.try_get_log_entries(9..=10).await.expect("read").len(), 2);
}

/// Cuts the segment file in the middle of the record at `offset`.
fn cut_mid_record(path: &Path, offset: u64) {
    let file = OpenOptions::new().write(true).open(path).expect("open segment");
    file.set_len(offset + 20).expect("cut");
}

/// Flips one payload byte of the record at `offset`, so its checksum fails.
fn flip_payload_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).expect("read segment");
    bytes[(offset + RECORD_HEADER_BYTES + 3) as usize] ^= 0xff;
    fs::write(path, &bytes).expect("write segment");
}

/// A last record that was never fully written (cut mid-record, or failing its checksum)
/// is dropped on reopen; earlier entries survive and appending continues after them.
#[tokio::test]
async fn torn_tail_is_dropped() {
    type Damage = fn(&Path, u64);
    for (name, damage) in [("cut", cut_mid_record as Damage), ("flip", flip_payload_byte)] {
        let dir = TempDir::new(name);
        let mut store = open(&dir, LogOptions::default()).await;
        append_durably(&mut store, entries(1, 0..5, 100)).await;
        drop(store);
        let path = segment_path(&dir.0, 0);
        damage(&path, record_offsets(&path, 0)[4]);

        let mut store = open(&dir, LogOptions::default()).await;
        assert_eq!(indexes(&read_all(&mut store).await), vec![0, 1, 2, 3], "{name}");
        append_durably(&mut store, vec![entry(2, 4, 100)]).await;
        drop(store);

        let mut store = open(&dir, LogOptions::default()).await;
        let read = read_all(&mut store).await;
        assert_eq!(indexes(&read), vec![0, 1, 2, 3, 4], "{name}");
        assert_eq!(read[4], entry(2, 4, 100), "{name}");
    }
}

/// Byte offsets of the records in the segment at `path` (which must read cleanly).
fn record_offsets(path: &Path, first_index: u64) -> Vec<u64> {
    scan_segment(path, first_index, true).expect("scan").record_offsets
}

/// The error `LogStore::open` gives for `dir`; panics if it opens.
async fn open_error(dir: &TempDir, opts: LogOptions) -> String {
    match LogStore::open(&dir.0, opts).await {
        Ok(_) => panic!("open must refuse a corrupt log"),
        Err(e) => e.to_string(),
    }
}

/// Regression: a checksum mismatch in an older, already fsynced segment used to be read as
/// a torn tail, and recovery deleted every later segment, dropping acknowledged entries.
/// Now open refuses, naming the file and byte offset and how to repair the node.
#[tokio::test]
async fn corruption_in_an_older_segment_refuses_to_open() {
    let dir = TempDir::new("old-flip");
    let mut store = open(&dir, tiny_segments()).await;
    append_durably(&mut store, entries(1, 0..40, 500)).await;
    drop(store);
    let segments = list_segments(&dir.0).expect("list");
    assert!(segments.len() > 2, "{segments:?}");
    let path = segment_path(&dir.0, segments[0]);
    let offset = record_offsets(&path, segments[0])[2];
    flip_payload_byte(&path, offset);

    let err = open_error(&dir, tiny_segments()).await;
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains(&format!("byte {offset}")), "{err}");
    assert!(err.contains("restore this node from a peer"), "{err}");
    assert_eq!(list_segments(&dir.0).expect("list"), segments, "nothing is deleted");
}

/// Regression: a bad record in the middle of the last segment, with intact records after
/// it, is corruption rather than a torn write, so open refuses instead of cutting them.
#[tokio::test]
async fn corruption_followed_by_intact_records_refuses_to_open() {
    let dir = TempDir::new("mid-flip");
    let mut store = open(&dir, LogOptions::default()).await;
    append_durably(&mut store, entries(1, 0..10, 100)).await;
    drop(store);
    let path = segment_path(&dir.0, 0);
    let offsets = record_offsets(&path, 0);
    flip_payload_byte(&path, offsets[4]);

    let err = open_error(&dir, LogOptions::default()).await;
    assert!(err.contains(&format!("byte {}", offsets[4])), "{err}");
    assert!(err.contains(&format!("intact record at byte {}", offsets[5])), "{err}");
    assert!(err.contains("restore this node from a peer"), "{err}");
}

/// A torn write of a whole batch (the last two records both damaged, nothing intact after
/// them) in the last of several segments is cut: earlier segments and records survive and
/// appending continues.
#[tokio::test]
async fn torn_batch_in_the_last_segment_is_cut() {
    let dir = TempDir::new("torn-batch");
    let mut store = open(&dir, tiny_segments()).await;
    append_durably(&mut store, entries(1, 0..40, 500)).await;
    drop(store);
    let segments = list_segments(&dir.0).expect("list");
    let last = *segments.last().expect("segments");
    let path = segment_path(&dir.0, last);
    let offsets = record_offsets(&path, last);
    assert!(offsets.len() >= 2, "{offsets:?}");
    let cut_from = last + offsets.len() as u64 - 2;
    flip_payload_byte(&path, offsets[offsets.len() - 2]);
    cut_mid_record(&path, offsets[offsets.len() - 1]);

    let mut store = open(&dir, tiny_segments()).await;
    assert_eq!(indexes(&read_all(&mut store).await), (0..cut_from).collect::<Vec<_>>());
    append_durably(&mut store, entries(2, cut_from..cut_from + 3, 500)).await;
    drop(store);
    let mut store = open(&dir, tiny_segments()).await;
    assert_eq!(indexes(&read_all(&mut store).await), (0..cut_from + 3).collect::<Vec<_>>());
}

/// truncate_after removes later entries and segments; new appends continue from there
/// and survive a reopen.
#[tokio::test]
async fn truncate_after_then_append_survives_reopen() {
    let dir = TempDir::new("truncate");
    let mut store = open(&dir, tiny_segments()).await;
    for i in 0..40 {
        append_durably(&mut store, vec![entry(1, i, 500)]).await;
    }
    assert!(list_segments(&dir.0).expect("list").len() > 3);

    store.truncate_after(Some(log_id(1, 12))).await.expect("truncate");
    assert_eq!(indexes(&read_all(&mut store).await), (0..=12).collect::<Vec<_>>());
    assert!(list_segments(&dir.0).expect("list").iter().all(|&first| first <= 12));
    append_durably(&mut store, entries(2, 13..20, 500)).await;
    drop(store);

    let mut store = open(&dir, tiny_segments()).await;
    let read = read_all(&mut store).await;
    let mut expected = entries(1, 0..13, 500);
    expected.extend(entries(2, 13..20, 500));
    assert_eq!(read, expected);

    store.truncate_after(None).await.expect("truncate all");
    assert!(read_all(&mut store).await.is_empty());
    append_durably(&mut store, entries(3, 0..2, 500)).await;
    drop(store);
    let mut store = open(&dir, tiny_segments()).await;
    assert_eq!(read_all(&mut store).await, entries(3, 0..2, 500));
}

/// purge deletes only segments whose entries are all purged, and the purge point is
/// reported after a reopen, also when everything was purged.
#[tokio::test]
async fn purge_deletes_whole_old_segments() {
    let dir = TempDir::new("purge");
    let mut store = open(&dir, tiny_segments()).await;
    append_durably(&mut store, entries(1, 0..40, 500)).await;
    let before = list_segments(&dir.0).expect("list");

    store.purge(log_id(1, 25)).await.expect("purge");
    let after = list_segments(&dir.0).expect("list");
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after[0] <= 26 && after.iter().all(|f| before.contains(f)), "{before:?} -> {after:?}");
    let kept_before = before.iter().filter(|&&f| f <= 26).max().copied();
    assert_eq!(Some(after[0]), kept_before, "the segment holding 26 is kept");
    assert_eq!(indexes(&read_all(&mut store).await), (26..40).collect::<Vec<_>>());
    drop(store);

    let mut store = open(&dir, tiny_segments()).await;
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 25)));
    assert_eq!(state.last_log_id, Some(log_id(1, 39)));
    assert_eq!(indexes(&read_all(&mut store).await), (26..40).collect::<Vec<_>>());

    store.purge(log_id(1, 39)).await.expect("purge all");
    assert!(list_segments(&dir.0).expect("list").is_empty());
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(1, 39)));
    append_durably(&mut store, vec![entry(1, 40, 500)]).await;
    drop(store);

    let mut store = open(&dir, tiny_segments()).await;
    assert_eq!(indexes(&read_all(&mut store).await), vec![40]);
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 39)));
}

/// The committed log id is persisted so openraft can re-apply committed entries on restart.
#[tokio::test]
async fn committed_survives_reopen() {
    let dir = TempDir::new("committed");
    let mut store = open(&dir, LogOptions::default()).await;
    assert_eq!(store.read_committed().await.expect("read"), None);
    append_durably(&mut store, entries(1, 0..4, 10)).await;
    store.save_committed(Some(log_id(1, 2))).await.expect("save");
    store.save_committed(Some(log_id(1, 3))).await.expect("save");
    assert_eq!(store.read_committed().await.expect("read"), Some(log_id(1, 3)));
    store.flush().await.expect("flush");
    drop(store);

    let mut store = open(&dir, LogOptions::default()).await;
    assert_eq!(store.read_committed().await.expect("read"), Some(log_id(1, 3)));
}

/// Group commit: 200 appends outstanding at once (as openraft issues them, each with its
/// own callback) complete with fewer fsyncs than appends.
#[tokio::test]
async fn group_commit_uses_fewer_fsyncs_than_appends() {
    let dir = TempDir::new("group");
    let mut store = open(&dir, LogOptions::default()).await;
    let mut pending = Vec::new();
    for i in 0..200 {
        let (tx, rx) = TypeConfig::oneshot();
        store.append(vec![entry(1, i, 64)], IOFlushed::signal(tx)).await.expect("append");
        pending.push(rx);
    }
    // Readable before durable.
    assert_eq!(read_all(&mut store).await.len(), 200);
    for rx in pending {
        rx.await.expect("callback dropped").expect("flush failed");
    }
    let fsyncs = store.fsync_count();
    assert!(fsyncs < 200, "{fsyncs} fsyncs for 200 appends");
}

/// Always fsyncs each append; Os never fsyncs but still completes callbacks.
#[tokio::test]
async fn fsync_policies_always_and_os() {
    let dir = TempDir::new("always");
    let mut store = open(&dir, LogOptions { fsync: Fsync::Always, ..LogOptions::default() }).await;
    let mut pending = Vec::new();
    for i in 0..20 {
        let (tx, rx) = TypeConfig::oneshot();
        store.append(vec![entry(1, i, 64)], IOFlushed::signal(tx)).await.expect("append");
        pending.push(rx);
    }
    for rx in pending {
        rx.await.expect("callback dropped").expect("flush failed");
    }
    assert!(store.fsync_count() >= 20, "{} fsyncs", store.fsync_count());

    let dir = TempDir::new("os");
    let mut store = open(&dir, LogOptions { fsync: Fsync::Os, ..tiny_segments() }).await;
    append_durably(&mut store, entries(1, 0..40, 500)).await;
    assert_eq!(store.fsync_count(), 0, "appends are left to the OS");
    store.save_vote(&Vote::new(1, 1)).await.expect("vote");
    assert_eq!(store.fsync_count(), 2, "a vote is synced (file and directory) under every policy");
    drop(store);
    let mut store = open(&dir, LogOptions { fsync: Fsync::Os, ..tiny_segments() }).await;
    assert_eq!(read_all(&mut store).await.len(), 40);
}

/// Reversed and extreme ranges return empty results instead of panicking in BTreeMap.
#[tokio::test]
async fn odd_ranges_do_not_panic() {
    let dir = TempDir::new("ranges");
    let mut store = open(&dir, LogOptions::default()).await;
    append_durably(&mut store, entries(1, 0..5, 10)).await;
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = store.try_get_log_entries(4..2).await.expect("read");
    assert!(reversed.is_empty());
    let past_max = (Bound::Excluded(u64::MAX), Bound::Unbounded);
    assert!(store.try_get_log_entries(past_max).await.expect("read").is_empty());
    assert_eq!(store.try_get_log_entries(3..=u64::MAX).await.expect("read").len(), 2);
    assert!(store.try_get_log_entries(3..3).await.expect("read").is_empty());
}

/// Appending anything but the next index is refused rather than leaving a hole.
#[tokio::test]
async fn non_contiguous_append_is_refused() {
    let dir = TempDir::new("gap");
    let mut store = open(&dir, LogOptions::default()).await;
    append_durably(&mut store, entries(1, 0..3, 10)).await;
    let err = store.append(vec![entry(1, 5, 10)], IOFlushed::noop()).await.expect_err("gap");
    assert!(err.to_string().contains("continues at index 3"), "{err}");
}

/// A missing middle segment or a corrupt metadata file fails open with an error, no panic.
#[tokio::test]
async fn damaged_files_fail_open() {
    let dir = TempDir::new("hole");
    let mut store = open(&dir, tiny_segments()).await;
    append_durably(&mut store, entries(1, 0..40, 500)).await;
    store.save_vote(&Vote::new(1, 1)).await.expect("vote");
    drop(store);
    let segments = list_segments(&dir.0).expect("list");
    fs::remove_file(segment_path(&dir.0, segments[1])).expect("remove");
    let err = LogStore::open(&dir.0, tiny_segments()).await.err().expect("hole must fail");
    assert!(err.to_string().contains("entries missing"), "{err}");

    fs::write(dir.0.join(META_FILE), b"\x05\x00\x00\x00garbage").expect("write meta");
    let err = LogStore::open(&dir.0, tiny_segments()).await.err().expect("bad meta must fail");
    assert!(err.to_string().contains("metadata"), "{err}");

    let err = LogStore::open(&dir.0, LogOptions { segment_size_bytes: 10, ..LogOptions::default() }).await;
    assert_eq!(err.err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
}

/// What the byte limit on the log behind a snapshot reads: sizes at or before an index,
/// newest first, at most `max` of them; feeding `compaction::purge_upto` a 1 MiB budget
/// keeps the newest entries that fit.
#[tokio::test]
async fn sizes_newest_first_feed_the_byte_limit() {
    let dir = TempDir::new("sizes");
    let mut store = open(&dir, LogOptions::default()).await;
    let mut batch = entries(1, 1..6, 100_000);
    batch.extend(entries(1, 6..11, 300_000));
    append_durably(&mut store, batch).await;
    let sizes = store.sizes_newest_first(8, 4);
    assert_eq!(sizes, [(8, 300_000), (7, 300_000), (6, 300_000), (5, 100_000)]);
    let behind = store.sizes_newest_first(8, u64::MAX);
    assert_eq!(super::super::compaction::purge_upto(behind, 100, 1 << 20), Some(4), "keeps 8..=5 (1 000 000 bytes)");
    assert!(store.sizes_newest_first(0, 10).is_empty());
}
