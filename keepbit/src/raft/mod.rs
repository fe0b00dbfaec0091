//! Replication through openraft: Keepbit implements storage and network only; every
//! election and replication decision is openraft's.
//!
//! - [`types`]: the type configuration (`Request` = an encoded `Op`, `Response` = a `Reply`).
//! - [`log_store`]: the durable segmented log (group-commit fsync) and vote/metadata files,
//!   behind openraft's `RaftLogStorage`.
//! - [`network`], [`peer`]: node-to-node RPC over TCP (length-delimited frames, cluster
//!   secret, pooled connections, timeouts), client and server sides.

pub mod cluster;
pub mod log_store;
pub mod network;
pub mod peer;
pub mod state_machine;
pub mod types;
