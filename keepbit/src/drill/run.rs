//! Runs drills: for each scenario and round, start the workload, carry out the steps,
//! heal, settle, read everything back, check, and measure.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keepbit_resp::Frame;

use super::checker::{self, FinalState};
use super::gap::{self, Hit};
use super::history::{Action, Event};
use super::journal;
use super::nemesis::{self, LocalCluster, Testbed};
use super::report;
use super::scenario::{self, Scenario, Setup, PREFERRED_PRIMARY};
use super::workload::{self, Keys, WorkloadOptions};
use super::{Availability, LeaderChange, Mark, Round};
use crate::client::{text, Client};
use crate::up::UpOptions;

pub struct DrillOptions {
    /// Scenario names; `all` for every one.
    pub scenarios: Vec<String>,
    pub rounds: u32,
    /// Workload time per round (at least the scenario's last step plus 1.5 s).
    pub duration: Duration,
    pub clients: u32,
    pub nodes: usize,
    pub seed: u64,
    pub json: Option<PathBuf>,
    pub report: Option<PathBuf>,
    /// Drill an existing cluster (client addresses) instead of starting one.
    pub target: Vec<String>,
    pub fault_command: Option<String>,
    pub heal_command: Option<String>,
    pub data_dir: PathBuf,
    pub mode: String,
    /// Extra `keepbit server` arguments for the nodes the drill starts (tests).
    pub server_args: Vec<String>,
    /// Time allowed to check each register's history for linearizability.
    pub check_budget: Duration,
}

fn selected(names: &[String]) -> anyhow::Result<Vec<&'static Scenario>> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(scenario::SCENARIOS.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            scenario::find(n).ok_or_else(|| {
                let known: Vec<&str> = scenario::SCENARIOS.iter().map(|s| s.name).collect();
                anyhow::anyhow!("unknown scenario {n:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

/// The config of a cluster for slow-disk scenarios: fault injection allowed, quick health
/// checks over a 2 s window, and a proactive switchover after 1 s of a degraded fsync
/// check. The 3 s cooldown outlasts the fault's effect within a round (no move back) but
/// not the time from one round's move to the next round's fault; the disk check is off (a
/// small drill disk must not trigger anything) and stalls never fail.
const FAULTS_SECTIONS: &str = "[health]\ninterval_ms = 50\nwindow_s = 2\nfsync_p99_degraded_ms = 40\n\
    fsync_p99_failing_ms = 1000\nstall_ms = 150\nstalls_failing_count = 1000\n\
    disk_free_degraded_bytes = 0\ndisk_free_failing_bytes = 0\nproactive = true\n\
    proactive_sustain_ms = 1000\nproactive_cooldown_ms = 3000\nproactive_max_per_hour = 100\n\
    [faults]\nenable = true\n";

fn free_base_port() -> u16 {
    let p = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port());
    20_000 + (p % 20_000)
}

