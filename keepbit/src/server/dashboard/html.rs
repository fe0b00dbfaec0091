//! The dashboard page as a pure function of a [`View`]: HTML with inline SVG (lag bars,
//! the failover timeline), no script, refreshed by `<meta http-equiv="refresh">`. Every
//! text that comes from data (addresses, roles, causes, reasons) is escaped.

use std::fmt::Write as _;

use super::{MemberView, View};
use crate::health::Status;
use crate::store::journal::FailoverRecord;

/// Width of a member's lag bar, in SVG units.
const LAG_BAR_WIDTH: f64 = 160.0;
/// The timeline's width, its margins, and the height of one record's lane.
const TIMELINE_WIDTH: f64 = 960.0;
const TIMELINE_MARGIN: f64 = 24.0;
const LANE_HEIGHT: f64 = 22.0;
const AXIS_HEIGHT: f64 = 26.0;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:8px 0 20px}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}\
.ok{color:#17803d}.degraded{color:#b26b00}.failing{color:#c0262d}.unknown{color:#777}\
tr.primary td:first-child{font-weight:bold}.track{fill:#eee}.lag{fill:#e08a00}\
.outage{fill:#f3c3c3}.mark{fill:#c0262d}.mark.restart{fill:#777}.mark.planned_switchover{fill:#2a6fd6}\
.axis{stroke:#999}svg text{font:12px system-ui,sans-serif;fill:#222}";

pub use crate::html::escape;

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
pub fn clock_time(unix_ms: u64) -> String {
    let ms = unix_ms % 86_400_000;
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

fn status_class(status: Option<Status>) -> &'static str {
    status.map_or("unknown", Status::as_str)
}

/// The whole page.
pub fn render(v: &View) -> String {
    let mut out = String::with_capacity(8192);
    let title = match v.node_id {
        0 => format!("Keepbit ({})", v.role),
        id => format!("Keepbit node {id} ({})", v.role),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\"><title>{t}</title><style>{STYLE}</style></head><body>\n\
         <h1>{t}</h1>\n<p id=\"positions\">term <b>{}</b> · commit <b>{}</b> · applied <b>{}</b> · last log <b>{}</b> \
         · as of {} UTC</p>\n",
        v.term,
        v.committed,
        v.applied,
        v.last_log_index,
        clock_time(v.now_ms),
        t = escape(&title),
    );
    members(&mut out, v);
    journal(&mut out, v);
    out.push_str("</body></html>\n");
    out
}

fn members(out: &mut String, v: &View) {
    let max_lag = v.members.iter().filter_map(|m| m.lag_entries).max().unwrap_or(0).max(1);
    out.push_str(
        "<h2>Members</h2>\n<table id=\"members\"><tr><th>id</th><th>client address</th><th>role</th>\
         <th>health</th><th>lag behind the primary</th></tr>\n",
    );
    for m in &v.members {
        member_row(out, m, max_lag);
    }
    out.push_str("</table>\n");
}

fn member_row(out: &mut String, m: &MemberView, max_lag: u64) {
    let health = status_class(m.health);
    let me = if m.this_node { " (this node)" } else { "" };
    let reasons = match m.reasons.is_empty() {
        true => String::new(),
        false => format!(": {}", escape(&m.reasons.join("; "))),
    };
    let _ = writeln!(
        out,
        "<tr class=\"member {role}\" data-id=\"{id}\" data-role=\"{role}\" data-health=\"{health}\">\
         <td>{id}{me}</td><td class=\"addr\">{addr}</td><td class=\"role\">{role}</td>\
         <td class=\"health {health}\"><b>{health}</b>{reasons}</td><td>{bar}</td></tr>",
        id = m.id,
        role = escape(&m.role),
        addr = escape(&m.client_addr),
        bar = lag_bar(m, max_lag),
    );
}

/// A bar proportional to the member's lag (the longest bar is the largest lag shown).
fn lag_bar(m: &MemberView, max_lag: u64) -> String {
    let Some(lag) = m.lag_entries else {
        return "<span class=\"unknown\">n/a</span>".into();
    };
    let width = LAG_BAR_WIDTH * lag as f64 / max_lag as f64;
    let matched = m.matched_index.map_or(String::new(), |i| format!(" (matched {i})"));
    format!(
        "<svg class=\"lagbar\" width=\"{w}\" height=\"12\" viewBox=\"0 0 {w} 12\">\
         <rect class=\"track\" width=\"{w}\" height=\"12\"/>\
         <rect class=\"lag\" data-lag=\"{lag}\" width=\"{width:.1}\" height=\"12\"/></svg> {lag} entries{matched}",
        w = LAG_BAR_WIDTH,
    )
}

fn journal(out: &mut String, v: &View) {
    let _ = writeln!(out, "<h2>Failover journal (newest {})</h2>", v.journal.len());
    if v.journal.is_empty() {
        out.push_str("<p id=\"journal-empty\">No leadership changes recorded yet.</p>\n");
        return;
    }
    timeline(out, &v.journal);
    out.push_str(
        "<table id=\"journal\"><tr><th>term</th><th>elected (UTC)</th><th>cause</th><th>MTTR</th>\
         <th>old → new primary</th></tr>\n",
    );
    for r in &v.journal {
        let _ = writeln!(
            out,
            "<tr class=\"record\" data-term=\"{}\"><td>{}</td><td>{}</td><td class=\"cause\">{}</td>\
             <td>{}</td><td>{}</td></tr>",
            r.term,
            r.term,
            clock_time(r.elected_ms),
            escape(&r.cause.to_string()),
            mttr_text(r),
            transition(r),
        );
    }
    out.push_str("</table>\n");
}

fn mttr_text(r: &FailoverRecord) -> String {
    r.mttr_ms().map_or("pending".into(), |ms| format!("{ms} ms"))
}

fn transition(r: &FailoverRecord) -> String {
    let old = r.old_primary.map_or("none".into(), |id| id.to_string());
    format!("{old} → {}", r.new_primary)
}

/// Maps Unix milliseconds onto the timeline's x axis.
struct Scale {
    from_ms: u64,
    span_ms: u64,
}

impl Scale {
    fn of(records: &[FailoverRecord]) -> Scale {
        let times = records.iter().flat_map(|r| [r.last_contact_ms, Some(r.elected_ms), r.first_commit_ms]).flatten();
        let (min, max) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
        Scale { from_ms: min.min(max), span_ms: max.saturating_sub(min) }
    }

    fn x(&self, at_ms: u64) -> f64 {
        let usable = TIMELINE_WIDTH - 2.0 * TIMELINE_MARGIN;
        if self.span_ms == 0 {
            return TIMELINE_MARGIN + usable / 2.0;
        }
        TIMELINE_MARGIN + usable * at_ms.saturating_sub(self.from_ms) as f64 / self.span_ms as f64
    }
}

/// One lane per record, newest on top: a mark at its election, a band over its outage
/// (last contact to first commit) and a label with cause, MTTR and old → new primary.
fn timeline(out: &mut String, records: &[FailoverRecord]) {
    let scale = Scale::of(records);
    let height = AXIS_HEIGHT + LANE_HEIGHT * records.len() as f64;
    let _ = write!(
        out,
        "<svg id=\"timeline\" width=\"{TIMELINE_WIDTH}\" height=\"{height}\" viewBox=\"0 0 {TIMELINE_WIDTH} {height}\" \
         role=\"img\" aria-label=\"failover timeline\">\
         <line class=\"axis\" x1=\"{m}\" y1=\"{a}\" x2=\"{e}\" y2=\"{a}\"/>\
         <text x=\"{m}\" y=\"14\">{from}</text><text x=\"{e}\" y=\"14\" text-anchor=\"end\">{to}</text>",
        m = TIMELINE_MARGIN,
        e = TIMELINE_WIDTH - TIMELINE_MARGIN,
        a = AXIS_HEIGHT - 4.0,
        from = clock_time(scale.from_ms),
        to = clock_time(scale.from_ms + scale.span_ms),
    );
    for (lane, r) in records.iter().enumerate() {
        lane_of(out, &scale, lane, r);
    }
    out.push_str("</svg>\n");
}

fn lane_of(out: &mut String, scale: &Scale, lane: usize, r: &FailoverRecord) {
    let y = AXIS_HEIGHT + LANE_HEIGHT * lane as f64 + LANE_HEIGHT / 2.0;
    let x = scale.x(r.elected_ms);
    let label = escape(&format!("term {} · {} · MTTR {} · {}", r.term, r.cause, mttr_text(r), transition(r)));
    if let (Some(from), Some(to)) = (r.last_contact_ms.or(r.detected_ms), r.first_commit_ms) {
        let (x0, x1) = (scale.x(from), scale.x(to));
        let _ = write!(
            out,
            "<rect class=\"outage\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"8\"/>",
            y - 4.0,
            (x1 - x0).max(2.0)
        );
    }
    // Labels go right of marks in the left half and left of marks in the right half.
    let (dx, anchor) = if x < TIMELINE_WIDTH / 2.0 { (8.0, "start") } else { (-8.0, "end") };
    let _ = write!(
        out,
        "<g class=\"event\" data-term=\"{term}\"><title>{label}</title>\
         <circle class=\"mark {kind}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\"/>\
         <text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"{anchor}\">{label}</text></g>",
        term = r.term,
        kind = r.cause.label(),
        tx = x + dx,
        ty = y + 4.0,
    );
}
