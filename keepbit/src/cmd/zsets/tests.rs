//! Sorted-set command tests.

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;
use crate::cmd::{apply, NoEffects};
use crate::cmd::{lookup, Run};
use crate::store::{Op, OpKind};

fn argv(line: &str) -> Vec<Bytes> {
    line.split_whitespace().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
}

/// Reads run on a `ReadCtx`, writes through `cmd::apply`.
fn run(ks: &mut Keyspace, line: &str) -> Reply {
    let args = argv(line);
    if let Some(Run::Read(f)) = lookup(&args[0]).map(|s| s.run) {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut ctx = ReadCtx { ks, db: 0, now_ms: 1000, rng: &mut rng };
        return f(&mut ctx, &args).unwrap_or_else(|e| e.to_reply());
    }
    let op = Op { db: 0, now_ms: 1000, seed: 1, kind: OpKind::Cmd(args) };
    apply(ks, &op, &NoEffects).reply
}

fn check(ks: &mut Keyspace, cases: &[(&str, Reply)]) {
    for (line, want) in cases {
        assert_eq!(&run(ks, line), want, "{line}");
    }
}

fn bulks(line: &str) -> Reply {
    Reply::bulks(argv(line))
}

fn scored(items: &[(&str, f64)]) -> Reply {
    pairs(items.iter().map(|(m, s)| (Bytes::copy_from_slice(m.as_bytes()), *s)).collect())
}

fn err(msg: &str) -> Reply {
    Reply::Error(msg.to_string())
}

#[test]
fn zadd_flags_and_errors() {
    let mut ks = Keyspace::new(16);
    check(
        &mut ks,
        &[
            ("ZADD z 1 a 2 b", Reply::Int(2)),
            ("ZADD z NX 5 a 3 c", Reply::Int(1)),
            ("ZSCORE z a", Reply::Double(1.0)),
            ("ZADD z XX CH 5 a 9 new", Reply::Int(1)),
            ("ZSCORE z new", Reply::Nil),
            ("ZADD z GT CH 1 a 4 b", Reply::Int(1)),
            ("ZMSCORE z a b nope", Reply::Array(vec![Reply::Double(5.0), Reply::Double(4.0), Reply::Nil])),
            ("ZADD z INCR 2.5 a", Reply::Double(7.5)),
            ("ZADD z LT INCR 1 a", Reply::Nil),
            ("ZADD missing XX 1 a", Reply::Int(0)),
            ("EXISTS missing", Reply::Int(0)),
            ("ZADD z NX XX 1 a", err("ERR XX and NX options at the same time are not compatible")),
            ("ZADD z GT LT 1 a", err("ERR GT, LT, and/or NX options at the same time are not compatible")),
            ("ZADD z INCR 1 a 2 b", err("ERR INCR option supports a single increment-element pair")),
            ("ZADD z x a", err("ERR value is not a valid float")),
            ("ZADD z NX 1", err("ERR syntax error")),
            ("ZADD inf +inf a", Reply::Int(1)),
            ("ZINCRBY inf -inf a", err("ERR resulting score is not a number (NaN)")),
            ("SET s v", Reply::Ok),
            ("ZADD s 1 a", CmdError::WrongType.to_reply()),
        ],
    );
}

#[test]
fn zrange_byscore_limit_and_exclusive_bounds() {
    let mut ks = Keyspace::new(16);
    check(
        &mut ks,
        &[
            ("ZADD z 1 a 2 b 3 c 4 d 5 e", Reply::Int(5)),
            ("ZRANGE z (1 5 BYSCORE LIMIT 1 2", bulks("c d")),
            ("ZRANGE z (5 (1 BYSCORE REV", bulks("d c b")),
            ("ZRANGEBYSCORE z -inf (3 WITHSCORES", scored(&[("a", 1.0), ("b", 2.0)])),
            ("ZREVRANGEBYSCORE z +inf 4 LIMIT 0 1", bulks("e")),
            ("ZRANGE z 0 -1 REV", bulks("e d c b a")),
            ("ZREVRANGE z 0 1", bulks("e d")),
            ("ZCOUNT z (2 4", Reply::Int(2)),
            (
                "ZRANGE z 0 1 LIMIT 0 1",
                err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"),
            ),
            ("ZRANGE z x 1 BYSCORE", err("ERR min or max is not a float")),
            ("ZRANGESTORE dst z 2 3 BYSCORE", Reply::Int(2)),
            ("ZRANGE dst 0 -1", bulks("b c")),
            ("ZREMRANGEBYSCORE z -inf (3", Reply::Int(2)),
            ("ZRANK z c WITHSCORE", Reply::Array(vec![Reply::Int(0), Reply::Double(3.0)])),
            ("ZREVRANK z c", Reply::Int(2)),
            ("ZRANK z a WITHSCORE", Reply::NilArray),
        ],
    );
}

