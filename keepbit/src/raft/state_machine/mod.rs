//! The Raft state machine: applies committed entries to the `Machine`, and builds,
//! stores and installs snapshots of it.
//!
//! Snapshots are written to `<dir>/snapshot` atomically (a temporary file of their own,
//! fsync, rename, directory fsync) and loaded at start, after which openraft re-applies the
//! committed entries that follow them. openraft may build a snapshot while it installs one
//! from the leader; whichever finishes, the current snapshot (in memory and on disk) is only
//! ever replaced by one at least as new, so a stale build cannot overwrite a newer install
//! the log has already been purged behind.
//!
//! File format: version byte 2, then crc32c(body) (u32 LE), then body =
//! postcard(`SnapshotFile`). Version 1 (no checksum) is still read.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use super::log_store::REPAIR;
use super::types::{LogId, LogPosition, Response, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::atomic_file::{remove_temporaries, Staged};
use crate::machine::Machine;
use crate::reply::Reply;
use crate::store::Keyspace;

const SNAPSHOT_FILE: &str = "snapshot";
const FILE_VERSION: u8 = 2;
/// The first format, without a checksum; still read, never written.
const FILE_VERSION_UNCHECKED: u8 = 1;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

type Current = Option<(SnapshotMeta, Arc<Vec<u8>>)>;

#[derive(Clone)]
pub struct StateMachine {
    machine: Arc<Machine<LogPosition>>,
    dir: PathBuf,
    /// The newest snapshot; its lock is held while the file on disk is replaced too.
    current: Arc<Mutex<Current>>,
    /// Entry payload bytes applied since start (compaction snapshots by bytes).
    applied_bytes: Arc<AtomicU64>,
}

fn io_err(msg: impl std::fmt::Display) -> io::Error {
    io::Error::other(msg.to_string())
}

fn encode_file(meta: &SnapshotMeta, data: &[u8]) -> io::Result<Vec<u8>> {
    let body = postcard::to_stdvec(&SnapshotFile { meta: meta.clone(), data: data.to_vec() }).map_err(io_err)?;
    let mut bytes = Vec::with_capacity(body.len() + 5);
    bytes.push(FILE_VERSION);
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

fn decode_file(path: &Path, bytes: &[u8]) -> io::Result<SnapshotFile> {
    let corrupt = |reason: String| {
        io_err(format!("state machine: snapshot file {} is corrupt: {reason}; to repair, {REPAIR}", path.display()))
    };
    let body = match bytes.split_first() {
        Some((&FILE_VERSION, rest)) => {
            let Some((crc, body)) = rest.split_first_chunk::<4>() else {
                return Err(corrupt("shorter than its checksum".into()));
            };
            if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
                return Err(corrupt("checksum mismatch".into()));
            }
            body
        }
        Some((&FILE_VERSION_UNCHECKED, body)) => body,
        Some((version, _)) => return Err(corrupt(format!("unsupported format version {version}"))),
        None => return Err(corrupt("empty".into())),
    };
    postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))
}

fn index_of(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.as_ref().map_or(0, |l| l.index)
}

impl StateMachine {
    /// Opens the state machine, restoring `machine` from the stored snapshot if any.
    pub fn open(dir: &Path, machine: Arc<Machine<LogPosition>>) -> io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        remove_temporaries(dir, SNAPSHOT_FILE)?;
        let sm = StateMachine {
            machine,
            dir: dir.to_owned(),
            current: Arc::new(Mutex::new(None)),
            applied_bytes: Arc::default(),
        };
        let path = dir.join(SNAPSHOT_FILE);
        if path.exists() {
            let file = decode_file(&path, &std::fs::read(&path)?)?;
            sm.restore(&file.meta, &file.data)?;
            *sm.lock() = Some((file.meta, Arc::new(file.data)));
        }
        Ok(sm)
    }

    /// The count of entry payload bytes applied since start.
    pub fn applied_bytes(&self) -> Arc<AtomicU64> {
        self.applied_bytes.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn restore(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let ks = Keyspace::from_snapshot(data).map_err(io_err)?;
        let position = LogPosition { applied: meta.last_log_id, membership: meta.last_membership.clone() };
        self.machine.install(ks, position);
        Ok(())
    }

    /// Makes `meta`/`data` the current snapshot, in memory and on disk, unless the current
    /// one is newer; a stale one is discarded. Blocking I/O.
    fn publish(&self, meta: &SnapshotMeta, data: Arc<Vec<u8>>) -> io::Result<()> {
        let sync = |f: &std::fs::File| f.sync_all();
        let staged = Staged::write(&self.dir, SNAPSHOT_FILE, &encode_file(meta, &data)?, sync)?;
        let mut current = self.lock();
        if let Some((newer, _)) = current.as_ref().filter(|(c, _)| c.last_log_id > meta.last_log_id) {
            tracing::warn!(
                "discarding a stale snapshot up to log index {}: the current one is up to {}",
                index_of(meta),
                index_of(newer)
            );
            return Ok(());
        }
        staged.commit(true, sync)?;
        *current = Some((meta.clone(), data));
        Ok(())
    }

    /// The part of `build_snapshot` after the view is taken: encode and publish. Blocking I/O.
    fn finish_build(&self, ks: Keyspace, position: LogPosition) -> io::Result<Snapshot> {
        let data = ks.to_snapshot().map_err(io_err)?;
        let meta = SnapshotMeta { last_log_id: position.applied, last_membership: position.membership };
        let data = Arc::new(data);
        self.publish(&meta, data.clone())?;
        // Tests tell the nodes' snapshot points apart by this line.
        tracing::info!("built snapshot up to log index {} ({} bytes)", index_of(&meta), data.len());
        Ok(Snapshot { meta, snapshot: data.to_vec() })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let LogPosition { applied, membership } = self.machine.meta();
        Ok((applied, membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id;
            let response = match entry.payload {
                EntryPayload::Normal(req) => {
                    self.applied_bytes.fetch_add(req.0.len() as u64, Ordering::Relaxed);
                    let w = self.machine.apply_logged(|p| p.applied = Some(log_id), &req.0);
                    Response { reply: w.reply, db_after: w.db_after }
                }
                EntryPayload::Membership(m) => {
                    self.machine.update_meta(|p| {
                        p.applied = Some(log_id);
                        p.membership = StoredMembership::new(Some(log_id), m);
                    });
                    Response { reply: Reply::Ok, db_after: 0 }
                }
                EntryPayload::Blank => {
                    self.machine.update_meta(|p| p.applied = Some(log_id));
                    Response { reply: Reply::Ok, db_after: 0 }
                }
            };
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> Result<(), io::Error> {
        self.restore(meta, &snapshot)?;
        let size_bytes = snapshot.len();
        let (this, published) = (self.clone(), meta.clone());
        tokio::task::spawn_blocking(move || this.publish(&published, Arc::new(snapshot))).await.map_err(io_err)??;
        // Operators (and tests) tell a catch-up by snapshot from one by log by this line.
        tracing::info!("installed snapshot up to log index {} ({size_bytes} bytes)", index_of(meta));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.lock().as_ref().map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: data.to_vec() }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // Clone under the node's lock (a consistent view), serialize and write outside it.
        let (ks, position) = self.machine.snapshot_view();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.finish_build(ks, position)).await.map_err(io_err)?
    }
}

#[cfg(test)]
mod tests;
