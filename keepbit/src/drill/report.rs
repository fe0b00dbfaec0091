//! What a drill shows: a live progress line while it runs, then a plain-text summary,
//! a JSON document and one self-contained HTML page with a timeline per round.
//!
//! Events can number in the millions, so nothing here lists them all: the JSON keeps
//! counts, the HTML draws them as bounded buckets, and only the violations' own
//! sub-histories are printed (capped too).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};

use super::checker::{CheckReport, Violation};
use super::history::{Action, Event, Outcome};
use super::{LeaderChange, Mark, Round};

/// Timeline buckets are this wide unless the round is too long for [`BUCKETS_MAX`].
const BUCKET_US: u64 = 50_000;
/// Upper bound on buckets per timeline, which bounds the SVG's size.
const BUCKETS_MAX: u64 = 2_000;
/// Marks and leader changes drawn per timeline; the rest are counted in a note.
const MARKERS_MAX: usize = 200;
/// Violations printed per kind and round (HTML and JSON); the rest are counted.
const VIOLATIONS_SHOWN_MAX: usize = 50;
/// Events printed per violation's sub-history; the rest are counted.
const VIOLATION_EVENTS_MAX: usize = 100;

// ---------------------------------------------------------------------------------------
// Progress line

/// The one-line live progress shown on stderr while a drill runs:
/// `scenario kill-primary round 3 · 13/40 rounds · 12,345 ops (12 failed, 3 unknown) · 2 faults
/// · 00:01:07`. It takes `&self` so workload tasks can share it.
/// Hidden when stderr is not a terminal, so logs and CI output stay clean.
pub struct Progress {
    bar: ProgressBar,
    rounds_started: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
    faults: AtomicU64,
}

impl Progress {
    pub fn new(total_rounds: u32) -> Self {
        if io::stderr().is_terminal() {
            let progress = Self::with_draw_target(total_rounds, ProgressDrawTarget::stderr());
            progress.bar.enable_steady_tick(Duration::from_millis(250));
            progress
        } else {
            Self::with_draw_target(total_rounds, ProgressDrawTarget::hidden())
        }
    }

    fn with_draw_target(total_rounds: u32, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(u64::from(total_rounds)), target);
        let template = "scenario {prefix} · {pos}/{len} rounds · {msg} · {elapsed_precise}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        let progress = Self {
            bar,
            rounds_started: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        };
        progress.redraw();
        progress
    }

    /// A round starts: `round` is the scenario's own round number; the drill-wide count
    /// (out of `total_rounds`) advances by one per call.
    pub fn set_round(&self, scenario: &str, round: u32) {
        let started = self.rounds_started.fetch_add(1, Ordering::Relaxed) + 1;
        self.bar.set_prefix(format!("{scenario} round {round}"));
        self.bar.set_position(started);
    }

    /// Operations completed so far, by outcome.
    pub fn set_ops(&self, ok: u64, failed: u64, unknown: u64) {
        self.ok.store(ok, Ordering::Relaxed);
        self.failed.store(failed, Ordering::Relaxed);
        self.unknown.store(unknown, Ordering::Relaxed);
        self.redraw();
    }

    /// Faults injected so far.
    pub fn set_faults(&self, faults: u64) {
        self.faults.store(faults, Ordering::Relaxed);
        self.redraw();
    }

    /// Leaves the final line in place, as it stands (the summary table follows it). Not
    /// `ProgressBar::finish`, which would claim every round ran even if the drill stopped.
    pub fn finish(&self) {
        self.bar.abandon();
    }

    /// The part after `N/M rounds`, as currently shown.
    fn message(&self) -> String {
        progress_message(
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
            self.faults.load(Ordering::Relaxed),
        )
    }

    fn redraw(&self) {
        self.bar.set_message(self.message());
    }
}

fn progress_message(ok: u64, failed: u64, unknown: u64, faults: u64) -> String {
    let ops = thousands(ok + failed + unknown);
    let faults_word = if faults == 1 { "fault" } else { "faults" };
    if failed == 0 && unknown == 0 {
        return format!("{ops} ops · {faults} {faults_word}");
    }
    format!("{ops} ops ({} failed, {} unknown) · {faults} {faults_word}", thousands(failed), thousands(unknown))
}

