//! Test-only fault injection for drills: slow or failing log fsyncs, a full disk and
//! client event-loop stalls. Off unless the node starts with `[faults] enable = true` and
//! `KEEPBIT_FAULTS=1` in its environment ([`check_guard`]); then the `[faults]` settings
//! apply from the start and `KEEPBIT FAULT SET | CLEAR` switches them at runtime.
//!
//! The switches are process-wide atomics ([`global`]): the log writer's thread and the
//! server's stall task read them without any wiring through the replication layer. When
//! no fault is set, each hook costs one relaxed atomic load.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Deserialize;

/// The environment variable that must be `1` for `[faults] enable = true` to start. A
/// second key in the config file would be copied along with the file into production; an
/// environment variable has to be set on purpose by whoever starts the process (a test
/// harness, a drill).
pub const ENV_GUARD: &str = "KEEPBIT_FAULTS";

/// Longest injected fsync delay or stall: a fault is for a drill, not to hang a node.
pub const DELAY_MS_MAX: u64 = 60_000;
/// Shortest period between stalls, so a stall task cannot spin.
pub const STALL_EVERY_MS_MIN: u64 = 10;
/// "Not set" in the atomics of the count-down faults.
const UNSET: u64 = u64::MAX;

/// The `[faults]` section.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// Allows fault injection (also needs [`ENV_GUARD`]).
    pub enable: bool,
    /// Added latency per log fsync.
    pub fsync_delay_ms: u64,
    /// After this many more log fsyncs every fsync fails with an I/O error.
    pub fsync_fail_after: Option<u64>,
    /// The client event loop is blocked for this long …
    pub stall_ms: u64,
    /// … every this many milliseconds.
    pub stall_every_ms: u64,
    /// Log appends beyond this many more bytes fail as if the disk were full.
    pub disk_full_after_bytes: Option<u64>,
}

/// One switch of [`Faults`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    FsyncDelayMs,
    FsyncFailAfter,
    StallMs,
    StallEveryMs,
    DiskFullAfterBytes,
}

impl Fault {
    pub const ALL: [Fault; 5] =
        [Fault::FsyncDelayMs, Fault::FsyncFailAfter, Fault::StallMs, Fault::StallEveryMs, Fault::DiskFullAfterBytes];

    /// The setting's name, as in `[faults]` and `KEEPBIT FAULT SET`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::FsyncDelayMs => "fsync_delay_ms",
            Fault::FsyncFailAfter => "fsync_fail_after",
            Fault::StallMs => "stall_ms",
            Fault::StallEveryMs => "stall_every_ms",
            Fault::DiskFullAfterBytes => "disk_full_after_bytes",
        }
    }

    /// The setting's name under `[faults]`, for config errors.
    pub fn field(self) -> &'static str {
        match self {
            Fault::FsyncDelayMs => "faults.fsync_delay_ms",
            Fault::FsyncFailAfter => "faults.fsync_fail_after",
            Fault::StallMs => "faults.stall_ms",
            Fault::StallEveryMs => "faults.stall_every_ms",
            Fault::DiskFullAfterBytes => "faults.disk_full_after_bytes",
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Why `value` is unusable for this fault, if it is.
    pub fn problem(self, value: u64) -> Option<String> {
        match self {
            Fault::FsyncDelayMs | Fault::StallMs if value > DELAY_MS_MAX => {
                Some(format!("{} must be at most {DELAY_MS_MAX}", self.name()))
            }
            Fault::StallEveryMs if value != 0 && !(STALL_EVERY_MS_MIN..=3_600_000).contains(&value) => {
                Some(format!("{} must be 0 (off) or between {STALL_EVERY_MS_MIN} and 3600000", self.name()))
            }
            _ => None,
        }
    }
}

