//! Crash detection in milliseconds. A crashed process is told apart from a slow or cut-off
//! one by the kernel: its peer connections are reset and a reconnect is refused, where a
//! paused or partitioned leader keeps its connections and lets a dial hang. When the
//! leader's connection to this voter closes and an immediate dial to its peer port is
//! refused, this node starts an election at once instead of waiting for the election
//! timeout. The decision is [`verdict`] (pure data); [`CrashProbe`] carries it out.
//!
//! The election is openraft's own, started through its leadership-transfer entry point
//! (`handle_transfer_leader` naming this node), which is what lets the other voters grant
//! their vote before the dead leader's lease runs out on their clocks. A leader that is
//! alive never refuses a dial, so it is never deposed this way; pre-vote stays on for
//! every other election. A member with priority 0 never takes a turn (and is never asked
//! to): it must not become primary.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::raft::TransferLeaderRequest;
use openraft::ServerState;
use tokio::net::TcpSocket;

use super::app::AppRequest;
use super::cluster::Raft;
use super::network::Network;
use super::types::NodeId;
use crate::config::ClusterConfig;

/// What an immediate dial to the lost leader's peer port got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dial {
    /// The kernel refused it: nothing listens there, the process is gone.
    Refused,
    /// Something accepted it: the leader is alive (it only closed a connection).
    Answered,
    /// No answer in time, or another error: a partition, a paused host; the normal path.
    NoAnswer,
}

/// What this node knows when a peer connection into it closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostContact {
    pub me: NodeId,
    /// The node whose connection closed.
    pub from: NodeId,
    /// The leader this node follows (openraft's `current_leader`).
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    /// Voter ids of the current membership.
    pub voters: Vec<NodeId>,
    /// Members with priority 0: they never campaign here.
    pub never_primary: Vec<NodeId>,
}

/// Whether a closed connection is worth a probe: it came from the leader this voter
/// follows.
pub fn worth_probing(l: &LostContact) -> bool {
    !l.is_leader && l.from != l.me && l.leader == Some(l.from) && l.voters.contains(&l.me)
}

/// When to start an election after a probe, if at all: only on a refusal. The surviving
/// voters take turns in id order, `stagger` apart, so they do not split the vote: the
/// first starts at once, the next only if no leader has appeared by its turn.
pub fn verdict(l: &LostContact, dial: Dial, stagger: Duration) -> Option<Duration> {
    if !worth_probing(l) || dial != Dial::Refused {
        return None;
    }
    let mut survivors: Vec<NodeId> =
        l.voters.iter().copied().filter(|&v| v != l.from && !l.never_primary.contains(&v)).collect();
    survivors.sort_unstable();
    let rank = survivors.iter().position(|&v| v == l.me)?;
    Some(stagger * rank as u32)
}

/// How long the probe waits for the kernel's answer; a refusal takes one round trip.
const DIAL_TIMEOUT: Duration = Duration::from_millis(200);
/// How long an accepted probe is watched for a reset (see [`dial`]).
const SETTLE: Duration = Duration::from_millis(25);

fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionReset | ConnectionAborted)
}

/// Dials `addr` from `own_ip` once and reports how it went. A process being torn down
/// closes its connections before, or after, its listening socket (file descriptor
/// order), so a dial can still be accepted by the kernel on its behalf for an instant;
/// closing the listener then resets it. An accepted dial is therefore watched for
/// [`SETTLE`]: a reset means refused; silence (a live node waits for our hello) or an
/// orderly close (a live node turning us away) means answered.
pub async fn dial(own_ip: IpAddr, addr: SocketAddr) -> Dial {
    let attempt = async {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if own_ip.is_ipv4() == addr.is_ipv4() && !own_ip.is_unspecified() {
            socket.bind(SocketAddr::new(own_ip, 0))?;
        }
        socket.connect(addr).await
    };
    let stream = match tokio::time::timeout(DIAL_TIMEOUT, attempt).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if is_reset(&e) => return Dial::Refused,
        _ => return Dial::NoAnswer,
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(SETTLE, stream.peek(&mut byte)).await {
        Ok(Err(e)) if is_reset(&e) => Dial::Refused,
        _ => Dial::Answered,
    }
}

/// Carries out [`verdict`] for this node.
pub struct CrashProbe {
    pub me: NodeId,
    pub own_ip: IpAddr,
    /// To ask the other survivors to campaign when this node's own campaign fails.
    pub network: Network,
    /// The gap between surviving voters' turns (two heartbeats).
    pub stagger: Duration,
    /// Members with priority 0 (`[cluster] peers`).
    pub never_primary: Vec<NodeId>,
    /// The (leader, term) already found crashed, so its other connections closing do not
    /// start more probes.
    handled: Mutex<Option<(NodeId, u64)>>,
}

impl CrashProbe {
    pub fn new(me: NodeId, own_ip: IpAddr, network: Network, cc: &ClusterConfig) -> CrashProbe {
        let stagger = Duration::from_millis(cc.heartbeat_ms * 2);
        let never_primary = cc.peers.iter().filter(|p| p.priority == 0).map(|p| p.id).collect();
        CrashProbe { me, own_ip, network, stagger, never_primary, handled: Mutex::new(None) }
    }

    fn lost_contact(&self, raft: &Raft, from: NodeId) -> (LostContact, u64, Option<String>) {
        let m = raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let addr = membership.get_node(&from).map(|n| n.addr.clone());
        let facts = LostContact {
            me: self.me,
            from,
            leader: m.current_leader,
            is_leader: m.state == ServerState::Leader,
            voters: membership.voter_ids().collect(),
            never_primary: self.never_primary.clone(),
        };
        (facts, m.current_term, addr)
    }

