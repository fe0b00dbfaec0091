//! The Raft state machine: applies committed entries to the `Machine`, and builds,
//! stores and installs snapshots of it.
//!
//! Snapshots are written to `<dir>/snapshot` atomically (temp file, fsync, rename,
//! directory fsync) and loaded at start, after which openraft re-applies the committed
//! entries that follow them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use super::types::{LogId, LogPosition, Response, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::atomic_file::write_atomic;
use crate::machine::Machine;
use crate::reply::Reply;
use crate::store::Keyspace;

const SNAPSHOT_FILE: &str = "snapshot";
const FILE_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachine {
    machine: Arc<Machine<LogPosition>>,
    dir: PathBuf,
    current: Arc<Mutex<Option<(SnapshotMeta, Arc<Vec<u8>>)>>>,
}

fn io_err(msg: impl std::fmt::Display) -> io::Error {
    io::Error::other(msg.to_string())
}

impl StateMachine {
    /// Opens the state machine, restoring `machine` from the stored snapshot if any.
    pub fn open(dir: &Path, machine: Arc<Machine<LogPosition>>) -> io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let sm = StateMachine { machine, dir: dir.to_owned(), current: Arc::new(Mutex::new(None)) };
        let path = dir.join(SNAPSHOT_FILE);
        if path.exists() {
            let bytes = std::fs::read(&path)?;
            let file: SnapshotFile = match bytes.split_first() {
                Some((&FILE_VERSION, body)) => postcard::from_bytes(body).map_err(io_err)?,
                _ => return Err(io_err(format!("{}: unsupported snapshot file", path.display()))),
            };
            sm.restore(&file.meta, &file.data)?;
            *sm.lock() = Some((file.meta, Arc::new(file.data)));
        }
        Ok(sm)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(SnapshotMeta, Arc<Vec<u8>>)>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn restore(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let ks = Keyspace::from_snapshot(data).map_err(io_err)?;
        let position = LogPosition { applied: meta.last_log_id.clone(), membership: meta.last_membership.clone() };
        self.machine.install(ks, position);
        Ok(())
    }

    fn persist(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let file = SnapshotFile { meta: meta.clone(), data: data.to_vec() };
        let mut bytes = vec![FILE_VERSION];
        bytes.extend(postcard::to_stdvec(&file).map_err(io_err)?);
        write_atomic(&self.dir, SNAPSHOT_FILE, &bytes)
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
            let log_id = entry.log_id.clone();
            let response = match entry.payload {
                EntryPayload::Normal(req) => {
                    let w = self.machine.apply_logged(|p| p.applied = Some(log_id), &req.0);
                    Response { reply: w.reply, db_after: w.db_after }
                }
                EntryPayload::Membership(m) => {
                    self.machine.update_meta(|p| {
                        p.applied = Some(log_id.clone());
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
        self.persist(meta, &snapshot)?;
        // Operators (and tests) tell a catch-up by snapshot from one by log by this line.
        tracing::info!(
            "installed snapshot up to log index {} ({} bytes)",
            meta.last_log_id.as_ref().map_or(0, |l| l.index),
            snapshot.len()
        );
        *self.lock() = Some((meta.clone(), Arc::new(snapshot)));
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
        let (ks, LogPosition { applied, membership }) = self.machine.snapshot_view();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let data = ks.to_snapshot().map_err(io_err)?;
            let meta = SnapshotMeta { last_log_id: applied, last_membership: membership };
            this.persist(&meta, &data)?;
            let data = Arc::new(data);
            *this.lock() = Some((meta.clone(), data.clone()));
            Ok(Snapshot { meta, snapshot: data.to_vec() })
        })
        .await
        .map_err(io_err)?
    }
}
