//! List command tests.

use super::*;
use crate::cmd::{apply, NoEffects};
use crate::store::{Keyspace, Op, OpKind};
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn argv(args: &[&str]) -> Vec<Bytes> {
    args.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
}

fn w(ks: &mut Keyspace, args: &[&str]) -> Reply {
    let op = Op { db: 0, now_ms: 1000, seed: 1, kind: OpKind::Cmd(argv(args)) };
    apply(ks, &op, &NoEffects).reply
}

fn r(ks: &Keyspace, f: fn(&mut ReadCtx, &[Bytes]) -> CmdResult, args: &[&str]) -> Reply {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut ctx = ReadCtx { ks, db: 0, now_ms: 1000, rng: &mut rng };
    f(&mut ctx, &argv(args)).unwrap_or_else(|e| e.to_reply())
}

fn b(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn arr(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| b(s)).collect())
}

fn ints(items: &[i64]) -> Reply {
    Reply::Array(items.iter().map(|&i| Reply::Int(i)).collect())
}

fn err(s: &str) -> Reply {
    Reply::Error(s.to_string())
}

fn all(ks: &Keyspace, key: &str) -> Reply {
    r(ks, lrange, &["lrange", key, "0", "-1"])
}

#[test]
fn push_and_pop_with_count() {
    let mut ks = Keyspace::new(16);
    assert_eq!(w(&mut ks, &["lpush", "l", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(w(&mut ks, &["RPUSH", "l", "d"]), Reply::Int(4));
    assert_eq!(all(&ks, "l"), arr(&["c", "b", "a", "d"]));
    assert_eq!(w(&mut ks, &["lpushx", "nope", "x"]), Reply::Int(0));
    assert_eq!(w(&mut ks, &["rpushx", "l", "e"]), Reply::Int(5));
    assert_eq!(r(&ks, llen, &["llen", "nope"]), Reply::Int(0));
    assert_eq!(w(&mut ks, &["lpop", "l"]), b("c"));
    assert_eq!(w(&mut ks, &["rpop", "l", "2"]), arr(&["e", "d"]));
    assert_eq!(w(&mut ks, &["lpop", "l", "0"]), Reply::Array(vec![]));
    assert_eq!(w(&mut ks, &["lpop", "l", "-1"]), err("ERR value is out of range, must be positive"));
    assert_eq!(w(&mut ks, &["lpop", "l", "1", "2"]), err("ERR wrong number of arguments for 'lpop' command"));
    assert_eq!(w(&mut ks, &["lpop", "l", "10"]), arr(&["b", "a"]));
    assert_eq!(r(&ks, llen, &["llen", "l"]), Reply::Int(0));
    assert!(ks.db(0).get(b"l", 1000).is_none());
    assert_eq!(w(&mut ks, &["lpop", "l"]), Reply::Nil);
    assert_eq!(w(&mut ks, &["lpop", "l", "3"]), Reply::NilArray);
    w(&mut ks, &["set", "s", "x"]);
    assert_eq!(
        w(&mut ks, &["lpush", "s", "x"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
}

#[test]
fn lrange_lindex_lset() {
    let mut ks = Keyspace::new(16);
    w(&mut ks, &["rpush", "l", "a", "b", "c", "d"]);
    assert_eq!(r(&ks, lrange, &["lrange", "l", "-3", "-2"]), arr(&["b", "c"]));
    assert_eq!(r(&ks, lrange, &["lrange", "l", "-100", "1"]), arr(&["a", "b"]));
    assert_eq!(r(&ks, lrange, &["lrange", "l", "2", "100"]), arr(&["c", "d"]));
    assert_eq!(r(&ks, lrange, &["lrange", "l", "3", "1"]), arr(&[]));
    assert_eq!(r(&ks, lrange, &["lrange", "l", "x", "1"]), err("ERR value is not an integer or out of range"));
    assert_eq!(r(&ks, lindex, &["lindex", "l", "-1"]), b("d"));
    assert_eq!(r(&ks, lindex, &["lindex", "l", "4"]), Reply::Nil);
    assert_eq!(w(&mut ks, &["lset", "l", "-4", "A"]), Reply::Ok);
    assert_eq!(w(&mut ks, &["lset", "l", "4", "x"]), err("ERR index out of range"));
    assert_eq!(w(&mut ks, &["lset", "nope", "0", "x"]), err("ERR no such key"));
    assert_eq!(all(&ks, "l"), arr(&["A", "b", "c", "d"]));
}

#[test]
fn linsert_lrem_ltrim() {
    let mut ks = Keyspace::new(16);
    w(&mut ks, &["rpush", "l", "a", "x", "b", "x", "c", "x"]);
    assert_eq!(w(&mut ks, &["linsert", "l", "BEFORE", "b", "y"]), Reply::Int(7));
    assert_eq!(w(&mut ks, &["linsert", "l", "after", "c", "z"]), Reply::Int(8));
    assert_eq!(w(&mut ks, &["linsert", "l", "after", "zz", "z"]), Reply::Int(-1));
    assert_eq!(w(&mut ks, &["linsert", "nope", "after", "a", "z"]), Reply::Int(0));
    assert_eq!(w(&mut ks, &["linsert", "l", "middle", "a", "z"]), err("ERR syntax error"));
    assert_eq!(all(&ks, "l"), arr(&["a", "x", "y", "b", "x", "c", "z", "x"]));
    assert_eq!(w(&mut ks, &["lrem", "l", "-2", "x"]), Reply::Int(2));
    assert_eq!(all(&ks, "l"), arr(&["a", "x", "y", "b", "c", "z"]));
    assert_eq!(w(&mut ks, &["lrem", "l", "0", "x"]), Reply::Int(1));
    assert_eq!(w(&mut ks, &["lrem", "l", "1", "q"]), Reply::Int(0));
    assert_eq!(w(&mut ks, &["ltrim", "l", "1", "-2"]), Reply::Ok);
    assert_eq!(all(&ks, "l"), arr(&["y", "b", "c"]));
    assert_eq!(w(&mut ks, &["ltrim", "l", "5", "10"]), Reply::Ok);
    assert!(ks.db(0).get(b"l", 1000).is_none());
    assert_eq!(w(&mut ks, &["ltrim", "l", "0", "1"]), Reply::Ok);
}

#[test]
fn lpos_rank_count_maxlen() {
    let mut ks = Keyspace::new(16);
    w(&mut ks, &["rpush", "l", "a", "b", "c", "1", "2", "3", "c", "c"]);
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c"]), Reply::Int(2));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "RANK", "2"]), Reply::Int(6));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "rank", "-1"]), Reply::Int(7));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "COUNT", "2"]), ints(&[2, 6]));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "COUNT", "0"]), ints(&[2, 6, 7]));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "RANK", "-1", "COUNT", "2"]), ints(&[7, 6]));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "COUNT", "0", "MAXLEN", "7"]), ints(&[2, 6]));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "z"]), Reply::Nil);
    assert_eq!(r(&ks, lpos, &["lpos", "nope", "z", "COUNT", "1"]), arr(&[]));
    assert_eq!(
        r(&ks, lpos, &["lpos", "l", "c", "RANK", "0"]),
        err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
    );
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "COUNT", "-1"]), err("ERR COUNT can't be negative"));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "MAXLEN", "-1"]), err("ERR MAXLEN can't be negative"));
    assert_eq!(r(&ks, lpos, &["lpos", "l", "c", "RANK"]), err("ERR syntax error"));
}

