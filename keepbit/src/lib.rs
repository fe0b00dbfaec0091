//! Keepbit: a Redis-compatible key-value store built for uninterrupted service.
//!
//! # Layout
//!
//! - [`config`]: `Config`, parsed and validated once (TOML file + command-line flags).
//! - [`error`]: typed command errors and the one mapping to RESP error replies.
//! - [`reply`]: `Reply`, an answer independent of the protocol version it is sent in.
//! - [`cmd`]: the command table (name, arity, flags, keys), `Command`, and one file per
//!   command family. Reads run against a `ReadCtx`; writes only inside `store::apply`.
//! - [`store`]: the keyspace (pure data), `Op` (the deterministic, versioned log payload)
//!   and `apply(&Op)`, the only way the keyspace changes.
//! - [`node`]: `Node`, which owns the keyspace: turns write commands into `Op`s
//!   (resolving time and randomness), applies them, serves reads, wakes blocked clients,
//!   tracks WATCHed keys and expires keys actively.
//! - [`pubsub`]: channel and pattern subscriptions, bounded per-subscriber queues.
//! - [`server`]: the TCP listener, per-connection loop (RESP2/3, pipelining, limits) and
//!   `Session`, the per-client state machine (AUTH, MULTI, SUBSCRIBE, CLIENT …).
//! - [`glob`]: Redis glob patterns.

pub mod client;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod drill;
pub mod error;
pub mod glob;
pub mod machine;
pub mod node;
pub mod pubsub;
pub mod raft;
pub mod reply;
pub mod server;
pub mod store;
pub mod up;
