//! Headless Chromium for tests that render a page (the dashboard, the drill report): a
//! fresh profile per run, no background networking, and a
//! browser that outlives its deadline is killed by PID and fails the test.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Chromium gets this long per page before it is killed and the test fails.
pub const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);

/// Chromium on `PATH`. Under `CI=true` (where .ci/run installs it) a missing browser
/// fails the test loudly; elsewhere it prints a note and the caller skips.
pub fn find_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "chromium is required in CI: .ci/run installs it");
        eprintln!("note: chromium not found on PATH; skipping {test}");
    }
    found
}

/// Runs headless Chromium with `args` and a fresh profile under `dir`, stdout to
/// `stdout`; kills it by PID if it outlives [`CHROMIUM_DEADLINE`].
pub fn run(chromium: &Path, dir: &Path, name: &str, args: &[&str], stdout: &Path) -> ExitStatus {
    let profile = dir.join(format!("profile-{name}"));
    let stderr = dir.join(format!("{name}.stderr"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(stdout).expect("stdout file"))
        .stderr(File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn chromium");
    let start = Instant::now();
    while start.elapsed() < CHROMIUM_DEADLINE {
        if let Some(status) = child.try_wait().expect("poll chromium") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    panic!("chromium ({name}) still running after {CHROMIUM_DEADLINE:?}; killed. stderr:\n{log}")
}

/// The DOM Chromium built from `url` (`--dump-dom`).
pub fn dump_dom(chromium: &Path, dir: &Path, name: &str, url: &str) -> String {
    let out = dir.join(format!("{name}.html"));
    let status = run(chromium, dir, name, &["--dump-dom", url], &out);
    assert!(status.success(), "chromium --dump-dom {url} failed: {status}; see {}", dir.display());
    std::fs::read_to_string(&out).expect("dumped DOM")
}

/// A PNG screenshot of `url`, its bytes.
pub fn screenshot(chromium: &Path, dir: &Path, name: &str, url: &str) -> Vec<u8> {
    let png = dir.join(format!("{name}.png"));
    let shot = format!("--screenshot={}", png.display());
    let args = [shot.as_str(), "--window-size=1200,900", "--hide-scrollbars", url];
    let status = run(chromium, dir, name, &args, &dir.join(format!("{name}.out")));
    assert!(status.success(), "chromium --screenshot {url} failed: {status}; see {}", dir.display());
    std::fs::read(&png).expect("screenshot written")
}
