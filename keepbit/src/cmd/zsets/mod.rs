//! Sorted-set commands.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use keepbit_resp::encode::format_double;
use rand::Rng;

use super::args::{self, is, parse_f64, parse_i64, parse_timeout};
use super::{scan, ReadCtx, WriteCtx};
use crate::error::{CmdError, CmdResult};
use crate::reply::Reply;
use crate::store::zset::{LexBound, ScoreBound, ZSet};
use crate::store::{Keyspace, Value};

/// The command's name as Redis prints it in errors.
fn cmd_name(a: &[Bytes]) -> String {
    args::lossy(&a[0]).to_ascii_lowercase()
}

/// An integer of at least `min`; `msg` for anything else (Redis's
/// `getRangeLongFromObjectOrReply` with a message).
fn int_at_least(arg: &[u8], min: i64, msg: &str) -> Result<i64, CmdError> {
    match parse_i64(arg) {
        Ok(v) if v >= min => Ok(v),
        _ => Err(CmdError::err(msg)),
    }
}

fn owned<'a>(items: impl Iterator<Item = (&'a Bytes, f64)>) -> Vec<(Bytes, f64)> {
    items.map(|(m, s)| (m.clone(), s)).collect()
}

/// `[[member, score], …]` in RESP3, flat in RESP2.
fn pairs(items: Vec<(Bytes, f64)>) -> Reply {
    Reply::Pairs(items.into_iter().map(|(m, s)| (Reply::Bulk(m), Reply::Double(s))).collect())
}

/// Members only, or members with their scores.
fn members(items: Vec<(Bytes, f64)>, withscores: bool) -> Reply {
    if withscores {
        pairs(items)
    } else {
        Reply::bulks(items.into_iter().map(|(m, _)| m))
    }
}

/// The zset at `key`, borrowed from the keyspace rather than the context (so the
/// context's rng stays usable).
fn zset_in<'a>(ks: &'a Keyspace, db: usize, now_ms: u64, key: &[u8]) -> Result<Option<&'a ZSet>, CmdError> {
    match ks.db(db).get(key, now_ms) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(CmdError::WrongType),
    }
}

// Ranges

/// One end of a score range, as Redis's `zslParseRange` reads it (`strtod`: leading
/// spaces allowed, an empty number is 0).
fn parse_score_bound(arg: &[u8]) -> Result<ScoreBound, CmdError> {
    let (exclusive, num) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    let value = if num.is_empty() {
        0.0
    } else {
        let start = num.iter().position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'));
        let trimmed = start.map_or(&[][..], |i| &num[i..]);
        args::parse_f64_saturating(trimmed).map_err(|_| CmdError::err("min or max is not a float"))?
    };
    Ok(ScoreBound { value, exclusive })
}

fn score_range(min: &[u8], max: &[u8]) -> Result<Range, CmdError> {
    Ok(Range::Score(parse_score_bound(min)?, parse_score_bound(max)?))
}

fn parse_lex_bound(arg: &Bytes) -> Result<LexBound, CmdError> {
    match arg.first() {
        Some(b'+') if arg.len() == 1 => Ok(LexBound::Max),
        Some(b'-') if arg.len() == 1 => Ok(LexBound::Min),
        Some(b'(') => Ok(LexBound::Excl(arg.slice(1..))),
        Some(b'[') => Ok(LexBound::Incl(arg.slice(1..))),
        _ => Err(CmdError::err("min or max not valid string range item")),
    }
}

fn lex_range(min: &Bytes, max: &Bytes) -> Result<Range, CmdError> {
    Ok(Range::Lex(parse_lex_bound(min)?, parse_lex_bound(max)?))
}

