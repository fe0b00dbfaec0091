//! A write workload with a history, for fault tests: a client thread that, on whichever
//! node is primary, INCRs a counter and RPUSHes unique values to a list, and records
//! each write as acknowledged or unknown. On any error it drops its connection,
//! re-discovers the primary with `SENTINEL get-master-addr-by-name` on any node, and
//! goes on with the NEXT value: an errored write is never counted as acknowledged, and
//! never sent again.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one write may take before its outcome is called unknown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const DISCOVER_TIMEOUT: Duration = Duration::from_millis(500);
/// Client back-off between attempts while no primary answers (not a synchronization).
const RETRY_BACKOFF: Duration = Duration::from_millis(20);
const ERRORS_KEPT_MAX: usize = 100;

/// What the writer saw.
#[derive(Debug, Default)]
pub struct History {
    /// RPUSH values acknowledged (an integer reply), in order.
    pub acked: Vec<u64>,
    /// RPUSH values whose outcome is unknown (an error, a timeout, a broken connection).
    pub unknown: Vec<u64>,
    pub incr_acked: u64,
    pub incr_unknown: u64,
    /// The first errors seen, with the address that gave them.
    pub errors: Vec<String>,
    /// Writes that failed, all kinds together.
    pub error_count: u64,
}

impl History {
    /// Checks the final list and counter against the history: every acknowledged value
    /// is in the list exactly once, nothing else is there but values of unknown outcome
    /// (each at most once), and the counter holds every acknowledged increment and no
    /// more than the unknown ones on top.
    pub fn check(&self, list: &[u64], counter: u64) {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for v in list {
            *seen.entry(*v).or_default() += 1;
        }
        let duplicated: BTreeMap<u64, usize> = seen.iter().filter(|(_, &n)| n > 1).map(|(v, n)| (*v, *n)).collect();
        assert!(duplicated.is_empty(), "values written more than once: {duplicated:?}");
        let lost: Vec<u64> = self.acked.iter().copied().filter(|v| !seen.contains_key(v)).collect();
        assert!(lost.is_empty(), "acknowledged values lost: {lost:?} (of {} acknowledged)", self.acked.len());
        let sent: HashSet<u64> = self.acked.iter().chain(&self.unknown).copied().collect();
        let invented: Vec<u64> = list.iter().copied().filter(|v| !sent.contains(v)).collect();
        assert!(invented.is_empty(), "values in the list that were never sent: {invented:?}");
        assert!(
            counter >= self.incr_acked && counter <= self.incr_acked + self.incr_unknown,
            "counter {counter} outside [{}, {}]",
            self.incr_acked,
            self.incr_acked + self.incr_unknown
        );
    }
}

/// A running writer; `stop` returns its history.
pub struct Workload {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    acked_by: Arc<Mutex<HashMap<String, u64>>>,
    handle: Option<JoinHandle<History>>,
    pub list_key: String,
    pub counter_key: String,
}

fn connect(addr: &str, io_timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = client.get_connection_with_timeout(io_timeout)?;
    con.set_read_timeout(Some(io_timeout))?;
    con.set_write_timeout(Some(io_timeout))?;
    Ok(con)
}

/// The primary's address as the first node that knows it says, asking from `start` on.
pub fn discover(addrs: &[String], start: usize) -> Option<String> {
    (0..addrs.len()).find_map(|i| {
        let addr = &addrs[(start + i) % addrs.len()];
        let mut con = connect(addr, DISCOVER_TIMEOUT).ok()?;
        let found: Option<(String, String)> =
            redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg("keepbit").query(&mut con).ok()?;
        found.map(|(ip, port)| format!("{ip}:{port}"))
    })
}

