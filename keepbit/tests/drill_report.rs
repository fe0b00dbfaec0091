//! The drill's HTML report, rendered by a real browser: headless Chromium loads the
//! written `index.html` and we inspect the DOM it built and the screenshot it took.

mod support;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use keepbit::drill::checker::{CheckReport, Violation};
use keepbit::drill::history::{Action, Event, Outcome};
use keepbit::drill::{report, Availability, LeaderChange, Mark, Round};
use support::chromium;

/// A key with markup in it: it must reach the page as text, not as elements.
const LOST_KEY: &str = "orders:<eu>&\"7\"";
const FAULT: &str = "kill -9 node 1 (primary)";

/// The browser builds one SVG timeline per round from the report, shows the fault's
/// label and the lost write (its key still escaped text), and paints a real screenshot.
#[test]
fn report_renders_in_headless_chromium_with_a_timeline_per_round() {
    let Some(chromium) = chromium::find_or_skip("the browser rendering test") else {
        return;
    };
    let dir = fresh_dir();
    let rounds = [round("kill-primary", 1, vec![lost_write()]), round("pause-primary", 1, Vec::new())];
    let index = report::write_report(&dir.join("report"), &rounds).expect("write report");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report/report.json")).expect("json"))
        .expect("report.json parses");
    assert_eq!(json["rounds"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["rounds"][0]["events"]["total"], 300);

    let url = format!("file://{}", index.display());
    let dom = chromium::dump_dom(&chromium, &dir, "dom", &url);
    assert_eq!(dom.matches("<svg").count(), 2, "one timeline per round");
    assert!(dom.contains(&format!(">{FAULT}</text>")), "fault label on the timeline");
    assert!(dom.contains("Lost writes (1)"));
    assert!(dom.contains("acknowledged RPUSH of v-117 missing from the final LRANGE"));
    assert!(dom.contains("orders:&lt;eu&gt;&amp;\"7\""), "key shown as text");
    assert!(!dom.contains("<eu>"), "key markup must not become an element");
    assert!(dom.contains("term 3 → node 2") && dom.contains("term 2 → none"));

    let bytes = chromium::screenshot(&chromium, &dir, "shot", &url);
    assert!(bytes.starts_with(b"\x89PNG"), "screenshot is a PNG");
    assert!(bytes.len() > 5_000, "screenshot is {} bytes: blank page?", bytes.len());

    let _ = std::fs::remove_dir_all(&dir);
}

fn fresh_dir() -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("keepbit-drill-report-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// 300 appends from 4 clients over 3 s: acknowledged until the fault at 1.0 s, refused
/// or unanswered until a new primary at 1.8 s, acknowledged again after.
fn events() -> Vec<Event> {
    (0..300u64)
        .map(|id| {
            let complete_us = id * 10_000 + 5_000;
            let outcome = match complete_us {
                1_000_000..=1_800_000 if id % 3 == 0 => Outcome::Unknown { reason: "timeout".into() },
                1_000_000..=1_800_000 => Outcome::Fail { reason: "connection refused".into() },
                _ => Outcome::Ok { value: Some(format!("{}", id / 4 + 1)) },
            };
            Event {
                id,
                client: (id % 4) as u32,
                action: Action::Append { key: format!("orders:{}", id % 4), value: format!("v-{id}") },
                invoke_us: complete_us - 4_000,
                complete_us,
                outcome,
                node: format!("127.0.0.1:700{}", if complete_us < 1_000_000 { 1 } else { 2 }),
            }
        })
        .collect()
}

fn lost_write() -> Violation {
    let append = Event {
        id: 117,
        client: 1,
        action: Action::Append { key: LOST_KEY.into(), value: "v-117".into() },
        invoke_us: 1_171_000,
        complete_us: 1_175_000,
        outcome: Outcome::Ok { value: Some("3".into()) },
        node: "127.0.0.1:7001".into(),
    };
    let read = Event {
        id: 301,
        client: 0,
        action: Action::ReadList { key: LOST_KEY.into() },
        invoke_us: 3_000_000,
        complete_us: 3_002_000,
        outcome: Outcome::Ok { value: Some("v-1 v-2".into()) },
        node: "127.0.0.1:7002".into(),
    };
    Violation {
        key: LOST_KEY.into(),
        detail: "acknowledged RPUSH of v-117 missing from the final LRANGE".into(),
        events: vec![append, read],
    }
}

fn round(scenario: &str, number: u32, lost: Vec<Violation>) -> Round {
    let events = events();
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count() as u64;
    let availability = Availability {
        detection_ms: Some(450.0),
        new_primary_ms: Some(800.0),
        write_gap_ms: Some(810.0),
        failovers: 1,
        ok: count(Event::ok),
        failed: count(|e| !e.ok() && !e.unknown()),
        unknown: count(Event::unknown),
        journal_cause: Some("crash: connection refused".into()),
        journal_mttr_ms: Some(400.0),
    };
    Round {
        scenario: scenario.into(),
        round: number,
        duration_us: 3_000_000,
        marks: vec![
            Mark { at_us: 1_000_000, kind: "fault".into(), what: FAULT.into() },
            Mark { at_us: 2_200_000, kind: "heal".into(), what: "restart node 1".into() },
        ],
        leaders: vec![
            LeaderChange { at_us: 1_450_000, term: 2, leader: None },
            LeaderChange { at_us: 1_800_000, term: 3, leader: Some(2) },
        ],
        availability,
        check: CheckReport {
            lost,
            duplicated: Vec::new(),
            phantom: Vec::new(),
            nonlinearizable: Vec::new(),
            journal: Vec::new(),
            leadership: Vec::new(),
            undecided: Vec::new(),
            keys_checked: 5,
        },
        events,
    }
}
