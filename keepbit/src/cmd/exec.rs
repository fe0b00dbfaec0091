//! Applying ops: `apply(&Op)` runs a logged write against the keyspace through the
//! command table. A pure function of the keyspace and the op: it reads no clock and no
//! random source (choices are seeded from `op.seed`).

use bytes::Bytes;
use rand::{rngs::SmallRng, SeedableRng};

use super::{ReadCtx, Run, WriteCtx};
use crate::error::CmdError;
use crate::reply::Reply;
use crate::store::op::Watched;
use crate::store::{Keyspace, Op, OpKind};

/// Side effects of applying an op that leave the keyspace: PUBLISH delivers to local
/// subscribers and reports how many received the message.
pub trait Effects {
    fn publish(&self, channel: &Bytes, message: &Bytes) -> i64;
}

/// For replaying ops where nobody listens (tests, log recovery).
pub struct NoEffects;

impl Effects for NoEffects {
    fn publish(&self, _: &Bytes, _: &Bytes) -> i64 {
        0
    }
}

/// What an op changed, for WATCH and for clients blocked on keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Touch {
    Key(usize, Bytes),
    /// Every key of a database (FLUSHDB, FLUSHALL, SWAPDB).
    Db(usize),
}

#[derive(Debug)]
pub struct Applied {
    pub reply: Reply,
    pub touched: Vec<Touch>,
    /// The database selected after the op (a MULTI block may SELECT).
    pub db_after: usize,
}

/// Applies `op` to `ks`. A pure function of the keyspace and the op: it reads no clock
/// and no random source (choices are seeded from `op.seed`). Each command is looked up
/// and its arity checked here again because the op comes from the log (or a peer): data
/// this node did not validate itself.
pub fn apply(ks: &mut Keyspace, op: &Op, fx: &dyn Effects) -> Applied {
    if let Some(reply) = apply_journal(ks, &op.kind) {
        return Applied { reply, touched: Vec::new(), db_after: op.db as usize };
    }
    ks.version_clock += 1;
    let applied = apply_unversioned(ks, op, fx);
    let version = ks.version_clock;
    for t in &applied.touched {
        match t {
            Touch::Key(d, k) => ks.db_mut(*d).note_change(k, version),
            Touch::Db(d) => ks.db_mut(*d).note_flush(version),
        }
    }
    applied
}

/// Applies a failover journal op, which changes the journal only: not the op time nor
/// the version clock, so a node that cannot read it (an older version skips it) keeps
/// the same keyspace, WATCH versions included. `None` for any other op.
fn apply_journal(ks: &mut Keyspace, kind: &OpKind) -> Option<Reply> {
    match kind {
        OpKind::Journal(record) => {
            ks.journal.record(record.clone());
            Some(Reply::Ok)
        }
        OpKind::JournalUpdate { term, first_commit_ms, cause } => {
            Some(match ks.journal.complete(*term, *first_commit_ms, cause.clone()) {
                true => Reply::Ok,
                false => CmdError::err(format!("no journal record for term {term}")).to_reply(),
            })
        }
        _ => None,
    }
}

/// Whether every watched key is still at the version its watcher saw.
fn unchanged(ks: &Keyspace, watched: &[Watched]) -> bool {
    watched.iter().all(|w| ks.dbs.get(w.db as usize).is_some_and(|d| d.version(&w.key) == w.version))
}

fn apply_unversioned(ks: &mut Keyspace, op: &Op, fx: &dyn Effects) -> Applied {
    ks.now_ms = ks.now_ms.max(op.now_ms);
    let now_ms = ks.now_ms;
    let mut touched = Vec::new();
    let mut db = op.db as usize;
    if db >= ks.dbs.len() {
        return Applied { reply: CmdError::DbIndex.to_reply(), touched, db_after: 0 };
    }
    let reply = match &op.kind {
        OpKind::Cmd(args) => run_one(ks, db, now_ms, op.seed, args, &mut touched, fx),
        OpKind::WatchedMulti { watched, .. } if !unchanged(ks, watched) => Reply::NilArray,
        OpKind::Journal(_) | OpKind::JournalUpdate { .. } => apply_journal(ks, &op.kind).unwrap_or(Reply::Ok),
        OpKind::Multi(cmds) | OpKind::WatchedMulti { cmds, .. } => {
            let mut replies = Vec::with_capacity(cmds.len());
            for (i, args) in cmds.iter().enumerate() {
                if let Some(target) = select_target(args, ks.dbs.len()) {
                    replies.push(match target {
                        Ok(d) => {
                            db = d;
                            Reply::Ok
                        }
                        Err(e) => e.to_reply(),
                    });
                    continue;
                }
                let seed = op.seed.wrapping_add(i as u64);
                replies.push(run_one(ks, db, now_ms, seed, args, &mut touched, fx));
            }
            Reply::Array(replies)
        }
        OpKind::Expire(keys) => {
            let d = ks.db_mut(db);
            let mut n = 0;
            for k in keys {
                if d.expire_at(k).is_some_and(|at| at <= now_ms) {
                    d.remove(k);
                    touched.push(Touch::Key(db, k.clone()));
                    n += 1;
                }
            }
            Reply::Int(n)
        }
    };
    Applied { reply, touched, db_after: db }
}

