//! The self-contained HTML page: a summary and a timeline per round.

use super::*;

pub use crate::html::escape;

/// Operations completed within one timeline bucket, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub ok: u32,
    pub failed: u32,
    pub unknown: u32,
}

impl Bucket {
    pub(super) fn total(&self) -> u32 {
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

pub(super) const STYLE: &str = "
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

pub(super) const GREEN: &str = "#3a9a4a";
pub(super) const RED: &str = "#d33a2c";
pub(super) const AMBER: &str = "#f0a81c";
pub(super) const BLUE: &str = "#2a6fd6";
pub(super) const PURPLE: &str = "#7a4fb5";

/// One self-contained HTML page (inline CSS and SVG; no scripts or external resources):
/// the verdict, the summary table, then per round its timeline and its violations.
pub fn to_html(rounds: &[Round]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_html(&mut out, rounds);
    out
}

pub(super) fn write_html(out: &mut String, rounds: &[Round]) -> fmt::Result {
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

pub(super) fn write_summary_html(out: &mut String, summaries: &[ScenarioSummary]) -> fmt::Result {
    writeln!(out, "<table class=\"summary\">\n<tr>")?;
    for (i, name) in TABLE_HEADER.iter().enumerate() {
        let class = if i == 0 { " class=\"text\"" } else { "" };
        write!(out, "<th{class}>{}</th>", escape(name))?;
    }
    writeln!(out, "</tr>")?;
    let first_violation_column = TABLE_HEADER.len() - 5;
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
         primary: fault to a new primary; detect: fault to the old primary being deposed; \
         mttr: the failover journal's unavailability window (last contact with the old primary to \
         the new primary's first commit); journal: rounds whose recorded cause was wrong.</p>"
    )
}

pub(super) fn write_round_html(out: &mut String, round: &Round) -> fmt::Result {
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
         new primary {} · write gap {} · journal: {}, MTTR {} · {} checked</p>",
        round.duration_us as f64 / 1e6,
        thousands(a.ok),
        thousands(a.failed),
        thousands(a.unknown),
        counted(a.failovers as usize, "failover"),
        ms(a.detection_ms),
        ms(a.new_primary_ms),
        ms(a.write_gap_ms),
        escape(a.journal_cause.as_deref().unwrap_or("no failover recorded")),
        ms(a.journal_mttr_ms),
        counted(round.check.keys_checked, "key"),
    )?;
    write_timeline(out, round)?;
    write_check_html(out, &round.check)?;
    writeln!(out, "</section>")
}

/// Geometry of one timeline; x in microseconds maps onto the plot's width.
pub(super) struct Plot {
    pub(super) span_us: u64,
}

impl Plot {
    pub(super) const WIDTH: f64 = 1200.0;
    pub(super) const LEFT: f64 = 56.0;
    pub(super) const RIGHT: f64 = 16.0;
    /// Two staggered rows of fault/heal labels above the plot.
    pub(super) const PLOT_TOP: f64 = 40.0;
    pub(super) const PLOT_HEIGHT: f64 = 180.0;
    /// Axis labels, then two staggered rows of leader markers.
    pub(super) const HEIGHT: f64 = Self::PLOT_TOP + Self::PLOT_HEIGHT + 76.0;

    pub(super) fn plot_bottom(&self) -> f64 {
        Self::PLOT_TOP + Self::PLOT_HEIGHT
    }

    pub(super) fn x(&self, us: u64) -> f64 {
        let plot_width = Self::WIDTH - Self::LEFT - Self::RIGHT;
        Self::LEFT + plot_width * (us.min(self.span_us) as f64 / self.span_us as f64)
    }
}

/// The round's timeline runs to its end or its last recorded instant, whichever is later,
/// so nothing recorded falls off the chart.
pub(super) fn span_us(round: &Round) -> u64 {
    let last_event = round.events.iter().map(|e| e.complete_us).max().unwrap_or(0);
    let last_mark = round.marks.iter().map(|m| m.at_us).max().unwrap_or(0);
    let last_leader = round.leaders.iter().map(|l| l.at_us).max().unwrap_or(0);
    round.duration_us.max(last_event).max(last_mark).max(last_leader).max(1)
}

pub(super) fn write_timeline(out: &mut String, round: &Round) -> fmt::Result {
    let span_us = span_us(round);
    let width_us = bucket_width_us(span_us);
    let buckets = bucket_counts(&round.events, span_us, width_us);
    let frame = Plot { span_us };
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
        w = Plot::WIDTH,
        h = Plot::HEIGHT
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

pub(super) fn write_bars(out: &mut String, frame: &Plot, buckets: &[Bucket], width_us: u64) -> fmt::Result {
    let peak = buckets.iter().map(Bucket::total).max().unwrap_or(0).max(1);
    let scale = Plot::PLOT_HEIGHT / f64::from(peak);
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
        Plot::LEFT - 4.0,
        Plot::PLOT_TOP + 10.0,
        Plot::LEFT - 4.0
    )
}

/// Tick spacing giving at most about a dozen labelled ticks.
pub(super) fn tick_step_us(span_us: u64) -> u64 {
    const STEPS_MS: [u64; 14] =
        [100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000];
    let step_ms = STEPS_MS.iter().copied().find(|ms| span_us / (ms * 1000) <= 12).unwrap_or(3_600_000);
    step_ms * 1000
}

pub(super) fn write_axis(out: &mut String, frame: &Plot) -> fmt::Result {
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
        Plot::PLOT_TOP
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

pub(super) fn write_marks(out: &mut String, frame: &Plot, marks: &[Mark]) -> fmt::Result {
    for (i, mark) in marks.iter().take(MARKERS_MAX).enumerate() {
        let color = if mark.kind == "fault" { RED } else { BLUE };
        let x = frame.x(mark.at_us);
        let label_y = 14.0 + 14.0 * (i % 2) as f64;
        let anchor = if x > Plot::WIDTH * 0.75 { "end" } else { "start" };
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

pub(super) fn write_leaders(out: &mut String, frame: &Plot, leaders: &[LeaderChange]) -> fmt::Result {
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
            top = Plot::PLOT_TOP,
            bottom = frame.plot_bottom(),
            d1 = y - 10.0,
            tx = x + 7.0,
            ty = y + 4.0,
        )?;
    }
    Ok(())
}

pub(super) fn write_check_html(out: &mut String, check: &CheckReport) -> fmt::Result {
    let kinds: [(&str, &[Violation]); 6] = [
        ("Lost writes", &check.lost),
        ("Duplicated writes", &check.duplicated),
        ("Phantom writes", &check.phantom),
        ("Nonlinearizable keys", &check.nonlinearizable),
        ("Failover journal", &check.journal),
        ("Leadership change", &check.leadership),
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

pub(super) fn write_violation(out: &mut String, violation: &Violation) -> fmt::Result {
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
pub(super) fn command_text(action: &Action) -> String {
    match action {
        Action::Append { key, value } => format!("RPUSH {key} {value}"),
        Action::ReadList { key } => format!("LRANGE {key} 0 -1"),
        Action::Write { key, value } => format!("SET {key} {value}"),
        Action::Read { key } => format!("GET {key}"),
        Action::Incr { key } => format!("INCR {key}"),
        Action::Insert { key, value } => format!("SET {key} {value} NX"),
    }
}

pub(super) fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok { value: Some(value) } => format!("ok {value}"),
        Outcome::Ok { value: None } => "ok".to_string(),
        Outcome::Fail { reason } => format!("fail: {reason}"),
        Outcome::Unknown { reason } => format!("unknown: {reason}"),
    }
}
