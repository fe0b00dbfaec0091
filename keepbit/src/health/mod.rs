//! Health of this node's internals as data: each check is a small, pure evaluator over
//! samples (`evaluate`), with the phi-accrual failure detector for peers (`phi`) and the
//! sliding windows the samples are summarised over (`window`). The sampling loop lives
//! where the data is (`server::health`); this module imports nothing from the crate.

pub mod config;
pub mod evaluate;
pub mod phi;
pub mod policy;
pub mod window;

#[cfg(test)]
mod tests;

pub use config::HealthConfig;
pub use evaluate::{evaluate, Samples};

/// A check's verdict, ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Status {
    #[default]
    Ok,
    Degraded,
    Failing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Failing => "failing",
        }
    }

    /// 0 ok, 1 degraded, 2 failing (the metrics gauge).
    pub fn level(self) -> i64 {
        self as i64
    }
}

/// One check's verdict with the reason for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub reason: String,
}

impl Check {
    pub fn ok(name: &'static str, reason: impl Into<String>) -> Check {
        Check { name, status: Status::Ok, reason: reason.into() }
    }

    pub fn degraded(name: &'static str, reason: impl Into<String>) -> Check {
        Check { name, status: Status::Degraded, reason: reason.into() }
    }

    pub fn failing(name: &'static str, reason: impl Into<String>) -> Check {
        Check { name, status: Status::Failing, reason: reason.into() }
    }
}

/// The names of every check, in report order (metrics pre-register one gauge each).
pub const CHECKS: [&str; 7] = ["event_loop", "apply_lag", "replication_lag", "fsync", "disk", "memory", "peers"];

/// The worst status among `checks` (ok when there are none).
pub fn overall(checks: &[Check]) -> Status {
    checks.iter().map(|c| c.status).max().unwrap_or_default()
}

/// Escapes `s` as a JSON string body (the admin endpoints write JSON by hand).
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
