//! Replication through openraft: Keepbit implements storage and network only; every
//! election and replication decision is openraft's.
//!
//! - [`types`]: the type configuration (`Request` = an encoded `Op`, `Response` = a `Reply`),
//!   `Member` (a node's peer and client addresses) and `LogPosition`.
//! - [`cluster`]: `Cluster`: wiring, proposing ops.
//! - [`bootstrap`]: forming the cluster on first start only (an empty disk in a running
//!   cluster takes its log and votes once caught up).
//! - [`membership`]: adding a node (promoted only once caught up) and removing one.
//! - [`routing`]: client requests by role (propose, forward, refuse; read barriers): the
//!   cluster's side of `machine::Executor`.
//! - [`journal`]: the failover journal's writer: classifies a leadership change this node
//!   won (crash, heartbeat timeout, partition, switchover, restart) and records it.
//! - [`role`]: the role decision as a pure function, and the loop that follows openraft.
//! - [`app`]: the application protocol between nodes (forwarded writes, read index …).
//! - [`contact`]: records when a leader last reached this node; gates votes after a
//!   restart (the quiet period) and after an empty-disk start.
//! - [`crash`]: a leader whose connection closed and whose port refuses a reconnect has
//!   crashed: elect at once instead of waiting for the election timeout.
//! - [`switchover`]: planned leadership transfer (FAILOVER) with a write pause, a deadline,
//!   a fallback and ABORT; the target choice as a pure function.
//! - [`proactive`]: a switchover started by this primary's health (`health::policy`); each
//!   node's own health as a target, asked by the primary.
//! - [`compaction`]: snapshots by entries or bytes, staggered per node; the log kept behind
//!   a snapshot bounded in entries and bytes.
//! - [`state_machine`]: applies committed entries to the `Machine`; snapshots.
//! - [`log_store`]: the durable segmented log (group-commit fsync) and vote/metadata files,
//!   behind openraft's `RaftLogStorage`.
//! - [`network`], [`peer`]: node-to-node RPC over TCP (length-delimited frames, cluster
//!   secret, pooled connections, timeouts), client and server sides.

pub mod app;
pub mod bootstrap;
pub mod cluster;
pub mod compaction;
pub mod contact;
pub mod crash;
pub mod journal;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod peer;
pub mod priority;
pub mod proactive;
pub mod role;
pub mod routing;
pub mod state_machine;
pub mod switchover;
pub mod types;
