//! `Node`: the front of one node's data path. It takes a parsed `Command` and routes it:
//! reads go through the executor's read barrier to the local `Machine`; writes and
//! MULTI blocks go to the `Executor` (applied at once standalone; proposed, forwarded or
//! refused in a cluster). Every failure comes back typed (`ExecError`) and becomes a
//! wire reply only in `error.rs`.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::cmd::{flags, Command, Run};
use crate::error::{CmdError, ExecError};
use crate::machine::{Executor, Machine, Watch, Written};
use crate::memory::MemoryLimit;
use crate::raft::types::LogPosition;
use crate::reply::Reply;

/// Keys KEYS walks per hold of the node lock (about a millisecond).
const KEYS_STEP: usize = 10_000;

/// The replicated state as this node holds it, with its position in the log.
pub type State = Machine<LogPosition>;

/// What one argument costs in memory beyond its bytes, roughly (allocation, hashing).
const ARG_OVERHEAD_BYTES: u64 = 64;

/// What `commands` may add to the dataset, roughly: the bytes of growing commands.
fn growth(commands: &[Command]) -> u64 {
    let growing = commands.iter().filter(|c| c.spec.may_grow());
    growing.flat_map(|c| c.args.iter()).map(|a| a.len() as u64 + ARG_OVERHEAD_BYTES).sum()
}

pub struct Node {
    pub machine: Arc<State>,
    executor: Arc<dyn Executor>,
    /// The maxmemory limit writes are admitted against (sampled by the server).
    pub memory: Arc<MemoryLimit>,
    clock: Arc<dyn Clock>,
}

impl Node {
    pub fn new(
        machine: Arc<State>,
        executor: Arc<dyn Executor>,
        clock: Arc<dyn Clock>,
        memory: Arc<MemoryLimit>,
    ) -> Node {
        Node { machine, executor, clock, memory }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn databases(&self) -> usize {
        self.machine.databases()
    }

    /// Serves a read command, after the read barrier if it reads the keyspace.
    pub async fn read(&self, db: usize, command: &Command, readonly_conn: bool) -> Reply {
        let Run::Read(f) = command.spec.run else {
            return CmdError::err("not a read command").to_reply();
        };
        if command.spec.has(flags::READONLY) {
            if let Err(e) = self.executor.read_barrier(readonly_conn).await {
                return e.to_reply();
            }
        }
        if command.spec.name == "keys" {
            return self.keys(db, &command.args[1]).await;
        }
        self.machine.read(db, f, &command.args, self.clock.now_ms())
    }

    /// KEYS in steps of [`KEYS_STEP`] keys per hold of the node lock, yielding between, so
    /// a large keyspace never stalls writes, replication or other clients for its whole
    /// walk. Keys present for the whole walk are each returned once (SCAN's guarantee;
    /// Redis's KEYS is one atomic pass). Inside MULTI, KEYS stays one atomic pass.
    async fn keys(&self, db: usize, pattern: &Bytes) -> Reply {
        let (mut cursor, mut keys) = (0, Vec::new());
        loop {
            let (next, page) = self.machine.keys_page(db, cursor, pattern, KEYS_STEP, self.clock.now_ms());
            keys.extend(page.into_iter().map(Reply::Bulk));
            if next == 0 {
                return Reply::Array(keys);
            }
            cursor = next;
            tokio::task::yield_now().await;
        }
    }

    /// Runs a write command.
    pub async fn write(&self, db: usize, command: Command) -> Reply {
        if let Err(refused) = self.admit(std::slice::from_ref(&command)) {
            return refused;
        }
        match self.executor.write(db, command).await {
            Ok(w) => w.reply,
            Err(e) => e.to_reply(),
        }
    }

    /// Runs a MULTI block atomically; `Ok(None)` when a WATCHed key changed.
    pub async fn exec(&self, db: usize, queued: Vec<Command>, watch: &Watch) -> Result<Option<Written>, ExecError> {
        if let Err(Reply::Error(e)) = self.admit(&queued) {
            return Err(ExecError::Cmd(CmdError::Coded(e)));
        }
        self.executor.exec(db, queued, watch.clone()).await
    }

    /// The maxmemory check for writes that may grow the dataset, before anything is
    /// proposed: their bytes count against the limit on every replica. A node that would
    /// refuse the write anyway (a standby) says that instead.
    fn admit(&self, commands: &[Command]) -> Result<(), Reply> {
        let cost = growth(commands);
        if cost == 0 || self.memory.admit(cost) {
            return Ok(());
        }
        Err(self.write_refused().unwrap_or_else(|| CmdError::Oom.to_reply()))
    }

    /// The maxmemory check for a command being queued by MULTI (counted at EXEC).
    pub fn check_queued(&self, command: &Command) -> Result<(), CmdError> {
        let cost = growth(std::slice::from_ref(command));
        match cost > 0 && self.memory.would_exceed(cost) {
            true => Err(CmdError::Oom),
            false => Ok(()),
        }
    }

    /// The refusal a write would get here now, if any.
    pub fn write_refused(&self) -> Option<Reply> {
        self.executor.write_refused().map(|e| e.to_reply())
    }

    /// Serves a blocking command if one of its keys holds data; `None` means wait.
    pub async fn try_blocking(&self, db: usize, command: &Command, keys: &[Bytes]) -> Option<Reply> {
        if !self.machine.any_present(db, keys, self.clock.now_ms()) {
            return None;
        }
        // A key may have been emptied in between; the write then answers "nothing".
        match self.write(db, command.clone()).await {
            Reply::NilArray | Reply::Nil => None,
            r => Some(r),
        }
    }

    pub fn block_on(&self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        self.machine.block(db, keys, notify);
    }

    pub fn unblock(&self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        self.machine.unblock(db, keys, notify);
    }

    /// One pass of active expiry: deletes (through ops) keys whose time has passed. In a
    /// cluster only the primary expires keys. Returns how many keys were deleted.
    pub async fn expire_cycle(&self, max_per_db: usize) -> usize {
        if !self.executor.expires_keys() {
            return 0;
        }
        let mut total = 0;
        for op in self.machine.due_ops(self.clock.now_ms(), max_per_db) {
            if let Ok(Written { reply: Reply::Int(n), .. }) = self.executor.expire(op).await {
                total += n as usize;
            }
        }
        total
    }
}
