//! The durable Raft log behind openraft's `RaftLogStorage`.
//!
//! Files under the caller's directory:
//! - `<first index, 20 digits>.log`: segments preallocated to `segment_size_bytes`, holding
//!   records `[len: u32 LE][crc32c(payload): u32 LE][payload = postcard(Entry)]`. A zero
//!   `len` ends a segment's data; a full segment is rolled into a new one.
//! - `meta`: vote, committed and last purged log ids, replaced atomically (temp file,
//!   fsync, rename, directory fsync).
//!
//! One writer thread owns the files and performs all write I/O in queue order, so votes,
//! appends, truncations and purges never reorder. Under [`FsyncPolicy::Batch`] it drains the
//! queue, writes every queued append, issues one `fdatasync` and only then completes their
//! `IOFlushed` callbacks (group commit). Readers never touch the disk: live entries are kept
//! in memory (bounded by openraft's snapshot + purge policy) and inserted before `append`
//! returns.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::types::{Entry, LogId, TypeConfig, Vote};

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
const META_TMP_FILE: &str = "meta.tmp";
const META_FORMAT_VERSION: u32 = 1;
const SEGMENT_SUFFIX: &str = ".log";
const SEGMENT_NAME_DIGITS: usize = 20;

/// When appended entries are fsynced before their `IOFlushed` callback completes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// One fsync per `append` call.
    Always,
    /// Group commit: one fsync for every append queued while the previous one ran.
    #[default]
    Batch,
    /// Never fsync; callbacks complete once the data is written to the OS.
    Os,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogOptions {
    pub segment_size_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES, fsync: FsyncPolicy::default() }
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

/// Why the log refused to open or to write; surfaced to openraft as `io::Error::other`.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raft log: segment_size_bytes {0} outside {SEGMENT_SIZE_BYTES_MIN}..={SEGMENT_SIZE_BYTES_MAX}")]
    SegmentSize(u64),
    #[error("raft log: {path}: record at byte {offset} holds index {found}, expected {expected}")]
    OutOfOrder { path: PathBuf, offset: u64, expected: u64, found: u64 },
    #[error("raft log: entries missing before {path}: the log continues at index {next_index}")]
    Hole { path: PathBuf, next_index: u64 },
    #[error("raft log: {path}: record at byte {offset} passed its checksum but does not decode: {reason}")]
    Undecodable { path: PathBuf, offset: u64, reason: String },
    #[error("raft log: metadata file {path} is corrupt: {reason}")]
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

enum Cmd {
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
    cmd: Cmd,
    _permit: OwnedSemaphorePermit,
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, recovering from a torn tail.
    pub async fn open(dir: &Path, opts: LogOptions) -> io::Result<LogStore> {
        opts.validate()?;
        let fsyncs = Arc::new(AtomicU64::new(0));
        let (dir, writer_fsyncs) = (dir.to_path_buf(), fsyncs.clone());
        let (writer, state) = tokio::task::spawn_blocking(move || Writer::recover(dir, opts, writer_fsyncs))
            .await
            .map_err(io::Error::other)??;
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

    /// Waits until everything queued so far, including the committed log id, is durable.
    pub async fn flush(&self) -> io::Result<()> {
        let permit = self.permit().await?;
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Flush { done }, permit)?;
        wait(rx).await
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn permit(&self) -> io::Result<OwnedSemaphorePermit> {
        let permits = self.shared.queue_permits.clone();
        permits.acquire_owned().await.map_err(|_| LogError::WriterGone.into())
    }

    fn send(&self, cmd: Cmd, permit: OwnedSemaphorePermit) -> io::Result<()> {
        let queued = Queued { cmd, _permit: permit };
        self.shared.queue.send(queued).map_err(|_| LogError::WriterGone.into())
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
        self.send(Cmd::SaveVote { vote: *vote, done }, permit)?;
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
        self.send(Cmd::SaveCommitted { committed }, permit)
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
        self.send(Cmd::Append { entries, callback }, permit)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let index = last_log_id.map_or(0, |l| l.index.saturating_add(1));
        let permit = self.permit().await?;
        let (done, rx) = oneshot::channel();
        {
            let mut state = self.state();
            state.log.split_off(&index);
            self.send(Cmd::TruncateFrom { index, done }, permit)?;
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
            self.send(Cmd::Purge { log_id, done }, permit)?;
        }
        wait(rx).await
    }
}

// ------------------------------------------------------------------ files

#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    format_version: u32,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

/// A segment as the writer knows it: record `i` holds index `first_index + i`.
struct Segment {
    first_index: u64,
    record_offsets: Vec<u64>,
    end_offset: u64,
}

impl Segment {
    fn next_index(&self) -> u64 {
        self.first_index + self.record_offsets.len() as u64
    }
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:0width$}{SEGMENT_SUFFIX}", width = SEGMENT_NAME_DIGITS))
}

