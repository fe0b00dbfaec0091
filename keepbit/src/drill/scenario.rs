//! Scenarios are data: a table of timed fault and heal steps. Adding a scenario is a few
//! lines here.

/// Which node(s) a fault hits, resolved when the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Primary,
    /// One standby (the highest-numbered one that is up).
    Standby,
    /// A majority of the nodes, the primary among them.
    Majority,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL.
    Kill(Target),
    /// Start every killed node again.
    Restart,
    /// SIGSTOP.
    Pause(Target),
    /// SIGCONT every paused node.
    Resume,
    /// Cut the target off from every other node (nftables).
    Isolate(Target),
    /// Five nodes split 2 | 3, with the primary on the side of two.
    Halves,
    /// Five nodes split into two pairs that cannot see each other and one node that sees
    /// both sides.
    Bridge,
    /// Remove every partition.
    Heal,
    /// Planned maintenance: restart every node in turn, waiting for each to rejoin.
    RollingRestart,
    /// Planned failover: FAILOVER on the primary (as `keepbit failover` sends it).
    Switchover,
    /// A slow disk: `KEEPBIT FAULT SET fsync_delay_ms` [`SLOW_DISK_DELAY_MS`] on the
    /// target (needs nodes started with fault injection allowed, see [`Scenario::needs_faults`]).
    SlowDisk(Target),
    /// `KEEPBIT FAULT CLEAR` on every node that is up.
    ClearFaults,
    /// kill -9 the target and start it again, [`CRASH_LOOP_TIMES`] times in a row.
    CrashLoop(Target),
}

/// The fsync delay a slow-disk fault injects.
pub const SLOW_DISK_DELAY_MS: u64 = 300;
/// How many times a crash loop kills and restarts its node.
pub const CRASH_LOOP_TIMES: u32 = 4;

impl Fault {
    pub fn is_heal(&self) -> bool {
        matches!(self, Fault::Restart | Fault::Resume | Fault::Heal | Fault::ClearFaults)
    }

    pub fn needs_partitions(&self) -> bool {
        matches!(self, Fault::Isolate(_) | Fault::Halves | Fault::Bridge | Fault::Heal)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub at_ms: u64,
    pub fault: Fault,
}

/// What a scenario's cluster is started with; each kind gets a cluster of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// The defaults.
    Plain,
    /// Fault injection allowed, short proactive switchover thresholds.
    Faults,
    /// Node [`PREFERRED_PRIMARY`] is `preferred_primary`, with a short `failback_quiet_ms`.
    Failback,
}

/// The preferred primary of a [`Setup::Failback`] cluster.
pub const PREFERRED_PRIMARY: u64 = 1;

#[derive(Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// The scenario needs exactly this many nodes (None: any of 3 or 5).
    pub nodes: Option<usize>,
    pub steps: &'static [Step],
    /// Writes are expected to stop for a while (no quorum); loss is still a failure.
    pub expect_unavailable: bool,
    /// Why the scenario cannot run yet, if it cannot.
    pub unavailable: Option<&'static str>,
    pub setup: Setup,
}

impl Scenario {
    pub fn needs_partitions(&self) -> bool {
        self.steps.iter().any(|s| s.fault.needs_partitions())
    }

    /// The nodes must start with fault injection allowed (and short proactive
    /// switchover thresholds), so the scenario gets a cluster of its own.
    pub fn needs_faults(&self) -> bool {
        self.setup == Setup::Faults
    }

    /// Runs only on a cluster the drill started (faults by PID or admin command).
    pub fn local_only(&self) -> bool {
        self.setup != Setup::Plain
            || self.steps.iter().any(|s| matches!(s.fault, Fault::SlowDisk(_) | Fault::CrashLoop(_)))
    }

    /// No leadership change may happen during the round (a fault that must not cause a
    /// failover, e.g. a standby crash-looping).
    pub fn forbids_failover(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.fault, Fault::CrashLoop(Target::Standby)))
    }

    /// When the last step runs.
    pub fn last_step_ms(&self) -> u64 {
        self.steps.iter().map(|s| s.at_ms).max().unwrap_or(0)
    }
}