    /// A peer connection from `from` closed: if `from` is the leader and its port now
    /// refuses connections, start an election (after this node's turn).
    pub async fn connection_closed(&self, raft: Raft, from: NodeId) {
        let (facts, term, addr) = self.lost_contact(&raft, from);
        let Some(addr) = addr.filter(|_| worth_probing(&facts)) else {
            return;
        };
        // A member may be named by DNS: resolved now, as every dial does.
        let Ok(addr) = super::network::resolve(&addr).await else {
            return;
        };
        {
            let mut handled = self.handled.lock().unwrap_or_else(|e| e.into_inner());
            if *handled == Some((from, term)) {
                return;
            }
            *handled = Some((from, term));
        }
        let result = dial(self.own_ip, addr).await;
        let Some(delay) = verdict(&facts, result, self.stagger) else {
            tracing::debug!("leader {from} closed a connection; a reconnect: {result:?}");
            *self.handled.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return;
        };
        tracing::warn!("leader {from} crashed (connection closed, reconnect refused); election in {delay:?}");
        tokio::time::sleep(delay).await;
        let m = raft.metrics().borrow_watched().clone();
        if m.state == ServerState::Leader || m.current_leader.is_some_and(|l| l != from) {
            return;
        }
        if m.current_leader == Some(from) && m.current_term == term {
            // Naming this node in a transfer from the dead leader's vote makes openraft
            // campaign at once with a vote request the other voters grant despite the lease.
            let req = TransferLeaderRequest::new(m.vote, self.me, None);
            if let Err(e) = raft.handle_transfer_leader(req).await {
                tracing::warn!("cannot start an election after leader {from} crashed: {e}");
            }
            self.unless_elected(&raft, &facts).await;
        } else if delay > Duration::ZERO {
            // An earlier voter campaigned and lost (its log was behind): the dead leader's
            // lease is gone everywhere it voted, so a plain election can win now.
            tracing::warn!("no leader after an earlier voter's turn; campaigning");
            if let Err(e) = raft.trigger().elect(false).await {
                tracing::warn!("cannot start an election after leader {from} crashed: {e}");
            }
        }
    }
}

impl CrashProbe {
    /// If no leader has appeared a turn after this node campaigned (a voter with a longer
    /// log refused it), asks the other survivors to campaign: the one with the longest log
    /// wins, now that the dead leader's lease is gone wherever this node asked for a vote.
    async fn unless_elected(&self, raft: &Raft, facts: &LostContact) {
        tokio::time::sleep(self.stagger).await;
        let m = raft.metrics().borrow_watched().clone();
        if m.state == ServerState::Leader || m.current_leader.is_some_and(|l| l != facts.from) {
            return;
        }
        let ask = AppRequest::Elect { from: self.me, term: m.current_term };
        let Ok(bytes) = postcard::to_stdvec(&ask) else { return };
        let membership = m.membership_config.membership();
        let others = facts.voters.iter().filter(|&&v| v != facts.from && v != self.me);
        for id in others.filter(|v| !facts.never_primary.contains(v)) {
            let Some(addr) = membership.get_node(id).map(|n| n.addr.clone()) else { continue };
            tracing::warn!("no leader a turn after campaigning; asking node {id} to campaign");
            if let Err(e) = self.network.call_app(&addr, bytes.clone(), self.stagger).await {
                tracing::warn!("node {id} did not take the request to campaign: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follower(me: NodeId) -> LostContact {
        LostContact { me, from: 1, leader: Some(1), is_leader: false, voters: vec![1, 2, 3], never_primary: vec![] }
    }

    /// (case, facts, dial, election after)
    #[test]
    fn crash_verdicts() {
        let stagger = Duration::from_millis(40);
        let learner = LostContact { me: 4, ..follower(2) };
        let cases: Vec<(&str, LostContact, Dial, Option<u64>)> = vec![
            (
                "leader's connection closed and its port refuses: first survivor at once",
                follower(2),
                Dial::Refused,
                Some(0),
            ),
            ("the second survivor waits its turn", follower(3), Dial::Refused, Some(40)),
            ("leader answers the dial: alive, it only closed a connection", follower(2), Dial::Answered, None),
            ("no answer (partition, paused host): the normal timeout path", follower(2), Dial::NoAnswer, None),
            (
                "a standby's connection closed, not the leader's",
                LostContact { from: 3, ..follower(2) },
                Dial::Refused,
                None,
            ),
            ("no leader known", LostContact { leader: None, ..follower(2) }, Dial::Refused, None),
            (
                "this node is the leader",
                LostContact { is_leader: true, leader: Some(2), from: 2, ..follower(2) },
                Dial::Refused,
                None,
            ),
            ("a learner never campaigns", learner, Dial::Refused, None),
            (
                "a priority-0 voter never campaigns",
                LostContact { never_primary: vec![2], ..follower(2) },
                Dial::Refused,
                None,
            ),
            (
                "with 2 at priority 0, 3 goes first",
                LostContact { never_primary: vec![2], ..follower(3) },
                Dial::Refused,
                Some(0),
            ),
        ];
        for (case, facts, d, want) in cases {
            assert_eq!(verdict(&facts, d, stagger), want.map(Duration::from_millis), "{case}");
        }
    }

    /// A dial to a port nobody listens on is refused; to a listening one, answered.
    #[tokio::test]
    async fn dial_tells_a_closed_port_from_a_listening_one() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        // A listener that closes just after the kernel accepted the dial on its behalf
        // (a process being torn down) resets it: refused, not answered.
        let closing = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closing_addr = closing.local_addr().expect("addr");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            drop(closing);
        });
        assert_eq!(dial(ip, closing_addr).await, Dial::Refused);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("addr");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        assert_eq!(dial(ip, open).await, Dial::Answered);
        assert_eq!(dial(ip, closed).await, Dial::Refused);
    }
}
