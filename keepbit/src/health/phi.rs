//! The phi-accrual failure detector (Hayashibara et al.), in Cassandra's form: heartbeat
//! inter-arrival times are taken as exponentially distributed, so
//! `phi = (time since the last arrival / mean interval) * log10(e)`, and a peer is
//! suspected once phi passes a threshold (8 by default). [`PeerArrivals`] keeps one
//! detector per peer for the peer network to feed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// Intervals remembered per peer.
const SAMPLES: usize = 100;

/// One peer's arrival history.
#[derive(Clone, Debug)]
pub struct PhiDetector {
    intervals: [f64; SAMPLES],
    len: usize,
    next: usize,
    sum: f64,
    last_ms: u64,
    /// Intervals shorter than this count as this (a burst of RPCs must not make a
    /// moment of silence look like death).
    floor_ms: f64,
}

impl PhiDetector {
    /// A detector whose history starts with one arrival at `now_ms`, with `prior_ms` as
    /// its first interval, so a peer that never answers is suspected in time too.
    pub fn new(now_ms: u64, prior_ms: f64) -> PhiDetector {
        let floor_ms = prior_ms.max(1.0);
        let mut d = PhiDetector { intervals: [0.0; SAMPLES], len: 0, next: 0, sum: 0.0, last_ms: now_ms, floor_ms };
        d.record(floor_ms);
        d
    }

    fn record(&mut self, interval: f64) {
        let interval = interval.max(self.floor_ms);
        if self.len == SAMPLES {
            self.sum -= self.intervals[self.next];
        } else {
            self.len += 1;
        }
        self.intervals[self.next] = interval;
        self.sum += interval;
        self.next = (self.next + 1) % SAMPLES;
    }

    /// Notes an arrival (a heartbeat, an RPC answer) at `now_ms`.
    pub fn heartbeat(&mut self, now_ms: u64) {
        let interval = now_ms.saturating_sub(self.last_ms) as f64;
        self.last_ms = self.last_ms.max(now_ms);
        self.record(interval);
    }

    pub fn mean_ms(&self) -> f64 {
        self.sum / self.len.max(1) as f64
    }

    /// Suspicion at `now_ms`: 1 means a 10% chance the peer is still alive and merely
    /// late, 2 a 1% chance, and so on.
    pub fn phi(&self, now_ms: u64) -> f64 {
        let silent = now_ms.saturating_sub(self.last_ms) as f64;
        silent / self.mean_ms() * std::f64::consts::LOG10_E
    }
}

/// One detector per peer, fed by the peer network and read by the health sampler.
pub struct PeerArrivals {
    start: Instant,
    /// The interval a fresh detector assumes (the heartbeat interval).
    prior_ms: f64,
    peers: Mutex<BTreeMap<u64, PhiDetector>>,
}

impl PeerArrivals {
    pub fn new(prior_ms: f64) -> PeerArrivals {
        PeerArrivals { start: Instant::now(), prior_ms, peers: Mutex::new(BTreeMap::new()) }
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Notes that `peer` was heard from now.
    pub fn heartbeat(&self, peer: u64) {
        let now = self.now_ms();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        match peers.get_mut(&peer) {
            Some(d) => d.heartbeat(now),
            None => {
                peers.insert(peer, PhiDetector::new(now, self.prior_ms));
            }
        }
    }

    /// Starts `peer`'s history afresh, as if heard from now (when it becomes a peer
    /// this node should hear from: a new leader, a new member).
    pub fn reset(&self, peer: u64) {
        let now = self.now_ms();
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).insert(peer, PhiDetector::new(now, self.prior_ms));
    }

    /// `peer`'s phi now, if it has a history.
    pub fn phi(&self, peer: u64) -> Option<f64> {
        let now = self.now_ms();
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).map(|d| d.phi(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_with_silence_relative_to_the_mean_interval() {
        let mut d = PhiDetector::new(0, 20.0);
        for t in (20..=2_000).step_by(20) {
            d.heartbeat(t);
        }
        assert!((d.mean_ms() - 20.0).abs() < 1e-9);
        assert_eq!(d.phi(2_000), 0.0, "just heard");
        let phi_at = |ms: u64| d.phi(2_000 + ms);
        assert!((phi_at(20) - 0.434).abs() < 0.01, "one interval: {}", phi_at(20));
        assert!(phi_at(360) < 8.0 && phi_at(380) > 8.0, "Cassandra's 8 after ~18.4 intervals");
    }

    #[test]
    fn a_slow_peer_gets_a_longer_leash_and_bursts_do_not_shorten_it() {
        let mut slow = PhiDetector::new(0, 20.0);
        for t in (100..=10_000).step_by(100) {
            slow.heartbeat(t);
        }
        assert!(slow.phi(10_000 + 400) < 2.0, "4 intervals of a slow peer");
        let mut bursty = PhiDetector::new(0, 20.0);
        for t in 1..=100 {
            bursty.heartbeat(t);
        }
        assert!(bursty.mean_ms() >= 20.0, "intervals below the floor count as the floor");
    }

    #[test]
    fn the_window_forgets_old_intervals() {
        let mut d = PhiDetector::new(0, 10.0);
        let mut t = 0;
        for _ in 0..SAMPLES {
            t += 1_000;
            d.heartbeat(t);
        }
        for _ in 0..SAMPLES {
            t += 10;
            d.heartbeat(t);
        }
        assert!((d.mean_ms() - 10.0).abs() < 1e-9, "only the last {SAMPLES} intervals count");
    }

    #[test]
    fn arrivals_track_each_peer_and_a_reset_starts_afresh() {
        let a = PeerArrivals::new(20.0);
        assert_eq!(a.phi(2), None);
        a.heartbeat(2);
        assert!(a.phi(2).is_some_and(|p| p < 1.0));
        a.reset(3);
        assert!(a.phi(3).is_some_and(|p| p < 1.0), "a reset peer starts as just heard");
    }
}
