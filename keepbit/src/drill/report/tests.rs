//! Drill report tests.

use super::html::*;
use super::json::*;
use super::*;
use crate::drill::Availability;

fn event(id: u64, complete_us: u64, outcome: Outcome) -> Event {
    Event {
        id,
        client: (id % 4) as u32,
        action: Action::Append { key: format!("k{}", id % 3), value: format!("v{id}") },
        invoke_us: complete_us.saturating_sub(2_000),
        complete_us,
        outcome,
        node: "127.0.0.1:7001".to_string(),
    }
}

fn ok() -> Outcome {
    Outcome::Ok { value: None }
}

fn fail() -> Outcome {
    Outcome::Fail { reason: "READONLY".to_string() }
}

fn unknown() -> Outcome {
    Outcome::Unknown { reason: "timeout".to_string() }
}

fn check(lost: Vec<Violation>) -> CheckReport {
    CheckReport {
        lost,
        duplicated: Vec::new(),
        phantom: Vec::new(),
        nonlinearizable: Vec::new(),
        journal: Vec::new(),
        leadership: Vec::new(),
        undecided: Vec::new(),
        keys_checked: 3,
    }
}

fn round(scenario: &str, number: u32, gap_ms: f64, lost: Vec<Violation>) -> Round {
    Round {
        scenario: scenario.to_string(),
        round: number,
        duration_us: 2_000_000,
        events: (0..40).map(|i| event(i, i * 50_000, if i % 7 == 3 { unknown() } else { ok() })).collect(),
        marks: vec![
            Mark { at_us: 500_000, kind: "fault".to_string(), what: "kill -9 node 1 <primary> & \"more\"".to_string() },
            Mark { at_us: 1_500_000, kind: "heal".to_string(), what: "restart node 1".to_string() },
        ],
        leaders: vec![
            LeaderChange { at_us: 600_000, term: 2, leader: None },
            LeaderChange { at_us: 900_000, term: 3, leader: Some(2) },
        ],
        availability: Availability {
            detection_ms: Some(gap_ms / 3.0),
            new_primary_ms: Some(gap_ms / 2.0),
            write_gap_ms: Some(gap_ms),
            failovers: 1,
            ok: 34,
            failed: 0,
            unknown: 6,
            journal_cause: Some("crash: connection refused".to_string()),
            journal_mttr_ms: Some(gap_ms / 2.0),
        },
        check: check(lost),
    }
}

fn lost_write() -> Violation {
    Violation {
        key: "list:<b>&\"x\"".to_string(),
        detail: "acknowledged value v7 missing from the final read".to_string(),
        events: vec![event(7, 350_000, ok())],
    }
}

/// Nearest rank picks observed values: p50 of 1..=100 is 50 and p99 is 99, whatever
/// the input order.
#[test]
fn percentiles_use_nearest_rank() {
    let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
    let stats = percentiles(&values).expect("non-empty");
    assert_eq!((stats.count, stats.min, stats.p50, stats.p99, stats.max), (100, 1.0, 50.0, 99.0, 100.0));

    let stats = percentiles(&[4.0, 1.0, 3.0, 2.0]).expect("non-empty");
    assert_eq!((stats.min, stats.p50, stats.p99, stats.max), (1.0, 2.0, 4.0, 4.0));

    let stats = percentiles(&[7.5]).expect("non-empty");
    assert_eq!((stats.min, stats.p50, stats.p99, stats.max), (7.5, 7.5, 7.5, 7.5));
}

/// An empty sample (or one of only NaNs) has no percentiles rather than zeros.
#[test]
fn percentiles_of_nothing_are_none() {
    assert_eq!(percentiles(&[]), None);
    assert_eq!(percentiles(&[f64::NAN]), None);
    assert_eq!(percentiles(&[f64::NAN, 3.0]).map(|s| s.count), Some(1));
}

/// Buckets are 50 ms until a round would need more than 2000 of them, then widen in
/// multiples of 50 ms.
#[test]
fn bucket_width_keeps_at_most_2000_buckets() {
    assert_eq!(bucket_width_us(0), 50_000);
    assert_eq!(bucket_width_us(10_000_000), 50_000);
    assert_eq!(bucket_width_us(100_000_000), 50_000);
    assert_eq!(bucket_width_us(100_000_001), 100_000);
    assert_eq!(bucket_width_us(3_600_000_000), 1_800_000);
    for span_us in [1, 99_999_999, 100_000_001, 3_600_000_000, 86_400_000_000] {
        let width_us = bucket_width_us(span_us);
        assert!(span_us.div_ceil(width_us) <= BUCKETS_MAX, "span {span_us}");
    }
}

/// Operations land in the bucket of their completion time, split by outcome; late
/// completions land in the last bucket instead of being dropped.
#[test]
fn bucket_counts_by_completion_and_outcome() {
    let events = [
        event(1, 0, ok()),
        event(2, 49_999, fail()),
        event(3, 50_000, unknown()),
        event(4, 50_001, ok()),
        event(5, 149_999, ok()),
        event(6, 10_000_000, fail()),
    ];
    let buckets = bucket_counts(&events, 150_000, 50_000);
    assert_eq!(
        buckets,
        vec![
            Bucket { ok: 1, failed: 1, unknown: 0 },
            Bucket { ok: 1, failed: 0, unknown: 1 },
            Bucket { ok: 1, failed: 1, unknown: 0 },
        ]
    );
    assert_eq!(bucket_counts(&[], 0, 50_000), vec![Bucket::default()]);
}