const fn step(at_ms: u64, fault: Fault) -> Step {
    Step { at_ms, fault }
}

use Fault::*;
use Setup::*;
use Target::*;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "kill-primary",
        about: "kill -9 the primary, restart it 1.5 s later",
        nodes: None,
        steps: &[step(1000, Kill(Primary)), step(2500, Restart)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "kill-standby",
        about: "kill -9 a standby, restart it 1.5 s later",
        nodes: None,
        steps: &[step(1000, Kill(Standby)), step(2500, Restart)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "kill-majority",
        about: "kill -9 a majority (primary included): no quorum, so writes stop; none may be lost",
        nodes: None,
        steps: &[step(1000, Kill(Majority)), step(3000, Restart)],
        expect_unavailable: true,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "flap",
        about: "kill -9 the primary, then the newly elected primary soon after",
        nodes: None,
        steps: &[step(1000, Kill(Primary)), step(1800, Kill(Primary)), step(3000, Restart)],
        expect_unavailable: true,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "pause-primary",
        about: "SIGSTOP the primary for 3 s, then SIGCONT: the stale primary must not acknowledge writes",
        nodes: None,
        steps: &[step(1000, Pause(Primary)), step(4000, Resume)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "pause-standby",
        about: "SIGSTOP a standby for 2 s, then SIGCONT",
        nodes: None,
        steps: &[step(1000, Pause(Standby)), step(3000, Resume)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "partition-primary",
        about: "cut the primary off from every peer for 2.5 s (nftables)",
        nodes: None,
        steps: &[step(1000, Isolate(Primary)), step(3500, Heal)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "partition-halves",
        about: "5 nodes split 2 | 3 with the primary among the 2, for 2.5 s",
        nodes: Some(5),
        steps: &[step(1000, Halves), step(3500, Heal)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "partition-bridge",
        about: "5 nodes: two pairs that cannot see each other, bridged by one node, for 2.5 s",
        nodes: Some(5),
        steps: &[step(1000, Bridge), step(3500, Heal)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "rolling-restart",
        about: "planned maintenance: every node restarted one after another",
        nodes: None,
        steps: &[step(1000, RollingRestart)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "switchover",
        about: "planned failover: FAILOVER on the primary; the gap is the longest write pause around it",
        nodes: None,
        steps: &[step(1000, Switchover)],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "slow-disk-primary",
        about: "300 ms per fsync on the primary until the proactive switchover moves leadership off it",
        nodes: None,
        steps: &[step(1000, SlowDisk(Primary)), step(4000, ClearFaults)],
        expect_unavailable: false,
        unavailable: None,
        setup: Faults,
    },
    Scenario {
        name: "crash-loop",
        about: "kill -9 and restart the same standby 4 times in a row: no leadership change allowed",
        nodes: None,
        steps: &[step(1000, CrashLoop(Standby))],
        expect_unavailable: false,
        unavailable: None,
        setup: Plain,
    },
    Scenario {
        name: "failback",
        about: "kill -9 the preferred primary, restart it: leadership returns to it once it is back and quiet",
        nodes: None,
        steps: &[step(1000, Kill(Primary)), step(2000, Restart)],
        expect_unavailable: false,
        unavailable: None,
        setup: Failback,
    },
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_well_formed() {
        for s in SCENARIOS {
            assert!(!s.steps.is_empty(), "{}", s.name);
            assert!(s.steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "{} steps out of order", s.name);
            let faults = s.steps.iter().filter(|st| !st.fault.is_heal()).count();
            assert!(faults > 0, "{} has no fault", s.name);
        }
        assert!(find("kill-primary").is_some());
        let slow = find("slow-disk-primary").expect("slow-disk-primary");
        assert!(slow.needs_faults() && slow.local_only() && !slow.forbids_failover());
        let crash = find("crash-loop").expect("crash-loop");
        assert!(!crash.needs_faults() && crash.local_only() && crash.forbids_failover());
        assert!(!find("kill-standby").expect("kill-standby").forbids_failover());
        let failback = find("failback").expect("failback");
        assert!(failback.setup == Setup::Failback && failback.local_only() && !failback.needs_faults());
        assert!(find("nope").is_none());
    }
}
