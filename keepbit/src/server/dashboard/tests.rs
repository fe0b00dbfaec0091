//! The dashboard page as data: what a view renders to.

use super::html::{clock_time, escape, render};
use super::{MemberView, View};
use crate::health::Status;
use crate::store::journal::{Cause, FailoverRecord};

fn member(id: u64, role: &str, lag: Option<u64>) -> MemberView {
    MemberView {
        id,
        client_addr: format!("127.0.0.1:638{id}"),
        role: role.into(),
        this_node: id == 2,
        health: Some(Status::Ok),
        reasons: Vec::new(),
        lag_entries: lag,
        matched_index: lag.map(|l| 100 - l),
    }
}

fn record(term: u64, cause: Cause, at_ms: u64) -> FailoverRecord {
    FailoverRecord {
        term,
        old_primary: Some(1),
        new_primary: 2,
        cause,
        last_contact_ms: Some(at_ms),
        detected_ms: Some(at_ms + 100),
        elected_ms: at_ms + 150,
        first_commit_ms: Some(at_ms + 184),
    }
}

fn view(journal: Vec<FailoverRecord>) -> View {
    View {
        node_id: 2,
        role: "primary".into(),
        now_ms: 1_700_000_000_000,
        term: 3,
        committed: 100,
        applied: 100,
        last_log_index: 100,
        members: vec![member(1, "standby", Some(40)), member(2, "primary", Some(0)), member(3, "standby", None)],
        journal,
    }
}

/// Markup in any data-borne text (addresses, roles, reasons, causes) reaches the page as
/// text, never as elements or attribute breaks.
#[test]
fn every_text_is_escaped() {
    assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    let mut v = view(vec![record(4, Cause::Crash("<script>alert(1)</script>".into()), 1_000)]);
    v.members[0].client_addr = "<img src=x>:6379".into();
    v.members[0].role = "\"><u>standby".into();
    v.members[0].health = Some(Status::Degraded);
    v.members[0].reasons = vec!["suspected <phi> & \"late\"".into()];
    let page = render(&v);
    for raw in ["<script", "<img", "<u>", "<phi>"] {
        assert!(!page.contains(raw), "{raw} reached the page unescaped");
    }
    for escaped in [
        "&lt;img src=x&gt;:6379",
        "&quot;&gt;&lt;u&gt;standby",
        "suspected &lt;phi&gt; &amp; &quot;late&quot;",
        "crash: &lt;script&gt;alert(1)&lt;/script&gt;",
    ] {
        assert!(page.contains(escaped), "{escaped} missing");
    }
}

/// Without records the page says so and draws no timeline; members, roles, health and
/// positions show, and it refreshes itself.
#[test]
fn an_empty_journal() {
    let page = render(&view(Vec::new()));
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"2\">"));
    assert!(page.contains("<p id=\"journal-empty\">"));
    assert!(!page.contains("id=\"timeline\""));
    assert!(page.contains("term <b>3</b> · commit <b>100</b> · applied <b>100</b>"));
    assert!(page.contains("<title>Keepbit node 2 (primary)</title>"));
    assert!(page.contains("data-id=\"2\" data-role=\"primary\" data-health=\"ok\""));
    assert!(page.contains("<td>2 (this node)</td><td class=\"addr\">127.0.0.1:6382</td>"));
    assert_eq!(page.matches("<tr class=\"member").count(), 3);
    assert!(!page.contains("<script"), "no JavaScript");
}

/// Lag bars are proportional to lag: the largest lag fills the bar, no lag draws none,
/// an unknown lag draws no bar.
#[test]
fn lag_bars_are_proportional() {
    let mut v = view(Vec::new());
    v.members.push(member(4, "standby", Some(10)));
    let page = render(&v);
    assert!(page.contains("data-lag=\"40\" width=\"160.0\""));
    assert!(page.contains("data-lag=\"10\" width=\"40.0\""));
    assert!(page.contains("data-lag=\"0\" width=\"0.0\""));
    assert!(page.contains("40 entries (matched 60)"));
    assert_eq!(page.matches("class=\"lagbar\"").count(), 3, "member 3's lag is unknown");
    assert!(page.contains("<span class=\"unknown\">n/a</span>"));
}

/// One completed failover: one mark at the timeline's centre with its cause, MTTR and
/// old → new primary, an outage band, and one table row.
#[test]
fn one_failover() {
    let page = render(&view(vec![record(4, Cause::Crash("connection refused".into()), 1_000)]));
    assert_eq!(page.matches("<g class=\"event\"").count(), 1);
    assert!(page.contains("<circle class=\"mark crash\""));
    assert!(page.contains("term 4 · crash: connection refused · MTTR 184 ms · 1 → 2"));
    assert!(page.contains("class=\"outage\""));
    assert!(page.contains("<td class=\"cause\">crash: connection refused</td><td>184 ms</td><td>1 → 2</td>"));
    assert!(page.contains(&format!("<td>{}</td>", clock_time(1_150))));
    assert!(page.contains("Failover journal (newest 1)"));
}

/// Many records: one lane each, newest on top, placed by time; a pending one says so.
#[test]
fn many_failovers() {
    let mut records: Vec<FailoverRecord> =
        (0..12u64).rev().map(|i| record(10 + i, Cause::HeartbeatTimeout, 60_000 * i)).collect();
    records[0].first_commit_ms = None;
    records[0].cause = Cause::PlannedSwitchover;
    records[11].old_primary = None;
    records[11].cause = Cause::Restart;
    let page = render(&view(records));
    assert_eq!(page.matches("<g class=\"event\"").count(), 12);
    assert_eq!(page.matches("<tr class=\"record\"").count(), 12);
    let first = page.find("data-term=\"21\"").expect("newest");
    let last = page.find("data-term=\"10\"").expect("oldest");
    assert!(first < last, "newest first");
    assert!(page.contains("term 21 · planned switchover · MTTR pending · 1 → 2"));
    assert!(page.contains("term 10 · restart · MTTR 184 ms · none → 2"));
    assert!(page.contains("<rect class=\"outage\" x=\"24.0\""), "the oldest outage starts at the left edge");
    assert!(page.contains("<text x=\"24\" y=\"14\">00:00:00.000</text>"));
    assert_eq!(page.matches("class=\"outage\"").count(), 11, "the pending record has no outage band yet");
}

#[test]
fn clock_times_are_utc_of_day() {
    assert_eq!(clock_time(0), "00:00:00.000");
    assert_eq!(clock_time(86_400_000 + 3_723_004), "01:02:03.004");
}
