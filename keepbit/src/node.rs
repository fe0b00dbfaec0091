//! `Node`: owns the keyspace. Reads run against it directly; a write command becomes an
//! `Op` (its time and random choices resolved here, before logging) and changes the
//! keyspace only through `store::apply`. After each op the node wakes clients blocked
//! on the keys it touched and marks WATCHes on them dirty.
//!
//! Standalone, an op is applied at once under the node's lock. In a cluster
//! (`raft::cluster`), the op is proposed to the replicated log and applied by the state
//! machine on every node once committed; the reply comes from that apply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

use crate::cmd::{self, ReadCtx, Run, Spec};
use crate::config::Config;
use crate::error::CmdError;
use crate::pubsub::PubSub;
use crate::raft::cluster::Cluster;
use crate::raft::types::{LogId, Response, StoredMembership};
use crate::reply::Reply;
use crate::server::client::Clients;
use crate::store::{self, Effects, Keyspace, Op, OpKind, Touch};

/// Wall-clock time, injected so tests and simulations can control it.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// A WATCH: set dirty when any watched key changes.
pub type WatchFlag = Arc<AtomicBool>;

#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub expired_keys: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub pubsub_messages: AtomicU64,
}

impl Stats {
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.commands_processed,
            &self.rejected_connections,
            &self.expired_keys,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.pubsub_messages,
        ] {
            c.store(0, Relaxed);
        }
    }
}

struct State {
    ks: Keyspace,
    watches: HashMap<(usize, Bytes), Vec<WatchFlag>>,
    blocked: HashMap<(usize, Bytes), Vec<Arc<Notify>>>,
    rng: SmallRng,
    /// Last log entry applied (cluster only), kept with the keyspace so a snapshot sees both
    /// at the same instant.
    applied: Option<LogId>,
    membership: StoredMembership,
}

/// The limits a connection checks on every read, kept apart from `Config` so reading
/// them costs no allocation.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub resp: keepbit_resp::Limits,
    pub query_buffer_bytes: usize,
    pub idle_timeout_s: u64,
}

impl ConnLimits {
    fn of(c: &Config) -> ConnLimits {
        ConnLimits {
            resp: c.resp_limits(),
            query_buffer_bytes: c.client_query_buffer_limit_bytes,
            idle_timeout_s: c.timeout_s,
        }
    }
}

pub struct Node {
    state: Mutex<State>,
    config: Mutex<Config>,
    limits: Mutex<ConnLimits>,
    pub pubsub: PubSub,
    pub clients: Clients,
    pub stats: Stats,
    clock: Arc<dyn Clock>,
    pub started: Instant,
    pub started_unix_s: u64,
    pub run_id: String,
    pub databases: usize,
    cluster: std::sync::OnceLock<Arc<Cluster>>,
}

/// Delivers PUBLISH ops to this node's subscribers.
struct NodeEffects<'a>(&'a Node);

impl Effects for NodeEffects<'_> {
    fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        self.0.stats.pubsub_messages.fetch_add(1, Relaxed);
        self.0.pubsub.publish(channel, message)
    }
}

/// Copies an argument out of the connection's read buffer so the keyspace does not pin it.
fn own(arg: &Bytes) -> Bytes {
    Bytes::copy_from_slice(arg)
}

