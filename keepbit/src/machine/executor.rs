//! The seam between the node's front and replication. The front parses a request and
//! hands writes to an `Executor`: `Standalone` applies them at once; a cluster
//! (`raft::Cluster`) proposes them to the replicated log, forwards them to the primary,
//! or refuses them, as this node's role requires.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Machine, Watch};
use crate::clock::Clock;
use crate::cmd::Command;
use crate::error::ExecError;
use crate::reply::Reply;
use crate::store::Op;

/// A write's answer, and the database selected after it (a MULTI block may SELECT).
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub reply: Reply,
    pub db_after: usize,
}

pub trait Executor: Send + Sync {
    /// Runs one write command.
    fn write(&self, db: usize, command: Command) -> BoxFuture<'_, Result<Written, ExecError>>;
    /// Runs a MULTI block atomically; `Ok(None)` when a WATCHed key changed.
    fn exec(&self, db: usize, queued: Vec<Command>, watch: Watch) -> BoxFuture<'_, Result<Option<Written>, ExecError>>;
    /// Waits until a read here may be served under the configured consistency.
    fn read_barrier(&self, readonly_conn: bool) -> BoxFuture<'_, Result<(), ExecError>>;
    /// Whether a write would be refused here now (asked before a blocking pop waits).
    fn write_refused(&self) -> Option<ExecError>;
    /// Whether this node deletes expired keys (only the primary does in a cluster).
    fn expires_keys(&self) -> bool;
    /// Applies an expiry op (see `Machine::due_ops`).
    fn expire(&self, op: Op) -> BoxFuture<'_, Result<Written, ExecError>>;
}

/// A node without replication: every op applies at once under the machine's lock.
pub struct Standalone<M> {
    machine: Arc<Machine<M>>,
    clock: Arc<dyn Clock>,
}

impl<M> Standalone<M> {
    pub fn new(machine: Arc<Machine<M>>, clock: Arc<dyn Clock>) -> Standalone<M> {
        Standalone { machine, clock }
    }
}

impl<M: Clone + Default + Send + 'static> Executor for Standalone<M> {
    fn write(&self, db: usize, command: Command) -> BoxFuture<'_, Result<Written, ExecError>> {
        let written = self.machine.run(db, &command, self.clock.now_ms()).map_err(ExecError::from);
        Box::pin(std::future::ready(written))
    }

    fn exec(&self, db: usize, queued: Vec<Command>, watch: Watch) -> BoxFuture<'_, Result<Option<Written>, ExecError>> {
        Box::pin(std::future::ready(Ok(self.machine.run_multi(db, &queued, self.clock.now_ms(), &watch.flag))))
    }

    fn read_barrier(&self, _readonly_conn: bool) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn write_refused(&self) -> Option<ExecError> {
        None
    }

    fn expires_keys(&self) -> bool {
        true
    }

    fn expire(&self, op: Op) -> BoxFuture<'_, Result<Written, ExecError>> {
        Box::pin(std::future::ready(Ok(self.machine.apply(&op))))
    }
}
