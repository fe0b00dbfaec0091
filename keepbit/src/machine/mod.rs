//! `Machine`: the replicated state — the keyspace, what the log says about it (`M`: the
//! last applied entry and membership in a cluster), and the clients waiting on it. Every
//! op enters the keyspace through [`Machine::apply`], standalone and in a cluster alike;
//! write commands become ops here (time and random choices resolved before logging).
//!
//! - [`waiters`]: WATCH flags and blocked pops, signalled by the keys an op touched.
//! - [`executor`]: the seam between the node's front and replication: `Executor`, and
//!   `Standalone`, which applies ops at once.

pub mod executor;
pub mod waiters;

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

use crate::cmd::{self, Command, Effects, ReadCtx, ReadFn, Run, Spec};
use crate::error::CmdError;
use crate::reply::Reply;
use crate::store::journal::FailoverRecord;
use crate::store::op::Watched;
use crate::store::{Keyspace, Op, OpKind};
pub use executor::{Executor, Standalone, Written};
pub use waiters::{Waiters, Watch, WatchFlag};

struct State<M> {
    ks: Keyspace,
    waiters: Waiters,
    rng: SmallRng,
    /// Kept under the keyspace's lock so a snapshot sees both at the same instant.
    meta: M,
}

pub struct Machine<M> {
    state: Mutex<State<M>>,
    databases: usize,
    effects: Arc<dyn Effects + Send + Sync>,
}

/// Copies an argument out of the connection's read buffer so the keyspace does not pin it.
fn own(arg: &Bytes) -> Bytes {
    Bytes::copy_from_slice(arg)
}

/// Rewrites one write command into its deterministic form, validating it.
fn prepare(
    st: &mut State<impl Sized>,
    db: usize,
    now_ms: u64,
    spec: &Spec,
    args: &[Bytes],
) -> Result<Vec<Bytes>, CmdError> {
    let rewritten = match spec.run {
        Run::Write(_, Some(p)) => p(&mut ReadCtx { ks: &st.ks, db, now_ms, rng: &mut st.rng }, args)?,
        _ => args.to_vec(),
    };
    Ok(rewritten.iter().map(own).collect())
}

impl<M: Clone + Default> Machine<M> {
    pub fn new(databases: usize, effects: Arc<dyn Effects + Send + Sync>) -> Machine<M> {
        Machine {
            state: Mutex::new(State {
                ks: Keyspace::new(databases),
                waiters: Waiters::default(),
                rng: SmallRng::from_entropy(),
                meta: M::default(),
            }),
            databases,
            effects,
        }
    }

