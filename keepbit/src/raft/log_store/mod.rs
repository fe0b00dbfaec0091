//! The durable Raft log behind openraft's `RaftLogStorage`.
//!
//! Files under the caller's directory:
//! - `<first index, 20 digits>.log`: segments preallocated to `segment_size_bytes`, holding
//!   records `[len: u32 LE][crc32c(payload): u32 LE][payload = postcard(Entry)]`. A zero
//!   `len` ends a segment's data; a full segment is rolled into a new one. At open, a torn
//!   write at the end of the last segment is cut; any other damage refuses to open
//!   ([`LogError::Corrupt`], rule at `files::scan_segment`, repair in [`REPAIR`]).
//! - `meta`: vote, committed and last purged log ids, replaced atomically (temp file,
//!   fsync, rename, directory fsync).
//!
//! One writer thread owns the files and performs all write I/O in queue order, so votes,
//! appends, truncations and purges never reorder. Under [`Fsync::Batch`] it drains the
//! queue, writes every queued append, issues one `fdatasync` and only then completes their
//! `IOFlushed` callbacks (group commit). Readers never touch the disk: live entries are kept
//! in memory and inserted before `append` returns. What bounds them is compaction
//! (`raft::compaction`): a snapshot after `snapshot_bytes` applied, and a purge behind it
//! down to `log_keep_entries` / `log_keep_bytes`, which reads [`LogStore::sizes_newest_first`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::types::{Entry, LogId, TypeConfig, Vote};
use crate::atomic_file::{remove_temporaries, write_atomic_with};
pub use crate::config::Fsync;
use crate::metrics::FsyncProbe;

pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * 1024 * 1024;
const SEGMENT_SIZE_BYTES_MIN: u64 = 4 * 1024;
const SEGMENT_SIZE_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Upper bound on one encoded entry (Redis values go up to 512 MiB).
const RECORD_PAYLOAD_BYTES_MAX: usize = 1024 * 1024 * 1024;
const RECORD_HEADER_BYTES: u64 = 8;
/// Commands waiting for the writer; callers wait (asynchronously) beyond this.
const QUEUED_COMMANDS_MAX: usize = 4096;
/// Commands the writer takes into one group commit.
const BATCH_COMMANDS_MAX: usize = 1024;
const META_FILE: &str = "meta";
const META_FORMAT_VERSION: u32 = 1;
const SEGMENT_SUFFIX: &str = ".log";
const SEGMENT_NAME_DIGITS: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogOptions {
    pub segment_size_bytes: u64,
    pub fsync: Fsync,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES, fsync: Fsync::default() }
    }
}

impl LogOptions {
    fn validate(&self) -> io::Result<()> {
        let range = SEGMENT_SIZE_BYTES_MIN..=SEGMENT_SIZE_BYTES_MAX;
        if range.contains(&self.segment_size_bytes) {
            return Ok(());
        }
        Err(io::Error::new(io::ErrorKind::InvalidInput, LogError::SegmentSize(self.segment_size_bytes)))
    }
}

/// What to do about a log that refuses to open because its files are damaged.
pub const REPAIR: &str = "restore this node from a peer: stop it, remove it from the cluster, \
    move its data_dir aside, and re-add it (README, \"Repairing a node\")";