impl Node {
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Node {
        let mut rng = SmallRng::from_entropy();
        let run_id: String = (0..40).map(|_| format!("{:x}", rng.gen_range(0..16))).collect();
        let databases = config.databases;
        Node {
            state: Mutex::new(State {
                ks: Keyspace::new(databases),
                watches: HashMap::new(),
                blocked: HashMap::new(),
                rng,
                applied: None,
                membership: StoredMembership::default(),
            }),
            limits: Mutex::new(ConnLimits::of(&config)),
            config: Mutex::new(config),
            pubsub: PubSub::default(),
            clients: Clients::default(),
            stats: Stats::default(),
            started_unix_s: clock.now_ms() / 1000,
            clock,
            started: Instant::now(),
            run_id,
            databases,
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Attaches the replication layer; from then on writes go through the log.
    pub fn attach_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> Config {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn conn_limits(&self) -> ConnLimits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the runtime configuration (CONFIG SET).
    pub fn set_config(&self, config: Config) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = ConnLimits::of(&config);
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Runs a read command against the local keyspace.
    pub fn read_local(&self, db: usize, spec: &Spec, args: &[Bytes]) -> Reply {
        let Run::Read(f) = spec.run else {
            return CmdError::err("not a read command").to_reply();
        };
        let now_ms = self.clock.now_ms();
        let mut st = self.lock();
        let st = &mut *st;
        let now_ms = now_ms.max(st.ks.now_ms);
        let mut ctx = ReadCtx { ks: &st.ks, db, now_ms, rng: &mut st.rng };
        f(&mut ctx, args).unwrap_or_else(|e| e.to_reply())
    }

    /// Rewrites one write command into its deterministic form. A command that fails
    /// validation is left as it is: apply then fails it with the same error.
    fn prepare(st: &mut State, db: usize, now_ms: u64, args: &[Bytes]) -> Vec<Bytes> {
        let prepare = cmd::lookup(&args[0]).and_then(|s| match s.run {
            Run::Write(_, p) => p,
            _ => None,
        });
        let rewritten = prepare.and_then(|p| {
            let mut ctx = ReadCtx { ks: &st.ks, db, now_ms, rng: &mut st.rng };
            p(&mut ctx, args).ok()
        });
        rewritten.unwrap_or_else(|| args.to_vec()).iter().map(own).collect()
    }

    /// Turns a write command into its op: time, seed and rewritten arguments.
    pub fn make_op(&self, db: usize, args: &[Bytes]) -> Op {
        let now_ms = self.clock.now_ms();
        let mut st = self.lock();
        let now_ms = now_ms.max(st.ks.now_ms);
        let args = Self::prepare(&mut st, db, now_ms, args);
        let seed = st.rng.gen();
        Op { db: db as u32, now_ms, seed, kind: OpKind::Cmd(args) }
    }

    /// Runs a write command: standalone it applies at once; in a cluster it goes through
    /// the replicated log.
    pub async fn write(&self, db: usize, args: &[Bytes]) -> Reply {
        if let Some(c) = self.cluster.get() {
            return c.write(self, db, args).await;
        }
        // Standalone: prepare and apply under one lock, so nothing runs in between.
        let now_ms = self.clock.now_ms();
        let mut st = self.lock();
        let now_ms = now_ms.max(st.ks.now_ms);
        let args = Self::prepare(&mut st, db, now_ms, args);
        let seed = st.rng.gen();
        let op = Op { db: db as u32, now_ms, seed, kind: OpKind::Cmd(args) };
        self.submit(&mut st, &op).0
    }

    /// Applies a committed log entry's op (the state machine calls this on every node).
    pub fn apply_logged(&self, log_id: LogId, encoded: &[u8]) -> Response {
        let mut st = self.lock();
        st.applied = Some(log_id);
        match Op::decode(encoded) {
            Ok(op) => {
                let (reply, db_after) = self.submit(&mut st, &op);
                Response { reply, db_after }
            }
            Err(e) => {
                // An op this version cannot read: every node skips it alike.
                tracing::error!("skipping undecodable log entry {log_id}: {e}");
                Response { reply: CmdError::err(format!("undecodable op: {e}")).to_reply(), db_after: 0 }
            }
        }
    }

    /// Records a log entry that carries no op (blank or membership).
    pub fn apply_meta(&self, log_id: LogId, membership: Option<StoredMembership>) {
        let mut st = self.lock();
        st.applied = Some(log_id);
        if let Some(m) = membership {
            st.membership = m;
        }
    }

    pub fn applied_state(&self) -> (Option<LogId>, StoredMembership) {
        let st = self.lock();
        (st.applied.clone(), st.membership.clone())
    }

    /// A consistent image for a snapshot: keyspace, last applied entry and membership.
    pub fn snapshot_view(&self) -> (Keyspace, Option<LogId>, StoredMembership) {
        let st = self.lock();
        (st.ks.clone(), st.applied.clone(), st.membership.clone())
    }

    /// Replaces the whole state from a snapshot. Blocked clients and WATCHes are
    /// signalled for every database, since anything may have changed.
    pub fn install(&self, ks: Keyspace, applied: Option<LogId>, membership: StoredMembership) {
        let mut st = self.lock();
        let dbs = st.ks.dbs.len().max(ks.dbs.len());
        st.ks = ks;
        while st.ks.dbs.len() < self.databases {
            st.ks.dbs.push(Default::default());
        }
        st.applied = applied;
        st.membership = membership;
        for d in 0..dbs {
            Self::signal(&mut st, &Touch::Db(d));
        }
    }

    /// The one place ops enter the keyspace.
    fn submit(&self, st: &mut State, op: &Op) -> (Reply, usize) {
        let applied = store::apply(&mut st.ks, op, &NodeEffects(self));
        for t in &applied.touched {
            Self::signal(st, t);
        }
        (applied.reply, applied.db_after)
    }

    /// Marks WATCHes dirty and wakes blocked clients for one touched key or database.
    fn signal(st: &mut State, touch: &Touch) {
        if st.watches.is_empty() && st.blocked.is_empty() {
            return;
        }
        let hit = |(d, k): &(usize, Bytes)| match touch {
            Touch::Key(td, tk) => d == td && k == tk,
            Touch::Db(td) => d == td,
        };
        match touch {
            Touch::Key(d, k) => {
                let key = (*d, k.clone());
                st.watches.get(&key).into_iter().flatten().for_each(|w| w.store(true, Relaxed));
                st.blocked.get(&key).into_iter().flatten().for_each(|n| n.notify_one());
            }
            Touch::Db(_) => {
                st.watches.iter().filter(|(k, _)| hit(k)).flat_map(|(_, v)| v).for_each(|w| w.store(true, Relaxed));
                st.blocked.iter().filter(|(k, _)| hit(k)).flat_map(|(_, v)| v).for_each(|n| n.notify_one());
            }
        }
    }

    /// Turns a MULTI block into one op.
    fn make_multi(&self, st: &mut State, db: usize, queued: &[Vec<Bytes>]) -> Op {
        let now_ms = self.clock.now_ms().max(st.ks.now_ms);
        let mut cur_db = db;
        let mut cmds = Vec::with_capacity(queued.len());
        for args in queued {
            if args[0].eq_ignore_ascii_case(b"select") {
                if let Ok(d) = cmd::args::parse_i64(&args[1]) {
                    cur_db = (d.max(0) as usize).min(self.databases - 1);
                }
            }
            cmds.push(Self::prepare(st, cur_db, now_ms, args));
        }
        let seed = st.rng.gen();
        Op { db: db as u32, now_ms, seed, kind: OpKind::Multi(cmds) }
    }

    /// Runs a MULTI/EXEC block atomically; `None` when a WATCHed key changed.
    pub async fn exec(&self, db: usize, queued: &[Vec<Bytes>], watch: &WatchFlag) -> Option<(Reply, usize)> {
        if let Some(c) = self.cluster.get() {
            // WATCH is checked when the block is proposed; ops still in flight then are
            // not seen (documented in README).
            if watch.load(Relaxed) {
                return None;
            }
            let op = {
                let mut st = self.lock();
                self.make_multi(&mut st, db, queued)
            };
            return Some(c.submit_op(op).await);
        }
        let mut st = self.lock();
        if watch.load(Relaxed) {
            return None;
        }
        let op = self.make_multi(&mut st, db, queued);
        Some(self.submit(&mut st, &op))
    }

    /// Expiry ops for keys whose time has passed, at most `max_per_db` per database.
    fn due_ops(&self, max_per_db: usize) -> Vec<Op> {
        let now_ms = self.clock.now_ms();
        let st = self.lock();
        let now_ms = now_ms.max(st.ks.now_ms);
        (0..st.ks.dbs.len())
            .filter_map(|db| {
                let due = st.ks.db(db).due(now_ms, max_per_db);
                (!due.is_empty()).then(|| Op { db: db as u32, now_ms, seed: 0, kind: OpKind::Expire(due) })
            })
            .collect()
    }

    /// One pass of active expiry: deletes (through ops) keys whose time has passed.
    /// In a cluster only the primary expires keys. Returns how many keys were deleted.
    pub async fn expire_cycle(&self, max_per_db: usize) -> usize {
        let cluster = self.cluster.get();
        if cluster.is_some_and(|c| !c.is_primary()) {
            return 0;
        }
        let mut total = 0;
        for op in self.due_ops(max_per_db) {
            let reply = match cluster {
                Some(c) => c.submit_op(op).await.0,
                None => self.submit(&mut self.lock(), &op).0,
            };
            if let Reply::Int(n) = reply {
                total += n as usize;
            }
        }
        self.stats.expired_keys.fetch_add(total as u64, Relaxed);
        total
    }

    /// Serves a blocking command if one of its keys holds data; `None` means wait.
    pub async fn try_blocking(&self, db: usize, args: &[Bytes], keys: &[Bytes]) -> Option<Reply> {
        let now_ms = self.clock.now_ms();
        {
            let st = self.lock();
            let now_ms = now_ms.max(st.ks.now_ms);
            let d = st.ks.db(db);
            if !keys.iter().any(|k| d.contains(k, now_ms)) {
                return None;
            }
        }
        // A key may have been emptied in between; the write then answers "nothing".
        let reply = self.write(db, args).await;
        match reply {
            Reply::NilArray | Reply::Nil => None,
            r => Some(r),
        }
    }

    pub fn block_on(&self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        let mut st = self.lock();
        for k in keys {
            st.blocked.entry((db, k.clone())).or_default().push(notify.clone());
        }
    }

    pub fn unblock(&self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        let mut st = self.lock();
        for k in keys {
            let key = (db, k.clone());
            if let Some(v) = st.blocked.get_mut(&key) {
                v.retain(|n| !Arc::ptr_eq(n, notify));
                if v.is_empty() {
                    st.blocked.remove(&key);
                }
            }
        }
    }

    pub fn watch(&self, db: usize, keys: &[Bytes], flag: &WatchFlag) {
        let mut st = self.lock();
        for k in keys {
            st.watches.entry((db, k.clone())).or_default().push(flag.clone());
        }
    }

    pub fn unwatch(&self, keys: &[(usize, Bytes)], flag: &WatchFlag) {
        let mut st = self.lock();
        for key in keys {
            if let Some(v) = st.watches.get_mut(key) {
                v.retain(|w| !Arc::ptr_eq(w, flag));
                if v.is_empty() {
                    st.watches.remove(key);
                }
            }
        }
    }

    /// Per-database (keys, keys with an expiry) for INFO keyspace.
    pub fn keyspace_sizes(&self) -> Vec<(usize, usize)> {
        let st = self.lock();
        st.ks.dbs.iter().map(|d| (d.len(), d.volatile_len())).collect()
    }

    /// A copy of the keyspace (tests and snapshots).
    pub fn keyspace(&self) -> Keyspace {
        self.lock().ks.clone()
    }

    /// Runs active expiry every `interval` until the node is dropped.
    pub fn spawn_expiry(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                // Keep going while a large share of the sample was due, as Redis does.
                while node.expire_cycle(200).await >= 200 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
}
