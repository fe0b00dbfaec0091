//! Per-scenario summaries, the verdict and the plain-text table.

use super::*;

/// Order statistics of a sample, nearest-rank.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles (the p-th percentile is the smallest value with at least p%
/// of the sample at or below it, so it is always an observed value). NaNs are ignored;
/// `None` when nothing is left.
pub fn percentiles(values: &[f64]) -> Option<Percentiles> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = |pct: usize| sorted[(pct * sorted.len()).div_ceil(100).max(1) - 1];
    Some(Percentiles {
        count: sorted.len(),
        min: sorted[0],
        p50: rank(50),
        p99: rank(99),
        max: sorted[sorted.len() - 1],
    })
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
    pub write_gap_ms: Option<Percentiles>,
    pub new_primary_ms: Option<Percentiles>,
    pub detection_ms: Option<Percentiles>,
    /// The failover journal's MTTR of each round's first failover.
    pub journal_mttr_ms: Option<Percentiles>,
    pub lost: usize,
    pub duplicated: usize,
    pub phantom: usize,
    pub nonlinearizable: usize,
    /// Rounds whose journal recorded a wrong cause (or no failover).
    pub journal: usize,
    /// Leadership changes in rounds that forbid them.
    pub leadership: usize,
    pub undecided: usize,
    pub keys_checked: usize,
}

impl ScenarioSummary {
    pub fn violations(&self) -> usize {
        self.lost + self.duplicated + self.phantom + self.nonlinearizable + self.journal + self.leadership
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

pub(super) fn summarize_scenario(scenario: &str, rounds: &[&Round]) -> ScenarioSummary {
    let figures = |f: fn(&Round) -> Option<f64>| -> Option<Percentiles> {
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
        journal_mttr_ms: figures(|r| r.availability.journal_mttr_ms),
        lost: count(|c| c.lost.len()),
        duplicated: count(|c| c.duplicated.len()),
        phantom: count(|c| c.phantom.len()),
        nonlinearizable: count(|c| c.nonlinearizable.len()),
        journal: count(|c| c.journal.len()),
        leadership: count(|c| c.leadership.len()),
        undecided: count(|c| c.undecided.len()),
        keys_checked: count(|c| c.keys_checked),
    }
}

/// A drill passes when it ran at least one round and every round's check passed.
pub(super) fn passed(rounds: &[Round]) -> bool {
    !rounds.is_empty() && rounds.iter().all(|r| r.check.ok())
}

/// The closing PASS/FAIL line.
pub(super) fn verdict(rounds: &[Round], summaries: &[ScenarioSummary]) -> String {
    if rounds.is_empty() {
        return "FAIL: no rounds were run".to_string();
    }
    let sum = |f: fn(&ScenarioSummary) -> usize| summaries.iter().map(f).sum::<usize>();
    let mut line = format!(
        "{}: {}, {}, {} ({} lost, {} duplicated, {} phantom, {} nonlinearizable, {} journal, {} leadership), {} checked",
        if passed(rounds) { "PASS" } else { "FAIL" },
        counted(rounds.len(), "round"),
        counted(summaries.len(), "scenario"),
        counted(sum(ScenarioSummary::violations), "violation"),
        sum(|s| s.lost),
        sum(|s| s.duplicated),
        sum(|s| s.phantom),
        sum(|s| s.nonlinearizable),
        sum(|s| s.journal),
        sum(|s| s.leadership),
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

/// One line per round that lost its primary: the journal's cause and MTTR next to the
/// client-observed write gap.
pub(super) fn journal_lines(rounds: &[Round]) -> String {
    let mut out = String::new();
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    for r in rounds {
        let a = &r.availability;
        if a.journal_cause.is_none() && r.check.journal.is_empty() {
            continue;
        }
        let cause = a.journal_cause.as_deref().unwrap_or("no failover recorded");
        let wrong = if r.check.journal.is_empty() { "" } else { "  WRONG CAUSE" };
        let _ = writeln!(
            out,
            "  {} #{}: journal {cause}, MTTR {}; client write gap {}{wrong}",
            r.scenario,
            r.round,
            ms(a.journal_mttr_ms),
            ms(a.write_gap_ms)
        );
    }
    out
}

/// `1 round`, `12,345 keys`.
pub(super) fn counted(n: usize, noun: &str) -> String {
    let plural = if n == 1 { "" } else { "s" };
    format!("{} {noun}{plural}", thousands(n as u64))
}

pub(super) const TABLE_HEADER: [&str; 19] = [
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
    "mttr p50",
    "lost",
    "dup",
    "phantom",
    "nonlin",
    "journal",
];

pub(super) fn table_row(s: &ScenarioSummary) -> [String; 19] {
    let ms = |stats: Option<Percentiles>, f: fn(&Percentiles) -> f64| match stats {
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
        ms(s.journal_mttr_ms, |t| t.p50),
        s.lost.to_string(),
        s.duplicated.to_string(),
        s.phantom.to_string(),
        s.nonlinearizable.to_string(),
        s.journal.to_string(),
    ]
}

/// The per-scenario table printed at the end of a drill, columns aligned, times in
/// milliseconds, ending with the PASS/FAIL line.
pub fn summary_table(rounds: &[Round]) -> String {
    let summaries = summarize(rounds);
    let rows: Vec<[String; 19]> = summaries.iter().map(table_row).collect();
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
         primary = fault to new primary; detect = fault to old primary deposed; \
         mttr = the failover journal's window (last contact to first commit)\n",
    );
    out.push_str(&journal_lines(rounds));
    out.push_str(&verdict(rounds, &summaries));
    out.push('\n');
    out
}