enum Range {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

struct RangeQuery {
    range: Range,
    rev: bool,
    offset: i64,
    /// Negative: no limit.
    limit: i64,
    withscores: bool,
}

impl RangeQuery {
    fn plain(range: Range) -> RangeQuery {
        RangeQuery { range, rev: false, offset: 0, limit: -1, withscores: false }
    }
}

fn apply_limit(items: Vec<(Bytes, f64)>, offset: i64, limit: i64) -> Vec<(Bytes, f64)> {
    if offset < 0 {
        return Vec::new();
    }
    let rest = items.into_iter().skip(usize::try_from(offset).unwrap_or(usize::MAX));
    match usize::try_from(limit) {
        Ok(n) => rest.take(n).collect(),
        Err(_) => rest.collect(),
    }
}

/// The members a range query selects, in reply order.
fn select(z: &ZSet, q: &RangeQuery) -> Vec<(Bytes, f64)> {
    match &q.range {
        Range::Rank(start, stop) => {
            let Some((s, e)) = args::clamp_range(*start, *stop, z.len()) else { return Vec::new() };
            let n = e - s + 1;
            if q.rev {
                owned(z.iter().rev().skip(s).take(n))
            } else {
                owned(z.iter().skip(s).take(n))
            }
        }
        Range::Score(min, max) => apply_limit(z.range_by_score(*min, *max, q.rev), q.offset, q.limit),
        Range::Lex(min, max) => apply_limit(z.range_by_lex(min, max, q.rev), q.offset, q.limit),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Parses `<src> <min> <max> [BYSCORE|BYLEX] [REV] [WITHSCORES] [LIMIT offset count]`
/// with `src` at `at`, as Redis's `zrangeGenericCommand`. `rev`: `None` when REV may be
/// given, otherwise the command's fixed direction.
fn parse_range_query(
    a: &[Bytes],
    at: usize,
    store: bool,
    mut by: By,
    rev: Option<bool>,
) -> Result<RangeQuery, CmdError> {
    let mut reverse = rev;
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = at + 3;
    while j < a.len() {
        let left = a.len() - j - 1;
        let opt = &a[j];
        if !store && is(opt, "withscores") {
            withscores = true;
        } else if is(opt, "limit") && left >= 2 {
            offset = parse_i64(&a[j + 1])?;
            limit = parse_i64(&a[j + 2])?;
            j += 2;
        } else if rev.is_none() && reverse.is_none() && is(opt, "rev") {
            reverse = Some(true);
        } else if by == By::Auto && is(opt, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && is(opt, "byscore") {
            by = By::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let rev = reverse.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Err(CmdError::err("syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"));
    }
    if withscores && by == By::Lex {
        return Err(CmdError::err("syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    let (mut lo, mut hi) = (&a[at + 1], &a[at + 2]);
    if rev && by != By::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let range = match by {
        By::Score => score_range(lo, hi)?,
        By::Lex => lex_range(lo, hi)?,
        _ => Range::Rank(parse_i64(lo)?, parse_i64(hi)?),
    };
    Ok(RangeQuery { range, rev, offset, limit, withscores })
}

/// Replaces `key` with `z` (deleting it when `z` is empty); replies with the new size.
fn store_zset(ctx: &mut WriteCtx, key: &Bytes, z: ZSet) -> Reply {
    let n = z.len() as i64;
    if z.is_empty() {
        let now_ms = ctx.now_ms;
        if ctx.db_mut().take(key, now_ms).is_some() {
            ctx.touch(key);
        }
    } else {
        ctx.db_mut().set(key.clone(), Value::ZSet(z));
        ctx.touch(key);
    }
    Reply::Int(n)
}

// Adding and removing

pub fn zadd(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, a, false)
}

pub fn zincrby(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, a, true)
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member …, and ZINCRBY (which Redis runs
/// through the same parser with INCR set).
fn zadd_generic(ctx: &mut WriteCtx, a: &[Bytes], mut incr: bool) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch) = (false, false, false, false, false);
    let mut i = 2;
    while let Some(opt) = a.get(i) {
        match args::lossy(opt).to_ascii_lowercase().as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "ch" => ch = true,
            "incr" => incr = true,
            "gt" => gt = true,
            "lt" => lt = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || rest.len() & 1 == 1 {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::err("XX and NX options at the same time are not compatible"));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::err("GT, LT, and/or NX options at the same time are not compatible"));
    }
    if incr && rest.len() > 2 {
        return Err(CmdError::err("INCR option supports a single increment-element pair"));
    }
    let scores = rest.chunks(2).map(|p| parse_f64(&p[0])).collect::<Result<Vec<f64>, _>>()?;
    let key = &a[1];
    let nothing = if incr { Reply::Nil } else { Reply::Int(0) };
    if ctx.get_zset(key)?.is_none() && xx {
        return Ok(nothing);
    }
    let z = ctx.zset_entry(key)?;
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    for (pair, &score) in rest.chunks(2).zip(&scores) {
        let member = &pair[1];
        match z.score(member) {
            Some(_) if nx => {}
            Some(cur) => {
                let new = if incr { score + cur } else { score };
                if new.is_nan() {
                    nan = true;
                    break;
                }
                if (lt && new >= cur) || (gt && new <= cur) {
                    continue;
                }
                processed += 1;
                last = new;
                if new != cur {
                    z.insert(member.clone(), new);
                    updated += 1;
                }
            }
            None if xx => {}
            None => {
                z.insert(member.clone(), score);
                added += 1;
                processed += 1;
                last = score;
            }
        }
    }
    if added + updated > 0 {
        ctx.done(key);
    } else {
        ctx.db_mut().drop_if_empty(key);
    }
    if nan {
        return Err(CmdError::err("resulting score is not a number (NaN)"));
    }
    Ok(match (incr, processed) {
        (true, 0) => Reply::Nil,
        (true, _) => Reply::Double(if last == 0.0 { 0.0 } else { last }),
        (false, _) => Reply::Int(if ch { added + updated } else { added }),
    })
}

pub fn zrem(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let Some(z) = ctx.zset_mut(&a[1])? else { return Ok(Reply::Int(0)) };
    let removed = a[2..].iter().filter(|m| z.remove(m)).count();
    if removed > 0 {
        ctx.done(&a[1]);
    }
    Ok(Reply::Int(removed as i64))
}

/// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key min max.
pub fn zremrange(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let range = if is(&a[0], "zremrangebyrank") {
        Range::Rank(parse_i64(&a[2])?, parse_i64(&a[3])?)
    } else if is(&a[0], "zremrangebyscore") {
        score_range(&a[2], &a[3])?
    } else {
        lex_range(&a[2], &a[3])?
    };
    let Some(z) = ctx.zset_mut(&a[1])? else { return Ok(Reply::Int(0)) };
    let doomed = select(z, &RangeQuery::plain(range));
    for (m, _) in &doomed {
        z.remove(m);
    }
    if !doomed.is_empty() {
        ctx.done(&a[1]);
    }
    Ok(Reply::Int(doomed.len() as i64))
}

// Reading

pub fn zscore(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let score = ctx.get_zset(&a[1])?.and_then(|z| z.score(&a[2]));
    Ok(score.map_or(Reply::Nil, Reply::Double))
}

pub fn zmscore(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let z = ctx.get_zset(&a[1])?;
    let score = |m: &Bytes| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double);
    Ok(Reply::Array(a[2..].iter().map(score).collect()))
}

pub fn zcard(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_zset(&a[1])?.map_or(0, |z| z.len() as i64)))
}

pub fn zcount(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let q = RangeQuery::plain(score_range(&a[2], &a[3])?);
    let n = ctx.get_zset(&a[1])?.map_or(0, |z| select(z, &q).len());
    Ok(Reply::Int(n as i64))
}

pub fn zlexcount(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let q = RangeQuery::plain(lex_range(&a[2], &a[3])?);
    let n = ctx.get_zset(&a[1])?.map_or(0, |z| select(z, &q).len());
    Ok(Reply::Int(n as i64))
}

/// ZRANGE and its older forms: ZREVRANGE, Z[REV]RANGEBYSCORE, Z[REV]RANGEBYLEX.
pub fn zrange(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let name = cmd_name(a);
    let (by, rev) = match name.as_str() {
        "zrevrange" => (By::Rank, Some(true)),
        "zrangebyscore" => (By::Score, Some(false)),
        "zrevrangebyscore" => (By::Score, Some(true)),
        "zrangebylex" => (By::Lex, Some(false)),
        "zrevrangebylex" => (By::Lex, Some(true)),
        _ => (By::Auto, None),
    };
    let q = parse_range_query(a, 1, false, by, rev)?;
    let Some(z) = ctx.get_zset(&a[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(members(select(z, &q), q.withscores))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
pub fn zrangestore(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let q = parse_range_query(a, 2, true, By::Auto, None)?;
    let mut out = ZSet::default();
    for (m, s) in ctx.get_zset(&a[2])?.map(|z| select(z, &q)).unwrap_or_default() {
        out.insert(m, s);
    }
    Ok(store_zset(ctx, &a[1], out))
}

/// ZRANK / ZREVRANK key member [WITHSCORE].
pub fn zrank(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    if a.len() > 4 {
        return Err(CmdError::WrongArity(cmd_name(a)));
    }
    let withscore = match a.get(3) {
        None => false,
        Some(opt) if is(opt, "withscore") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    let none = if withscore { Reply::NilArray } else { Reply::Nil };
    let Some(z) = ctx.get_zset(&a[1])? else { return Ok(none) };
    let (Some(rank), Some(score)) = (z.rank(&a[2]), z.score(&a[2])) else { return Ok(none) };
    let rank = if is(&a[0], "zrevrank") { z.len() - 1 - rank } else { rank };
    Ok(if withscore {
        Reply::Array(vec![Reply::Int(rank as i64), Reply::Double(score)])
    } else {
        Reply::Int(rank as i64)
    })
}

/// ZRANDMEMBER key [count [WITHSCORES]].
pub fn zrandmember(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let (ks, db, now_ms) = (ctx.ks, ctx.db, ctx.now_ms);
    let Some(count_arg) = a.get(2) else {
        let Some(z) = zset_in(ks, db, now_ms, &a[1])? else { return Ok(Reply::Nil) };
        if z.is_empty() {
            return Ok(Reply::Nil);
        }
        let i = ctx.rng.gen_range(0..z.len());
        return Ok(Reply::opt_bulk(z.iter().nth(i).map(|(m, _)| m.clone())));
    };
    let l = parse_i64(count_arg)?;
    if l == i64::MIN {
        return Err(CmdError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if a.len() > 4 || (a.len() == 4 && !is(&a[3], "withscores")) {
        return Err(CmdError::Syntax);
    }
    let withscores = a.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::err("value is out of range"));
    }
    let Some(z) = zset_in(ks, db, now_ms, &a[1])? else { return Ok(Reply::Array(Vec::new())) };
    let count = l.unsigned_abs();
    if count == 0 || z.is_empty() {
        return Ok(Reply::Array(Vec::new()));
    }
    let all: Vec<(&Bytes, f64)> = z.iter().collect();
    let size = all.len();
    let picked: Vec<(&Bytes, f64)> = if l < 0 || count == 1 {
        args::check_repeats(count)?;
        (0..count).map(|_| all[ctx.rng.gen_range(0..size)]).collect()
    } else if count >= size as u64 {
        // The whole set, in the order Redis walks it (highest first).
        all.iter().rev().copied().collect()
    } else {
        rand::seq::index::sample(&mut *ctx.rng, size, count as usize).into_iter().map(|i| all[i]).collect()
    };
    Ok(members(owned(picked.into_iter()), withscores))
}

pub fn zscan(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let o = scan::parse(&a[2], &a[3..], false, false)?;
    let Some(z) = ctx.get_zset(&a[1])? else { return Ok(scan::reply(0, Vec::new())) };
    let (next, page) = scan::page(|| z.iter(), &o);
    let items = page.into_iter().flat_map(|(m, s)| [Reply::Bulk(m.clone()), Reply::bulk(format_double(s))]).collect();
    Ok(scan::reply(next, items))
}

mod algebra;
mod pops;
#[cfg(test)]
mod tests;

pub use algebra::{zintercard, zsetop, zsetop_store};
pub use pops::{bz_blocking_spec, bzpop, zmpop, zpop};