/// Runs every selected scenario; returns true if no round found a violation.
pub async fn run(o: DrillOptions) -> anyhow::Result<bool> {
    let scenarios = selected(&o.scenarios)?;
    let exe = std::env::current_exe()?;
    let partitions = nemesis::partitions_available().await;
    let total = scenarios.len() as u32 * o.rounds;
    let progress = report::Progress::new(total);
    let mut rounds: Vec<Round> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    // Scenarios that need five nodes, or fault injection, get a cluster of their own.
    let mut groups: Vec<((usize, Setup), Vec<&Scenario>)> = Vec::new();
    for s in scenarios {
        if let Some(why) = s.unavailable {
            skipped.push((s.name.into(), format!("not available: {why}")));
            continue;
        }
        if s.needs_partitions() && o.target.is_empty() && !partitions {
            skipped.push((s.name.into(), "not available: needs root and nftables (nft)".into()));
            continue;
        }
        if !o.target.is_empty() && (s.needs_partitions() || s.local_only()) {
            skipped.push((s.name.into(), "not available on an external cluster".into()));
            continue;
        }
        let key = (s.nodes.unwrap_or(o.nodes), s.setup);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(s),
            None => groups.push((key, vec![s])),
        }
    }
    for ((nodes, setup), group) in groups {
        let mut cluster = if o.target.is_empty() {
            let dir = o.data_dir.join(format!("cluster-{nodes}-{setup:?}").to_lowercase());
            let _ = std::fs::remove_dir_all(&dir);
            let mut up = UpOptions::new(nodes, dir, free_base_port(), &o.mode);
            up.distinct_ips = true;
            let mut env = Vec::new();
            match setup {
                Setup::Plain => {}
                Setup::Faults => {
                    up.sections_extra = FAULTS_SECTIONS.into();
                    env.push((crate::faults::ENV_GUARD.to_string(), "1".to_string()));
                }
                Setup::Failback => {
                    up.cluster_extra = format!("preferred_primary = {PREFERRED_PRIMARY}\nfailback_quiet_ms = 1000\n");
                }
            }
            Testbed::Local(LocalCluster::start(&up, exe.clone(), o.server_args.clone(), env).await?)
        } else {
            Testbed::External {
                addrs: o.target.clone(),
                fault_command: o.fault_command.clone().unwrap_or_default(),
                heal_command: o.heal_command.clone().unwrap_or_default(),
            }
        };
        let result = run_group(&o, &mut cluster, &group, &progress, &mut rounds).await;
        if let Testbed::Local(c) = &mut cluster {
            c.shutdown().await;
        }
        result?;
    }
    progress.finish();
    println!("{}", report::summary_table(&rounds));
    for (name, why) in &skipped {
        println!("{name}: skipped, {why}");
    }
    print_violations(&rounds);
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report::to_json(&rounds))?)?;
        println!("JSON report: {}", path.display());
    }
    if let Some(dir) = &o.report {
        std::fs::create_dir_all(dir)?;
        let index = report::write_report(dir, &rounds)?;
        println!("HTML report: {}", index.display());
    }
    Ok(rounds.iter().all(|r| r.check.ok()))
}

async fn run_group(
    o: &DrillOptions,
    cluster: &mut Testbed,
    group: &[&Scenario],
    progress: &report::Progress,
    rounds: &mut Vec<Round>,
) -> anyhow::Result<()> {
    for s in group {
        for round in 1..=o.rounds {
            progress.set_round(s.name, round);
            let r = run_round(o, cluster, s, round, progress).await?;
            rounds.push(r);
        }
    }
    Ok(())
}

