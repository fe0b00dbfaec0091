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

mod html;
mod json;
mod progress;
mod summary;
#[cfg(test)]
mod tests;

use progress::*;
use summary::*;

pub use html::to_html;
pub use json::to_json;
pub use progress::Progress;
pub use summary::{percentiles, summarize, summary_table, Percentiles, ScenarioSummary};
