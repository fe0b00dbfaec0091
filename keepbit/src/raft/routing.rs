//! Client requests routed by this node's role: on the primary a write is prepared and
//! proposed; on an active-active standby it is forwarded to the primary; on an
//! active-passive standby it is refused. Reads wait for the configured consistency.
//! This is `Cluster`'s side of the `Executor` seam.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;
use openraft::ReadPolicy;

use super::app::{AppRequest, AppResponse};
use super::cluster::Cluster;
use super::types::Request;
use crate::cmd::Command;
use crate::config::{Mode, ReadConsistency};
use crate::error::ExecError;
use crate::machine::{Executor, Watch, Written};
use crate::reply::Reply;
use crate::store::Op;

impl Cluster {
    /// Why a write cannot go ahead on this node now (neither proposed here nor
    /// forwarded): READONLY on an active-passive standby, TRYAGAIN while no primary is
    /// known. `None` when it can.
    pub fn refusal(&self) -> Option<ExecError> {
        if self.is_primary() {
            return None;
        }
        if self.role().leader.is_none() {
            return Some(ExecError::NoPrimary);
        }
        (self.config.mode == Mode::ActivePassive).then_some(ExecError::NotPrimary)
    }

    /// Prepares a write on this node (which must be primary) and proposes it.
    pub(super) async fn write_here(&self, db: usize, command: &Command) -> Result<Written, ExecError> {
        if !self.is_primary() {
            return Err(ExecError::NoLongerPrimary);
        }
        let op = self.machine.prepare(db, command, self.clock.now_ms())?;
        if self.config.unsafe_ack_before_commit {
            return Ok(self.ack_before_commit(op));
        }
        self.submit_op(&op).await
    }

    /// Runs a MULTI block on this node (which must be primary). The WATCH is checked
    /// when the block is proposed: ops in flight then are not seen (documented).
    pub(super) async fn exec_here(
        &self,
        db: usize,
        queued: &[Command],
        watch: &Watch,
    ) -> Result<Option<Written>, ExecError> {
        if !self.is_primary() {
            return Err(ExecError::NoLongerPrimary);
        }
        if watch.flag.load(Relaxed) {
            return Ok(None);
        }
        let op = self.machine.prepare_multi(db, queued, self.clock.now_ms(), &watch.keys);
        self.submit_op(&op).await.map(Some)
    }

    /// The deliberately broken write path (testing the drill only): answers at once and
    /// proposes the op a moment later, so a crash in between loses an acknowledged write.
    fn ack_before_commit(&self, op: Op) -> Written {
        let raft = self.raft.clone();
        let db_after = op.db as usize;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Ok(bytes) = op.encode() {
                let _ = raft.client_write(Request(Bytes::from(bytes))).await;
            }
        });
        Written { reply: Reply::Int(1), db_after }
    }

    async fn route_write(&self, db: usize, command: Command) -> Result<Written, ExecError> {
        // Held while a switchover waits for sync; routed afresh once released.
        let _admitted = self.switchover.gate.admit().await;
        if self.is_primary() {
            return self.write_here(db, &command).await;
        }
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let req = AppRequest::Write { db: db as u32, args: command.args };
        match self.forward(req).await? {
            AppResponse::Written { reply, db_after } => Ok(Written { reply, db_after }),
            other => Err(ExecError::Peer(format!("unexpected reply from the primary: {other:?}"))),
        }
    }

    async fn route_exec(&self, db: usize, queued: Vec<Command>, watch: Watch) -> Result<Option<Written>, ExecError> {
        let _admitted = self.switchover.gate.admit().await;
        if watch.flag.load(Relaxed) {
            return Ok(None);
        }
        if self.is_primary() {
            return self.exec_here(db, &queued, &watch).await;
        }
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let cmds = queued.into_iter().map(|c| c.args).collect();
        match self.forward(AppRequest::Exec { db: db as u32, cmds, watched: watch.keys }).await? {
            AppResponse::Written { reply: Reply::NilArray, .. } => Ok(None),
            AppResponse::Written { reply, db_after } => Ok(Some(Written { reply, db_after })),
            other => Err(ExecError::Peer(format!("unexpected reply from the primary: {other:?}"))),
        }
    }

    /// Whether a quorum acknowledged this leader recently enough that its lease holds with
    /// a margin (a quarter of it) to spare: a lease read relies on followers refusing to
    /// vote for the lease's length, measured on their clocks, not ours. Otherwise the read
    /// pays for a ReadIndex round instead.
    fn lease_has_margin(&self) -> bool {
        let lease = Duration::from_millis(self.config.election_timeout_max_ms);
        let acked = self.raft.metrics().borrow_watched().last_quorum_acked;
        acked.is_some_and(|at| at.elapsed() + lease / 4 <= lease)
    }

    /// Waits until a read here may be served under the configured consistency.
    async fn barrier(&self, readonly_conn: bool) -> Result<(), ExecError> {
        let consistency = self.config.read_consistency;
        if self.is_primary() {
            if consistency == ReadConsistency::Stale
                || (self.lease_has_margin() && self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await.is_ok())
            {
                return Ok(());
            }
            return self
                .raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map(|_| ())
                .map_err(|_| ExecError::NoQuorum);
        }
        let active_active = self.config.mode == Mode::ActiveActive;
        if readonly_conn || (active_active && consistency == ReadConsistency::Stale) {
            return Ok(());
        }
        if !active_active {
            return Err(ExecError::StandbyRead { primary: self.primary_client_addr() });
        }
        // Active-active linearizable read: wait until this node has applied what the
        // primary had committed when asked.
        let index = match self.forward(AppRequest::ReadIndex).await? {
            AppResponse::ReadIndex(i) => i,
            other => return Err(ExecError::Peer(format!("unexpected reply from the primary: {other:?}"))),
        };
        let wait = Duration::from_millis(self.config.election_timeout_max_ms * 10);
        self.raft
            .wait(Some(wait))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|_| ExecError::Behind)
    }
}

impl Executor for Cluster {
    fn write(&self, db: usize, command: Command) -> BoxFuture<'_, Result<Written, ExecError>> {
        Box::pin(self.route_write(db, command))
    }

    fn exec(&self, db: usize, queued: Vec<Command>, watch: Watch) -> BoxFuture<'_, Result<Option<Written>, ExecError>> {
        Box::pin(self.route_exec(db, queued, watch))
    }

    fn read_barrier(&self, readonly_conn: bool) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(self.barrier(readonly_conn))
    }

    fn write_refused(&self) -> Option<ExecError> {
        self.refusal()
    }

    fn expires_keys(&self) -> bool {
        self.is_primary()
    }

    fn expire(&self, op: Op) -> BoxFuture<'_, Result<Written, ExecError>> {
        Box::pin(async move {
            let _admitted = self.switchover.gate.admit().await;
            self.submit_op(&op).await
        })
    }
}
