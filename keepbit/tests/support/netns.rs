//! Network partitions for tests: nftables rules that drop traffic between nodes'
//! loopback addresses ([`Partition`]), applied only inside a private network namespace
//! the test re-executes itself in ([`ns::inside_private`]). Needs root, `unshare`, `ip`
//! and `nft`; without them a test fails under `CI=true` and is skipped elsewhere.
#![allow(dead_code)]

use super::cluster::TestCluster;

pub struct Partition {
    live: bool,
}

const TABLE: [&str; 2] = ["inet", "keepbit_test"];

impl Partition {
    pub fn isolate(c: &TestCluster, id: u64) -> Partition {
        let guard = Partition { live: true };
        let me = &c.nodes[(id - 1) as usize].ip;
        let rules: Vec<String> = c
            .nodes
            .iter()
            .filter(|n| n.id != id)
            .flat_map(|n| {
                [
                    format!("    ip saddr {me} ip daddr {} counter drop", n.ip),
                    format!("    ip saddr {} ip daddr {me} counter drop", n.ip),
                ]
            })
            .collect();
        let script = format!(
            "table {} {} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n{}\n  }}\n}}\n",
            TABLE[0],
            TABLE[1],
            rules.join("\n")
        );
        nft(&["-f", "-"], &script).unwrap_or_else(|e| panic!("installing the partition rules: {e}"));
        guard
    }

    /// Packets the rules have dropped so far.
    pub fn dropped_packets(&self) -> u64 {
        let listing = nft(&["list", "table", TABLE[0], TABLE[1]], "").expect("list the partition table");
        listing
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .filter(|w| w[0] == "counter" && w[1] == "packets")
            .filter_map(|w| w[2].parse::<u64>().ok())
            .sum()
    }

    pub fn heal(mut self) {
        self.live = false;
        nft(&["delete", "table", TABLE[0], TABLE[1]], "").unwrap_or_else(|e| panic!("healing the partition: {e}"));
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if self.live {
            let _ = nft(&["delete", "table", TABLE[0], TABLE[1]], "");
        }
    }
}

/// Runs `nft args…` with `stdin`; its stdout, or why it failed.
pub fn nft(args: &[&str], stdin: &str) -> Result<String, String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("nft {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Running a test inside its own network and PID namespaces.
pub mod ns {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Set in the re-executed test: the network namespace it must not be in.
    const OUTER: &str = "KEEPBIT_TEST_OUTER_NETNS";
    /// The whole re-executed test, cluster start to heal, must finish within this.
    const CHILD_DEADLINE: Duration = Duration::from_secs(300);
    const ENTER: [&str; 5] = ["unshare", "--net", "--pid", "--fork", "--kill-child"];
    const LO_UP_THEN: &str = "ip link set lo up && exec \"$0\" \"$@\"";

    fn current() -> Result<String, String> {
        std::fs::read_link("/proc/self/ns/net")
            .map(|p| p.display().to_string())
            .map_err(|e| format!("cannot read /proc/self/ns/net: {e}"))
    }

    /// True when the caller is inside a private network namespace and should run the test
    /// body. Otherwise runs `test` again inside one (and asserts it passed), or skips it
    /// when namespaces or nftables are unavailable outside CI, and returns false.
    pub fn inside_private(test: &str) -> bool {
        if let Ok(outer) = std::env::var(OUTER) {
            let here = current().unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(here, outer, "refusing to add firewall rules in the machine's own network namespace");
            println!("netns: {here}");
            return true;
        }
        match current().and_then(|here| probe().map(|()| here)) {
            Ok(here) => run_inside(test, &here),
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "the partition test needs root, unshare, ip and nft (.ci/run installs nftables): {why}"
                );
                eprintln!("note: skipping the partition test: {why}");
            }
        }
        false
    }

    /// Checks that a private namespace with loopback up and nftables can be made here.
    fn probe() -> Result<(), String> {
        let out = Command::new(ENTER[0])
            .args(&ENTER[1..])
            .args(["--", "sh", "-c", "ip link set lo up && nft list tables"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }

    /// Runs this test binary's `test` in fresh namespaces and asserts that it passed and
    /// that nothing is left in its network namespace afterwards.
    fn run_inside(test: &str, outer: &str) {
        let exe = std::env::current_exe().expect("test binary path");
        // Inside, the test's PID is 1, so the cluster's directory name (which includes it)
        // would be the same for every run: give each run its own temporary directory.
        let tmp = std::env::temp_dir().join(format!("keepbit-partition-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("temporary directory");
        let out_path = tmp.join("test.out");
        let out = std::fs::File::create(&out_path).expect("output file");
        let mut child = Command::new(ENTER[0])
            .args(&ENTER[1..])
            .args(["--", "sh", "-c", LO_UP_THEN])
            .arg(&exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(OUTER, outer)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("output file"))
            .stderr(out)
            .spawn()
            .expect("run unshare");
        let end = Instant::now() + CHILD_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the namespaced test") {
                break Some(status);
            }
            if Instant::now() >= end {
                // Killing unshare kills its child (--kill-child), the PID namespace's init:
                // every node in the namespace dies with it.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        print!("{output}");
        let kept = tmp.display();
        let status =
            status.unwrap_or_else(|| panic!("the namespaced test ran past {CHILD_DEADLINE:?}; files under {kept}"));
        assert!(status.success(), "the namespaced test failed ({status}); its output is above, files under {kept}");
        assert!(output.contains("test result: ok. 1 passed"), "the namespaced run did not run {test}");
        let inner = output.lines().find_map(|l| l.split_once("netns: ").map(|(_, ns)| ns.trim()));
        wait_gone(inner.expect("the namespaced test names its network namespace"));
        let _ = std::fs::remove_dir_all(&tmp);
    }

    /// Waits until no process is left in network namespace `ns`: with its last process
    /// gone, the namespace and its rules are gone.
    fn wait_gone(ns: &str) {
        let empty = || holders(ns).is_empty();
        super::super::wait_for("the test's network namespace to empty", Duration::from_secs(10), empty);
    }

    fn holders(ns: &str) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|p| p.display().to_string() == ns)
            })
            .collect()
    }
}
