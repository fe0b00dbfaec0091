//! `keepbit events`: the failover journal as `KEEPBIT EVENTS` returns it, parsed, and
//! shown as a table (newest first) or JSON.

use std::fmt::Write as _;

use keepbit_resp::Frame;
use serde::Serialize;

use super::{age, connect};

/// One journal record as a node reports it (times in Unix ms).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EventView {
    pub term: u64,
    pub old_primary: Option<u64>,
    pub new_primary: u64,
    pub cause: String,
    pub last_contact_ms: Option<u64>,
    pub detected_ms: Option<u64>,
    pub elected_ms: u64,
    pub first_commit_ms: Option<u64>,
    pub mttr_ms: Option<u64>,
}

impl EventView {
    /// A leadership change that replaced a running primary (not a cluster start).
    pub fn is_failover(&self) -> bool {
        self.cause != "restart"
    }
}

fn text(f: &Frame) -> Option<String> {
    crate::client::text(f)
}

fn int(f: Option<&Frame>) -> Option<u64> {
    match f? {
        Frame::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// One record from its map (or, in RESP2, its flat array of field, value pairs).
pub fn parse_event(f: &Frame) -> Option<EventView> {
    let pairs: Vec<(String, &Frame)> = match f {
        Frame::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
        Frame::Array(flat) => flat.chunks(2).filter_map(|kv| Some((text(kv.first()?)?, kv.get(1)?))).collect(),
        _ => return None,
    };
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    Some(EventView {
        term: int(get("term"))?,
        old_primary: int(get("old_primary")),
        new_primary: int(get("new_primary"))?,
        cause: get("cause").and_then(text)?,
        last_contact_ms: int(get("last_contact_ms")),
        detected_ms: int(get("detected_ms")),
        elected_ms: int(get("elected_ms"))?,
        first_commit_ms: int(get("first_commit_ms")),
        mttr_ms: int(get("mttr_ms")),
    })
}

/// A `KEEPBIT EVENTS` reply, newest first.
pub fn parse_events(f: &Frame) -> anyhow::Result<Vec<EventView>> {
    match f {
        Frame::Array(items) => {
            items.iter().map(|i| parse_event(i).ok_or_else(|| anyhow::anyhow!("bad record {i:?}"))).collect()
        }
        Frame::Error(e) => anyhow::bail!("{}", String::from_utf8_lossy(e)),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}

/// `KEEPBIT EVENTS COUNT count` from the node at `addr`.
pub async fn fetch(addr: &str, password: Option<&str>, count: usize) -> anyhow::Result<Vec<EventView>> {
    let mut c = connect(addr, password).await?;
    parse_events(&c.call(&["KEEPBIT", "EVENTS", "COUNT", &count.to_string()]).await?)
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| format!("{v} ms"))
}

/// The journal as a table, newest first; times relative to `now_ms`, durations measured
/// from the last contact with the old primary.
pub fn render(events: &[EventView], now_ms: u64) -> String {
    if events.is_empty() {
        return "no leadership changes recorded\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6}  {:<9}  {:<8}  {:<26}  {:>9}  {:>9}  {:>9}  {:>9}",
        "TERM", "ELECTED", "OLD->NEW", "CAUSE", "DETECT", "ELECT", "COMMIT", "MTTR"
    );
    for e in events {
        let since = |t: Option<u64>| match (e.last_contact_ms, t) {
            (Some(from), Some(t)) => ms(Some(t.saturating_sub(from))),
            _ => "-".into(),
        };
        let old = e.old_primary.map_or("?".into(), |o| o.to_string());
        let _ = writeln!(
            out,
            "{:>6}  {:<9}  {:<8}  {:<26}  {:>9}  {:>9}  {:>9}  {:>9}",
            e.term,
            age(now_ms, e.elected_ms),
            format!("{old}->{}", e.new_primary),
            e.cause,
            since(e.detected_ms),
            since(Some(e.elected_ms)),
            since(e.first_commit_ms),
            ms(e.mttr_ms)
        );
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub(crate) fn event(term: u64, cause: &str, elected_ms: u64, mttr_ms: Option<u64>) -> EventView {
        EventView {
            term,
            old_primary: Some(1),
            new_primary: 2,
            cause: cause.into(),
            last_contact_ms: Some(elected_ms - 300),
            detected_ms: Some(elected_ms - 50),
            elected_ms,
            first_commit_ms: mttr_ms.map(|m| elected_ms - 300 + m),
            mttr_ms,
        }
    }

    /// RESP2 flat arrays and RESP3 maps parse alike; nil fields are `None`.
    #[test]
    fn records_parse_from_either_protocol() {
        let fields = vec![
            (bulk("term"), Frame::Integer(4)),
            (bulk("old_primary"), Frame::Null),
            (bulk("new_primary"), Frame::Integer(2)),
            (bulk("cause"), bulk("restart")),
            (bulk("elected_ms"), Frame::Integer(1000)),
            (bulk("first_commit_ms"), Frame::Integer(1010)),
        ];
        let flat = Frame::Array(fields.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect());
        let want = EventView {
            term: 4,
            new_primary: 2,
            cause: "restart".into(),
            elected_ms: 1000,
            first_commit_ms: Some(1010),
            ..EventView::default()
        };
        assert_eq!(parse_events(&Frame::Array(vec![flat])).expect("parse"), vec![want.clone()]);
        assert_eq!(parse_event(&Frame::Map(fields)), Some(want));
        assert!(parse_events(&Frame::Error(Bytes::from_static(b"ERR syntax error"))).is_err());
    }

    /// The table shows cause, durations from the last contact, and MTTR.
    #[test]
    fn the_table_shows_causes_and_durations() {
        let now = 10_000_000;
        let table = render(&[event(7, "crash: connection refused", now - 65_000, Some(320))], now);
        let row = table.lines().nth(1).expect("a row");
        for part in ["7", "1m ago", "1->2", "crash: connection refused", "250 ms", "300 ms", "320 ms"] {
            assert!(row.contains(part), "{part:?} missing from {row:?}");
        }
        assert_eq!(render(&[], now), "no leadership changes recorded\n");
    }
}