#[test]
fn zrangebylex() {
    let mut ks = Keyspace::new(16);
    check(
        &mut ks,
        &[
            ("ZADD z 0 a 0 b 0 c 0 d", Reply::Int(4)),
            ("ZRANGEBYLEX z [b (d", bulks("b c")),
            ("ZREVRANGEBYLEX z + (b", bulks("d c")),
            ("ZRANGE z - + BYLEX LIMIT 1 2", bulks("b c")),
            ("ZLEXCOUNT z - [c", Reply::Int(3)),
            ("ZRANGEBYLEX z b +", err("ERR min or max not valid string range item")),
            (
                "ZRANGE z - + BYLEX WITHSCORES",
                err("ERR syntax error, WITHSCORES not supported in combination with BYLEX"),
            ),
            ("ZREMRANGEBYLEX z [a [b", Reply::Int(2)),
            ("ZREMRANGEBYRANK z 0 -1", Reply::Int(2)),
            ("EXISTS z", Reply::Int(0)),
        ],
    );
}

#[test]
fn zunionstore_weights_and_aggregate() {
    let mut ks = Keyspace::new(16);
    check(
        &mut ks,
        &[
            ("ZADD z1 1 a 2 b", Reply::Int(2)),
            ("ZADD z2 3 b 4 c", Reply::Int(2)),
            ("SADD s a", Reply::Int(1)),
            ("ZUNIONSTORE out 2 z1 z2 WEIGHTS 2 3", Reply::Int(3)),
            ("ZRANGE out 0 -1 WITHSCORES", scored(&[("a", 2.0), ("c", 12.0), ("b", 13.0)])),
            ("ZUNIONSTORE out 2 z1 z2 AGGREGATE MAX", Reply::Int(3)),
            ("ZSCORE out b", Reply::Double(3.0)),
            ("ZINTERSTORE out 2 z1 s AGGREGATE MIN", Reply::Int(1)),
            ("ZSCORE out a", Reply::Double(1.0)),
            ("ZINTERSTORE out 2 z2 s", Reply::Int(0)),
            ("EXISTS out", Reply::Int(0)),
            ("ZDIFF 2 z1 z2", bulks("a")),
            ("ZINTER 2 z1 z2 WITHSCORES", scored(&[("b", 5.0)])),
            ("ZINTERCARD 2 z1 z2 LIMIT 5", Reply::Int(1)),
            ("ZUNIONSTORE out 0 z1", err("ERR at least 1 input key is needed for 'zunionstore' command")),
            ("ZUNIONSTORE out 1 z1 WEIGHTS x", err("ERR weight value is not a float")),
            ("ZDIFFSTORE out 1 z1 WEIGHTS 1", err("ERR syntax error")),
        ],
    );
}

#[test]
fn pops() {
    let mut ks = Keyspace::new(16);
    let flat = Reply::Array(vec![Reply::bulk("c"), Reply::Double(3.0)]);
    let bz = Reply::Array(vec![Reply::bulk("y"), Reply::bulk("m"), Reply::Double(5.0)]);
    let zm = Reply::Array(vec![
        Reply::bulk("y"),
        Reply::Array(vec![Reply::Array(vec![Reply::bulk("q"), Reply::Double(2.0)])]),
    ]);
    check(
        &mut ks,
        &[
            ("ZADD z 1 a 2 b 3 c", Reply::Int(3)),
            ("ZPOPMIN z 2", scored(&[("a", 1.0), ("b", 2.0)])),
            ("ZPOPMAX z", flat),
            ("EXISTS z", Reply::Int(0)),
            ("ZPOPMIN z", Reply::Array(vec![])),
            ("ZPOPMIN z -1", err("ERR value is out of range, must be positive")),
            ("ZADD y 5 m", Reply::Int(1)),
            ("BZPOPMIN z y 0", bz),
            ("BZPOPMIN z y 0", Reply::NilArray),
            ("ZADD y 1 p 2 q", Reply::Int(2)),
            ("ZMPOP 2 z y MAX", zm),
            ("ZMPOP 0 y MIN", err("ERR numkeys should be greater than 0")),
            ("ZMPOP 1 y MIN COUNT 0", err("ERR count should be greater than 0")),
            ("BZMPOP -1 1 y MIN", err("ERR timeout is negative")),
        ],
    );
    let spec = bz_blocking_spec(&argv("BZMPOP 1.5 2 a b MIN"));
    assert_eq!(spec, Ok((argv("a b"), Some(Duration::from_millis(1500)))));
    assert_eq!(bz_blocking_spec(&argv("BZPOPMAX a 0")), Ok((argv("a"), None)));
}

#[test]
fn randmember_and_scan() {
    let mut ks = Keyspace::new(16);
    run(&mut ks, "ZADD z 1 a 2 b 3 c");
    let Reply::Array(picked) = run(&mut ks, "ZRANDMEMBER z -5") else { panic!() };
    assert_eq!(picked.len(), 5);
    let Reply::Array(picked) = run(&mut ks, "ZRANDMEMBER z 2") else { panic!() };
    assert!(picked.len() == 2 && picked[0] != picked[1]);
    let Reply::Array(page) = run(&mut ks, "ZSCAN z 0") else { panic!() };
    assert_eq!(page[0], Reply::bulk("0"));
    assert!(matches!(&page[1], Reply::Array(items) if items.len() == 6));
}