/// `12345` → `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        len => len,
    };
    let mut out = digits[..head].to_string();
    for start in (head..digits.len()).step_by(3) {
        out.push(',');
        out.push_str(&digits[start..start + 3]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Summaries

/// Order statistics of a sample, nearest-rank.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles (the p-th percentile is the smallest value with at least p%
/// of the sample at or below it, so it is always an observed value). NaNs are ignored;
/// `None` when nothing is left.
pub fn percentiles(values: &[f64]) -> Option<Stats> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = |pct: usize| sorted[(pct * sorted.len()).div_ceil(100).max(1) - 1];
    Some(Stats { count: sorted.len(), min: sorted[0], p50: rank(50), p99: rank(99), max: sorted[sorted.len() - 1] })
}

/// One scenario's rounds, aggregated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioSummary {
    pub scenario: String,
    pub rounds: usize,
    /// Rounds whose check did not pass.
    pub failed_rounds: usize,
    pub failovers: u64,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    pub write_gap_ms: Option<Stats>,
    pub new_primary_ms: Option<Stats>,
    pub detection_ms: Option<Stats>,
    pub lost: usize,
    pub duplicated: usize,
    pub phantom: usize,
    pub nonlinearizable: usize,
    pub undecided: usize,
    pub keys_checked: usize,
}

impl ScenarioSummary {
    pub fn violations(&self) -> usize {
        self.lost + self.duplicated + self.phantom + self.nonlinearizable
    }
}

/// Per-scenario summaries, in the order scenarios first appear.
pub fn summarize(rounds: &[Round]) -> Vec<ScenarioSummary> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_scenario: BTreeMap<&str, Vec<&Round>> = BTreeMap::new();
    for round in rounds {
        let entry = by_scenario.entry(&round.scenario).or_default();
        if entry.is_empty() {
            order.push(&round.scenario);
        }
        entry.push(round);
    }
    order.into_iter().map(|name| summarize_scenario(name, &by_scenario[name])).collect()
}