/// First indexes of the segment files in `dir`, ascending; other files are ignored.
fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for dir_entry in fs::read_dir(dir)? {
        let name = dir_entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else { continue };
        if stem.len() != SEGMENT_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(first) = stem.parse() {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

fn push_record(buf: &mut Vec<u8>, payload: &[u8]) {
    // Callers bound payloads by RECORD_PAYLOAD_BYTES_MAX, which fits in a u32.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read_meta(dir: &Path) -> io::Result<Meta> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Meta::default()),
        Err(e) => return Err(e),
    };
    let corrupt = |reason: String| io::Error::from(LogError::CorruptMeta { path: path.clone(), reason });
    let Some((header, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(corrupt("shorter than a record header".into()));
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload = rest.get(..len).ok_or_else(|| corrupt("truncated record".into()))?;
    if crc32c::crc32c(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let meta: Meta = postcard::from_bytes(payload).map_err(|e| corrupt(e.to_string()))?;
    if meta.format_version != META_FORMAT_VERSION {
        return Err(corrupt(format!("unsupported format version {}", meta.format_version)));
    }
    Ok(meta)
}

/// One segment read at open. `torn` = data ended in a record that was never fully written.
struct Scan {
    entries: Vec<Entry>,
    record_offsets: Vec<u64>,
    end_offset: u64,
    torn: bool,
}

fn scan_segment(path: &Path, first_index: u64) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_bytes = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut scan = Scan { entries: Vec::new(), record_offsets: Vec::new(), end_offset: 0, torn: false };
    loop {
        let offset = scan.end_offset;
        let remaining_bytes = file_bytes - offset;
        if remaining_bytes < RECORD_HEADER_BYTES {
            // A segment filled to within a header of its end; only zeros may follow.
            let mut tail = Vec::new();
            reader.read_to_end(&mut tail)?;
            scan.torn = tail.iter().any(|&b| b != 0);
            return Ok(scan);
        }
        let mut header = [0u8; 8];
        reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 {
            return Ok(scan);
        }
        if u64::from(len) > remaining_bytes - RECORD_HEADER_BYTES {
            scan.torn = true;
            return Ok(scan);
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload)?;
        if crc32c::crc32c(&payload) != crc {
            scan.torn = true;
            return Ok(scan);
        }
        let entry: Entry = postcard::from_bytes(&payload).map_err(|e| LogError::Undecodable {
            path: path.to_path_buf(),
            offset,
            reason: e.to_string(),
        })?;
        let expected = first_index + scan.record_offsets.len() as u64;
        if entry.log_id.index != expected {
            let found = entry.log_id.index;
            return Err(LogError::OutOfOrder { path: path.to_path_buf(), offset, expected, found }.into());
        }
        scan.record_offsets.push(offset);
        scan.entries.push(entry);
        scan.end_offset = offset + RECORD_HEADER_BYTES + u64::from(len);
    }
}

// ------------------------------------------------------------------ writer

/// Owns every file; runs on its own thread and executes commands in queue order.
struct Writer {
    dir: PathBuf,
    opts: LogOptions,
    segments: Vec<Segment>,
    /// Handle on `segments.last()`.
    active: Option<File>,
    meta: Meta,
    meta_dirty: bool,
    fsyncs: Arc<AtomicU64>,
    /// After a failed write the files no longer match what callers were told: stop.
    failure: Option<String>,
}

impl Writer {
    fn recover(dir: PathBuf, opts: LogOptions, fsyncs: Arc<AtomicU64>) -> io::Result<(Writer, State)> {
        if !dir.exists() {
            fs::create_dir_all(&dir)?;
            // The new directory's own entry must survive a crash too.
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if opts.fsync != FsyncPolicy::Os {
                File::open(parent)?.sync_all()?;
            }
        }
        let meta = read_meta(&dir)?;
        let purged_next = meta.last_purged.as_ref().map(|l| l.index + 1);
        let mut firsts = list_segments(&dir)?;
        // A purge records its id before deleting, so finish an interrupted one.
        let covered = firsts.windows(2).take_while(|w| purged_next.is_some_and(|p| w[1] <= p)).count();
        for first in firsts.drain(..covered) {
            remove_if_present(&segment_path(&dir, first))?;
        }
        let mut writer =
            Writer { dir, opts, segments: Vec::new(), active: None, meta, meta_dirty: false, fsyncs, failure: None };
        let mut log = BTreeMap::new();
        for (k, &first) in firsts.iter().enumerate() {
            let path = segment_path(&writer.dir, first);
            let next_index = writer.segments.last().map(Segment::next_index).or(purged_next);
            let hole = match writer.segments.last() {
                Some(_) => next_index != Some(first),
                None => next_index.is_some_and(|n| first > n),
            };
            if let (true, Some(next_index)) = (hole, next_index) {
                return Err(LogError::Hole { path, next_index }.into());
            }
            let scan = scan_segment(&path, first)?;
            for entry in scan.entries {
                if purged_next.is_none_or(|p| entry.log_id.index >= p) {
                    log.insert(entry.log_id.index, entry);
                }
            }
            let segment =
                Segment { first_index: first, record_offsets: scan.record_offsets, end_offset: scan.end_offset };
            writer.segments.push(segment);
            if scan.torn {
                let later = &firsts[k + 1..];
                tracing::warn!(path = %path.display(), offset = scan.end_offset, later_segments = later.len(),
                    "raft log: dropping a torn tail");
                for &first in later.iter().rev() {
                    remove_if_present(&segment_path(&writer.dir, first))?;
                }
                if !later.is_empty() {
                    writer.sync_dir()?;
                }
                break;
            }
        }
        writer.purge_segments()?;
        if let Some(last) = writer.segments.last() {
            // Zero whatever follows the valid data so a stale record can never reappear
            // behind a new one.
            let file = OpenOptions::new().read(true).write(true).open(segment_path(&writer.dir, last.first_index))?;
            writer.zero_tail(&file, last.end_offset)?;
            writer.active = Some(file);
        }
        tracing::info!(entries = log.len(), segments = writer.segments.len(), "raft log: recovered");
        let state = State {
            log,
            last_purged: writer.meta.last_purged,
            vote: writer.meta.vote,
            committed: writer.meta.committed,
        };
        Ok((writer, state))
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Queued>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH_COMMANDS_MAX {
                match rx.try_recv() {
                    Ok(queued) => batch.push(queued),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        // Every handle is gone; keep the last committed id.
        if let Err(e) = self.guarded(|w| w.persist_meta_if_dirty()) {
            tracing::error!(error = %e, "raft log: saving metadata at shutdown failed");
        }
    }

    fn process(&mut self, batch: Vec<Queued>) {
        let mut unflushed = Vec::new();
        for queued in batch {
            match queued.cmd {
                Cmd::Append { entries, callback } => {
                    match self.guarded(|w| w.write_entries(&entries)) {
                        Ok(()) => unflushed.push(callback),
                        Err(e) => callback.io_completed(Err(e)),
                    }
                    if self.opts.fsync == FsyncPolicy::Always {
                        self.flush_appends(&mut unflushed);
                    }
                }
                Cmd::SaveCommitted { committed } => {
                    self.meta.committed = committed;
                    self.meta_dirty = true;
                }
                Cmd::SaveVote { vote, done } => {
                    self.flush_appends(&mut unflushed);
                    self.meta.vote = Some(vote);
                    let _ = done.send(self.guarded(|w| w.persist_meta(true)));
                }
                Cmd::TruncateFrom { index, done } => {
                    self.flush_appends(&mut unflushed);
                    let _ = done.send(self.guarded(|w| w.truncate_from(index)));
                }
                Cmd::Purge { log_id, done } => {
                    self.flush_appends(&mut unflushed);
                    let _ = done.send(self.guarded(|w| w.purge(log_id)));
                }
                Cmd::Flush { done } => {
                    self.flush_appends(&mut unflushed);
                    let _ = done.send(self.guarded(|w| w.persist_meta_if_dirty()));
                }
            }
        }
        self.flush_appends(&mut unflushed);
        if let Err(e) = self.guarded(|w| w.persist_meta_if_dirty()) {
            tracing::error!(error = %e, "raft log: saving the committed log id failed");
        }
    }

    fn guarded<T>(&mut self, op: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        if let Some(reason) = &self.failure {
            return Err(LogError::WriterFailed(reason.clone()).into());
        }
        let result = op(self);
        if let Err(e) = &result {
            tracing::error!(error = %e, "raft log: write failed; the log refuses further writes");
            self.failure = Some(e.to_string());
        }
        result
    }

    /// Makes written appends durable (per policy), then completes their callbacks.
    fn flush_appends(&mut self, unflushed: &mut Vec<IOFlushed<TypeConfig>>) {
        if unflushed.is_empty() {
            return;
        }
        let result = self.guarded(|w| match &w.active {
            Some(file) => w.sync_data(file),
            None => Ok(()),
        });
        for callback in unflushed.drain(..) {
            let result = result.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string()));
            callback.io_completed(result);
        }
    }

    fn next_index(&self) -> Option<u64> {
        match self.segments.last() {
            Some(segment) => Some(segment.next_index()),
            None => self.meta.last_purged.as_ref().map(|l| l.index + 1),
        }
    }

    fn write_entries(&mut self, entries: &[Entry]) -> io::Result<()> {
        let mut buf = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            if let Some(next_index) = self.next_index().filter(|&n| n != index) {
                return Err(LogError::NonContiguousAppend { index, next_index }.into());
            }
            let payload = postcard::to_stdvec(entry).map_err(io::Error::other)?;
            if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
                return Err(LogError::RecordTooLarge { index, size_bytes: payload.len() }.into());
            }
            let record_bytes = RECORD_HEADER_BYTES + payload.len() as u64;
            let full = match self.segments.last() {
                None => true,
                Some(s) => {
                    !s.record_offsets.is_empty()
                        && s.end_offset + buf.len() as u64 + record_bytes > self.opts.segment_size_bytes
                }
            };
            if full {
                self.write_buf(&mut buf)?;
                self.roll(index)?;
            }
            let segment = self.segments.last_mut().ok_or_else(no_active_segment)?;
            segment.record_offsets.push(segment.end_offset + buf.len() as u64);
            push_record(&mut buf, &payload);
        }
        self.write_buf(&mut buf)
    }

    fn write_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let segment = self.segments.last_mut().ok_or_else(no_active_segment)?;
        let file = self.active.as_mut().ok_or_else(no_active_segment)?;
        file.seek(SeekFrom::Start(segment.end_offset))?;
        file.write_all(buf)?;
        segment.end_offset += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Starts a new segment at `first_index`; the previous one is made durable first so a
    /// torn record can only ever sit in the last segment.
    fn roll(&mut self, first_index: u64) -> io::Result<()> {
        if let Some(file) = &self.active {
            self.sync_data(file)?;
        }
        let path = segment_path(&self.dir, first_index);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        file.set_len(self.opts.segment_size_bytes)?;
        self.sync_dir()?;
        self.segments.push(Segment { first_index, record_offsets: Vec::new(), end_offset: 0 });
        self.active = Some(file);
        Ok(())
    }

    /// Removes every entry with index >= `index`, newest first, durably.
    fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let mut removed = false;
        while let Some(segment) = self.segments.last().filter(|s| s.first_index >= index) {
            self.active = None;
            remove_if_present(&segment_path(&self.dir, segment.first_index))?;
            self.segments.pop();
            removed = true;
        }
        if removed {
            // Before touching the survivor: a crash must not leave a later segment behind a
            // shortened one.
            self.sync_dir()?;
        }
        let Some(segment) = self.segments.last_mut() else { return Ok(()) };
        let path = segment_path(&self.dir, segment.first_index);
        if self.active.is_none() {
            self.active = Some(OpenOptions::new().read(true).write(true).open(&path)?);
        }
        let keep = (index.saturating_sub(segment.first_index)) as usize;
        let Some(&offset) = segment.record_offsets.get(keep) else { return Ok(()) };
        segment.record_offsets.truncate(keep);
        segment.end_offset = offset;
        let file = self.active.as_ref().ok_or_else(no_active_segment)?;
        self.zero_tail(file, offset)
    }

    /// Records `log_id` as purged, then deletes segments holding only purged entries.
    fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        if self.meta.last_purged.as_ref() >= Some(&log_id) {
            return Ok(());
        }
        self.meta.last_purged = Some(log_id);
        self.persist_meta(true)?;
        self.purge_segments()
    }

    fn purge_segments(&mut self) -> io::Result<()> {
        let Some(purged_next) = self.meta.last_purged.as_ref().map(|l| l.index + 1) else { return Ok(()) };
        while let Some(segment) = self.segments.first().filter(|s| s.next_index() <= purged_next) {
            remove_if_present(&segment_path(&self.dir, segment.first_index))?;
            self.segments.remove(0);
            if self.segments.is_empty() {
                self.active = None;
            }
        }
        Ok(())
    }

    /// Cuts the file at `end_offset` and re-extends it with zeros.
    fn zero_tail(&self, file: &File, end_offset: u64) -> io::Result<()> {
        file.set_len(end_offset)?;
        file.set_len(end_offset.max(self.opts.segment_size_bytes))?;
        self.sync_all(file)
    }

    fn persist_meta_if_dirty(&mut self) -> io::Result<()> {
        match self.meta_dirty {
            true => self.persist_meta(false),
            false => Ok(()),
        }
    }

    /// Replaces the metadata file atomically. `durable_rename` = also fsync the directory;
    /// skipped for committed-only updates, since either file version holds the same vote.
    fn persist_meta(&mut self, durable_rename: bool) -> io::Result<()> {
        self.meta.format_version = META_FORMAT_VERSION;
        let payload = postcard::to_stdvec(&self.meta).map_err(io::Error::other)?;
        let mut buf = Vec::with_capacity(payload.len() + RECORD_HEADER_BYTES as usize);
        push_record(&mut buf, &payload);
        let tmp = self.dir.join(META_TMP_FILE);
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(&buf)?;
        self.sync_all(&file)?;
        drop(file);
        fs::rename(&tmp, self.dir.join(META_FILE))?;
        if durable_rename {
            self.sync_dir()?;
        }
        self.meta_dirty = false;
        Ok(())
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.counted_sync(|| file.sync_data())
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        self.counted_sync(|| file.sync_all())
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.counted_sync(|| File::open(&self.dir)?.sync_all())
    }

    fn counted_sync(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if self.opts.fsync == FsyncPolicy::Os {
            return Ok(());
        }
        sync()?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn no_active_segment() -> io::Error {
    io::Error::other("raft log: no active segment (internal error)")
}

#[cfg(test)]
mod tests {
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
        LogOptions { segment_size_bytes: 4096, fsync: FsyncPolicy::Batch }
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
            damage(&path, scan_segment(&path, 0).expect("scan").record_offsets[4]);

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
        let mut store = open(&dir, LogOptions { fsync: FsyncPolicy::Always, ..LogOptions::default() }).await;
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
        let mut store = open(&dir, LogOptions { fsync: FsyncPolicy::Os, ..tiny_segments() }).await;
        append_durably(&mut store, entries(1, 0..40, 500)).await;
        store.save_vote(&Vote::new(1, 1)).await.expect("vote");
        assert_eq!(store.fsync_count(), 0);
        drop(store);
        let mut store = open(&dir, LogOptions { fsync: FsyncPolicy::Os, ..tiny_segments() }).await;
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
}
