//! What calls to each peer last ran into, and when this node last campaigned: the
//! observations the failover journal classifies a leadership change by.
//!
//! A crashed peer's port refuses connections at once; a paused (hung) one still accepts
//! them in the kernel but never answers; a peer cut off by a partition does not even
//! complete the TCP handshake. The pool notes which of these each call met.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::store::journal::Cause;

/// How a call to a peer failed, as far as the failover journal cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused: nothing listens on the peer's port.
    Refused,
    /// No connection could be established in time (or the host was unreachable).
    Unconnected,
    /// Connected, but the peer did not answer in time.
    Unanswered,
}

/// The last time each kind of failure was met calling one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerSeen {
    pub refused: Option<Instant>,
    pub unconnected: Option<Instant>,
    pub unanswered: Option<Instant>,
}

/// Which failures a peer's calls met after some instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeenSince {
    pub refused: bool,
    pub unconnected: bool,
    pub unanswered: bool,
}

impl PeerSeen {
    pub fn since(&self, t: Option<Instant>) -> SeenSince {
        let after = |at: Option<Instant>| at.is_some_and(|at| t.is_none_or(|t| at >= t));
        SeenSince {
            refused: after(self.refused),
            unconnected: after(self.unconnected),
            unanswered: after(self.unanswered),
        }
    }
}

/// Failures by peer address, and this node's campaign.
#[derive(Default)]
pub struct Observations {
    peers: Mutex<HashMap<String, PeerSeen>>,
    campaign: Mutex<Campaign>,
}

/// When this node started campaigning since it last heard from a leader, when it was
/// last asked to take over leadership, and why (the reason the leader announced first).
#[derive(Clone, Debug, Default)]
pub struct Campaign {
    pub started: Option<Instant>,
    pub transfer_requested: Option<Instant>,
    /// The current leader announced a proactive handover because of this check, and when.
    pub proactive: Option<(&'static str, Instant)>,
    pub announced: Option<(Cause, Instant)>,
}

impl Observations {
    pub fn note(&self, addr: &str, failure: Failure) {
        let now = Some(Instant::now());
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = peers.entry(addr.to_owned()).or_default();
        match failure {
            Failure::Refused => seen.refused = now,
            Failure::Unconnected => seen.unconnected = now,
            Failure::Unanswered => seen.unanswered = now,
        }
    }

    pub fn peer(&self, addr: &str) -> PeerSeen {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner).get(addr).copied().unwrap_or_default()
    }

    fn campaign_lock(&self) -> std::sync::MutexGuard<'_, Campaign> {
        self.campaign.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This node sent a (pre-)vote request: its election timer fired.
    pub fn campaigning(&self) {
        self.campaign_lock().started.get_or_insert_with(Instant::now);
    }

    /// A leader reached this node: any campaign so far is over.
    pub fn leader_heard(&self) {
        self.campaign_lock().started = None;
    }

    /// The current leader asked this node to take over.
    pub fn transfer_requested(&self) {
        self.campaign_lock().transfer_requested = Some(Instant::now());
    }

    /// The current leader is about to hand over because of `check` (one of
    /// `health::CHECKS`; any other name is ignored).
    pub fn proactive_announced(&self, check: &str) {
        if let Some(name) = crate::health::CHECKS.iter().find(|c| **c == check) {
            self.campaign_lock().proactive = Some((name, Instant::now()));
        }
    }

    /// The leader is about to hand leadership to this node, for this reason.
    pub fn announced(&self, cause: Cause) {
        self.campaign_lock().announced = Some((cause, Instant::now()));
    }

    /// The campaign so far, which ends with this call (this node won it).
    pub fn take_campaign(&self) -> Campaign {
        std::mem::take(&mut *self.campaign_lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Only failures at or after the instant count; without one, every failure does.
    #[test]
    fn failures_count_from_an_instant() {
        let obs = Observations::default();
        let before = Instant::now();
        obs.note("a", Failure::Unanswered);
        std::thread::sleep(Duration::from_millis(2));
        let mid = Instant::now();
        obs.note("a", Failure::Refused);
        assert_eq!(obs.peer("a").since(Some(mid)), SeenSince { refused: true, ..SeenSince::default() });
        assert_eq!(
            obs.peer("a").since(Some(before)),
            SeenSince { refused: true, unanswered: true, ..SeenSince::default() }
        );
        assert_eq!(obs.peer("b").since(None), SeenSince::default());
        obs.campaigning();
        let first = obs.take_campaign().started;
        assert!(first.is_some());
        obs.campaigning();
        obs.leader_heard();
        assert!(obs.take_campaign().started.is_none(), "a leader heard ends the campaign");
    }
}
