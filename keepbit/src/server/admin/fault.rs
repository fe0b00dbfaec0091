//! `KEEPBIT FAULT SET <name> <value> | CLEAR`: switches the test-only faults of
//! [`crate::faults`] at runtime (admin only; refused unless the node started with fault
//! injection allowed), and the task that stalls the client event loop when asked to.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Result;
use crate::cmd::args::{is, lossy};
use crate::error::CmdError;
use crate::faults::{self, Fault, FaultError};
use crate::reply::Reply;

/// `args` are everything after `KEEPBIT FAULT`.
pub fn fault(args: &[Bytes]) -> Result<Reply> {
    let f = faults::global();
    let refused = |e: FaultError| CmdError::err(e.to_string());
    if !f.armed() {
        return Err(refused(FaultError::Disabled));
    }
    let result = match args {
        [sub] if is(sub, "clear") => f.clear(),
        [sub, name, value] if is(sub, "set") => {
            let name = lossy(name);
            let fault = Fault::parse(&name).ok_or_else(|| refused(FaultError::Unknown(name)))?;
            let value = lossy(value).parse::<u64>().map_err(|_| {
                refused(FaultError::Invalid(format!("{} must be a non-negative integer", fault.name())))
            })?;
            f.set(fault, value).inspect(|()| tracing::warn!(fault = fault.name(), value, "fault injected"))
        }
        _ => return Err(CmdError::Syntax),
    };
    result.map(|()| Reply::Ok).map_err(refused)
}

/// Blocks every worker of the runtime it is spawned on for `stall_ms` every
/// `stall_every_ms`, while that fault is set. Spawned only on a node that allows faults.
pub fn spawn_stalls() {
    let workers = tokio::runtime::Handle::current().metrics().num_workers().max(1);
    tokio::spawn(async move {
        loop {
            let Some((stall, every)) = faults::global().stall() else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            tokio::time::sleep(every).await;
            // One blocking sleep per worker, all until the same instant, so no worker is
            // left to run the other tasks meanwhile.
            let until = Instant::now() + stall;
            for _ in 0..workers {
                tokio::spawn(async move { std::thread::sleep(until.saturating_duration_since(Instant::now())) });
            }
        }
    });
}
