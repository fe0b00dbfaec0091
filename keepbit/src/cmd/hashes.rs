//! Hash commands.

use bytes::Bytes;
use rand::seq::IteratorRandom;
use rand::Rng;

use super::args::{self, is, lossy, parse_i64};
use super::strings::human_float;
use super::{scan, ReadCtx, WriteCtx};
use crate::error::{CmdError, CmdResult};
use crate::reply::Reply;

/// HSET (number of new fields) and HMSET (OK).
pub fn hset(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if a.len() % 2 != 0 {
        return Err(CmdError::WrongArity(lossy(&a[0]).to_lowercase()));
    }
    let key = &a[1];
    let h = ctx.hash_entry(key)?;
    let added = a[2..].chunks(2).filter(|fv| h.insert(fv[0].clone(), fv[1].clone()).is_none()).count();
    ctx.done(key);
    Ok(if is(&a[0], "hmset") { Reply::Ok } else { Reply::Int(added as i64) })
}

pub fn hsetnx(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if ctx.get_hash(&a[1])?.is_some_and(|h| h.contains_key(&a[2])) {
        return Ok(Reply::Int(0));
    }
    ctx.hash_entry(&a[1])?.insert(a[2].clone(), a[3].clone());
    ctx.done(&a[1]);
    Ok(Reply::Int(1))
}

pub fn hget(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(ctx.get_hash(&a[1])?.and_then(|h| h.get(&a[2]).cloned())))
}

pub fn hmget(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let h = ctx.get_hash(&a[1])?;
    Ok(Reply::Array(a[2..].iter().map(|f| Reply::opt_bulk(h.and_then(|h| h.get(f).cloned()))).collect()))
}

pub fn hdel(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let Some(h) = ctx.hash_mut(&a[1])? else { return Ok(Reply::Int(0)) };
    let n = a[2..].iter().filter(|f| h.remove(&f[..]).is_some()).count();
    ctx.done(&a[1]);
    Ok(Reply::Int(n as i64))
}

pub fn hexists(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_hash(&a[1])?.is_some_and(|h| h.contains_key(&a[2])) as i64))
}

pub fn hlen(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_hash(&a[1])?.map_or(0, |h| h.len() as i64)))
}

pub fn hkeys(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::bulks(ctx.get_hash(&a[1])?.into_iter().flat_map(|h| h.keys().cloned())))
}

pub fn hvals(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::bulks(ctx.get_hash(&a[1])?.into_iter().flat_map(|h| h.values().cloned())))
}

pub fn hgetall(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Map(
        ctx.get_hash(&a[1])?
            .into_iter()
            .flatten()
            .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
            .collect(),
    ))
}

pub fn hincrby(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let by = parse_i64(&a[3])?;
    let cur = match ctx.get_hash(&a[1])?.and_then(|h| h.get(&a[2])) {
        None => 0,
        Some(v) => parse_i64(v).map_err(|_| CmdError::err("hash value is not an integer"))?,
    };
    let new = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    ctx.hash_entry(&a[1])?.insert(a[2].clone(), args::int_bytes(new));
    ctx.done(&a[1]);
    Ok(Reply::Int(new))
}

pub fn hincrbyfloat(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let by = args::parse_f64(&a[3])?;
    if !by.is_finite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    let cur = match ctx.get_hash(&a[1])?.and_then(|h| h.get(&a[2])) {
        None => 0.0,
        Some(v) => args::parse_f64(v).map_err(|_| CmdError::err("hash value is not a float"))?,
    };
    let new = cur + by;
    if !new.is_finite() {
        return Err(CmdError::err("increment would produce NaN or Infinity"));
    }
    let v = human_float(new);
    ctx.hash_entry(&a[1])?.insert(a[2].clone(), v.clone());
    ctx.done(&a[1]);
    Ok(Reply::Bulk(v))
}

pub fn hstrlen(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_hash(&a[1])?.and_then(|h| h.get(&a[2])).map_or(0, |v| v.len() as i64)))
}

/// HRANDFIELD key [count [WITHVALUES]].
pub fn hrandfield(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let with_values = match a.len() {
        2 | 3 => false,
        4 if is(&a[3], "withvalues") => true,
        _ => return Err(CmdError::Syntax),
    };
    let count = a.get(2).map(|c| parse_i64(c)).transpose()?;
    let Some(h) = ctx.get_hash(&a[1])? else {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
    };
    let Some(count) = count else {
        return Ok(Reply::opt_bulk(h.keys().choose(ctx.rng).cloned()));
    };
    let picked: Vec<(&Bytes, &Bytes)> = if count >= 0 {
        // choose_multiple reserves `amount` up front: never ask for more than there is.
        h.iter().choose_multiple(ctx.rng, usize::try_from(count).unwrap_or(usize::MAX).min(h.len()))
    } else {
        if count == i64::MIN {
            return Err(CmdError::err(
                "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        let n = count.unsigned_abs();
        args::check_repeats(n)?;
        let all: Vec<_> = h.iter().collect();
        (0..n).map(|_| all[ctx.rng.gen_range(0..all.len())]).collect()
    };
    Ok(pairs_reply(picked, with_values))
}

fn pairs_reply(picked: Vec<(&Bytes, &Bytes)>, with_values: bool) -> Reply {
    if !with_values {
        return Reply::bulks(picked.into_iter().map(|(f, _)| f.clone()));
    }
    Reply::Pairs(picked.into_iter().map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone()))).collect())
}

pub fn hscan(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let o = scan::parse(&a[2], &a[3..], false, true)?;
    let Some(h) = ctx.get_hash(&a[1])? else { return Ok(scan::reply(0, vec![])) };
    let (next, page) = scan::page(|| h.iter(), &o);
    let items = page
        .into_iter()
        .flat_map(|(f, v)| {
            let value = (!o.novalues).then(|| Reply::Bulk(v.clone()));
            std::iter::once(Reply::Bulk(f.clone())).chain(value)
        })
        .collect();
    Ok(scan::reply(next, items))
}
