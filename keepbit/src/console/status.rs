//! `keepbit status`: one screen for an operator. [`gather`] asks every node (ROLE, INFO
//! replication, `KEEPBIT HEALTH` where the node has it) and one node for the journal;
//! [`render`] and [`to_json`] are pure functions of what was gathered.
//!
//! A failover is a journal record whose cause is not `restart` (a cluster start replaces
//! no running primary); MTTR figures are over the failovers of the last
//! [`JOURNAL_FETCH`] records that are complete.

use std::fmt::Write as _;

use keepbit_resp::Frame;
use serde::Serialize;
use serde_json::{json, Value};

use super::events::{self, EventView};
use super::{connect, unix_ms};
use crate::client::text;

/// Records fetched for the figures (the journal's whole bound).
pub const JOURNAL_FETCH: usize = crate::store::journal::JOURNAL_RECORDS_MAX;
/// Failovers listed on the screen.
const SHOWN_FAILOVERS: usize = 5;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// What one node said.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeStatus {
    pub addr: String,
    /// Why the node could not be asked, if it could not.
    pub error: Option<String>,
    /// `primary` or `standby`.
    pub role: Option<String>,
    pub term: Option<u64>,
    /// Log index applied (INFO replication `master_repl_offset`).
    pub applied: Option<u64>,
    /// `KEEPBIT HEALTH`'s answer; `None` where the node does not have the command.
    pub health: Option<String>,
}

/// Everything one screen shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Gathered {
    pub now_ms: u64,
    pub nodes: Vec<NodeStatus>,
    /// The journal, newest first, and which node it came from.
    pub events: Vec<EventView>,
    pub events_from: Option<String>,
}

/// The figures derived from what was gathered.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub primary: Option<String>,
    pub term: Option<u64>,
    /// Entries each node is behind the primary (by applied index), in node order.
    pub lag: Vec<Option<u64>>,
    pub failovers_last_hour: usize,
    pub failovers_last_day: usize,
    pub mttr_p50_ms: Option<u64>,
    pub mttr_max_ms: Option<u64>,
}

/// Nearest-rank median.
fn p50(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    let n = values.len();
    (n > 0).then(|| values[n.div_ceil(2) - 1])
}

pub fn summarize(g: &Gathered) -> Summary {
    let primary = g.nodes.iter().find(|n| n.role.as_deref() == Some("primary"));
    let lag = g.nodes.iter().map(|n| Some(primary?.applied?.saturating_sub(n.applied?))).collect();
    let failovers: Vec<&EventView> = g.events.iter().filter(|e| e.is_failover()).collect();
    let within = |span: u64| failovers.iter().filter(|e| g.now_ms.saturating_sub(e.elected_ms) <= span).count();
    let mut mttrs: Vec<u64> = failovers.iter().filter_map(|e| e.mttr_ms).collect();
    Summary {
        primary: primary.map(|p| p.addr.clone()),
        term: g.nodes.iter().filter_map(|n| n.term).max(),
        lag,
        failovers_last_hour: within(HOUR_MS),
        failovers_last_day: within(DAY_MS),
        mttr_max_ms: mttrs.iter().copied().max(),
        mttr_p50_ms: p50(&mut mttrs),
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// The screen.
pub fn render(g: &Gathered) -> String {
    let s = summarize(g);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "keepbit status: {} nodes, primary {}, term {}",
        g.nodes.len(),
        s.primary.as_deref().unwrap_or("none"),
        or_dash(s.term)
    );
    let _ = writeln!(out, "\n{:<22}  {:<8}  {:>6}  {:>9}  {:>6}  HEALTH", "NODE", "ROLE", "TERM", "APPLIED", "LAG");
    for (n, lag) in g.nodes.iter().zip(&s.lag) {
        let (role, health) = match &n.error {
            Some(e) => ("down".to_string(), format!("unreachable: {e}")),
            None => (or_dash(n.role.clone()), n.health.clone().unwrap_or_else(|| "n/a".into())),
        };
        let _ = writeln!(
            out,
            "{:<22}  {:<8}  {:>6}  {:>9}  {:>6}  {health}",
            n.addr,
            role,
            or_dash(n.term),
            or_dash(n.applied),
            or_dash(*lag)
        );
    }
    let ms = |v: Option<u64>| v.map_or("-".into(), |v| format!("{v} ms"));
    let _ = writeln!(
        out,
        "\nfailovers: {} in the last hour, {} in the last day; MTTR p50 {}, max {}",
        s.failovers_last_hour,
        s.failovers_last_day,
        ms(s.mttr_p50_ms),
        ms(s.mttr_max_ms)
    );
    let recent: Vec<EventView> = g.events.iter().filter(|e| e.is_failover()).take(SHOWN_FAILOVERS).cloned().collect();
    if !recent.is_empty() {
        let _ = writeln!(out, "\nlast failovers (journal of {}):", g.events_from.as_deref().unwrap_or("?"));
        out.push_str(&events::render(&recent, g.now_ms));
    }
    out
}

pub fn to_json(g: &Gathered) -> Value {
    json!({ "now_ms": g.now_ms, "summary": summarize(g), "nodes": g.nodes, "events": g.events, "events_from": g.events_from })
}

/// `KEEPBIT HEALTH`'s answer as one line; `None` for an error (a node without the
/// command answers one).
pub fn health_text(f: &Frame) -> Option<String> {
    match f {
        Frame::Error(_) => None,
        Frame::Map(pairs) => {
            Some(pairs.iter().map(|(k, v)| format!("{}={}", flat(k), flat(v))).collect::<Vec<_>>().join(" "))
        }
        other => Some(flat(other)),
    }
}

fn flat(f: &Frame) -> String {
    match f {
        Frame::Integer(i) => i.to_string(),
        Frame::Null | Frame::NullArray => "nil".into(),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            items.iter().map(flat).collect::<Vec<_>>().join(" ")
        }
        Frame::Map(_) => health_text(f).unwrap_or_default(),
        other => text(other).map_or_else(|| format!("{other:?}"), |t| t.lines().collect::<Vec<_>>().join("; ")),
    }
}

fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

async fn ask(addr: &str, password: Option<&str>) -> anyhow::Result<NodeStatus> {
    let mut c = connect(addr, password).await?;
    let role = match c.call(&["ROLE"]).await? {
        Frame::Array(items) => items.first().and_then(text),
        _ => None,
    };
    let info = c.call(&["INFO", "replication"]).await.ok().and_then(|f| text(&f)).unwrap_or_default();
    let health = health_text(&c.call(&["KEEPBIT", "HEALTH"]).await?);
    Ok(NodeStatus {
        addr: addr.to_string(),
        error: None,
        role: role.map(|r| if r == "master" { "primary".into() } else { "standby".into() }),
        term: info_field(&info, "keepbit_term"),
        applied: info_field(&info, "master_repl_offset"),
        health,
    })
}

/// Asks every node, then the primary (or the first node that answered) for the journal.
pub async fn gather(addrs: &[String], password: Option<&str>) -> Gathered {
    let asked = futures::future::join_all(addrs.iter().map(|a| ask(a, password))).await;
    let nodes: Vec<NodeStatus> = addrs
        .iter()
        .zip(asked)
        .map(|(addr, r)| {
            r.unwrap_or_else(|e| NodeStatus { addr: addr.clone(), error: Some(e.to_string()), ..NodeStatus::default() })
        })
        .collect();
    let mut sources: Vec<&NodeStatus> = nodes.iter().filter(|n| n.error.is_none()).collect();
    sources.sort_by_key(|n| n.role.as_deref() != Some("primary"));
    let mut g = Gathered { now_ms: unix_ms(), nodes: nodes.clone(), ..Gathered::default() };
    for n in sources {
        if let Ok(events) = events::fetch(&n.addr, password, JOURNAL_FETCH).await {
            (g.events, g.events_from) = (events, Some(n.addr.clone()));
            break;
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::events::tests::event;

    fn node(addr: &str, role: &str, applied: u64) -> NodeStatus {
        NodeStatus {
            addr: addr.into(),
            role: Some(role.into()),
            term: Some(7),
            applied: Some(applied),
            ..NodeStatus::default()
        }
    }

    fn cluster() -> Gathered {
        let now = 100 * DAY_MS;
        Gathered {
            now_ms: now,
            nodes: vec![
                node("10.0.0.1:6379", "primary", 100),
                node("10.0.0.2:6379", "standby", 97),
                NodeStatus {
                    addr: "10.0.0.3:6379".into(),
                    error: Some("connection refused".into()),
                    ..Default::default()
                },
            ],
            events: vec![
                event(7, "crash: connection refused", now - 60_000, Some(300)),
                event(6, "heartbeat timeout", now - 2 * HOUR_MS, Some(900)),
                event(5, "partition (no quorum)", now - 3 * DAY_MS, Some(100)),
                event(4, "heartbeat timeout", now - 3 * DAY_MS, None),
                event(1, "restart", now - 4 * DAY_MS, Some(5)),
            ],
            events_from: Some("10.0.0.1:6379".into()),
        }
    }

    /// Lag against the primary, failovers by age (restarts are none), MTTR over the
    /// completed failovers.
    #[test]
    fn figures_from_what_was_gathered() {
        let s = summarize(&cluster());
        assert_eq!(
            s,
            Summary {
                primary: Some("10.0.0.1:6379".into()),
                term: Some(7),
                lag: vec![Some(0), Some(3), None],
                failovers_last_hour: 1,
                failovers_last_day: 2,
                mttr_p50_ms: Some(300),
                mttr_max_ms: Some(900),
            }
        );
        assert_eq!(summarize(&Gathered::default()), Summary::default());
    }

    /// The screen names the primary, every node (a down one with why), health or n/a, the
    /// figures and the recent failovers with their causes.
    #[test]
    fn the_screen_shows_nodes_failovers_and_mttr() {
        let mut g = cluster();
        g.nodes[1].health = Some("ok".into());
        let screen = render(&g);
        for part in [
            "primary 10.0.0.1:6379, term 7",
            "10.0.0.2:6379           standby",
            "unreachable: connection refused",
            "n/a",
            "1 in the last hour, 2 in the last day; MTTR p50 300 ms, max 900 ms",
            "crash: connection refused",
            "partition (no quorum)",
        ] {
            assert!(screen.contains(part), "{part:?} missing from:\n{screen}");
        }
        assert!(!screen.contains("restart"), "a cluster start is no failover:\n{screen}");
        let v = to_json(&g);
        assert_eq!(v["summary"]["failovers_last_day"], 2);
        assert_eq!(v["nodes"][2]["error"], "connection refused");
    }

    /// An error (no such command yet) is "n/a"; maps and text become one line.
    #[test]
    fn health_replies_become_one_line() {
        use bytes::Bytes;
        let b = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(health_text(&Frame::Error(Bytes::from_static(b"ERR syntax error"))), None);
        assert_eq!(health_text(&b("ok\nfsync 2ms")), Some("ok; fsync 2ms".into()));
        let map = Frame::Map(vec![(b("status"), b("ok")), (b("lag"), Frame::Integer(0))]);
        assert_eq!(health_text(&map), Some("status=ok lag=0".into()));
    }
}
