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

/// Most replies ZRANDMEMBER builds for one call (a larger negative count would only
/// exhaust memory).
const RANDMEMBER_MAX: u64 = 1 << 24;

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
        if count > RANDMEMBER_MAX {
            return Err(CmdError::err("value is out of range"));
        }
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
    let (next, page) = scan::page(z.iter(), &o);
    let items = page.into_iter().flat_map(|(m, s)| [Reply::Bulk(m.clone()), Reply::bulk(format_double(s))]).collect();
    Ok(scan::reply(next, items))
}

// Popping

/// Removes up to `count` members from the low (or high) end of the zset at `key`.
fn pop(ctx: &mut WriteCtx, key: &Bytes, max: bool, count: usize) -> Result<Vec<(Bytes, f64)>, CmdError> {
    let Some(z) = ctx.zset_mut(key)? else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(count.min(z.len()));
    while out.len() < count {
        let Some(item) = (if max { z.last() } else { z.first() }) else { break };
        z.remove(&item.0);
        out.push(item);
    }
    if !out.is_empty() {
        ctx.done(key);
    }
    Ok(out)
}

/// ZPOPMIN / ZPOPMAX key [count].
pub fn zpop(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let max = is(&a[0], "zpopmax");
    let count = match a.get(2) {
        None => None,
        Some(c) => Some(int_at_least(c, 0, "value is out of range, must be positive")?),
    };
    if ctx.get_zset(&a[1])?.is_none() || count == Some(0) {
        return Ok(Reply::Array(Vec::new()));
    }
    let n = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX));
    let items = pop(ctx, &a[1], max, n)?;
    Ok(match count {
        // A single pop is always a flat [member, score].
        None => Reply::Array(items.into_iter().flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)]).collect()),
        Some(_) => pairs(items),
    })
}

/// BZPOPMIN / BZPOPMAX key … timeout, the attempt that does not block: pops from the first
/// non-empty key, or replies with a null array.
pub fn bzpop(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let max = is(&a[0], "bzpopmax");
    let last = a.len() - 1;
    parse_timeout(&a[last])?;
    for key in &a[1..last] {
        if ctx.get_zset(key)?.is_none() {
            continue;
        }
        if let Some((m, s)) = pop(ctx, key, max, 1)?.into_iter().next() {
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(m), Reply::Double(s)]));
        }
    }
    Ok(Reply::NilArray)
}

/// Parses `numkeys key … MIN|MAX [COUNT n]` with numkeys at `at`: the number of keys,
/// which end, and how many to pop.
fn parse_mpop(a: &[Bytes], at: usize) -> Result<(usize, bool, usize), CmdError> {
    let numkeys_arg = a.get(at).ok_or(CmdError::Syntax)?;
    let numkeys = int_at_least(numkeys_arg, 1, "numkeys should be greater than 0")?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    let where_idx = at.saturating_add(numkeys).saturating_add(1);
    let Some(which) = a.get(where_idx) else { return Err(CmdError::Syntax) };
    let max = match args::lossy(which).to_ascii_lowercase().as_str() {
        "min" => false,
        "max" => true,
        _ => return Err(CmdError::Syntax),
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < a.len() {
        if count.is_none() && is(&a[j], "count") && j + 1 < a.len() {
            j += 1;
            count = Some(int_at_least(&a[j], 1, "count should be greater than 0")?);
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let count = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX));
    Ok((numkeys, max, count))
}

/// ZMPOP numkeys key … MIN|MAX [COUNT n], and BZMPOP timeout numkeys … (its attempt that
/// does not block).
pub fn zmpop(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let at = if is(&a[0], "bzmpop") { 2 } else { 1 };
    let (numkeys, max, count) = parse_mpop(a, at)?;
    if at == 2 {
        parse_timeout(&a[1])?;
    }
    let keys = a.get(at + 1..at + 1 + numkeys).unwrap_or_default();
    for key in keys {
        if ctx.get_zset(key)?.is_none() {
            continue;
        }
        let items = pop(ctx, key, max, count)?;
        let popped = items.into_iter().map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)])).collect();
        return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(popped)]));
    }
    Ok(Reply::NilArray)
}

/// The keys a blocked BZPOPMIN / BZPOPMAX / BZMPOP waits on, and its timeout (`None`:
/// forever).
pub fn bz_blocking_spec(a: &[Bytes]) -> Result<(Vec<Bytes>, Option<Duration>), CmdError> {
    let Some(name) = a.first() else { return Err(CmdError::Syntax) };
    if is(name, "bzmpop") {
        if a.len() < 5 {
            return Err(CmdError::WrongArity("bzmpop".into()));
        }
        let (numkeys, _, _) = parse_mpop(a, 2)?;
        let timeout = parse_timeout(&a[1])?;
        Ok((a.get(3..3 + numkeys).unwrap_or_default().to_vec(), timeout))
    } else {
        if a.len() < 3 {
            return Err(CmdError::WrongArity(cmd_name(a)));
        }
        let timeout = parse_timeout(&a[a.len() - 1])?;
        Ok((a[1..a.len() - 1].to_vec(), timeout))
    }
}

// Union, intersection, difference

