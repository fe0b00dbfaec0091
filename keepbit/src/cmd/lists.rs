//! List commands.
//!
//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) run here only as their
//! non-blocking attempt: they pop when they can and otherwise reply the "nothing" value
//! (null array, or null bulk for BLMOVE/BRPOPLPUSH). The session blocks the client on the
//! keys and timeout given by [`blocking_spec`] and runs the command again when woken.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::args::{self, is, parse_i64};
use super::{ReadCtx, WriteCtx};
use crate::error::{CmdError, CmdResult};
use crate::reply::Reply;

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Left,
    Right,
}

/// LEFT | RIGHT, case-insensitively; a syntax error otherwise.
fn parse_end(arg: &[u8]) -> Result<End, CmdError> {
    if is(arg, "left") {
        Ok(End::Left)
    } else if is(arg, "right") {
        Ok(End::Right)
    } else {
        Err(CmdError::Syntax)
    }
}

fn pop_end(list: &mut VecDeque<Bytes>, end: End) -> Option<Bytes> {
    match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    }
}

fn push_end(list: &mut VecDeque<Bytes>, end: End, v: Bytes) {
    match end {
        End::Left => list.push_front(v),
        End::Right => list.push_back(v),
    }
}

/// Pops up to `n` elements from `end`, in the order they are popped.
fn pop_n(list: &mut VecDeque<Bytes>, end: End, n: usize) -> Vec<Bytes> {
    let n = n.min(list.len());
    match end {
        End::Left => list.drain(..n).collect(),
        End::Right => {
            let start = list.len() - n;
            let mut out: Vec<Bytes> = list.drain(start..).collect();
            out.reverse();
            out
        }
    }
}

/// Redis's index rule: negative counts from the end; `None` when out of range.
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { len + index } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

fn arity_err(a: &[Bytes]) -> CmdError {
    let name = a.first().map(|n| args::lossy(n).to_lowercase()).unwrap_or_default();
    CmdError::WrongArity(name)
}

/// LPUSH / RPUSH / LPUSHX / RPUSHX key element [element ...]
pub fn push(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let end = if is(&a[0], "lpush") || is(&a[0], "lpushx") { End::Left } else { End::Right };
    let only_existing = is(&a[0], "lpushx") || is(&a[0], "rpushx");
    let key = &a[1];
    let list = if only_existing {
        match ctx.list_mut(key)? {
            Some(l) => l,
            None => return Ok(Reply::Int(0)),
        }
    } else {
        ctx.list_entry(key)?
    };
    for v in &a[2..] {
        push_end(list, end, v.clone());
    }
    let len = list.len() as i64;
    ctx.done(key);
    Ok(Reply::Int(len))
}

/// LPOP / RPOP key [count]
pub fn pop(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Err(arity_err(a));
    }
    let end = if is(&a[0], "lpop") { End::Left } else { End::Right };
    let count = match a.get(2) {
        Some(c) => Some(args::parse_count(c, CmdError::err("value is out of range, must be positive"))?),
        None => None,
    };
    let key = &a[1];
    let Some(list) = ctx.list_mut(key)? else {
        return Ok(if count.is_some() { Reply::NilArray } else { Reply::Nil });
    };
    let reply = match count {
        None => Reply::opt_bulk(pop_end(list, end)),
        Some(0) => return Ok(Reply::Array(Vec::new())),
        Some(n) => Reply::bulks(pop_n(list, end, n)),
    };
    ctx.done(key);
    Ok(reply)
}

pub fn llen(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_list(&a[1])?.map_or(0, |l| l.len() as i64)))
}

