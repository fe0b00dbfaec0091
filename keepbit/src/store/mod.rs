//! Storage: the keyspace (pure data), the failover journal, and `Op`, the log payload. Nothing here knows the
//! command table; `cmd::exec::apply` is the only way the keyspace changes.

pub mod journal;
pub mod keyspace;
pub mod op;
pub mod ordered;
pub mod snapshot;
pub mod zset;

pub use keyspace::{Db, Keyspace, Value};
pub use op::{Op, OpKind};