/// Keys, values and fault descriptions are client data: markup in them stays text.
#[test]
fn escape_covers_markup_and_quotes() {
    assert_eq!(
        escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
    );
    assert_eq!(escape("plain: ünïcode"), "plain: ünïcode");
}

/// The page holds exactly one SVG timeline per round, and no client text as markup.
#[test]
fn html_has_one_svg_per_round_and_escapes_text() {
    let rounds = [
        round("kill-primary", 1, 800.0, vec![lost_write()]),
        round("kill-primary", 2, 900.0, Vec::new()),
        round("partition", 1, 1200.0, Vec::new()),
    ];
    let html = to_html(&rounds);
    assert_eq!(html.matches("<svg").count(), 3);
    assert_eq!(html.matches("</svg>").count(), 3);
    assert!(html.contains("kill -9 node 1 &lt;primary&gt; &amp; &quot;more&quot;"));
    assert!(html.contains("list:&lt;b&gt;&amp;&quot;x&quot;"));
    assert!(!html.contains("<b>") && !html.contains("<primary>"));
    assert!(html.contains("RPUSH k1 v7"));
    assert!(html.contains("term 3 → node 2") && html.contains("term 2 → none"));
    assert!(!html.contains("<script"));
    assert!(html.contains("journal: crash: connection refused, MTTR 400.0 ms"), "the journal's cause beside the gap");
    let mut wrong = round("kill-primary", 3, 800.0, Vec::new());
    wrong.check.journal.push(Violation {
        key: "journal".into(),
        detail: "recorded as \"planned switchover\"".into(),
        events: Vec::new(),
    });
    let html = to_html(&[wrong]);
    assert!(html.contains("Failover journal (1)") && html.contains("verdict fail"), "a wrong cause fails the round");
}

/// The table has a row per scenario in order of appearance, aligned columns, and
/// ends with FAIL when any round has a violation.
#[test]
fn summary_table_aggregates_per_scenario() {
    let rounds = [
        round("kill-primary", 1, 800.0, vec![lost_write()]),
        round("partition", 1, 1200.0, Vec::new()),
        round("kill-primary", 2, 900.0, Vec::new()),
    ];
    let table = summary_table(&rounds);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 8, "{table}");
    assert!(lines[0].starts_with("scenario") && lines[0].contains("gap p99"));
    assert!(lines[1].starts_with("kill-primary ") && lines[2].starts_with("partition "));
    let column_end = |line: &str, word: &str| line.find(word).map(|i| i + word.len());
    assert_eq!(column_end(lines[0], "gap min"), column_end(lines[1], "800.0"));
    assert_eq!(
        lines[4],
        "  kill-primary #1: journal crash: connection refused, MTTR 400.0 ms; client write gap 800.0 ms"
    );
    assert!(lines[7].starts_with("FAIL: 3 rounds, 2 scenarios, 1 violation (1 lost"), "{}", lines[7]);

    let summaries = summarize(&rounds);
    assert_eq!(summaries[0].rounds, 2);
    assert_eq!(summaries[0].write_gap_ms.map(|s| (s.min, s.max)), Some((800.0, 900.0)));
    assert_eq!((summaries[0].ok, summaries[0].unknown, summaries[0].failovers), (68, 12, 2));
}

/// No rounds is not a pass; all-clean rounds are.
#[test]
fn verdict_needs_rounds_and_clean_checks() {
    assert!(summary_table(&[]).ends_with("FAIL: no rounds were run\n"));
    let clean = [round("kill-primary", 1, 800.0, Vec::new())];
    assert!(summary_table(&clean)
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("PASS: 1 round, 1 scenario, 0 violations")));
}

/// The JSON counts events instead of listing them, but keeps violations' histories.
#[test]
fn json_counts_events_and_keeps_violations() {
    let rounds = [round("kill-primary", 1, 800.0, vec![lost_write()])];
    let json = to_json(&rounds);
    assert_eq!(json["pass"], false);
    assert_eq!(json["scenarios"][0]["write_gap_ms"]["p50"], 800.0);
    let first = &json["rounds"][0];
    assert_eq!(first["events"]["total"], 40);
    assert_eq!(first["events"]["unknown"], 6);
    assert_eq!(first["leaders"].as_array().map(Vec::len), Some(2));
    assert_eq!(first["check"]["lost"]["count"], 1);
    assert_eq!(first["check"]["lost"]["shown"][0]["events"][0]["id"], 7);
    assert_eq!(json.to_string().matches("\"invoke_us\"").count(), 1);
    assert_eq!(first["availability"]["journal_cause"], "crash: connection refused");
    assert_eq!(first["availability"]["journal_mttr_ms"], 400.0);
    assert_eq!(first["check"]["journal"]["count"], 0);
    assert_eq!(json["scenarios"][0]["journal_mttr_ms"]["p50"], 400.0);
}

#[test]
fn progress_line_reads_naturally() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(12_345), "12,345");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(progress_message(12_345, 0, 0, 2), "12,345 ops · 2 faults");
    assert_eq!(progress_message(1_000, 20, 3, 1), "1,023 ops (20 failed, 3 unknown) · 1 fault");
    let progress = Progress::with_draw_target(20, ProgressDrawTarget::hidden());
    progress.set_round("kill-primary", 1);
    progress.set_round("partition", 1);
    assert_eq!(progress.bar.position(), 2);
    assert_eq!(progress.bar.prefix(), "partition round 1");
    progress.set_ops(5, 1, 0);
    progress.set_faults(1);
    assert_eq!(progress.message(), "6 ops (1 failed, 0 unknown) · 1 fault");
    progress.finish();
    assert_eq!(progress.bar.position(), 2);
}
