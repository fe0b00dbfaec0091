//! The writer thread: owns every file and executes queued commands in order, group-committing appends.

use super::*;

/// Owns every file; runs on its own thread and executes commands in queue order.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) opts: LogOptions,
    pub(super) segments: Vec<Segment>,
    /// Handle on `segments.last()`.
    pub(super) active: Option<File>,
    pub(super) meta: Meta,
    pub(super) meta_dirty: bool,
    pub(super) fsyncs: Arc<AtomicU64>,
    /// After a failed write the files no longer match what callers were told: stop.
    pub(super) failure: Option<String>,
    /// Where each fsync's latency and each failed write is reported (health, metrics).
    pub(super) probe: Option<Arc<FsyncProbe>>,
}

impl Writer {
    pub(super) fn recover(dir: PathBuf, opts: LogOptions, fsyncs: Arc<AtomicU64>) -> io::Result<(Writer, State)> {
        if !dir.exists() {
            fs::create_dir_all(&dir)?;
            // The new directory's own entry must survive a crash too.
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if opts.fsync != Fsync::Os {
                File::open(parent)?.sync_all()?;
            }
        }
        remove_temporaries(&dir, META_FILE)?;
        let meta = read_meta(&dir)?;
        let purged_next = meta.last_purged.as_ref().map(|l| l.index + 1);
        let mut firsts = list_segments(&dir)?;
        // A purge records its id before deleting, so finish an interrupted one.
        let covered = firsts.windows(2).take_while(|w| purged_next.is_some_and(|p| w[1] <= p)).count();
        for first in firsts.drain(..covered) {
            remove_if_present(&segment_path(&dir, first))?;
        }
        let mut writer = Writer {
            dir,
            opts,
            segments: Vec::new(),
            active: None,
            meta,
            meta_dirty: false,
            fsyncs,
            failure: None,
            probe: None,
        };
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
            let scan = scan_segment(&path, first, k + 1 == firsts.len())?;
            if scan.torn {
                tracing::warn!(path = %path.display(), offset = scan.end_offset, "raft log: cutting a torn tail");
            }
            for entry in scan.entries {
                if purged_next.is_none_or(|p| entry.log_id.index >= p) {
                    log.insert(entry.log_id.index, entry);
                }
            }
            let segment =
                Segment { first_index: first, record_offsets: scan.record_offsets, end_offset: scan.end_offset };
            writer.segments.push(segment);
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

    pub(super) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Queued>) {
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

    pub(super) fn process(&mut self, batch: Vec<Queued>) {
        let mut unflushed = Vec::new();
        for queued in batch {
            match queued.cmd {
                Job::Append { entries, callback } => {
                    match self.guarded(|w| w.write_entries(&entries)) {
                        Ok(()) => unflushed.push(callback),
                        Err(e) => callback.io_completed(Err(e)),
                    }
                    if self.opts.fsync == Fsync::Always {
                        self.flush_appends(&mut unflushed);
                    }
                }
                Job::SaveCommitted { committed } => {
                    self.meta.committed = committed;
                    self.meta_dirty = true;
                }
                Job::SaveVote { vote, done } => {
                    self.flush_appends(&mut unflushed);
                    self.meta.vote = Some(vote);
                    let _ = done.send(self.guarded(|w| w.persist_meta(true)));
                }
                Job::TruncateFrom { index, done } => {
                    self.flush_appends(&mut unflushed);
                    let _ = done.send(self.guarded(|w| w.truncate_from(index)));
                }
                Job::Purge { log_id, done } => {
                    self.flush_appends(&mut unflushed);
                    let _ = done.send(self.guarded(|w| w.purge(log_id)));
                }
                Job::Flush { done } => {
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

    pub(super) fn guarded<T>(&mut self, op: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        if let Some(reason) = &self.failure {
            return Err(LogError::WriterFailed(reason.clone()).into());
        }
        let result = op(self);
        if let Err(e) = &result {
            if let Some(probe) = &self.probe {
                probe.record(std::time::Duration::ZERO, false);
            }
            tracing::error!(error = %e, "raft log: write failed; the log refuses further writes");
            self.failure = Some(e.to_string());
        }
        result
    }

    /// Makes written appends durable (per policy), then completes their callbacks.
    pub(super) fn flush_appends(&mut self, unflushed: &mut Vec<IOFlushed<TypeConfig>>) {
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

    pub(super) fn next_index(&self) -> Option<u64> {
        match self.segments.last() {
            Some(segment) => Some(segment.next_index()),
            None => self.meta.last_purged.as_ref().map(|l| l.index + 1),
        }
    }

    pub(super) fn write_entries(&mut self, entries: &[Entry]) -> io::Result<()> {
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

    pub(super) fn write_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let segment = self.segments.last_mut().ok_or_else(no_active_segment)?;
        let file = self.active.as_mut().ok_or_else(no_active_segment)?;
        crate::faults::global().before_append(buf.len())?;
        file.seek(SeekFrom::Start(segment.end_offset))?;
        file.write_all(buf)?;
        segment.end_offset += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Starts a new segment at `first_index`; the previous one is made durable first so a
    /// torn record can only ever sit in the last segment.
    pub(super) fn roll(&mut self, first_index: u64) -> io::Result<()> {
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
    pub(super) fn truncate_from(&mut self, index: u64) -> io::Result<()> {
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
    pub(super) fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        if self.meta.last_purged.as_ref() >= Some(&log_id) {
            return Ok(());
        }
        self.meta.last_purged = Some(log_id);
        self.persist_meta(true)?;
        self.purge_segments()
    }

    pub(super) fn purge_segments(&mut self) -> io::Result<()> {
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
    pub(super) fn zero_tail(&self, file: &File, end_offset: u64) -> io::Result<()> {
        file.set_len(end_offset)?;
        file.set_len(end_offset.max(self.opts.segment_size_bytes))?;
        self.sync_all(file)
    }

    pub(super) fn persist_meta_if_dirty(&mut self) -> io::Result<()> {
        match self.meta_dirty {
            true => self.persist_meta(false),
            false => Ok(()),
        }
    }

    /// Replaces the metadata file atomically. `durable_rename` = also fsync the directory;
    /// skipped for committed-only updates, since either file version holds the same vote.
    /// A durable update (a vote) is synced under every fsync policy, `os` included: a node
    /// that forgets its vote after a power loss can vote twice in one term.
    pub(super) fn persist_meta(&mut self, durable_rename: bool) -> io::Result<()> {
        self.meta.format_version = META_FORMAT_VERSION;
        let payload = postcard::to_stdvec(&self.meta).map_err(io::Error::other)?;
        let mut buf = Vec::with_capacity(payload.len() + RECORD_HEADER_BYTES as usize);
        push_record(&mut buf, &payload);
        let sync = |f: &File| match durable_rename {
            true => self.forced_sync(|| f.sync_all()),
            false => self.sync_all(f),
        };
        write_atomic_with(&self.dir, META_FILE, &buf, durable_rename, sync)?;
        self.meta_dirty = false;
        Ok(())
    }

    pub(super) fn sync_data(&self, file: &File) -> io::Result<()> {
        self.counted_sync(|| file.sync_data())
    }

    pub(super) fn sync_all(&self, file: &File) -> io::Result<()> {
        self.counted_sync(|| file.sync_all())
    }

    pub(super) fn sync_dir(&self) -> io::Result<()> {
        self.counted_sync(|| File::open(&self.dir)?.sync_all())
    }

    pub(super) fn counted_sync(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if self.opts.fsync == Fsync::Os {
            return Ok(());
        }
        self.forced_sync(sync)
    }

    /// Syncs whatever the policy.
    pub(super) fn forced_sync(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let started = std::time::Instant::now();
        crate::faults::global().before_fsync()?;
        sync()?;
        if let Some(probe) = &self.probe {
            probe.record(started.elapsed(), true);
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub(super) fn no_active_segment() -> io::Error {
    io::Error::other("raft log: no active segment (internal error)")
}