#[test]
fn lmove_rotates_and_checks_types() {
    let mut ks = Keyspace::new(16);
    w(&mut ks, &["rpush", "l", "a", "b", "c"]);
    assert_eq!(w(&mut ks, &["lmove", "l", "l", "LEFT", "RIGHT"]), b("a"));
    assert_eq!(all(&ks, "l"), arr(&["b", "c", "a"]));
    assert_eq!(w(&mut ks, &["rpoplpush", "l", "d"]), b("a"));
    assert_eq!(all(&ks, "d"), arr(&["a"]));
    w(&mut ks, &["set", "s", "x"]);
    assert_eq!(
        w(&mut ks, &["lmove", "l", "s", "left", "left"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(all(&ks, "l"), arr(&["b", "c"]));
    assert_eq!(w(&mut ks, &["lmove", "l", "d", "up", "left"]), err("ERR syntax error"));
    assert_eq!(w(&mut ks, &["lmove", "nope", "d", "left", "left"]), Reply::Nil);
    assert_eq!(w(&mut ks, &["blmove", "nope", "d", "left", "left", "0"]), Reply::Nil);
    assert_eq!(w(&mut ks, &["brpoplpush", "d", "l", "1"]), b("a"));
    assert!(ks.db(0).get(b"d", 1000).is_none());
    assert_eq!(w(&mut ks, &["brpoplpush", "l", "d", "-1"]), err("ERR timeout is negative"));
    // A one-element list rotated onto itself survives.
    w(&mut ks, &["rpush", "one", "x"]);
    assert_eq!(w(&mut ks, &["lmove", "one", "one", "right", "left"]), b("x"));
    assert_eq!(all(&ks, "one"), arr(&["x"]));
}

#[test]
fn lmpop_and_blmpop() {
    let mut ks = Keyspace::new(16);
    w(&mut ks, &["rpush", "b", "1", "2", "3"]);
    let reply = w(&mut ks, &["lmpop", "2", "a", "b", "RIGHT", "COUNT", "2"]);
    assert_eq!(reply, Reply::Array(vec![b("b"), arr(&["3", "2"])]));
    assert_eq!(w(&mut ks, &["lmpop", "1", "b", "left"]), Reply::Array(vec![b("b"), arr(&["1"])]));
    assert_eq!(w(&mut ks, &["lmpop", "2", "a", "b", "left"]), Reply::NilArray);
    assert_eq!(w(&mut ks, &["lmpop", "0", "a", "left"]), err("ERR numkeys should be greater than 0"));
    assert_eq!(w(&mut ks, &["lmpop", "5", "a", "left"]), err("ERR syntax error"));
    assert_eq!(w(&mut ks, &["lmpop", "1", "a", "left", "count", "0"]), err("ERR count should be greater than 0"));
    assert_eq!(w(&mut ks, &["lmpop", "1", "a", "left", "count", "1", "count", "1"]), err("ERR syntax error"));
    w(&mut ks, &["rpush", "c", "x", "y"]);
    assert_eq!(
        w(&mut ks, &["blmpop", "0", "2", "a", "c", "left", "count", "5"]),
        Reply::Array(vec![b("c"), arr(&["x", "y"])])
    );
    assert_eq!(w(&mut ks, &["blmpop", "0.5", "1", "c", "left"]), Reply::NilArray);
    assert_eq!(w(&mut ks, &["blmpop", "x", "1", "c", "left"]), err("ERR timeout is not a float or out of range"));
}

#[test]
fn blpop_non_blocking_attempt() {
    let mut ks = Keyspace::new(16);
    w(&mut ks, &["rpush", "b", "1", "2"]);
    assert_eq!(w(&mut ks, &["blpop", "a", "b", "0"]), arr(&["b", "1"]));
    assert_eq!(w(&mut ks, &["brpop", "a", "b", "1.5"]), arr(&["b", "2"]));
    assert!(ks.db(0).get(b"b", 1000).is_none());
    assert_eq!(w(&mut ks, &["blpop", "a", "b", "0"]), Reply::NilArray);
    assert_eq!(w(&mut ks, &["blpop", "a", "-1"]), err("ERR timeout is negative"));
    assert_eq!(w(&mut ks, &["blpop", "a", "abc"]), err("ERR timeout is not a float or out of range"));
    w(&mut ks, &["set", "s", "x"]);
    assert_eq!(
        w(&mut ks, &["blpop", "a", "s", "0"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
}

#[test]
fn blocking_specs() {
    let (keys, t) = blocking_spec(&argv(&["BLPOP", "a", "b", "0"])).unwrap_or_default();
    assert_eq!((keys, t), (argv(&["a", "b"]), None));
    let spec = blocking_spec(&argv(&["brpoplpush", "s", "d", "1.5"]));
    assert_eq!(spec, Ok((argv(&["s"]), Some(Duration::from_millis(1500)))));
    let spec = blocking_spec(&argv(&["blmove", "s", "d", "left", "right", "2"]));
    assert_eq!(spec, Ok((argv(&["s"]), Some(Duration::from_secs(2)))));
    let spec = blocking_spec(&argv(&["blmpop", "0", "2", "x", "y", "left", "count", "3"]));
    assert_eq!(spec, Ok((argv(&["x", "y"]), None)));
    assert_eq!(blocking_spec(&argv(&["blpop", "a", "-1"])), Err(CmdError::TimeoutNegative));
    assert_eq!(blocking_spec(&argv(&["blmove", "s", "d", "up", "right", "2"])), Err(CmdError::Syntax));
    assert_eq!(blocking_spec(&argv(&["blpop", "a"])), Err(CmdError::WrongArity("blpop".into())));
}