    pub fn databases(&self) -> usize {
        self.databases
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a read command against the local keyspace at `now_ms` (or the last op's
    /// time, if later: time never runs backwards).
    pub fn read(&self, db: usize, f: ReadFn, args: &[Bytes], now_ms: u64) -> Reply {
        let mut st = self.lock();
        let st = &mut *st;
        let now_ms = now_ms.max(st.ks.now_ms);
        f(&mut ReadCtx { ks: &st.ks, db, now_ms, rng: &mut st.rng }, args).unwrap_or_else(|e| e.to_reply())
    }

    /// Turns a write command into its op. A command that fails validation is answered
    /// without ever reaching the log.
    pub fn prepare(&self, db: usize, command: &Command, now_ms: u64) -> Result<Op, CmdError> {
        let mut st = self.lock();
        Self::prepare_locked(&mut st, db, command, now_ms)
    }

    fn prepare_locked(st: &mut State<M>, db: usize, command: &Command, now_ms: u64) -> Result<Op, CmdError> {
        let now_ms = now_ms.max(st.ks.now_ms);
        let args = prepare(st, db, now_ms, command.spec, &command.args)?;
        let seed = st.rng.gen();
        Ok(Op { db: db as u32, now_ms, seed, kind: OpKind::Cmd(args) })
    }

    /// Turns a MULTI block into one op. A queued command that fails validation is logged
    /// as it is: EXEC reports its error in place and runs the others, as Redis does.
    /// With `watched` keys the op is a `WatchedMulti`, checked again where it applies.
    pub fn prepare_multi(&self, db: usize, queued: &[Command], now_ms: u64, watched: &[Watched]) -> Op {
        let mut st = self.lock();
        let mut op = Self::prepare_multi_locked(&mut st, db, queued, now_ms, self.databases);
        if let (false, OpKind::Multi(cmds)) = (watched.is_empty(), &mut op.kind) {
            op.kind = OpKind::WatchedMulti { watched: watched.to_vec(), cmds: std::mem::take(cmds) };
        }
        op
    }

    fn prepare_multi_locked(st: &mut State<M>, db: usize, queued: &[Command], now_ms: u64, databases: usize) -> Op {
        let now_ms = now_ms.max(st.ks.now_ms);
        let mut cur_db = db;
        let mut cmds = Vec::with_capacity(queued.len());
        for c in queued {
            if c.spec.name == "select" {
                if let Ok(d) = cmd::args::parse_i64(&c.args[1]) {
                    cur_db = (d.max(0) as usize).min(databases - 1);
                }
            }
            let args =
                prepare(st, cur_db, now_ms, c.spec, &c.args).unwrap_or_else(|_| c.args.iter().map(own).collect());
            cmds.push(args);
        }
        let seed = st.rng.gen();
        Op { db: db as u32, now_ms, seed, kind: OpKind::Multi(cmds) }
    }

    /// Prepares and applies a write under one lock, so nothing runs in between
    /// (standalone: there is no log to order ops).
    pub fn run(&self, db: usize, command: &Command, now_ms: u64) -> Result<Written, CmdError> {
        let mut st = self.lock();
        let op = Self::prepare_locked(&mut st, db, command, now_ms)?;
        Ok(self.apply_locked(&mut st, &op))
    }

    /// Runs a MULTI block atomically unless a WATCHed key changed (`None`), checking the
    /// WATCH under the same lock as the apply (standalone).
    pub fn run_multi(&self, db: usize, queued: &[Command], now_ms: u64, watch: &WatchFlag) -> Option<Written> {
        let mut st = self.lock();
        if watch.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let op = Self::prepare_multi_locked(&mut st, db, queued, now_ms, self.databases);
        Some(self.apply_locked(&mut st, &op))
    }

    /// Applies an op that needs no log position (standalone).
    pub fn apply(&self, op: &Op) -> Written {
        self.apply_locked(&mut self.lock(), op)
    }

    /// Applies a committed log entry's op, recording its position in the same step.
    pub fn apply_logged(&self, position: impl FnOnce(&mut M), encoded: &[u8]) -> Written {
        // Decoding copies the op's values: done before taking the lock.
        let op = Op::decode(encoded);
        let mut st = self.lock();
        position(&mut st.meta);
        match op {
            Ok(op) => self.apply_locked(&mut st, &op),
            Err(e) => {
                // An op this version cannot read: every node skips it alike.
                tracing::error!("skipping an undecodable log entry: {e}");
                Written { reply: CmdError::err(format!("undecodable op: {e}")).to_reply(), db_after: 0 }
            }
        }
    }

    /// The one place ops enter the keyspace.
    fn apply_locked(&self, st: &mut State<M>, op: &Op) -> Written {
        let applied = cmd::apply(&mut st.ks, op, &*self.effects);
        for t in &applied.touched {
            st.waiters.signal(t);
        }
        Written { reply: applied.reply, db_after: applied.db_after }
    }

    /// Records a log entry that carries no op (blank or membership).
    pub fn update_meta(&self, position: impl FnOnce(&mut M)) {
        position(&mut self.lock().meta);
    }

    pub fn meta(&self) -> M {
        self.lock().meta.clone()
    }

    /// A consistent image for a snapshot: the keyspace and its log position. The lock is
    /// held to copy the key maps only: values are shared (copied on a later write), so a
    /// huge hash or list costs nothing here.
    pub fn snapshot_view(&self) -> (Keyspace, M) {
        let st = self.lock();
        (st.ks.clone(), st.meta.clone())
    }

    /// Replaces the whole state from a snapshot. Blocked clients and WATCHes are
    /// signalled for every database, since anything may have changed.
    pub fn install(&self, ks: Keyspace, meta: M) {
        let mut st = self.lock();
        let dbs = st.ks.dbs.len().max(ks.dbs.len());
        st.ks = ks;
        while st.ks.dbs.len() < self.databases {
            st.ks.dbs.push(Default::default());
        }
        st.meta = meta;
        for d in 0..dbs {
            st.waiters.signal(&cmd::Touch::Db(d));
        }
    }

    /// Expiry ops for keys whose time has passed, at most `max_per_db` per database.
    pub fn due_ops(&self, now_ms: u64, max_per_db: usize) -> Vec<Op> {
        let st = self.lock();
        let now_ms = now_ms.max(st.ks.now_ms);
        (0..st.ks.dbs.len())
            .filter_map(|db| {
                let due = st.ks.db(db).due(now_ms, max_per_db);
                (!due.is_empty()).then(|| Op { db: db as u32, now_ms, seed: 0, kind: OpKind::Expire(due) })
            })
            .collect()
    }

    /// Whether any of `keys` holds data (a blocked pop may then be served).
    pub fn any_present(&self, db: usize, keys: &[Bytes], now_ms: u64) -> bool {
        let st = self.lock();
        let now_ms = now_ms.max(st.ks.now_ms);
        let d = st.ks.db(db);
        keys.iter().any(|k| d.contains(k, now_ms))
    }

    /// Registers `keys` of `db` for `watch`, noting each key's current version in the
    /// same step.
    pub fn watch(&self, db: usize, keys: &[Bytes], watch: &mut Watch) {
        let mut st = self.lock();
        st.waiters.watch(db, keys, &watch.flag);
        let d = st.ks.db(db);
        watch.keys.extend(keys.iter().map(|k| Watched { db: db as u32, key: k.clone(), version: d.version(k) }));
    }

    pub fn unwatch(&self, watch: &Watch) {
        self.lock().waiters.unwatch(&watch.registry_keys(), &watch.flag);
    }

    pub fn block(&self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        self.lock().waiters.block(db, keys, notify);
    }

    pub fn unblock(&self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        self.lock().waiters.unblock(db, keys, notify);
    }

    /// One step of a walk over `db`'s live keys matching `pattern` (KEYS), from scan
    /// position `cursor`: about `step` keys under one hold of the lock; returns the next
    /// cursor (0: done) and the matching keys.
    pub fn keys_page(&self, db: usize, cursor: u64, pattern: &Bytes, step: usize, now_ms: u64) -> (u64, Vec<Bytes>) {
        let st = self.lock();
        let now_ms = now_ms.max(st.ks.now_ms);
        let pattern = Some(pattern.clone()).filter(|p| &p[..] != b"*");
        let o = cmd::scan::ScanOpts { cursor, count: step.max(1), pattern, type_name: None, novalues: false };
        let (next, page) = cmd::scan::ordered_page(st.ks.db(db).scan_from(cursor, now_ms), &o);
        (next, page.into_iter().map(|(k, _)| k.clone()).collect())
    }

    /// Per-database (keys, keys with an expiry) for INFO keyspace.
    pub fn keyspace_sizes(&self) -> Vec<(usize, usize)> {
        self.lock().ks.dbs.iter().map(|d| (d.len(), d.volatile_len())).collect()
    }

    /// The failover journal's newest `count` records, newest first.
    pub fn journal(&self, count: usize) -> Vec<FailoverRecord> {
        self.lock().ks.journal.newest(count)
    }

    /// A copy of the keyspace (tests).
    pub fn keyspace(&self) -> Keyspace {
        self.lock().ks.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::NoEffects;

    fn command(line: &str) -> Command {
        Command::parse(line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()).expect("parse")
    }

    fn get(m: &Machine<()>, key: &str) -> Reply {
        m.read(0, read_fn("get"), &[Bytes::from_static(b"GET"), Bytes::copy_from_slice(key.as_bytes())], 0)
    }

    fn read_fn(name: &str) -> ReadFn {
        match command(&format!("{name} k")).spec.run {
            Run::Read(f) => f,
            _ => panic!("{name} is no read"),
        }
    }

    /// A write that commits between WATCH and EXEC aborts the block where the block
    /// applies, not only where EXEC was called: the SET below was already proposed (not
    /// yet applied) when EXEC checked its flag. A replica that never saw the WATCH
    /// decides the same from the op alone.
    #[test]
    fn watched_block_aborts_at_apply_on_every_replica() {
        let (primary, replica) =
            (Machine::<()>::new(1, Arc::new(NoEffects)), Machine::<()>::new(1, Arc::new(NoEffects)));
        let setup = primary.prepare(0, &command("SET k 1"), 1).expect("prepare");
        let mut watch = Watch::default();
        for m in [&primary, &replica] {
            m.apply(&setup);
        }
        primary.watch(0, &[Bytes::from_static(b"k")], &mut watch);
        let in_flight = primary.prepare(0, &command("SET k 2"), 2).expect("prepare");
        assert!(!watch.flag.load(std::sync::atomic::Ordering::Relaxed), "nothing applied yet");
        let block = primary.prepare_multi(0, &[command("INCR k")], 3, &watch.keys);
        for m in [&primary, &replica] {
            m.apply(&in_flight);
            assert_eq!(m.apply(&block).reply, Reply::NilArray, "the block must abort");
            assert_eq!(get(m, "k"), Reply::bulk("2"));
        }
        // Watching again sees the new version; nothing changes in between: the block runs.
        let mut watch = Watch::default();
        primary.watch(0, &[Bytes::from_static(b"k")], &mut watch);
        let block = primary.prepare_multi(0, &[command("INCR k")], 4, &watch.keys);
        for m in [&primary, &replica] {
            assert_eq!(m.apply(&block).reply, Reply::Array(vec![Reply::Int(3)]));
        }
        assert_eq!(primary.keyspace(), replica.keyspace(), "replicas agree, versions included");
        let image = primary.keyspace().to_snapshot().expect("snapshot");
        assert_eq!(Keyspace::from_snapshot(&image).expect("restore"), primary.keyspace(), "snapshots keep versions");
    }

    #[test]
    fn a_keys_walk_takes_bounded_steps_and_finds_every_match() {
        let m: Machine<()> = Machine::new(1, Arc::new(NoEffects));
        for i in 0..1000 {
            m.run(0, &command(&format!("SET user:{i} v")), 1).expect("SET");
            m.run(0, &command(&format!("SET other:{i} v")), 1).expect("SET");
        }
        let (mut cursor, mut found, mut steps) = (0, Vec::new(), 0);
        loop {
            let (next, page) = m.keys_page(0, cursor, &Bytes::from_static(b"user:*"), 100, 1);
            assert!(page.len() <= 101, "a step returned {} keys", page.len());
            found.extend(page);
            steps += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert!(steps >= 20, "2000 keys in steps of 100 took {steps} steps");
        found.sort();
        found.dedup();
        assert_eq!(found.len(), 1000);
        assert!(found.iter().all(|k| k.starts_with(b"user:")));
    }
}
