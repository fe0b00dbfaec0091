//! The admin port's dashboard (`GET /`) of a real three-node cluster, rendered by headless
//! Chromium after kill -9 of the primary: every member with its address, the new primary,
//! the dead node suspected in the new primary's view, and the failover on the timeline
//! with its cause.

mod support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::chromium;
use support::cluster::{ClusterOptions, TestCluster};

const DEADLINE: Duration = Duration::from_secs(30);
const CRASH: &str = "crash: connection refused";

fn fresh_dir() -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("keepbit-dashboard-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Node `id`'s dashboard as served (status 200 only).
fn page(c: &TestCluster, id: u64) -> Option<String> {
    c.node(id).http("/").filter(|(status, _)| *status == 200).map(|(_, body)| body)
}

/// What every survivor's rendered dashboard must show after the failover from `old` to
/// `new`: the three members by address, `new` as primary, and the crash on the timeline
/// and in the table with a measured MTTR.
fn assert_shows_the_failover(c: &TestCluster, dom: &str, old: u64, new: u64, viewer: u64) {
    assert_eq!(dom.matches("<tr class=\"member").count(), 3, "three members on node {viewer}'s page:\n{dom}");
    for id in c.ids() {
        let addr = format!("<td class=\"addr\">{}</td>", c.node(id).client_addr());
        assert!(dom.contains(&addr), "member {id}'s address on node {viewer}'s page:\n{dom}");
    }
    assert!(dom.contains(&format!("data-id=\"{new}\" data-role=\"primary\"")), "new primary {new}:\n{dom}");
    assert_eq!(dom.matches("data-role=\"primary\"").count(), 1, "one primary:\n{dom}");
    assert!(dom.contains(&format!("<td>{viewer} (this node)</td>")));
    assert!(dom.contains("<svg id=\"timeline\""), "timeline:\n{dom}");
    assert!(dom.contains("<circle class=\"mark crash\""), "a crash mark:\n{dom}");
    let label = format!("{CRASH} · MTTR ");
    assert!(dom.contains(&label) && dom.contains(&format!(" · {old} → {new}</text>")), "the mark's label:\n{dom}");
    let row = format!("<td class=\"cause\">{CRASH}</td><td>");
    let mttr =
        dom.split(&row).nth(1).and_then(|rest| rest.split(" ms</td>").next()).and_then(|ms| ms.parse::<u64>().ok());
    assert!(mttr.is_some_and(|ms| ms > 0 && ms < 10_000), "the record's MTTR in the table: {mttr:?}\n{dom}");
    assert!(dom.contains("<circle class=\"mark restart\""), "the cluster's first election too:\n{dom}");
}

/// kill -9 of the primary (by PID); once the new primary's record is complete, headless
/// Chromium renders the dashboard of the new primary (which suspects the dead node and
/// draws every peer's lag bar) and of the other survivor, and both show the members,
/// the new primary and the failover with its cause.
#[test]
fn the_dashboard_shows_a_failover_in_headless_chromium() {
    let Some(browser) = chromium::find_or_skip("the dashboard rendering test") else { return };
    let mut c = TestCluster::start(ClusterOptions::default());
    let old = c.wait_settled(DEADLINE);
    support::wait_for("the first election on the dashboard", DEADLINE, || {
        page(&c, old).is_some_and(|p| p.contains("<td class=\"cause\">restart</td>"))
    });

    c.kill(old);
    let survivors: Vec<u64> = c.ids().into_iter().filter(|&id| id != old).collect();
    let completed = format!("<td class=\"cause\">{CRASH}</td><td>");
    support::wait_for("the new primary's completed journal record", DEADLINE, || {
        survivors.iter().all(|&id| page(&c, id).is_some_and(|p| p.contains(&completed) && !p.contains("pending")))
    });
    let new = c.wait_primary(DEADLINE);
    let standby = *survivors.iter().find(|&&id| id != new).expect("another survivor");
    let suspected = format!("data-id=\"{old}\" data-role=\"standby\" data-health=\"degraded\"");
    support::wait_for("the new primary to suspect the dead node", DEADLINE, || {
        page(&c, new).is_some_and(|p| p.contains(&suspected))
    });

    let dir = fresh_dir();
    let dom = chromium::dump_dom(&browser, &dir, "primary", &format!("{}/", c.node(new).admin_url()));
    assert_shows_the_failover(&c, &dom, old, new, new);
    assert!(dom.contains(&suspected) && dom.contains("suspected (phi "), "the dead node, suspected:\n{dom}");
    assert_eq!(dom.matches("class=\"lagbar\"").count(), 3, "the primary knows every member's lag:\n{dom}");

    let dom = chromium::dump_dom(&browser, &dir, "standby", &format!("{}/", c.node(standby).admin_url()));
    assert_shows_the_failover(&c, &dom, old, new, standby);
    assert!(dom.contains(&format!("data-id=\"{new}\" data-role=\"primary\" data-health=\"ok\"")), "{dom}");

    let png = chromium::screenshot(&browser, &dir, "primary-shot", &format!("{}/", c.node(new).admin_url()));
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
    assert!(png.len() > 5_000, "screenshot is {} bytes: blank page?", png.len());
    let _ = std::fs::remove_dir_all(&dir);
}