/// Why a `[faults]` section or a `KEEPBIT FAULT` request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("fault injection is disabled on this node")]
    Disabled,
    #[error("unknown fault '{0}' (known: fsync_delay_ms, fsync_fail_after, stall_ms, stall_every_ms, disk_full_after_bytes)")]
    Unknown(String),
    #[error("invalid fault value: {0}")]
    Invalid(String),
    #[error(
        "[faults] enable = true is test-only (it breaks durability on purpose) and needs {ENV_GUARD}=1 in the \
        node's environment; remove the [faults] section outside tests"
    )]
    Unguarded,
    #[error("faults.{0} is set but faults.enable is false")]
    NotEnabled(&'static str),
}

impl FaultsConfig {
    /// (fault, value) of every fault this section sets.
    pub fn settings(&self) -> Vec<(Fault, u64)> {
        let all = [
            (Fault::FsyncDelayMs, Some(self.fsync_delay_ms).filter(|&v| v > 0)),
            (Fault::FsyncFailAfter, self.fsync_fail_after),
            (Fault::StallMs, Some(self.stall_ms).filter(|&v| v > 0)),
            (Fault::StallEveryMs, Some(self.stall_every_ms).filter(|&v| v > 0)),
            (Fault::DiskFullAfterBytes, self.disk_full_after_bytes),
        ];
        all.into_iter().filter_map(|(f, v)| Some((f, v?))).collect()
    }

    /// Value problems, whatever the guard: (field, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some((f, msg)) = self.settings().into_iter().find_map(|(f, v)| Some((f, f.problem(v)?))) {
            return Some((f.field(), msg));
        }
        if self.stall_ms > 0 && self.stall_every_ms == 0 {
            return Some(("faults.stall_every_ms", "must be set (at least 10) when stall_ms is".into()));
        }
        None
    }
}

/// Whether the node may start with `cfg`, given the value of [`ENV_GUARD`]: `Ok(true)`
/// when fault injection is on, `Ok(false)` when it is off.
pub fn check_guard(cfg: &FaultsConfig, guard: Option<&str>) -> Result<bool, FaultError> {
    if !cfg.enable {
        return match cfg.settings().first() {
            Some((f, _)) => Err(FaultError::NotEnabled(f.name())),
            None => Ok(false),
        };
    }
    match guard {
        Some("1") => Ok(true),
        _ => Err(FaultError::Unguarded),
    }
}

/// The live switches. All counters of a count-down fault start when it is set.
#[derive(Debug)]
pub struct Faults {
    /// Fault injection was allowed at start; nothing can be set otherwise.
    armed: AtomicBool,
    /// Some fault is set: the one load the hooks make when none is.
    active: AtomicBool,
    fsync_delay_ms: AtomicU64,
    fsync_fail_after: AtomicU64,
    fsyncs: AtomicU64,
    stall_ms: AtomicU64,
    stall_every_ms: AtomicU64,
    disk_full_after_bytes: AtomicU64,
    appended_bytes: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new()
    }
}

static GLOBAL: Faults = Faults::new();

/// This process's switches.
pub fn global() -> &'static Faults {
    &GLOBAL
}

impl Faults {
    pub const fn new() -> Faults {
        Faults {
            armed: AtomicBool::new(false),
            active: AtomicBool::new(false),
            fsync_delay_ms: AtomicU64::new(0),
            fsync_fail_after: AtomicU64::new(UNSET),
            fsyncs: AtomicU64::new(0),
            stall_ms: AtomicU64::new(0),
            stall_every_ms: AtomicU64::new(0),
            disk_full_after_bytes: AtomicU64::new(UNSET),
            appended_bytes: AtomicU64::new(0),
        }
    }

    /// Allows fault injection and sets what `cfg` sets.
    pub fn arm(&self, cfg: &FaultsConfig) -> Result<(), FaultError> {
        self.armed.store(true, Relaxed);
        cfg.settings().into_iter().try_for_each(|(f, v)| self.set(f, v))
    }

    pub fn armed(&self) -> bool {
        self.armed.load(Relaxed)
    }