async fn run_round(
    o: &DrillOptions,
    cluster: &mut Testbed,
    s: &Scenario,
    round: u32,
    progress: &report::Progress,
) -> anyhow::Result<Round> {
    cluster.settle(Duration::from_secs(60)).await?;
    if s.setup == Setup::Failback {
        wait_preferred(cluster, Duration::from_secs(30)).await?;
    }
    let addrs = cluster.addrs();
    let keys = Keys { prefix: format!("drill:{}:{}:{round}", o.seed, s.name), lists: 4, registers: 4, counters: 2 };
    let start = Instant::now();
    let start_unix_ms = crate::console::unix_ms();
    let stop_clients = Arc::new(AtomicBool::new(false));
    let stop_tracker = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let wopts = WorkloadOptions {
        clients: o.clients,
        active_active: o.mode == "active-active",
        op_timeout: Duration::from_millis(1500),
        seed: o.seed ^ round as u64,
    };
    let clients =
        tokio::spawn(workload::run(addrs.clone(), keys.clone(), wopts, start, stop_clients.clone(), ops.clone()));
    let tracker = tokio::spawn(workload::track_leaders(addrs.clone(), start, stop_tracker.clone()));
    let mut marks = Vec::new();
    let mut hits = Vec::new();
    // (from, to) of a fault whose gap is the longest write pause within it.
    let mut pause_us: Option<(u64, u64)> = None;
    for step in s.steps {
        tokio::time::sleep_until((start + Duration::from_millis(step.at_ms)).into()).await;
        progress.set_ops(ops.load(Relaxed), 0, 0);
        let kind = if step.fault.is_heal() { "heal" } else { "fault" };
        let began_us = start.elapsed().as_micros() as u64;
        let what = match cluster.apply(step.fault).await {
            Ok(w) => w,
            Err(e) => format!("{:?} failed: {e}", step.fault),
        };
        // The instant the fault took effect (finding its target takes a moment); a
        // switchover takes effect when FAILOVER is sent and lasts until it answers.
        let mut at_us = start.elapsed().as_micros() as u64;
        if step.fault == scenario::Fault::Switchover {
            pause_us = Some((began_us, at_us));
            at_us = began_us;
        }
        // A slow disk's cost is the proactive switchover's pause, from the fault to the heal.
        match step.fault {
            scenario::Fault::SlowDisk(_) => pause_us = Some((at_us, u64::MAX)),
            scenario::Fault::ClearFaults => pause_us = pause_us.map(|(from, _)| (from, at_us)),
            _ => {}
        }
        let taken = cluster.take_hits();
        let us = |at: Instant| at.saturating_duration_since(start).as_micros() as u64;
        if matches!(step.fault, scenario::Fault::RollingRestart | scenario::Fault::CrashLoop(_)) {
            // One fault per node restarted, each at its own instant.
            for (at, nodes) in taken {
                let what = format!("kill -9 and restart node {nodes:?}");
                marks.push(Mark { at_us: us(at), kind: "fault".into(), what });
                hits.push(Hit { at_us: us(at), nodes });
            }
            marks.push(Mark { at_us, kind: "heal".into(), what });
            continue;
        }
        if kind == "fault" {
            let nodes = taken.into_iter().flat_map(|t| t.1).collect();
            hits.push(Hit { at_us, nodes });
        }
        marks.push(Mark { at_us, kind: kind.into(), what });
    }
    let end = o.duration.max(Duration::from_millis(s.last_step_ms() + 1500));
    tokio::time::sleep_until((start + end).into()).await;
    stop_clients.store(true, Relaxed);
    let events = clients.await.unwrap_or_default();
    let healed_at = start.elapsed().as_micros() as u64;
    cluster.settle(Duration::from_secs(60)).await?;
    marks.push(Mark {
        at_us: healed_at,
        kind: "heal".into(),
        what: "settle: heal everything, wait for every node to catch up".into(),
    });
    stop_tracker.store(true, Relaxed);
    let leaders = tracker.await.unwrap_or_default();
    let duration_us = start.elapsed().as_micros() as u64;
    let fin = read_back(&addrs, &keys, &events).await?;
    let mut check = checker::check(&events, &fin, o.check_budget);
    let mut availability = measure(&events, &hits, &leaders);
    if let Some((from_us, to_us)) = pause_us {
        availability.write_gap_ms = write_pause_ms(&events, from_us, to_us);
    }
    journal_verdict(s, &addrs, start_unix_ms, &marks, &mut availability, &mut check).await;
    check.leadership = leadership_verdict(s, &leaders);
    progress.set_ops(ops.load(Relaxed), availability.failed, availability.unknown);
    Ok(Round { scenario: s.name.into(), round, duration_us, events, marks, leaders, availability, check })
}

/// Reads the journal's records since the round's first fault and judges them.
async fn journal_verdict(
    s: &Scenario,
    addrs: &[String],
    start_unix_ms: u64,
    marks: &[Mark],
    a: &mut Availability,
    check: &mut checker::CheckReport,
) {
    let Some(fault) = marks.iter().find(|m| m.kind == "fault") else { return };
    let since = start_unix_ms + fault.at_us / 1000;
    let wanted = journal::expected(s).records();
    match journal::read(addrs, since, wanted, Duration::from_secs(10)).await {
        Ok(records) => {
            let (cause, mttr, violations) = journal::judge(s, &records);
            (a.journal_cause, a.journal_mttr_ms) = (cause, mttr);
            check.journal = violations;
        }
        Err(e) => check.journal.push(checker::Violation {
            key: "journal".into(),
            detail: format!("could not read the failover journal: {e}"),
            events: Vec::new(),
        }),
    }
}