impl Workload {
    /// Starts writing `<prefix>:list` and `<prefix>:counter` through the nodes at `addrs`.
    pub fn start(addrs: Vec<String>, prefix: &str) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let acked_by = Arc::new(Mutex::new(HashMap::new()));
        let (list_key, counter_key) = (format!("{prefix}:list"), format!("{prefix}:counter"));
        let handle = {
            let (stop, acked, errors, acked_by) = (stop.clone(), acked.clone(), errors.clone(), acked_by.clone());
            let (list_key, counter_key) = (list_key.clone(), counter_key.clone());
            std::thread::spawn(move || {
                let mut w = Writer { addrs, list_key, counter_key, h: History::default(), next: 0, rr: 0 };
                w.run(&stop, &acked, &errors, &acked_by);
                w.h
            })
        };
        Workload { stop, acked, errors, acked_by, handle: Some(handle), list_key, counter_key }
    }

    /// RPUSHes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Relaxed)
    }

    /// Failed writes so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// RPUSHes acknowledged by the node at `addr`.
    pub fn acked_by(&self, addr: &str) -> u64 {
        self.acked_by.lock().unwrap_or_else(|e| e.into_inner()).get(addr).copied().unwrap_or(0)
    }

    /// Waits until `n` RPUSHes in all have been acknowledged.
    pub fn wait_acked(&self, n: u64, deadline: Duration) {
        self.wait(deadline, &format!("{n} acknowledged writes"), || self.acked() >= n);
    }

    /// Waits until the node at `addr` has acknowledged `n` RPUSHes in all.
    pub fn wait_acked_by(&self, addr: &str, n: u64, deadline: Duration) {
        self.wait(deadline, &format!("{n} writes acknowledged by {addr}"), || self.acked_by(addr) >= n);
    }

    fn wait(&self, deadline: Duration, what: &str, cond: impl Fn() -> bool) {
        let end = Instant::now() + deadline;
        while !cond() {
            assert!(
                Instant::now() < end,
                "timed out after {deadline:?} waiting for {what}: {} acknowledged, {} errors",
                self.acked(),
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stop(mut self) -> History {
        self.stop.store(true, Relaxed);
        self.handle.take().expect("running").join().expect("writer thread")
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

struct Writer {
    addrs: Vec<String>,
    list_key: String,
    counter_key: String,
    h: History,
    next: u64,
    /// Where discovery starts asking, rotated so one dead node is not asked first forever.
    rr: usize,
}

impl Writer {
    fn run(
        &mut self,
        stop: &AtomicBool,
        acked: &AtomicU64,
        errors: &AtomicU64,
        acked_by: &Mutex<HashMap<String, u64>>,
    ) {
        let mut con: Option<(String, redis::Connection)> = None;
        while !stop.load(Relaxed) {
            let Some((addr, c)) = con.as_mut() else {
                self.rr += 1;
                con = discover(&self.addrs, self.rr).and_then(|a| connect(&a, WRITE_TIMEOUT).ok().map(|c| (a, c)));
                if con.is_none() {
                    std::thread::sleep(RETRY_BACKOFF);
                }
                continue;
            };
            let failed = match redis::cmd("INCR").arg(&self.counter_key).query::<i64>(c) {
                Ok(_) => {
                    self.h.incr_acked += 1;
                    None
                }
                Err(e) => {
                    self.h.incr_unknown += 1;
                    Some(format!("INCR on {addr}: {e}"))
                }
            };
            let failed = failed.or_else(|| {
                self.next += 1;
                let v = self.next;
                match redis::cmd("RPUSH").arg(&self.list_key).arg(v).query::<i64>(c) {
                    Ok(_) => {
                        self.h.acked.push(v);
                        acked.fetch_add(1, Relaxed);
                        *acked_by.lock().unwrap_or_else(|e| e.into_inner()).entry(addr.clone()).or_default() += 1;
                        None
                    }
                    Err(e) => {
                        self.h.unknown.push(v);
                        Some(format!("RPUSH {v} on {addr}: {e}"))
                    }
                }
            });
            if let Some(e) = failed {
                self.h.error_count += 1;
                errors.fetch_add(1, Relaxed);
                if self.h.errors.len() < ERRORS_KEPT_MAX {
                    self.h.errors.push(e);
                }
                con = None;
                std::thread::sleep(RETRY_BACKOFF);
            }
        }
    }
}