    /// Sets one fault (0 turns a delay or stall off); a count-down starts again from now.
    pub fn set(&self, fault: Fault, value: u64) -> Result<(), FaultError> {
        if !self.armed() {
            return Err(FaultError::Disabled);
        }
        if let Some(msg) = fault.problem(value) {
            return Err(FaultError::Invalid(msg));
        }
        match fault {
            Fault::FsyncDelayMs => self.fsync_delay_ms.store(value, Relaxed),
            Fault::FsyncFailAfter => {
                self.fsyncs.store(0, Relaxed);
                self.fsync_fail_after.store(value, Relaxed);
            }
            Fault::StallMs => self.stall_ms.store(value, Relaxed),
            Fault::StallEveryMs => self.stall_every_ms.store(value, Relaxed),
            Fault::DiskFullAfterBytes => {
                self.appended_bytes.store(0, Relaxed);
                self.disk_full_after_bytes.store(value, Relaxed);
            }
        }
        self.active.store(true, Relaxed);
        Ok(())
    }

    /// Turns every fault off.
    pub fn clear(&self) -> Result<(), FaultError> {
        if !self.armed() {
            return Err(FaultError::Disabled);
        }
        self.active.store(false, Relaxed);
        self.fsync_delay_ms.store(0, Relaxed);
        self.fsync_fail_after.store(UNSET, Relaxed);
        self.stall_ms.store(0, Relaxed);
        self.stall_every_ms.store(0, Relaxed);
        self.disk_full_after_bytes.store(UNSET, Relaxed);
        Ok(())
    }

    /// Called by the log writer before each fsync: sleeps the injected delay, then fails
    /// if `fsync_fail_after` fsyncs have passed since it was set.
    pub fn before_fsync(&self) -> io::Result<()> {
        if !self.active.load(Relaxed) {
            return Ok(());
        }
        let delay = self.fsync_delay_ms.load(Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let after = self.fsync_fail_after.load(Relaxed);
        if after != UNSET && self.fsyncs.fetch_add(1, Relaxed) >= after {
            return Err(io::Error::other(format!("injected fault: fsync failed (faults.fsync_fail_after = {after})")));
        }
        Ok(())
    }

    /// Called by the log writer before writing `bytes` of appends: fails like a full disk
    /// once `disk_full_after_bytes` would be passed.
    pub fn before_append(&self, bytes: usize) -> io::Result<()> {
        if !self.active.load(Relaxed) {
            return Ok(());
        }
        let limit = self.disk_full_after_bytes.load(Relaxed);
        if limit == UNSET || self.appended_bytes.fetch_add(bytes as u64, Relaxed) + bytes as u64 <= limit {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("No space left on device (injected fault: faults.disk_full_after_bytes = {limit})"),
        ))
    }

