//! The live progress line a drill draws while it runs.

use super::*;

/// The one-line live progress shown on stderr while a drill runs:
/// `scenario kill-primary round 3 · 13/40 rounds · 12,345 ops (12 failed, 3 unknown) · 2 faults
/// · 00:01:07`. It takes `&self` so workload tasks can share it.
/// Hidden when stderr is not a terminal, so logs and CI output stay clean.
pub struct Progress {
    pub(super) bar: ProgressBar,
    pub(super) rounds_started: AtomicU64,
    pub(super) ok: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) unknown: AtomicU64,
    pub(super) faults: AtomicU64,
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

    pub(super) fn with_draw_target(total_rounds: u32, target: ProgressDrawTarget) -> Self {
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
    pub(super) fn message(&self) -> String {
        progress_message(
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
            self.faults.load(Ordering::Relaxed),
        )
    }

    pub(super) fn redraw(&self) {
        self.bar.set_message(self.message());
    }
}

pub(super) fn progress_message(ok: u64, failed: u64, unknown: u64, faults: u64) -> String {
    let ops = thousands(ok + failed + unknown);
    let faults_word = if faults == 1 { "fault" } else { "faults" };
    if failed == 0 && unknown == 0 {
        return format!("{ops} ops · {faults} {faults_word}");
    }
    format!("{ops} ops ({} failed, {} unknown) · {faults} {faults_word}", thousands(failed), thousands(unknown))
}

/// `12345` → `12,345`.
pub(super) fn thousands(n: u64) -> String {
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
