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
mod tests;