    /// (stall, period) when an event-loop stall is set.
    pub fn stall(&self) -> Option<(Duration, Duration)> {
        if !self.active.load(Relaxed) {
            return None;
        }
        let (ms, every_ms) = (self.stall_ms.load(Relaxed), self.stall_every_ms.load(Relaxed));
        (ms > 0 && every_ms > 0).then(|| (Duration::from_millis(ms), Duration::from_millis(every_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FaultsConfig, String> {
        #[derive(Deserialize)]
        struct Doc {
            faults: FaultsConfig,
        }
        toml::from_str::<Doc>(text).map(|d| d.faults).map_err(|e| e.to_string())
    }

    /// Each `[faults]` section, and the guard, as data: what it starts with or why not.
    #[test]
    fn the_guard_and_the_values_decide_whether_a_node_starts() {
        let cases: &[(&str, Option<&str>, Result<bool, &str>)] = &[
            ("[faults]", None, Ok(false)),
            ("[faults]\nenable = false", Some("1"), Ok(false)),
            ("[faults]\nenable = true", Some("1"), Ok(true)),
            ("[faults]\nenable = true\nfsync_delay_ms = 50", Some("1"), Ok(true)),
            ("[faults]\nenable = true", None, Err("needs KEEPBIT_FAULTS=1")),
            ("[faults]\nenable = true", Some("yes"), Err("needs KEEPBIT_FAULTS=1")),
            (
                "[faults]\nfsync_delay_ms = 50",
                Some("1"),
                Err("faults.fsync_delay_ms is set but faults.enable is false"),
            ),
            ("[faults]\nfsync_fail_after = 0", None, Err("faults.fsync_fail_after is set")),
        ];
        for (text, guard, want) in cases {
            let cfg = parse(text).expect(text);
            let got = check_guard(&cfg, *guard).map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(on), Ok(got_on)) => assert_eq!(on, got_on, "{text} with {guard:?}"),
                (Err(part), Err(msg)) => assert!(msg.contains(part), "{text} with {guard:?}: {msg}"),
                _ => panic!("{text} with {guard:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        assert!(parse("[faults]\nfsync_delay = 5").is_err_and(|e| e.contains("unknown field")));
        assert!(parse("[faults]\nfsync_delay_ms = -5").is_err());
        assert!(parse("[faults]\nstall_ms = \"x\"").is_err());
        let problem = |text: &str| parse(text).expect(text).problem().map(|p| p.0);
        assert_eq!(problem("[faults]\nenable = true\nfsync_delay_ms = 60000"), None);
        assert_eq!(problem("[faults]\nfsync_delay_ms = 60001"), Some("faults.fsync_delay_ms"));
        assert_eq!(problem("[faults]\nstall_ms = 100"), Some("faults.stall_every_ms"));
        assert_eq!(problem("[faults]\nstall_ms = 100\nstall_every_ms = 5"), Some("faults.stall_every_ms"));
        assert_eq!(problem("[faults]\nstall_ms = 100\nstall_every_ms = 500"), None);
    }

    #[test]
    fn runtime_switches_need_the_guard_and_parse_names() {
        let f = Faults::new();
        assert_eq!(f.set(Fault::FsyncDelayMs, 5), Err(FaultError::Disabled));
        assert_eq!(f.clear(), Err(FaultError::Disabled));
        assert_eq!(Fault::parse("FSYNC_DELAY_MS"), Some(Fault::FsyncDelayMs));
        assert_eq!(Fault::parse("fsync"), None);
        assert_eq!(Fault::ALL.map(|x| Fault::parse(x.name())), Fault::ALL.map(Some));
        f.arm(&FaultsConfig::default()).expect("arm");
        assert!(matches!(f.set(Fault::StallMs, DELAY_MS_MAX + 1), Err(FaultError::Invalid(_))));
        assert_eq!(f.stall(), None);
        f.set(Fault::StallMs, 30).expect("set");
        assert_eq!(f.stall(), None, "no period yet");
        f.set(Fault::StallEveryMs, 100).expect("set");
        assert_eq!(f.stall(), Some((Duration::from_millis(30), Duration::from_millis(100))));
        f.clear().expect("clear");
        assert_eq!(f.stall(), None);
    }

    /// `fsync_fail_after = 2`: two fsyncs pass, then every one fails; the disk fills once
    /// the appended bytes pass the limit; setting a fault again restarts its count.
    #[test]
    fn count_down_faults_fail_after_their_count() {
        let f = Faults::new();
        f.arm(&FaultsConfig { fsync_fail_after: Some(2), disk_full_after_bytes: Some(100), ..Default::default() })
            .expect("arm");
        let fsyncs: Vec<bool> = (0..4).map(|_| f.before_fsync().is_ok()).collect();
        assert_eq!(fsyncs, [true, true, false, false]);
        assert!(f.before_fsync().is_err_and(|e| e.to_string().contains("injected fault")));
        assert!(f.before_append(60).is_ok() && f.before_append(40).is_ok());
        let full = f.before_append(1).expect_err("full");
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        assert!(full.to_string().contains("No space left on device"), "{full}");
        f.set(Fault::FsyncFailAfter, 1).expect("set");
        assert!(f.before_fsync().is_ok() && f.before_fsync().is_err());
        f.clear().expect("clear");
        assert!(f.before_fsync().is_ok() && f.before_append(1 << 20).is_ok());
    }
}