/// Waits until the preferred primary leads (a failback round starts from it).
async fn wait_preferred(cluster: &Testbed, deadline: Duration) -> anyhow::Result<()> {
    let Testbed::Local(c) = cluster else { return Ok(()) };
    let end = Instant::now() + deadline;
    while c.primary().await != Some(PREFERRED_PRIMARY) {
        anyhow::ensure!(Instant::now() < end, "node {PREFERRED_PRIMARY} did not become primary within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A violation if leadership changed in a round whose scenario forbids it.
fn leadership_verdict(s: &Scenario, leaders: &[LeaderChange]) -> Vec<checker::Violation> {
    let changes = gap::leadership_changes(leaders);
    if !s.forbids_failover() || changes == 0 {
        return Vec::new();
    }
    let terms: Vec<String> = leaders.iter().map(|l| format!("term {} leader {:?}", l.term, l.leader)).collect();
    vec![checker::Violation {
        key: "leadership".into(),
        detail: format!("{}: {changes} leadership change(s) where none is allowed: {}", s.name, terms.join(", ")),
        events: Vec::new(),
    }]
}

/// Reads every key the round used from the primary.
async fn read_back(addrs: &[String], keys: &Keys, events: &[Event]) -> anyhow::Result<FinalState> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_read_back(addrs, keys, events).await {
            Ok(f) => return Ok(f),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn try_read_back(addrs: &[String], keys: &Keys, events: &[Event]) -> anyhow::Result<FinalState> {
    let primary = nemesis::primary_of(addrs).await.ok_or_else(|| anyhow::anyhow!("no primary"))?;
    let mut c = Client::connect(&primary, Duration::from_secs(5)).await?;
    let mut fin = FinalState::default();
    let strings = |f: Frame| -> anyhow::Result<Vec<Option<String>>> {
        match f {
            Frame::Array(items) => Ok(items.iter().map(text).collect()),
            Frame::Error(e) => anyhow::bail!("{}", String::from_utf8_lossy(&e)),
            other => anyhow::bail!("unexpected reply {other:?}"),
        }
    };
    for i in 0..keys.lists {
        let k = keys.list(i);
        let items = strings(c.call(&["LRANGE", k.as_str(), "0", "-1"]).await?)?;
        fin.lists.insert(k, items.into_iter().flatten().collect());
    }
    let mut singles: Vec<(u8, String)> = Vec::new();
    singles.extend((0..keys.counters).map(|i| (b'c', keys.counter(i))));
    singles.extend((0..keys.registers).map(|i| (b'r', keys.register(i))));
    let inserts: BTreeSet<String> = events
        .iter()
        .filter_map(|e| match &e.action {
            Action::Insert { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    singles.extend(inserts.into_iter().map(|k| (b'i', k)));
    for chunk in singles.chunks(500) {
        let mut args = vec!["MGET".to_string()];
        args.extend(chunk.iter().map(|(_, k)| k.clone()));
        let values = strings(c.call(&args).await?)?;
        for ((kind, key), value) in chunk.iter().zip(values) {
            match kind {
                b'c' => {
                    fin.counters.insert(key.clone(), value.and_then(|v| v.parse().ok()));
                }
                b'r' => {
                    fin.registers.insert(key.clone(), value);
                }
                _ => {
                    fin.inserts.insert(key.clone(), value);
                }
            }
        }
    }
    Ok(fin)
}

/// Availability figures: the write gap over every fault that hit the primary
/// ([`gap::write_gap_ms`]), detection and the new primary around the first such fault.
pub fn measure(events: &[Event], hits: &[Hit], leaders: &[LeaderChange]) -> Availability {
    let mut a = Availability {
        ok: events.iter().filter(|e| e.ok()).count() as u64,
        failed: events.iter().filter(|e| matches!(e.outcome, super::history::Outcome::Fail { .. })).count() as u64,
        unknown: events.iter().filter(|e| e.unknown()).count() as u64,
        ..Availability::default()
    };
    let mut prev: Option<u64> = None;
    for l in leaders {
        if let (Some(p), Some(n)) = (prev, l.leader) {
            if p != n {
                a.failovers += 1;
            }
        }
        if l.leader.is_some() {
            prev = l.leader;
        }
    }
    let Some(&t) = gap::primary_faults(hits, leaders).first() else { return a };
    let ms = |us: u64| (us.saturating_sub(t)) as f64 / 1000.0;
    a.write_gap_ms = gap::write_gap_ms(events, hits, leaders);
    let last_before = leaders.iter().rev().find(|l| l.at_us <= t);
    let (before, term_before) = (last_before.and_then(|l| l.leader), last_before.map_or(0, |l| l.term));
    let after: Vec<&LeaderChange> = leaders.iter().filter(|l| l.at_us > t).collect();
    // Detection: the cluster started a new term (an election) after the fault.
    a.detection_ms = after.iter().find(|l| l.term > term_before).map(|l| ms(l.at_us));
    a.new_primary_ms = after.iter().find(|l| l.leader.is_some() && l.leader != before).map(|l| ms(l.at_us));
    a
}

/// The write pause of a switchover running from `from_us` to `to_us`: the longest stretch
/// without an acknowledged write (any client) that overlaps it, so writes held by the pause
/// or sent to the old primary count, however many clients kept writing around it.
pub fn write_pause_ms(events: &[Event], from_us: u64, to_us: u64) -> Option<f64> {
    let mut acks: Vec<u64> = events.iter().filter(|e| e.ok() && e.action.is_write()).map(|e| e.complete_us).collect();
    acks.sort_unstable();
    let last_before = acks.iter().rev().find(|&&c| c <= from_us).copied().unwrap_or(from_us);
    let first_after = acks.iter().find(|&&c| c > to_us).copied()?;
    let within: Vec<u64> = std::iter::once(last_before)
        .chain(acks.iter().copied().filter(|&c| c > last_before && c < first_after))
        .chain([first_after])
        .collect();
    within.windows(2).map(|w| w[1] - w[0]).max().map(|us| us as f64 / 1000.0)
}

fn print_violations(rounds: &[Round]) {
    for r in rounds.iter().filter(|r| !r.check.ok()) {
        println!("\n{} round {}: VIOLATIONS", r.scenario, r.round);
        let groups = [
            ("lost", &r.check.lost),
            ("duplicated", &r.check.duplicated),
            ("phantom", &r.check.phantom),
            ("not linearizable", &r.check.nonlinearizable),
            ("failover journal", &r.check.journal),
            ("leadership", &r.check.leadership),
        ];
        for (what, list) in groups {
            for v in list.iter() {
                println!("  {what}: {}: {}", v.key, v.detail);
                for e in &v.events {
                    println!(
                        "    client {:>3} {:>10.3}s..{:>10.3}s {:?} -> {:?} via {}",
                        e.client,
                        e.invoke_us as f64 / 1e6,
                        e.complete_us as f64 / 1e6,
                        e.action,
                        e.outcome,
                        e.node
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::history::Outcome;

    fn write_acked_at(ms: u64) -> Event {
        Event {
            id: ms,
            client: 0,
            action: Action::Incr { key: "c".into() },
            invoke_us: ms * 1000 - 500,
            complete_us: ms * 1000,
            outcome: Outcome::Ok { value: None },
            node: "n".into(),
        }
    }

    /// The pause is the longest stretch without an acknowledged write that overlaps the
    /// switchover, not the time to the first acknowledgement after it began.
    #[test]
    fn write_pause_is_the_longest_silence_around_the_switchover() {
        let read = Event { action: Action::Read { key: "r".into() }, ..write_acked_at(1045) };
        // Acks at 990 and 1002 (in flight when FAILOVER was sent at 1000), then none until
        // 1040 after FAILOVER answered at 1030, then steady again.
        let events: Vec<Event> = [990, 1002, 1040, 1041, 1043].into_iter().map(write_acked_at).chain([read]).collect();
        assert_eq!(write_pause_ms(&events, 1_000_000, 1_030_000), Some(38.0));
        assert_eq!(write_pause_ms(&events, 1_000_000, 1_050_000), None, "no write after it: unmeasured");
    }
}
