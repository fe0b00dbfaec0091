//! Keepbit: a Redis-compatible key-value store built for uninterrupted service.
//!
//! # Layout, from the socket down (each module imports only modules below it)
//!
//! - [`server`]: the TCP listener, per-connection loop (RESP2/3, pipelining, limits),
//!   `Session` (one client's state and the one dispatch of session commands), and the
//!   admin and replication command families (CLIENT, INFO, CONFIG, ROLE, SENTINEL …).
//! - [`node`]: `Node`, the front of the data path: routes a parsed `Command` to a read
//!   (after the read barrier) or to the `Executor` (writes, MULTI blocks, expiry).
//! - [`raft`]: replication through openraft: `Cluster` (the `Executor` of a cluster
//!   node), the role decision, the peer protocol, the durable log and snapshots.
//! - [`machine`]: `Machine`, the replicated state (keyspace, log position, WATCH and
//!   blocked-client registry); turns write commands into `Op`s and applies ops.
//!   `Standalone` is the `Executor` of a node without replication.
//! - [`cmd`]: the command table (name, arity, flags, keys), `Command`, one file per
//!   command family, and `exec::apply`, the only way an `Op` changes the keyspace.
//! - [`store`]: pure data: the keyspace, sorted sets, snapshots, and `Op` (the
//!   deterministic, versioned log payload).
//! - [`pubsub`]: channel and pattern subscriptions, bounded per-subscriber queues.
//! - Leaves: [`config`] (parsed and validated once), [`addr`] (the `host:port` check of
//!   member addresses), [`error`] (typed errors and the one
//!   mapping to RESP replies), [`reply`] (`Reply`, protocol-independent answers),
//!   [`clock`] (injected wall-clock time), [`memory`] (used memory and the maxmemory
//!   check), [`glob`] (Redis glob patterns), [`secret`] (constant-time secret
//!   comparison), [`atomic_file`] (crash-safe file replacement for snapshots and the
//!   log's metadata), [`health`] (pure health checks and the phi-accrual detector),
//!   [`metrics`] (the Prometheus registry), [`faults`] (test-only fault injection switches), [`tls`] (rustls set-up for the client and peer ports from the
//!   config's PEM files).
//! - Tools beside the server: [`client`] (a minimal RESP client for the CLI), [`up`]
//!   (`keepbit up`, a local cluster), [`drill`] (`keepbit drill`: fault injection,
//!   workload history, linearizability checking, reports), [`console`] (`keepbit events`
//!   and `keepbit status`: the failover journal and one screen for an operator).

pub mod addr;
pub mod atomic_file;
pub mod client;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod console;
pub mod drill;
pub mod error;
pub mod faults;
pub mod glob;
pub mod health;
pub mod html;
pub mod machine;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod pubsub;
pub mod raft;
pub mod reply;
pub mod secret;
pub mod server;
pub mod store;
pub mod tls;
pub mod up;
