//! What the rest of the node can see of a connected client (CLIENT LIST, CLIENT KILL,
//! pub/sub back-pressure), and the registry of connected clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

pub struct ClientShared {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<String>,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    pub last_cmd: Mutex<String>,
    /// Milliseconds since `created` of the last command.
    pub last_active_ms: AtomicU64,
    pub db: AtomicUsize,
    pub resp: AtomicU8,
    pub subs: AtomicUsize,
    pub psubs: AtomicUsize,
    /// Commands queued in MULTI, or -1 outside a transaction.
    pub multi: AtomicI64,
    pub blocked: AtomicBool,
    killed: AtomicBool,
    kill_reason: Mutex<String>,
    pub kill_signal: Notify,
}

impl ClientShared {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> ClientShared {
        ClientShared {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::default(),
            lib_name: Mutex::default(),
            lib_ver: Mutex::default(),
            last_cmd: Mutex::new("NULL".into()),
            last_active_ms: AtomicU64::new(0),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            subs: AtomicUsize::new(0),
            psubs: AtomicUsize::new(0),
            multi: AtomicI64::new(-1),
            blocked: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill_reason: Mutex::default(),
            kill_signal: Notify::new(),
        }
    }

    /// Asks the connection to close as soon as it can.
    pub fn kill(&self, reason: &str) {
        if !self.killed.swap(true, Relaxed) {
            *self.kill_reason.lock().unwrap_or_else(|e| e.into_inner()) = reason.to_string();
        }
        self.kill_signal.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Relaxed)
    }

    pub fn touch(&self, cmd: &str) {
        self.last_active_ms.store(self.created.elapsed().as_millis() as u64, Relaxed);
        let mut last = self.last_cmd.lock().unwrap_or_else(|e| e.into_inner());
        last.clear();
        last.push_str(cmd);
    }

    fn text(m: &Mutex<String>) -> String {
        m.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn name(&self) -> String {
        Self::text(&self.name)
    }

    pub fn is_pubsub(&self) -> bool {
        self.subs.load(Relaxed) + self.psubs.load(Relaxed) > 0
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis's format.
    pub fn info_line(&self) -> String {
        let age = self.created.elapsed().as_secs();
        let idle = (self.created.elapsed().as_millis() as u64).saturating_sub(self.last_active_ms.load(Relaxed)) / 1000;
        let mut flags = String::new();
        if self.multi.load(Relaxed) >= 0 {
            flags.push('x');
        }
        if self.blocked.load(Relaxed) {
            flags.push('b');
        }
        if self.is_pubsub() {
            flags.push('P');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.name(),
            age,
            idle,
            flags,
            self.db.load(Relaxed),
            self.subs.load(Relaxed),
            self.psubs.load(Relaxed),
            self.multi.load(Relaxed),
            Self::text(&self.last_cmd),
            self.resp.load(Relaxed),
            Self::text(&self.lib_name),
            Self::text(&self.lib_ver),
        )
    }
}

/// Connected clients by id.
#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    map: Mutex<HashMap<u64, Arc<ClientShared>>>,
}

impl Clients {
    /// Registers a new client unless `max` are already connected.
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr, max: usize) -> Option<Arc<ClientShared>> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let c = Arc::new(ClientShared::new(id, addr, laddr));
        map.insert(id, c.clone());
        Some(c)
    }

    pub fn remove(&self, id: u64) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    pub fn all(&self) -> Vec<Arc<ClientShared>> {
        let mut v: Vec<_> = self.map.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::pubsub::Disconnect for ClientShared {
    fn disconnect(&self, reason: &str) {
        self.kill(reason);
    }
}