/// `Some` if `args` is a SELECT (inside MULTI), with the database it selects.
fn select_target(args: &[Bytes], databases: usize) -> Option<Result<usize, CmdError>> {
    if args.len() != 2 || !args[0].eq_ignore_ascii_case(b"select") {
        return None;
    }
    Some(match super::args::parse_i64(&args[1]) {
        Ok(d) if d >= 0 && (d as usize) < databases => Ok(d as usize),
        Ok(_) => Err(CmdError::DbIndex),
        Err(_) => Err(CmdError::NotInteger),
    })
}

fn run_one(
    ks: &mut Keyspace,
    db: usize,
    now_ms: u64,
    seed: u64,
    args: &[Bytes],
    touched: &mut Vec<Touch>,
    fx: &dyn Effects,
) -> Reply {
    let Some(spec) = args.first().and_then(|name| super::lookup_any(name)) else {
        return CmdError::unknown_command(args).to_reply();
    };
    if !spec.arity_ok(args.len()) {
        return CmdError::WrongArity(spec.name.to_string()).to_reply();
    }
    let result = match spec.run {
        Run::Write(f, _) => f(&mut WriteCtx { ks, db, now_ms, seed, touched, fx }, args),
        Run::Read(f) => f(&mut ReadCtx { ks, db, now_ms, rng: &mut SmallRng::seed_from_u64(seed) }, args),
        Run::Session(_) => Err(CmdError::err("command not allowed inside a transaction")),
    };
    result.unwrap_or_else(|e| e.to_reply())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A random write command over a small key space, every family represented.
    fn random_command(rng: &mut SmallRng) -> Vec<Bytes> {
        let key = format!("k{}", rng.gen_range(0..8));
        let other = format!("k{}", rng.gen_range(0..8));
        let m = format!("m{}", rng.gen_range(0..6));
        let n = rng.gen_range(-3..10).to_string();
        let t = (1_000 + rng.gen_range(0..3_000)).to_string();
        let words: Vec<String> = match rng.gen_range(0..24) {
            0 => vec!["SET".into(), key, n],
            1 => vec!["SET".into(), key, m, "PXAT".into(), t],
            2 => vec!["INCRBY".into(), key, n],
            3 => vec!["APPEND".into(), key, m],
            4 => vec!["DEL".into(), key, other],
            5 => vec!["RPUSH".into(), key, m, n],
            6 => vec!["LPOP".into(), key],
            7 => vec!["LMOVE".into(), key, other, "LEFT".into(), "RIGHT".into()],
            8 => vec!["HSET".into(), key, m, n],
            9 => vec!["HINCRBY".into(), key, m, n],
            10 => vec!["SADD".into(), key, m.clone(), format!("{m}x")],
            11 => vec!["SPOP".into(), key, "2".into()],
            12 => vec!["spop-chosen".into(), key, "1".into(), m],
            13 => vec!["SUNIONSTORE".into(), key, other.clone(), other],
            14 => vec!["ZADD".into(), key, n, m],
            15 => vec!["ZINCRBY".into(), key, n, m],
            16 => vec!["ZPOPMIN".into(), key],
            17 => vec!["PEXPIREAT".into(), key, t],
            18 => vec!["RENAME".into(), key, other],
            19 => vec!["PERSIST".into(), key],
            20 => vec!["COPY".into(), key, other, "REPLACE".into()],
            21 => vec!["ZUNIONSTORE".into(), other, "2".into(), key.clone(), key],
            22 => vec!["LTRIM".into(), key, "0".into(), n],
            _ => vec!["GETDEL".into(), key],
        };
        words.iter().map(|w| b(w)).collect()
    }

    fn random_op(rng: &mut SmallRng, now_ms: u64) -> Op {
        let kind = match rng.gen_range(0..10) {
            0 => OpKind::Multi((0..rng.gen_range(1..5)).map(|_| random_command(rng)).collect()),
            1 => OpKind::Expire((0..8).map(|i| b(&format!("k{i}"))).collect()),
            _ => OpKind::Cmd(random_command(rng)),
        };
        Op { db: rng.gen_range(0..2), now_ms, seed: rng.gen(), kind }
    }

    /// Applying the same ops (as decoded from their log encoding) to two empty keyspaces
    /// yields identical keyspaces and identical replies: apply reads no clock and no
    /// random source.
    #[test]
    fn apply_is_deterministic() {
        for seed in 0..20 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let (mut a, mut b) = (Keyspace::new(4), Keyspace::new(4));
            let mut now_ms = 1_000;
            for _ in 0..400 {
                now_ms += rng.gen_range(0..40);
                let op = random_op(&mut rng, now_ms);
                let logged = Op::decode(&op.encode().expect("encode")).expect("decode");
                let ra = apply(&mut a, &op, &NoEffects);
                let rb = apply(&mut b, &logged, &NoEffects);
                assert_eq!(ra.reply, rb.reply, "seed {seed}: replies differ for {op:?}");
                assert_eq!(ra.touched, rb.touched);
            }
            assert_eq!(a, b, "seed {seed}: keyspaces differ");
            assert!(a.dbs.iter().any(|d| !d.is_empty()), "the workload should leave data");
        }
    }

    /// Journal ops change the journal only: the op time and version clock stay as a
    /// node that skips them (an older version) has them.
    #[test]
    fn journal_ops_change_only_the_journal() {
        use crate::store::journal::{Cause, FailoverRecord};
        let mut ks = Keyspace::new(1);
        apply(
            &mut ks,
            &Op { db: 0, now_ms: 1_000, seed: 0, kind: OpKind::Cmd(vec![b("SET"), b("k"), b("v")]) },
            &NoEffects,
        );
        let before = ks.clone();
        let record = FailoverRecord {
            term: 3,
            old_primary: Some(1),
            new_primary: 2,
            cause: Cause::HeartbeatTimeout,
            last_contact_ms: Some(4_000),
            detected_ms: Some(4_200),
            elected_ms: 4_250,
            first_commit_ms: None,
        };
        let at = |kind| Op { db: 0, now_ms: 5_000, seed: 0, kind };
        assert_eq!(apply(&mut ks, &at(OpKind::Journal(record)), &NoEffects).reply, Reply::Ok);
        let cause = Cause::Crash("connection refused".into());
        let update = OpKind::JournalUpdate { term: 3, first_commit_ms: 4_300, cause: cause.clone() };
        assert_eq!(apply(&mut ks, &at(update), &NoEffects).reply, Reply::Ok);
        let missing = OpKind::JournalUpdate { term: 9, first_commit_ms: 1, cause: Cause::Restart };
        assert!(matches!(apply(&mut ks, &at(missing), &NoEffects).reply, Reply::Error(_)));
        assert_eq!((ks.now_ms, ks.version_clock, &ks.dbs), (before.now_ms, before.version_clock, &before.dbs));
        let newest = &ks.journal.newest(1)[0];
        assert_eq!((newest.cause.clone(), newest.mttr_ms()), (cause, Some(300)));
    }

    /// An op stamped earlier than one already applied (a primary whose clock is behind)
    /// cannot bring an expired key back.
    #[test]
    fn op_time_never_goes_backwards() {
        let mut ks = Keyspace::new(1);
        let set = |at: &str| OpKind::Cmd(vec![b("SET"), b("k"), b("v"), b("PXAT"), b(at)]);
        apply(&mut ks, &Op { db: 0, now_ms: 1_000, seed: 0, kind: set("1500") }, &NoEffects);
        let get = OpKind::Multi(vec![vec![b("GET"), b("k")]]);
        let later = apply(&mut ks, &Op { db: 0, now_ms: 2_000, seed: 0, kind: get.clone() }, &NoEffects);
        assert_eq!(later.reply, Reply::Array(vec![Reply::Nil]));
        let skewed = apply(&mut ks, &Op { db: 0, now_ms: 1_200, seed: 0, kind: get }, &NoEffects);
        assert_eq!(skewed.reply, Reply::Array(vec![Reply::Nil]));
    }

    /// Expiry ops delete only keys that are due at the op's time.
    #[test]
    fn expire_ops_delete_only_due_keys() {
        let mut ks = Keyspace::new(1);
        for (k, at) in [("a", "1100"), ("b", "5000")] {
            let kind = OpKind::Cmd(vec![b("SET"), b(k), b("v"), b("PXAT"), b(at)]);
            apply(&mut ks, &Op { db: 0, now_ms: 1_000, seed: 0, kind }, &NoEffects);
        }
        let op = Op { db: 0, now_ms: 2_000, seed: 0, kind: OpKind::Expire(vec![b("a"), b("b")]) };
        assert_eq!(apply(&mut ks, &op, &NoEffects).reply, Reply::Int(1));
        assert_eq!(ks.db(0).len(), 1);
    }
}
