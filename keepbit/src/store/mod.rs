//! Storage: the keyspace (pure data), the `Op` log payload, and `apply`, the only way the
//! keyspace changes.

pub mod keyspace;
pub mod op;
pub mod zset;

use bytes::Bytes;
use rand::{rngs::SmallRng, SeedableRng};

use crate::cmd::{self, ReadCtx, Run, WriteCtx};
use crate::error::CmdError;
use crate::reply::Reply;
pub use keyspace::{Db, Keyspace, Value};
pub use op::{Op, OpKind};

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
/// and no random source (choices are seeded from `op.seed`).
pub fn apply(ks: &mut Keyspace, op: &Op, fx: &dyn Effects) -> Applied {
    ks.now_ms = ks.now_ms.max(op.now_ms);
    let now_ms = ks.now_ms;
    let mut touched = Vec::new();
    let mut db = op.db as usize;
    if db >= ks.dbs.len() {
        return Applied {
            reply: CmdError::DbIndex.to_reply(),
            touched,
            db_after: 0,
        };
    }
    let reply = match &op.kind {
        OpKind::Cmd(args) => run_one(ks, db, now_ms, op.seed, args, &mut touched, fx),
        OpKind::Multi(cmds) => {
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
    Applied {
        reply,
        touched,
        db_after: db,
    }
}

/// `Some` if `args` is a SELECT (inside MULTI), with the database it selects.
fn select_target(args: &[Bytes], databases: usize) -> Option<Result<usize, CmdError>> {
    if args.len() != 2 || !args[0].eq_ignore_ascii_case(b"select") {
        return None;
    }
    Some(match cmd::args::parse_i64(&args[1]) {
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
    let Some(spec) = args.first().and_then(|name| cmd::lookup_any(name)) else {
        return CmdError::unknown_command(args).to_reply();
    };
    if !spec.arity_ok(args.len()) {
        return CmdError::WrongArity(spec.name.to_string()).to_reply();
    }
    let result = match spec.run {
        Run::Write(f, _) => f(
            &mut WriteCtx {
                ks,
                db,
                now_ms,
                seed,
                touched,
                fx,
            },
            args,
        ),
        Run::Read(f) => f(
            &mut ReadCtx {
                ks,
                db,
                now_ms,
                rng: &mut SmallRng::seed_from_u64(seed),
            },
            args,
        ),
        Run::Session => Err(CmdError::err("command not allowed inside a transaction")),
    };
    result.unwrap_or_else(|e| e.to_reply())
}