/// Why the log refused to open or to write; surfaced to openraft as `io::Error::other`.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raft log: segment_size_bytes {0} outside {SEGMENT_SIZE_BYTES_MIN}..={SEGMENT_SIZE_BYTES_MAX}")]
    SegmentSize(u64),
    #[error("raft log: {path}: record at byte {offset} holds index {found}, expected {expected}; to repair, {REPAIR}")]
    OutOfOrder { path: PathBuf, offset: u64, expected: u64, found: u64 },
    #[error("raft log: entries missing before {path}: the log continues at index {next_index}; to repair, {REPAIR}")]
    Hole { path: PathBuf, next_index: u64 },
    #[error(
        "raft log: {path}: record at byte {offset} passed its checksum but does not decode: {reason}; \
        to repair, {REPAIR}"
    )]
    Undecodable { path: PathBuf, offset: u64, reason: String },
    #[error(
        "raft log: {path}: record at byte {offset}: {reason}; the damaged \
        data may hold acknowledged entries, so the log refuses to cut it. To repair, {REPAIR}"
    )]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("raft log: metadata file {path} is corrupt: {reason}; to repair, {REPAIR}")]
    CorruptMeta { path: PathBuf, reason: String },
    #[error("raft log: append at index {index} but the log continues at index {next_index}")]
    NonContiguousAppend { index: u64, next_index: u64 },
    #[error("raft log: entry {index} encodes to {size_bytes} bytes, over the {RECORD_PAYLOAD_BYTES_MAX}-byte limit")]
    RecordTooLarge { index: u64, size_bytes: usize },
    #[error("raft log: an earlier write failed, refusing further writes: {0}")]
    WriterFailed(String),
    #[error("raft log: the writer thread is gone")]
    WriterGone,
}

impl From<LogError> for io::Error {
    fn from(e: LogError) -> Self {
        io::Error::other(e)
    }
}

/// The durable log; cheap to clone, every clone sees the same entries.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    queue: mpsc::UnboundedSender<Queued>,
    queue_permits: Arc<Semaphore>,
    fsyncs: Arc<AtomicU64>,
}

