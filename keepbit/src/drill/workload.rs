//! The drill's clients: a mix of operations that exposes loss and duplication (unique
//! list appends, unique inserts, counters) and linearizability violations (registers),
//! each recorded as invoke → ok | fail | unknown. Clients find the primary the way
//! Sentinel-aware clients do, or use any node in active-active mode.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keepbit_resp::Frame;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::history::{Action, Event, Outcome};
use super::LeaderChange;
use crate::client::{text, Client};

/// Keys of one round, so rounds never see each other's data.
#[derive(Clone)]
pub struct Keys {
    pub prefix: String,
    pub lists: usize,
    pub registers: usize,
    pub counters: usize,
}

impl Keys {
    pub fn list(&self, i: usize) -> String {
        format!("{}:list:{i}", self.prefix)
    }
    pub fn register(&self, i: usize) -> String {
        format!("{}:reg:{i}", self.prefix)
    }
    pub fn counter(&self, i: usize) -> String {
        format!("{}:ctr:{i}", self.prefix)
    }
    pub fn insert(&self, client: u32, seq: u64) -> String {
        format!("{}:ins:{client}:{seq}", self.prefix)
    }
}

pub struct WorkloadOptions {
    pub clients: u32,
    pub active_active: bool,
    pub op_timeout: Duration,
    pub seed: u64,
}

fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// What the reply says about the operation.
fn classify(reply: Result<Frame, std::io::Error>) -> Outcome {
    match reply {
        Ok(Frame::Error(e)) => {
            let e = String::from_utf8_lossy(&e).into_owned();
            // Refusals before anything was proposed: definitely not applied.
            let refused = e.starts_with("READONLY")
                || (e.starts_with("TRYAGAIN") && !e.contains("unknown") && !e.contains("cannot reach"));
            if refused {
                Outcome::Fail { reason: e }
            } else {
                Outcome::Unknown { reason: e }
            }
        }
        Ok(Frame::Null) => Outcome::Ok { value: None },
        Ok(Frame::Array(items)) => {
            let items: Vec<String> = items.iter().filter_map(text).collect();
            Outcome::Ok { value: Some(super::checker::encode_list(&items)) }
        }
        Ok(Frame::Integer(i)) => Outcome::Ok { value: Some(i.to_string()) },
        Ok(f) => Outcome::Ok { value: text(&f) },
        Err(e) => Outcome::Unknown { reason: e.to_string() },
    }
}

struct Conn {
    client: Option<(Client, String)>,
}

impl Conn {
    /// Connects to the primary (asking the nodes, as Sentinel clients do) or, in
    /// active-active mode, to node `preferred`.
    async fn ensure(
        &mut self,
        addrs: &[String],
        active_active: bool,
        preferred: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        if self.client.is_some() {
            return Ok(());
        }
        let target = if active_active {
            addrs[preferred % addrs.len()].clone()
        } else {
            discover(addrs, timeout).await.ok_or("no primary known")?
        };
        let c = Client::connect(&target, timeout).await.map_err(|e| e.to_string())?;
        self.client = Some((c, target));
        Ok(())
    }
}

async fn discover(addrs: &[String], timeout: Duration) -> Option<String> {
    for addr in addrs {
        let Ok(mut c) = Client::connect(addr, timeout).await else { continue };
        if let Ok(Frame::Array(parts)) = c.call(&["SENTINEL", "get-master-addr-by-name", "keepbit"]).await {
            if let (Some(h), Some(p)) = (parts.first().and_then(text), parts.get(1).and_then(text)) {
                return Some(format!("{h}:{p}"));
            }
        }
    }
    None
}

fn command(a: &Action) -> Vec<String> {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
    match a {
        Action::Append { key, value } => v(&["RPUSH", key, value]),
        Action::ReadList { key } => v(&["LRANGE", key, "0", "-1"]),
        Action::Write { key, value } => v(&["SET", key, value]),
        Action::Read { key } => v(&["GET", key]),
        Action::Incr { key } => v(&["INCR", key]),
        Action::Insert { key, value } => v(&["SET", key, value, "NX"]),
    }
}

fn pick(rng: &mut SmallRng, keys: &Keys, client: u32, seq: u64) -> Action {
    let value = format!("{client}.{seq}");
    match rng.gen_range(0..100) {
        0..35 => Action::Append { key: keys.list(rng.gen_range(0..keys.lists)), value },
        35..50 => Action::Write { key: keys.register(rng.gen_range(0..keys.registers)), value },
        50..65 => Action::Read { key: keys.register(rng.gen_range(0..keys.registers)) },
        65..85 => Action::Incr { key: keys.counter(rng.gen_range(0..keys.counters)) },
        _ => Action::Insert { key: keys.insert(client, seq), value },
    }
}

/// Runs `clients` clients until `stop`; returns every operation they made.
pub async fn run(
    addrs: Vec<String>,
    keys: Keys,
    o: WorkloadOptions,
    start: Instant,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) -> Vec<Event> {
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let (addrs, keys, stop, ops) = (addrs.clone(), keys.clone(), stop.clone(), ops.clone());
        let (active_active, timeout, seed) = (o.active_active, o.op_timeout, o.seed);
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed ^ (client as u64) << 32);
            let mut conn = Conn { client: None };
            let mut events = Vec::new();
            let mut seq = 0u64;
            while !stop.load(Relaxed) {
                seq += 1;
                let action = pick(&mut rng, &keys, client, seq);
                let invoke_us = micros(start);
                if let Err(reason) = conn.ensure(&addrs, active_active, client as usize, timeout).await {
                    // Nothing was sent: the operation definitely did not happen.
                    events.push(Event {
                        id: 0,
                        client,
                        action,
                        invoke_us,
                        complete_us: micros(start),
                        outcome: Outcome::Fail { reason },
                        node: String::new(),
                    });
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let Some((c, node)) = conn.client.as_mut() else { continue };
                let node = node.clone();
                let outcome = classify(c.call(&command(&action)).await);
                if !matches!(outcome, Outcome::Ok { .. }) {
                    conn.client = None;
                }
                ops.fetch_add(1, Relaxed);
                events.push(Event { id: 0, client, action, invoke_us, complete_us: micros(start), outcome, node });
            }
            events
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(events) = t.await {
            all.extend(events);
        }
    }
    all.sort_by_key(|e| e.invoke_us);
    for (i, e) in all.iter_mut().enumerate() {
        e.id = i as u64;
    }
    all
}

/// Polls every node's view of leadership until `stop`; records each change.
pub async fn track_leaders(addrs: Vec<String>, start: Instant, stop: Arc<AtomicBool>) -> Vec<LeaderChange> {
    let mut changes: Vec<LeaderChange> = Vec::new();
    let mut last: Option<(u64, Option<u64>)> = None;
    while !stop.load(Relaxed) {
        let mut views = Vec::new();
        for addr in &addrs {
            if let Some((t, l, _)) = super::nemesis::leadership(addr).await {
                views.push((t, l));
            }
        }
        let term = views.iter().map(|v| v.0).max().unwrap_or(0);
        let leader = views.iter().filter(|v| v.0 == term).find_map(|v| v.1);
        let now = (term, leader);
        if term > 0 && last != Some(now) {
            changes.push(LeaderChange { at_us: micros(start), term, leader });
            last = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    changes
}