pub fn lrange(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let start = parse_i64(&a[2])?;
    let stop = parse_i64(&a[3])?;
    let Some(list) = ctx.get_list(&a[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(match args::clamp_range(start, stop, list.len()) {
        Some((s, e)) => Reply::bulks(list.range(s..=e).cloned()),
        None => Reply::Array(Vec::new()),
    })
}

pub fn lindex(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let Some(list) = ctx.get_list(&a[1])? else { return Ok(Reply::Nil) };
    let index = parse_i64(&a[2])?;
    Ok(Reply::opt_bulk(resolve_index(index, list.len()).and_then(|i| list.get(i).cloned())))
}

pub fn lset(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let list = ctx.list_mut(&a[1])?.ok_or(CmdError::NoSuchKey)?;
    let index = parse_i64(&a[2])?;
    let i = resolve_index(index, list.len()).ok_or(CmdError::IndexOutOfRange)?;
    list[i] = a[3].clone();
    ctx.done(&a[1]);
    Ok(Reply::Ok)
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let after = if is(&a[2], "after") {
        true
    } else if is(&a[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let Some(list) = ctx.list_mut(&a[1])? else { return Ok(Reply::Int(0)) };
    let Some(pos) = list.iter().position(|e| e == &a[3]) else { return Ok(Reply::Int(-1)) };
    list.insert(pos + usize::from(after), a[4].clone());
    let len = list.len() as i64;
    ctx.done(&a[1]);
    Ok(Reply::Int(len))
}

/// LREM key count element: count > 0 from the head, < 0 from the tail, 0 all.
pub fn lrem(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let count = parse_i64(&a[2])?;
    let Some(list) = ctx.list_mut(&a[1])? else { return Ok(Reply::Int(0)) };
    let limit = count.unsigned_abs();
    let n = list.len();
    let mut kill = vec![false; n];
    let mut removed: u64 = 0;
    let order: Box<dyn Iterator<Item = usize>> = if count < 0 { Box::new((0..n).rev()) } else { Box::new(0..n) };
    for i in order {
        if limit != 0 && removed >= limit {
            break;
        }
        if list[i] == a[3] {
            kill[i] = true;
            removed += 1;
        }
    }
    if removed > 0 {
        let mut i = 0;
        list.retain(|_| {
            let keep = !kill[i];
            i += 1;
            keep
        });
        ctx.done(&a[1]);
    }
    Ok(Reply::Int(removed as i64))
}

pub fn ltrim(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let start = parse_i64(&a[2])?;
    let stop = parse_i64(&a[3])?;
    let Some(list) = ctx.list_mut(&a[1])? else { return Ok(Reply::Ok) };
    match args::clamp_range(start, stop, list.len()) {
        Some((s, e)) => {
            list.truncate(e + 1);
            list.drain(..s);
        }
        None => list.clear(),
    }
    ctx.done(&a[1]);
    Ok(Reply::Ok)
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut j = 3;
    while j < a.len() {
        let opt = &a[j];
        let more = j + 1 < a.len();
        if is(opt, "rank") && more {
            j += 1;
            rank = parse_i64(&a[j])?;
            if rank == i64::MIN {
                return Err(CmdError::err(
                    "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            if rank == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(opt, "count") && more {
            j += 1;
            count = Some(args::parse_count(&a[j], CmdError::err("COUNT can't be negative"))?);
        } else if is(opt, "maxlen") && more {
            j += 1;
            maxlen = args::parse_count(&a[j], CmdError::err("MAXLEN can't be negative"))?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let Some(list) = ctx.get_list(&a[1])? else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Nil });
    };
    let from_tail = rank < 0;
    let rank = rank.unsigned_abs();
    let scan: Box<dyn Iterator<Item = (usize, &Bytes)>> =
        if from_tail { Box::new(list.iter().enumerate().rev()) } else { Box::new(list.iter().enumerate()) };
    let limit = if maxlen == 0 { usize::MAX } else { maxlen };
    let mut matches: u64 = 0;
    let mut found = Vec::new();
    for (i, e) in scan.take(limit) {
        if e != &a[2] {
            continue;
        }
        matches += 1;
        if matches >= rank {
            found.push(Reply::Int(i as i64));
            match count {
                None => break,
                Some(c) if c != 0 && matches - rank + 1 >= c as u64 => break,
                _ => {}
            }
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.pop().unwrap_or(Reply::Nil),
    })
}

/// LMOVE src dst LEFT|RIGHT LEFT|RIGHT, RPOPLPUSH src dst, and the non-blocking attempt
/// of BLMOVE src dst LEFT|RIGHT LEFT|RIGHT timeout and BRPOPLPUSH src dst timeout.
pub fn lmove(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let (from, to, timeout_idx) = if is(&a[0], "rpoplpush") {
        (End::Right, End::Left, None)
    } else if is(&a[0], "brpoplpush") {
        (End::Right, End::Left, Some(3))
    } else {
        let from = parse_end(a.get(3).ok_or_else(|| arity_err(a))?)?;
        let to = parse_end(a.get(4).ok_or_else(|| arity_err(a))?)?;
        (from, to, is(&a[0], "blmove").then_some(5))
    };
    if let Some(i) = timeout_idx {
        args::parse_timeout(a.get(i).ok_or_else(|| arity_err(a))?)?;
    }
    let (src, dst) = (&a[1], &a[2]);
    if ctx.get_list(src)?.is_none_or(VecDeque::is_empty) {
        return Ok(Reply::Nil);
    }
    // Type-check the destination before anything is popped.
    ctx.get_list(dst)?;
    let Some(v) = ctx.list_mut(src)?.and_then(|l| pop_end(l, from)) else { return Ok(Reply::Nil) };
    push_end(ctx.list_entry(dst)?, to, v.clone());
    ctx.done(src);
    if src != dst {
        ctx.done(dst);
    }
    Ok(Reply::Bulk(v))
}

/// The parsed tail of LMPOP/BLMPOP: `numkeys key... LEFT|RIGHT [COUNT n]`.
struct MPop<'a> {
    keys: &'a [Bytes],
    end: End,
    count: usize,
}

fn parse_mpop(a: &[Bytes], numkeys_idx: usize) -> Result<MPop<'_>, CmdError> {
    let numkeys = a.get(numkeys_idx).ok_or_else(|| arity_err(a))?;
    let n = match parse_i64(numkeys) {
        Ok(n) if n >= 1 => n as u64,
        _ => return Err(CmdError::err("numkeys should be greater than 0")),
    };
    let first = numkeys_idx + 1;
    if n >= a.len() as u64 || first + n as usize >= a.len() {
        return Err(CmdError::Syntax);
    }
    let where_idx = first + n as usize;
    let end = parse_end(&a[where_idx])?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < a.len() {
        if count.is_none() && is(&a[j], "count") && j + 1 < a.len() {
            j += 1;
            match parse_i64(&a[j]) {
                Ok(c) if c >= 1 => count = Some(c as usize),
                _ => return Err(CmdError::err("count should be greater than 0")),
            }
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(MPop { keys: &a[first..where_idx], end, count: count.unwrap_or(1) })
}

/// Pops from the first non-empty list among `keys`: `[key, element]` when `count` is
/// `None` (BLPOP), `[key, [elements]]` otherwise (LMPOP); a null array when all are empty.
fn pop_first(ctx: &mut WriteCtx, keys: &[Bytes], end: End, count: Option<usize>) -> CmdResult {
    for key in keys {
        let Some(list) = ctx.list_mut(key)? else { continue };
        if list.is_empty() {
            continue;
        }
        let popped = match count {
            None => Reply::opt_bulk(pop_end(list, end)),
            Some(n) => Reply::bulks(pop_n(list, end, n)),
        };
        ctx.done(key);
        return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), popped]));
    }
    Ok(Reply::NilArray)
}

/// LMPOP numkeys key... LEFT|RIGHT [COUNT n] and the non-blocking attempt of
/// BLMPOP timeout numkeys key... LEFT|RIGHT [COUNT n].
pub fn lmpop(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let numkeys_idx = if is(&a[0], "blmpop") {
        args::parse_timeout(a.get(1).ok_or_else(|| arity_err(a))?)?;
        2
    } else {
        1
    };
    let m = parse_mpop(a, numkeys_idx)?;
    pop_first(ctx, m.keys, m.end, Some(m.count))
}

/// The non-blocking attempt of BLPOP / BRPOP key [key ...] timeout.
pub fn bpop(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let end = if is(&a[0], "blpop") { End::Left } else { End::Right };
    let Some((timeout, keys)) = a.get(1..).and_then(<[Bytes]>::split_last) else {
        return Err(arity_err(a));
    };
    if keys.is_empty() {
        return Err(arity_err(a));
    }
    args::parse_timeout(timeout)?;
    pop_first(ctx, keys, end, None)
}

/// The keys a blocked BLPOP/BRPOP/BLMOVE/BRPOPLPUSH/BLMPOP waits on, and its timeout
/// (`None`: forever). Validates the arguments as the command does, in the same order.
pub fn blocking_spec(a: &[Bytes]) -> Result<(Vec<Bytes>, Option<Duration>), CmdError> {
    let Some(name) = a.first() else { return Err(CmdError::Syntax) };
    if is(name, "blpop") || is(name, "brpop") {
        if a.len() < 3 {
            return Err(arity_err(a));
        }
        let timeout = args::parse_timeout(&a[a.len() - 1])?;
        Ok((a[1..a.len() - 1].to_vec(), timeout))
    } else if is(name, "blmove") {
        if a.len() != 6 {
            return Err(arity_err(a));
        }
        parse_end(&a[3])?;
        parse_end(&a[4])?;
        Ok((vec![a[1].clone()], args::parse_timeout(&a[5])?))
    } else if is(name, "brpoplpush") {
        if a.len() != 4 {
            return Err(arity_err(a));
        }
        Ok((vec![a[1].clone()], args::parse_timeout(&a[3])?))
    } else if is(name, "blmpop") {
        if a.len() < 5 {
            return Err(arity_err(a));
        }
        let timeout = args::parse_timeout(&a[1])?;
        let m = parse_mpop(a, 2)?;
        Ok((m.keys.to_vec(), timeout))
    } else {
        Err(CmdError::err(format!("'{}' is not a blocking list command", args::lossy(name))))
    }
}

#[cfg(test)]
mod tests {
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
}
