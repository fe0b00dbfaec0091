//! Operator tools over the client port: `keepbit events` (the failover journal) and
//! `keepbit status` (one screen for the whole cluster). Gathering talks to nodes;
//! rendering is a pure function of what was gathered, tested as data.
//!
//! - [`events`]: `KEEPBIT EVENTS` replies parsed into [`EventView`]s, and their table.
//! - [`status`]: per-node ROLE, INFO replication and `KEEPBIT HEALTH` (where a node
//!   answers it), the journal's last failovers and MTTR figures.

pub mod events;
pub mod status;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keepbit_resp::Frame;

use crate::client::Client;

pub use events::EventView;

/// Every request a console tool makes gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(3);

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// "12s ago", "5m ago", "3h ago", "2d ago" (from `now_ms` back to `at_ms`).
pub fn age(now_ms: u64, at_ms: u64) -> String {
    let s = now_ms.saturating_sub(at_ms) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Connects to `addr` and authenticates when a password is given.
pub async fn connect(addr: &str, password: Option<&str>) -> anyhow::Result<Client> {
    let mut c = Client::connect(addr, TIMEOUT).await?;
    if let Some(p) = password {
        if let Frame::Error(e) = c.call(&["AUTH", p]).await? {
            anyhow::bail!("{addr} refused the password: {}", String::from_utf8_lossy(&e));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let cases =
            [(0, "0s ago"), (59_999, "59s ago"), (60_000, "1m ago"), (7_200_000, "2h ago"), (90_000_000, "1d ago")];
        for (ago, text) in cases {
            assert_eq!(age(100_000_000, 100_000_000 - ago), text);
        }
        assert_eq!(age(5, 10), "0s ago", "a timestamp ahead of this clock is now");
    }
}