#[derive(Clone, Copy)]
enum Src<'a> {
    Missing,
    Z(&'a ZSet),
    /// A plain set: every member scores 1.
    S(&'a HashSet<Bytes>),
}

impl<'a> Src<'a> {
    fn len(self) -> usize {
        match self {
            Src::Missing => 0,
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
        }
    }

    fn find(self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Missing => None,
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn items(self) -> Box<dyn Iterator<Item = (&'a Bytes, f64)> + 'a> {
        match self {
            Src::Missing => Box::new(std::iter::empty()),
            Src::Z(z) => Box::new(z.iter()),
            Src::S(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(t: &mut f64, v: f64, agg: Aggregate) {
    *t = match agg {
        // inf + -inf: Redis keeps 0.
        Aggregate::Sum if (*t + v).is_nan() => 0.0,
        Aggregate::Sum => *t + v,
        Aggregate::Min if v < *t => v,
        Aggregate::Max if v > *t => v,
        _ => *t,
    };
}

enum SetOpOut {
    Members(ZSet, bool),
    Card(usize),
}

/// Redis's `zunionInterDiffGenericCommand`: numkeys at `at`; `store` for the *STORE forms.
fn setop(ctx: &ReadCtx, a: &[Bytes], at: usize, store: bool) -> Result<SetOpOut, CmdError> {
    let name = cmd_name(a);
    let card_only = name == "zintercard";
    let op = match name.get(..6) {
        Some("zunion") => SetOp::Union,
        Some("zinter") => SetOp::Inter,
        _ => SetOp::Diff,
    };
    let setnum = parse_i64(&a[at])?;
    if setnum < 1 {
        return Err(CmdError::err(format!("at least 1 input key is needed for '{name}' command")));
    }
    let avail = a.len() - (at + 1);
    if setnum as u64 > avail as u64 {
        return Err(CmdError::Syntax);
    }
    let n = setnum as usize;
    let mut srcs = Vec::with_capacity(n);
    for key in &a[at + 1..at + 1 + n] {
        srcs.push(match ctx.get(key) {
            None => Src::Missing,
            Some(Value::ZSet(z)) => Src::Z(z),
            Some(Value::Set(s)) => Src::S(s),
            Some(_) => return Err(CmdError::WrongType),
        });
    }
    let mut weights = vec![1.0; n];
    let (mut agg, mut withscores, mut limit) = (Aggregate::Sum, false, 0usize);
    let mut j = at + 1 + n;
    while j < a.len() {
        let remaining = a.len() - j;
        let opt = &a[j];
        let weighted = op != SetOp::Diff && !card_only;
        if weighted && remaining > n && is(opt, "weights") {
            for (w, arg) in weights.iter_mut().zip(&a[j + 1..j + 1 + n]) {
                *w = parse_f64(arg).map_err(|_| CmdError::err("weight value is not a float"))?;
            }
            j += 1 + n;
        } else if weighted && remaining >= 2 && is(opt, "aggregate") {
            agg = match args::lossy(&a[j + 1]).to_ascii_lowercase().as_str() {
                "sum" => Aggregate::Sum,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                _ => return Err(CmdError::Syntax),
            };
            j += 2;
        } else if !store && !card_only && is(opt, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && is(opt, "limit") {
            let l = int_at_least(&a[j + 1], 0, "LIMIT can't be negative")?;
            limit = usize::try_from(l).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    // Smallest input first, as Redis orders them (the order sums are taken in).
    let mut order: Vec<usize> = (0..n).collect();
    if op != SetOp::Diff {
        order.sort_by_key(|&i| srcs[i].len());
    }
    // 0 * inf: Redis counts 0.
    let weighted = |i: usize, s: f64| Some(weights[i] * s).filter(|v| !v.is_nan()).unwrap_or(0.0);
    let mut out = ZSet::default();
    let mut card = 0usize;
    match op {
        SetOp::Inter => {
            let (first, others) = order.split_first().map_or((0, &[][..]), |(f, o)| (*f, o));
            for (m, s) in srcs[first].items() {
                let mut score = weighted(first, s);
                let all = others.iter().all(|&k| match srcs[k].find(m) {
                    Some(v) => {
                        aggregate(&mut score, v * weights[k], agg);
                        true
                    }
                    None => false,
                });
                if !all {
                    continue;
                }
                if card_only {
                    card += 1;
                    if limit > 0 && card >= limit {
                        break;
                    }
                } else {
                    out.insert(m.clone(), score);
                }
            }
        }
        SetOp::Union => {
            let mut acc: HashMap<&Bytes, f64> = HashMap::new();
            for &i in &order {
                for (m, s) in srcs[i].items() {
                    let score = weighted(i, s);
                    acc.entry(m).and_modify(|t| aggregate(t, score, agg)).or_insert(score);
                }
            }
            for (m, s) in acc {
                out.insert(m.clone(), s);
            }
        }
        SetOp::Diff => {
            for (m, s) in srcs[0].items() {
                if srcs[1..].iter().all(|o| o.find(m).is_none()) {
                    out.insert(m.clone(), s);
                }
            }
        }
    }
    Ok(if card_only { SetOpOut::Card(card) } else { SetOpOut::Members(out, withscores) })
}

/// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE dst numkeys key … [WEIGHTS …] [AGGREGATE …].
pub fn zsetop_store(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    match ctx.with_reader(|r| setop(r, a, 2, true))? {
        SetOpOut::Members(z, _) => Ok(store_zset(ctx, &a[1], z)),
        SetOpOut::Card(n) => Ok(Reply::Int(n as i64)),
    }
}

/// ZUNION / ZINTER / ZDIFF numkeys key … [WEIGHTS …] [AGGREGATE …] [WITHSCORES].
pub fn zsetop(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    match setop(ctx, a, 1, false)? {
        SetOpOut::Members(z, withscores) => Ok(members(owned(z.iter()), withscores)),
        SetOpOut::Card(n) => Ok(Reply::Int(n as i64)),
    }
}

/// ZINTERCARD numkeys key … [LIMIT n].
pub fn zintercard(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    zsetop(ctx, a)
}

#[cfg(test)]
mod tests {
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
}