/// What readers see; the writer's files follow it in queue order.
#[derive(Default)]
struct State {
    log: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

impl State {
    /// The index the next append must carry, if the log constrains it.
    fn next_index(&self) -> Option<u64> {
        match self.log.last_key_value() {
            Some((index, _)) => Some(index + 1),
            None => self.last_purged.as_ref().map(|l| l.index + 1),
        }
    }
}

type Done = oneshot::Sender<io::Result<()>>;

enum Job {
    Append {
        entries: Vec<Entry>,
        callback: IOFlushed<TypeConfig>,
    },
    SaveVote {
        vote: Vote,
        done: Done,
    },
    /// Coalesced: persisted at the end of the writer's batch, nobody waits for it.
    SaveCommitted {
        committed: Option<LogId>,
    },
    TruncateFrom {
        index: u64,
        done: Done,
    },
    Purge {
        log_id: LogId,
        done: Done,
    },
    Flush {
        done: Done,
    },
}

struct Queued {
    cmd: Job,
    _permit: OwnedSemaphorePermit,
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, cutting a torn tail (see
    /// `files::scan_segment` for the rule) and refusing any other damage.
    pub async fn open(dir: &Path, opts: LogOptions) -> io::Result<LogStore> {
        LogStore::open_probed(dir, opts, None).await
    }

    /// [`LogStore::open`], reporting every fsync and failed write to `probe`.
    pub async fn open_probed(dir: &Path, opts: LogOptions, probe: Option<Arc<FsyncProbe>>) -> io::Result<LogStore> {
        opts.validate()?;
        let fsyncs = Arc::new(AtomicU64::new(0));
        let (dir, writer_fsyncs) = (dir.to_path_buf(), fsyncs.clone());
        let (mut writer, state) = tokio::task::spawn_blocking(move || Writer::recover(dir, opts, writer_fsyncs))
            .await
            .map_err(io::Error::other)??;
        writer.probe = probe;
        let (queue, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new().name("raft-log-writer".into()).spawn(move || writer.run(rx))?;
        let shared = Shared {
            state: Mutex::new(state),
            queue,
            queue_permits: Arc::new(Semaphore::new(QUEUED_COMMANDS_MAX)),
            fsyncs,
        };
        Ok(LogStore { shared: Arc::new(shared) })
    }

    /// fsync/fdatasync calls issued so far (segments, metadata and directory).
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// `(index, payload bytes)` of up to `max` entries at or before `upto`, newest first:
    /// what the byte limit on the log kept behind a snapshot counts.
    pub fn sizes_newest_first(&self, upto: u64, max: u64) -> Vec<(u64, u64)> {
        let state = self.state();
        let take = usize::try_from(max).unwrap_or(usize::MAX);
        state.log.range(..=upto).rev().take(take).map(|(&i, e)| (i, payload_bytes(e))).collect()
    }

    /// Waits until everything queued so far, including the committed log id, is durable.
    pub async fn flush(&self) -> io::Result<()> {
        let permit = self.permit().await?;
        let (done, rx) = oneshot::channel();
        self.send(Job::Flush { done }, permit)?;
        wait(rx).await
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn permit(&self) -> io::Result<OwnedSemaphorePermit> {
        let permits = self.shared.queue_permits.clone();
        permits.acquire_owned().await.map_err(|_| LogError::WriterGone.into())
    }

    fn send(&self, cmd: Job, permit: OwnedSemaphorePermit) -> io::Result<()> {
        let queued = Queued { cmd, _permit: permit };
        self.shared.queue.send(queued).map_err(|_| LogError::WriterGone.into())
    }
}

/// An entry's payload size (membership and blank entries count as small).
pub fn payload_bytes(e: &Entry) -> u64 {
    match &e.payload {
        openraft::EntryPayload::Normal(r) => r.0.len() as u64,
        _ => 64,
    }
}

async fn wait(rx: oneshot::Receiver<io::Result<()>>) -> io::Result<()> {
    rx.await.map_err(|_| io::Error::from(LogError::WriterGone))?
}

/// `range` as `[start, end)`; `None` = unbounded end.
fn index_bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => match s.checked_add(1) {
            Some(s) => s,
            None => return (0, Some(0)),
        },
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let (start, end) = index_bounds(&range);
        let state = self.state();
        let entries = match end {
            Some(end) if start >= end => Vec::new(),
            Some(end) => state.log.range(start..end).map(|(_, e)| e.clone()).collect(),
            None => state.log.range(start..).map(|(_, e)| e.clone()).collect(),
        };
        Ok(entries)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.state().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let state = self.state();
        let last = state.log.values().next_back().map(|e| e.log_id);
        Ok(LogState { last_purged_log_id: state.last_purged, last_log_id: last.or(state.last_purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let permit = self.permit().await?;
        let (done, rx) = oneshot::channel();
        self.send(Job::SaveVote { vote: *vote, done }, permit)?;
        wait(rx).await?;
        self.state().vote = Some(*vote);
        Ok(())
    }

    /// Returns once queued: a committed id lost in a crash only means fewer entries are
    /// re-applied at start, and waiting would put a metadata fsync on every commit.
    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let permit = self.permit().await?;
        let mut state = self.state();
        state.committed = committed;
        self.send(Job::SaveCommitted { committed }, permit)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.state().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let permit = self.permit().await?;
        let mut state = self.state();
        let mut next_index = state.next_index();
        for entry in &entries {
            let index = entry.log_id.index;
            if let Some(next_index) = next_index.filter(|&n| n != index) {
                return Err(LogError::NonContiguousAppend { index, next_index }.into());
            }
            next_index = Some(index + 1);
        }
        for entry in &entries {
            state.log.insert(entry.log_id.index, entry.clone());
        }
        // Sent under the lock so queue order is log order even across clones.
        self.send(Job::Append { entries, callback }, permit)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let index = last_log_id.map_or(0, |l| l.index.saturating_add(1));
        let permit = self.permit().await?;
        let (done, rx) = oneshot::channel();
        {
            let mut state = self.state();
            state.log.split_off(&index);
            self.send(Job::TruncateFrom { index, done }, permit)?;
        }
        wait(rx).await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let permit = self.permit().await?;
        let (done, rx) = oneshot::channel();
        {
            let mut state = self.state();
            if state.last_purged.as_ref() >= Some(&log_id) {
                return Ok(());
            }
            state.log = state.log.split_off(&log_id.index.saturating_add(1));
            state.last_purged = Some(log_id);
            self.send(Job::Purge { log_id, done }, permit)?;
        }
        wait(rx).await
    }
}

mod files;
#[cfg(test)]
mod tests;
mod writer;

use files::*;
use writer::*;