fn summarize_scenario(scenario: &str, rounds: &[&Round]) -> ScenarioSummary {
    let figures = |f: fn(&Round) -> Option<f64>| -> Option<Stats> {
        percentiles(&rounds.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let count = |f: fn(&CheckReport) -> usize| rounds.iter().map(|r| f(&r.check)).sum();
    ScenarioSummary {
        scenario: scenario.to_string(),
        rounds: rounds.len(),
        failed_rounds: rounds.iter().filter(|r| !r.check.ok()).count(),
        failovers: rounds.iter().map(|r| u64::from(r.availability.failovers)).sum(),
        ok: rounds.iter().map(|r| r.availability.ok).sum(),
        failed: rounds.iter().map(|r| r.availability.failed).sum(),
        unknown: rounds.iter().map(|r| r.availability.unknown).sum(),
        write_gap_ms: figures(|r| r.availability.write_gap_ms),
        new_primary_ms: figures(|r| r.availability.new_primary_ms),
        detection_ms: figures(|r| r.availability.detection_ms),
        lost: count(|c| c.lost.len()),
        duplicated: count(|c| c.duplicated.len()),
        phantom: count(|c| c.phantom.len()),
        nonlinearizable: count(|c| c.nonlinearizable.len()),
        undecided: count(|c| c.undecided.len()),
        keys_checked: count(|c| c.keys_checked),
    }
}

/// A drill passes when it ran at least one round and every round's check passed.
fn passed(rounds: &[Round]) -> bool {
    !rounds.is_empty() && rounds.iter().all(|r| r.check.ok())
}

/// The closing PASS/FAIL line.
fn verdict(rounds: &[Round], summaries: &[ScenarioSummary]) -> String {
    if rounds.is_empty() {
        return "FAIL: no rounds were run".to_string();
    }
    let sum = |f: fn(&ScenarioSummary) -> usize| summaries.iter().map(f).sum::<usize>();
    let mut line = format!(
        "{}: {}, {}, {} ({} lost, {} duplicated, {} phantom, {} nonlinearizable), {} checked",
        if passed(rounds) { "PASS" } else { "FAIL" },
        counted(rounds.len(), "round"),
        counted(summaries.len(), "scenario"),
        counted(sum(ScenarioSummary::violations), "violation"),
        sum(|s| s.lost),
        sum(|s| s.duplicated),
        sum(|s| s.phantom),
        sum(|s| s.nonlinearizable),
        counted(sum(|s| s.keys_checked), "key"),
    );
    let undecided = sum(|s| s.undecided);
    if undecided > 0 {
        let _ = write!(line, ", {} undecided", counted(undecided, "key"));
    }
    let failed_rounds = sum(|s| s.failed_rounds);
    if failed_rounds > 0 {
        let _ = write!(line, "; {} failed", counted(failed_rounds, "round"));
    }
    line
}

/// `1 round`, `12,345 keys`.
fn counted(n: usize, noun: &str) -> String {
    let plural = if n == 1 { "" } else { "s" };
    format!("{} {noun}{plural}", thousands(n as u64))
}

const TABLE_HEADER: [&str; 17] = [
    "scenario",
    "rounds",
    "failovers",
    "ok",
    "failed",
    "unknown",
    "gap min",
    "gap p50",
    "gap p99",
    "gap max",
    "primary p50",
    "primary p99",
    "detect p50",
    "lost",
    "dup",
    "phantom",
    "nonlin",
];

fn table_row(s: &ScenarioSummary) -> [String; 17] {
    let ms = |stats: Option<Stats>, f: fn(&Stats) -> f64| match stats {
        Some(stats) => format!("{:.1}", f(&stats)),
        None => "-".to_string(),
    };
    [
        s.scenario.clone(),
        s.rounds.to_string(),
        s.failovers.to_string(),
        thousands(s.ok),
        thousands(s.failed),
        thousands(s.unknown),
        ms(s.write_gap_ms, |t| t.min),
        ms(s.write_gap_ms, |t| t.p50),
        ms(s.write_gap_ms, |t| t.p99),
        ms(s.write_gap_ms, |t| t.max),
        ms(s.new_primary_ms, |t| t.p50),
        ms(s.new_primary_ms, |t| t.p99),
        ms(s.detection_ms, |t| t.p50),
        s.lost.to_string(),
        s.duplicated.to_string(),
        s.phantom.to_string(),
        s.nonlinearizable.to_string(),
    ]
}

/// The per-scenario table printed at the end of a drill, columns aligned, times in
/// milliseconds, ending with the PASS/FAIL line.
pub fn summary_table(rounds: &[Round]) -> String {
    let summaries = summarize(rounds);
    let rows: Vec<[String; 17]> = summaries.iter().map(table_row).collect();
    let mut widths = TABLE_HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = TABLE_HEADER.map(str::to_string);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            let _ = match i {
                0 => write!(line, "{cell:<width$}"),
                _ => write!(line, "  {cell:>width$}"),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(
        "times in ms: gap = fault to first acknowledged write; \
         primary = fault to new primary; detect = fault to old primary deposed\n",
    );
    out.push_str(&verdict(rounds, &summaries));
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------
// JSON

/// The machine-readable report: per-scenario summaries and, per round, availability,
/// marks, leaders and the check (violations with their sub-histories). Events are
/// counted, not listed.
pub fn to_json(rounds: &[Round]) -> Value {
    let summaries = summarize(rounds);
    json!({
        "pass": passed(rounds),
        "verdict": verdict(rounds, &summaries),
        "scenarios": summaries,
        "rounds": rounds.iter().map(round_json).collect::<Vec<_>>(),
    })
}

fn round_json(round: &Round) -> Value {
    let counts = EventCounts::of(&round.events);
    json!({
        "scenario": round.scenario,
        "round": round.round,
        "duration_us": round.duration_us,
        "pass": round.check.ok(),
        "events": counts,
        "availability": round.availability,
        "marks": round.marks,
        "leaders": round.leaders,
        "check": check_json(&round.check),
    })
}

#[derive(Debug, Default, Serialize)]
struct EventCounts {
    total: usize,
    ok: usize,
    failed: usize,
    unknown: usize,
    writes: usize,
    reads: usize,
}

impl EventCounts {
    fn of(events: &[Event]) -> Self {
        let mut counts = Self { total: events.len(), ..Self::default() };
        for event in events {
            match event.outcome {
                Outcome::Ok { .. } => counts.ok += 1,
                Outcome::Fail { .. } => counts.failed += 1,
                Outcome::Unknown { .. } => counts.unknown += 1,
            }
            if event.action.is_write() {
                counts.writes += 1;
            } else {
                counts.reads += 1;
            }
        }
        counts
    }
}

fn check_json(check: &CheckReport) -> Value {
    json!({
        "keys_checked": check.keys_checked,
        "undecided": check.undecided,
        "lost": violations_json(&check.lost),
        "duplicated": violations_json(&check.duplicated),
        "phantom": violations_json(&check.phantom),
        "nonlinearizable": violations_json(&check.nonlinearizable),
    })
}

fn violations_json(violations: &[Violation]) -> Value {
    let shown: Vec<Value> = violations
        .iter()
        .take(VIOLATIONS_SHOWN_MAX)
        .map(|v| {
            let events = &v.events[..v.events.len().min(VIOLATION_EVENTS_MAX)];
            json!({
                "key": v.key,
                "detail": v.detail,
                "events": events,
                "events_omitted": v.events.len() - events.len(),
            })
        })
        .collect();
    json!({
        "count": violations.len(),
        "omitted": violations.len() - shown.len(),
        "shown": shown,
    })
}

// ---------------------------------------------------------------------------------------
// HTML

/// Escapes text for HTML element content and quoted attribute values (inline SVG
/// included, since the HTML parser reads it).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Operations completed within one timeline bucket, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub ok: u32,
    pub failed: u32,
    pub unknown: u32,
}

impl Bucket {
    fn total(&self) -> u32 {
        self.ok + self.failed + self.unknown
    }
}

/// The timeline's bucket width: 50 ms, widened in whole multiples of 50 ms so that a
/// span of `span_us` needs at most [`BUCKETS_MAX`] buckets.
pub fn bucket_width_us(span_us: u64) -> u64 {
    let buckets_at_base = span_us.div_ceil(BUCKET_US);
    BUCKET_US * buckets_at_base.div_ceil(BUCKETS_MAX).max(1)
}

/// Counts events by completion time into `ceil(span_us / width_us)` buckets (at least
/// one); completions at or past the span land in the last bucket.
pub fn bucket_counts(events: &[Event], span_us: u64, width_us: u64) -> Vec<Bucket> {
    let width_us = width_us.max(1);
    let len = span_us.div_ceil(width_us).max(1);
    let mut buckets = vec![Bucket::default(); len as usize];
    for event in events {
        let i = (event.complete_us / width_us).min(len - 1) as usize;
        let bucket = &mut buckets[i];
        match event.outcome {
            Outcome::Ok { .. } => bucket.ok += 1,
            Outcome::Fail { .. } => bucket.failed += 1,
            Outcome::Unknown { .. } => bucket.unknown += 1,
        }
    }
    buckets
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 32px 0 4px; border-top: 1px solid #ddd; padding-top: 16px; }
h3 { font-size: 15px; margin: 16px 0 4px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f6; }
td.text, th.text { text-align: left; white-space: nowrap; }
td.bad { background: #fde2e1; color: #a40e0e; font-weight: 600; }
.verdict { display: inline-block; padding: 6px 12px; border-radius: 4px; font-weight: 700; margin: 8px 0; }
.pass { background: #dcf5df; color: #155d1e; }
.fail { background: #fde2e1; color: #a40e0e; }
.note, .avail { color: #555; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
svg.timeline { display: block; max-width: 100%; height: auto; background: #fff; }
.violation { margin: 8px 0 16px; }
.violation code, td code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
";

const GREEN: &str = "#3a9a4a";
const RED: &str = "#d33a2c";
const AMBER: &str = "#f0a81c";
const BLUE: &str = "#2a6fd6";
const PURPLE: &str = "#7a4fb5";

/// One self-contained HTML page (inline CSS and SVG; no scripts or external resources):
/// the verdict, the summary table, then per round its timeline and its violations.
pub fn to_html(rounds: &[Round]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_html(&mut out, rounds);
    out
}

fn write_html(out: &mut String, rounds: &[Round]) -> fmt::Result {
    let summaries = summarize(rounds);
    let class = if passed(rounds) { "pass" } else { "fail" };
    writeln!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">")?;
    writeln!(out, "<title>Keepbit drill report</title>\n<style>{STYLE}</style>\n</head>\n<body>")?;
    writeln!(out, "<h1>Keepbit drill report</h1>")?;
    writeln!(out, "<div class=\"verdict {class}\">{}</div>", escape(&verdict(rounds, &summaries)))?;
    write_summary_html(out, &summaries)?;
    for round in rounds {
        write_round_html(out, round)?;
    }
    writeln!(out, "</body>\n</html>")
}

fn write_summary_html(out: &mut String, summaries: &[ScenarioSummary]) -> fmt::Result {
    writeln!(out, "<table class=\"summary\">\n<tr>")?;
    for (i, name) in TABLE_HEADER.iter().enumerate() {
        let class = if i == 0 { " class=\"text\"" } else { "" };
        write!(out, "<th{class}>{}</th>", escape(name))?;
    }
    writeln!(out, "</tr>")?;
    let first_violation_column = TABLE_HEADER.len() - 4;
    for summary in summaries {
        write!(out, "<tr>")?;
        for (i, cell) in table_row(summary).iter().enumerate() {
            let class = match i {
                0 => " class=\"text\"",
                i if i >= first_violation_column && cell != "0" => " class=\"bad\"",
                _ => "",
            };
            write!(out, "<td{class}>{}</td>", escape(cell))?;
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</table>")?;
    writeln!(
        out,
        "<p class=\"note\">Times in ms. gap: fault to the first acknowledged write after it; \
         primary: fault to a new primary; detect: fault to the old primary being deposed.</p>"
    )
}

fn write_round_html(out: &mut String, round: &Round) -> fmt::Result {
    let verdict = if round.check.ok() { "pass" } else { "fail" };
    writeln!(
        out,
        "<section class=\"round\">\n<h2>{} · round {} <span class=\"verdict {verdict}\">{}</span></h2>",
        escape(&round.scenario),
        round.round,
        verdict.to_uppercase()
    )?;
    let a = &round.availability;
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    writeln!(
        out,
        "<p class=\"avail\">{:.1} s · {} ok, {} failed, {} unknown · {} · detection {} · \
         new primary {} · write gap {} · {} checked</p>",
        round.duration_us as f64 / 1e6,
        thousands(a.ok),
        thousands(a.failed),
        thousands(a.unknown),
        counted(a.failovers as usize, "failover"),
        ms(a.detection_ms),
        ms(a.new_primary_ms),
        ms(a.write_gap_ms),
        counted(round.check.keys_checked, "key"),
    )?;
    write_timeline(out, round)?;
    write_check_html(out, &round.check)?;
    writeln!(out, "</section>")
}

/// Geometry of one timeline; x in microseconds maps onto the plot's width.
struct Frame {
    span_us: u64,
}

impl Frame {
    const WIDTH: f64 = 1200.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 16.0;
    /// Two staggered rows of fault/heal labels above the plot.
    const PLOT_TOP: f64 = 40.0;
    const PLOT_HEIGHT: f64 = 180.0;
    /// Axis labels, then two staggered rows of leader markers.
    const HEIGHT: f64 = Self::PLOT_TOP + Self::PLOT_HEIGHT + 76.0;

    fn plot_bottom(&self) -> f64 {
        Self::PLOT_TOP + Self::PLOT_HEIGHT
    }

    fn x(&self, us: u64) -> f64 {
        let plot_width = Self::WIDTH - Self::LEFT - Self::RIGHT;
        Self::LEFT + plot_width * (us.min(self.span_us) as f64 / self.span_us as f64)
    }
}

/// The round's timeline runs to its end or its last recorded instant, whichever is later,
/// so nothing recorded falls off the chart.
fn span_us(round: &Round) -> u64 {
    let last_event = round.events.iter().map(|e| e.complete_us).max().unwrap_or(0);
    let last_mark = round.marks.iter().map(|m| m.at_us).max().unwrap_or(0);
    let last_leader = round.leaders.iter().map(|l| l.at_us).max().unwrap_or(0);
    round.duration_us.max(last_event).max(last_mark).max(last_leader).max(1)
}

fn write_timeline(out: &mut String, round: &Round) -> fmt::Result {
    let span_us = span_us(round);
    let width_us = bucket_width_us(span_us);
    let buckets = bucket_counts(&round.events, span_us, width_us);
    let frame = Frame { span_us };
    writeln!(
        out,
        "<div class=\"legend\"><span><i style=\"background:{GREEN}\"></i>ok</span>\
         <span><i style=\"background:{RED}\"></i>failed</span>\
         <span><i style=\"background:{AMBER}\"></i>unknown</span>\
         <span><i style=\"background:{RED}\"></i>fault</span>\
         <span><i style=\"background:{BLUE}\"></i>heal</span>\
         <span><i style=\"background:{PURPLE}\"></i>leader (term → node)</span>\
         <span>operations per {} ms by completion time</span></div>",
        width_us / 1000
    )?;
    writeln!(
        out,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"system-ui, sans-serif\" font-size=\"11\">",
        w = Frame::WIDTH,
        h = Frame::HEIGHT
    )?;
    write_bars(out, &frame, &buckets, width_us)?;
    write_axis(out, &frame)?;
    write_marks(out, &frame, &round.marks)?;
    write_leaders(out, &frame, &round.leaders)?;
    writeln!(out, "</svg>")?;
    let hidden = round.marks.len().saturating_sub(MARKERS_MAX) + round.leaders.len().saturating_sub(MARKERS_MAX);
    if hidden > 0 {
        writeln!(out, "<p class=\"note\">{hidden} marks or leader changes not drawn.</p>")?;
    }
    Ok(())
}

fn write_bars(out: &mut String, frame: &Frame, buckets: &[Bucket], width_us: u64) -> fmt::Result {
    let peak = buckets.iter().map(Bucket::total).max().unwrap_or(0).max(1);
    let scale = Frame::PLOT_HEIGHT / f64::from(peak);
    let bottom = frame.plot_bottom();
    writeln!(out, "<g shape-rendering=\"crispEdges\">")?;
    for (i, bucket) in buckets.iter().enumerate() {
        let start_us = i as u64 * width_us;
        let x = frame.x(start_us);
        let w = (frame.x(start_us + width_us) - x).max(0.5);
        let mut y = bottom;
        for (count, color) in [(bucket.ok, GREEN), (bucket.failed, RED), (bucket.unknown, AMBER)] {
            if count == 0 {
                continue;
            }
            let h = f64::from(count) * scale;
            y -= h;
            writeln!(out, "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" height=\"{h:.2}\" fill=\"{color}\"/>")?;
        }
    }
    writeln!(out, "</g>")?;
    writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{peak}</text>\
         <text x=\"{:.1}\" y=\"{bottom:.1}\" text-anchor=\"end\">0</text>",
        Frame::LEFT - 4.0,
        Frame::PLOT_TOP + 10.0,
        Frame::LEFT - 4.0
    )
}

/// Tick spacing giving at most about a dozen labelled ticks.
fn tick_step_us(span_us: u64) -> u64 {
    const STEPS_MS: [u64; 14] =
        [100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000];
    let step_ms = STEPS_MS.iter().copied().find(|ms| span_us / (ms * 1000) <= 12).unwrap_or(3_600_000);
    step_ms * 1000
}

fn write_axis(out: &mut String, frame: &Frame) -> fmt::Result {
    let bottom = frame.plot_bottom();
    let (left, right) = (frame.x(0), frame.x(frame.span_us));
    writeln!(
        out,
        "<line x1=\"{left:.1}\" y1=\"{bottom:.1}\" x2=\"{right:.1}\" y2=\"{bottom:.1}\" \
         stroke=\"#333\"/>"
    )?;
    writeln!(
        out,
        "<line x1=\"{left:.1}\" y1=\"{:.1}\" x2=\"{left:.1}\" y2=\"{bottom:.1}\" stroke=\"#333\"/>",
        Frame::PLOT_TOP
    )?;
    let step_us = tick_step_us(frame.span_us);
    for tick_us in (0..=frame.span_us).step_by(step_us as usize) {
        let x = frame.x(tick_us);
        let label = if step_us < 1_000_000 {
            format!("{:.1} s", tick_us as f64 / 1e6)
        } else {
            format!("{} s", tick_us / 1_000_000)
        };
        writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            bottom + 4.0,
            bottom + 16.0
        )?;
    }
    Ok(())
}

fn write_marks(out: &mut String, frame: &Frame, marks: &[Mark]) -> fmt::Result {
    for (i, mark) in marks.iter().take(MARKERS_MAX).enumerate() {
        let color = if mark.kind == "fault" { RED } else { BLUE };
        let x = frame.x(mark.at_us);
        let label_y = 14.0 + 14.0 * (i % 2) as f64;
        let anchor = if x > Frame::WIDTH * 0.75 { "end" } else { "start" };
        let what = escape(&mark.what);
        writeln!(
            out,
            "<g class=\"mark {kind}\"><title>{kind} at {at:.3} s: {what}</title>\
             <line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"{color}\" \
             stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{tx:.1}\" y=\"{label_y:.1}\" fill=\"{color}\" text-anchor=\"{anchor}\">{what}</text></g>",
            kind = escape(&mark.kind),
            at = mark.at_us as f64 / 1e6,
            top = label_y + 2.0,
            bottom = frame.plot_bottom(),
            tx = if anchor == "end" { x - 3.0 } else { x + 3.0 },
        )?;
    }
    Ok(())
}

fn write_leaders(out: &mut String, frame: &Frame, leaders: &[LeaderChange]) -> fmt::Result {
    for (i, change) in leaders.iter().take(MARKERS_MAX).enumerate() {
        let x = frame.x(change.at_us);
        let y = frame.plot_bottom() + 34.0 + 18.0 * (i % 2) as f64;
        let leader = change.leader.map_or("none".to_string(), |id| format!("node {id}"));
        let color = if change.leader.is_some() { PURPLE } else { RED };
        writeln!(
            out,
            "<g class=\"leader\"><title>at {at:.3} s: term {term}, leader {leader}</title>\
             <line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"{PURPLE}\" \
             stroke-opacity=\"0.35\" stroke-dasharray=\"1 2\"/>\
             <path d=\"M{x:.1} {d1:.1} l5 5 l-5 5 l-5 -5 z\" fill=\"{color}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\" fill=\"{color}\">term {term} → {leader}</text></g>",
            at = change.at_us as f64 / 1e6,
            term = change.term,
            top = Frame::PLOT_TOP,
            bottom = frame.plot_bottom(),
            d1 = y - 10.0,
            tx = x + 7.0,
            ty = y + 4.0,
        )?;
    }
    Ok(())
}

fn write_check_html(out: &mut String, check: &CheckReport) -> fmt::Result {
    let kinds: [(&str, &[Violation]); 4] = [
        ("Lost writes", &check.lost),
        ("Duplicated writes", &check.duplicated),
        ("Phantom writes", &check.phantom),
        ("Nonlinearizable keys", &check.nonlinearizable),
    ];
    for (title, violations) in kinds {
        if violations.is_empty() {
            continue;
        }
        writeln!(out, "<h3>{title} ({})</h3>", violations.len())?;
        for violation in violations.iter().take(VIOLATIONS_SHOWN_MAX) {
            write_violation(out, violation)?;
        }
        if violations.len() > VIOLATIONS_SHOWN_MAX {
            writeln!(out, "<p class=\"note\">{} more not shown.</p>", violations.len() - VIOLATIONS_SHOWN_MAX)?;
        }
    }
    if !check.undecided.is_empty() {
        writeln!(out, "<h3>Undecided keys ({})</h3>\n<p class=\"note\">", check.undecided.len())?;
        for key in check.undecided.iter().take(VIOLATIONS_SHOWN_MAX) {
            write!(out, "<code>{}</code> ", escape(key))?;
        }
        writeln!(out, "</p>")?;
    }
    Ok(())
}

fn write_violation(out: &mut String, violation: &Violation) -> fmt::Result {
    writeln!(
        out,
        "<div class=\"violation\"><div>key <code>{}</code>: {}</div>\n<table>\n<tr><th>id</th>\
         <th>client</th><th class=\"text\">node</th><th class=\"text\">operation</th>\
         <th>invoked ms</th><th>completed ms</th><th class=\"text\">outcome</th></tr>",
        escape(&violation.key),
        escape(&violation.detail)
    )?;
    for event in violation.events.iter().take(VIOLATION_EVENTS_MAX) {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"text\"><code>{}</code></td>\
             <td>{:.3}</td><td>{:.3}</td><td class=\"text\">{}</td></tr>",
            event.id,
            event.client,
            escape(&event.node),
            escape(&command_text(&event.action)),
            event.invoke_us as f64 / 1e3,
            event.complete_us as f64 / 1e3,
            escape(&outcome_text(&event.outcome)),
        )?;
    }
    writeln!(out, "</table>")?;
    if violation.events.len() > VIOLATION_EVENTS_MAX {
        writeln!(
            out,
            "<p class=\"note\">{} more events not shown.</p>",
            violation.events.len() - VIOLATION_EVENTS_MAX
        )?;
    }
    writeln!(out, "</div>")
}

/// The Redis command an action was sent as.
fn command_text(action: &Action) -> String {
    match action {
        Action::Append { key, value } => format!("RPUSH {key} {value}"),
        Action::ReadList { key } => format!("LRANGE {key} 0 -1"),
        Action::Write { key, value } => format!("SET {key} {value}"),
        Action::Read { key } => format!("GET {key}"),
        Action::Incr { key } => format!("INCR {key}"),
        Action::Insert { key, value } => format!("SET {key} {value} NX"),
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok { value: Some(value) } => format!("ok {value}"),
        Outcome::Ok { value: None } => "ok".to_string(),
        Outcome::Fail { reason } => format!("fail: {reason}"),
        Outcome::Unknown { reason } => format!("unknown: {reason}"),
    }
}

// ---------------------------------------------------------------------------------------
// Files

/// Writes `index.html` and `report.json` into `dir` (created if missing) and returns the
/// path of `index.html`.
pub fn write_report(dir: &Path, rounds: &[Round]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&to_json(rounds)).map_err(io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    let index = dir.join("index.html");
    std::fs::write(&index, to_html(rounds))?;
    Ok(index)
}

#[cfg(test)]
mod tests {
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
                Mark {
                    at_us: 500_000,
                    kind: "fault".to_string(),
                    what: "kill -9 node 1 <primary> & \"more\"".to_string(),
                },
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
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[0].starts_with("scenario") && lines[0].contains("gap p99"));
        assert!(lines[1].starts_with("kill-primary ") && lines[2].starts_with("partition "));
        let column_end = |line: &str, word: &str| line.find(word).map(|i| i + word.len());
        assert_eq!(column_end(lines[0], "gap min"), column_end(lines[1], "800.0"));
        assert!(lines[4].starts_with("FAIL: 3 rounds, 2 scenarios, 1 violation (1 lost"), "{}", lines[4]);

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
}
