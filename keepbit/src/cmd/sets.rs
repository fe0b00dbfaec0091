//! Set commands.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use bytes::Bytes;
use rand::seq::IteratorRandom;
use rand::Rng;

use super::args::{self, is, parse_count, parse_i64};
use super::{scan, ReadCtx, WriteCtx};
use crate::error::{CmdError, CmdResult};
use crate::reply::Reply;
use crate::store::Value;

pub fn sadd(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let s = ctx.set_entry(&a[1])?;
    let n = a[2..].iter().filter(|m| s.insert((*m).clone())).count();
    ctx.done(&a[1]);
    Ok(Reply::Int(n as i64))
}

pub fn srem(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let Some(s) = ctx.set_mut(&a[1])? else { return Ok(Reply::Int(0)) };
    let n = a[2..].iter().filter(|m| s.remove(&m[..])).count();
    ctx.done(&a[1]);
    Ok(Reply::Int(n as i64))
}

fn members_reply<'a>(members: impl Iterator<Item = &'a Bytes>) -> Reply {
    Reply::Set(members.map(|m| Reply::Bulk(m.clone())).collect())
}

pub fn smembers(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(members_reply(ctx.get_set(&a[1])?.into_iter().flatten()))
}

pub fn sismember(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_set(&a[1])?.is_some_and(|s| s.contains(&a[2])) as i64))
}

pub fn smismember(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let s = ctx.get_set(&a[1])?;
    Ok(Reply::Array(a[2..].iter().map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)) as i64)).collect()))
}

pub fn scard(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_set(&a[1])?.map_or(0, |s| s.len() as i64)))
}

/// SPOP's count: `None` for the single-member form.
fn spop_count(a: &[Bytes]) -> Result<Option<usize>, CmdError> {
    match a.len() {
        2 => Ok(None),
        3 => parse_count(&a[2], CmdError::err("value is out of range, must be positive")).map(Some),
        _ => Err(CmdError::Syntax),
    }
}

/// SPOP's choice is made before logging: SPOP key [count] → `spop-chosen key <count|-> m…`.
pub fn prepare_spop(ctx: &mut ReadCtx, a: &[Bytes]) -> Result<Vec<Bytes>, CmdError> {
    let count = spop_count(a)?;
    let mode = count.map_or(Bytes::from_static(b"-"), |c| args::int_bytes(c as i64));
    let mut out = vec![Bytes::from_static(b"spop-chosen"), a[1].clone(), mode];
    if let Some(s) = ctx.get_set(&a[1])? {
        let n = count.unwrap_or(1);
        if n >= s.len() {
            out.extend(s.iter().cloned());
        } else {
            out.extend(s.iter().choose_multiple(ctx.rng, n).into_iter().cloned());
        }
    }
    Ok(out)
}

/// Members ranked by a keyed hash of `seed`: a choice that depends only on the seed and
/// the set's contents, never on its table layout.
fn seeded_pick(s: &HashSet<Bytes>, seed: u64, n: usize, exclude: &HashSet<Bytes>) -> Vec<Bytes> {
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let mut ranked: Vec<(u64, &Bytes)> =
        s.iter().filter(|m| !exclude.contains(*m)).map(|m| (hasher.hash_one((seed, &m[..])), m)).collect();
    ranked.sort();
    ranked.into_iter().take(n).map(|(_, m)| m.clone()).collect()
}

fn pop_members(ctx: &mut WriteCtx, key: &Bytes, count: Option<usize>, chosen: &[Bytes]) -> CmdResult {
    let seed = ctx.seed;
    let Some(s) = ctx.set_mut(key)? else {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
    };
    let want = count.unwrap_or(1).min(s.len());
    let mut popped: Vec<Bytes> = Vec::with_capacity(want);
    let mut seen = HashSet::new();
    for m in chosen {
        if popped.len() < want && s.contains(m) && seen.insert(m.clone()) {
            popped.push(m.clone());
        }
    }
    // Members chosen by the primary may be gone (a concurrent write); fill deterministically.
    if popped.len() < want {
        popped.extend(seeded_pick(s, seed, want - popped.len(), &seen));
    }
    for m in &popped {
        s.remove(m);
    }
    ctx.done(key);
    Ok(match count {
        Some(_) => Reply::bulks(popped),
        None => Reply::opt_bulk(popped.into_iter().next()),
    })
}

/// SPOP applied without a prepared choice (never produced by the node; kept
/// deterministic all the same).
pub fn spop(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let count = spop_count(a)?;
    pop_members(ctx, &a[1], count, &[])
}

pub fn spop_chosen(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let count = match &a[2][..] {
        b"-" => None,
        c => Some(parse_count(c, CmdError::Syntax)?),
    };
    pop_members(ctx, &a[1], count, &a[3..])
}

pub fn srandmember(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = a.get(2).map(|c| parse_i64(c)).transpose()?;
    let Some(s) = ctx.get_set(&a[1])? else {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
    };
    match count {
        None => Ok(Reply::opt_bulk(s.iter().choose(ctx.rng).cloned())),
        // choose_multiple reserves `amount` up front: never ask for more than there is.
        Some(c) if c >= 0 => {
            let n = usize::try_from(c).unwrap_or(usize::MAX).min(s.len());
            Ok(Reply::bulks(s.iter().choose_multiple(ctx.rng, n).into_iter().cloned()))
        }
        Some(i64::MIN) => {
            Err(CmdError::err("value is out of range, value must between -9223372036854775807 and 9223372036854775807"))
        }
        Some(c) => {
            let n = c.unsigned_abs();
            args::check_repeats(n)?;
            let all: Vec<&Bytes> = s.iter().collect();
            Ok(Reply::bulks((0..n).map(|_| all[ctx.rng.gen_range(0..all.len())].clone())))
        }
    }
}

pub fn smove(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let (src, dst, m) = (&a[1], &a[2], &a[3]);
    let in_src = ctx.get_set(src)?.is_some_and(|s| s.contains(m));
    ctx.get_set(dst)?;
    if !in_src {
        return Ok(Reply::Int(0));
    }
    if src == dst {
        return Ok(Reply::Int(1));
    }
    if let Some(s) = ctx.set_mut(src)? {
        s.remove(m);
    }
    ctx.done(src);
    ctx.set_entry(dst)?.insert(m.clone());
    ctx.done(dst);
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// Computes the intersection, union or difference of the sets at `keys` (missing keys
/// are empty sets; any other type is WRONGTYPE).
fn combine(ctx: &ReadCtx, keys: &[Bytes], op: Algebra) -> Result<HashSet<Bytes>, CmdError> {
    let sets = keys.iter().map(|k| ctx.get_set(k)).collect::<Result<Vec<_>, _>>()?;
    let empty = HashSet::new();
    let sets: Vec<&HashSet<Bytes>> = sets.into_iter().map(|s| s.unwrap_or(&empty)).collect();
    Ok(match op {
        Algebra::Union => sets.iter().flat_map(|s| s.iter().cloned()).collect(),
        Algebra::Diff => sets[0].iter().filter(|m| !sets[1..].iter().any(|s| s.contains(*m))).cloned().collect(),
        Algebra::Inter => {
            let smallest = sets.iter().min_by_key(|s| s.len()).copied().unwrap_or(&empty);
            smallest.iter().filter(|m| sets.iter().all(|s| s.contains(*m))).cloned().collect()
        }
    })
}

pub fn sinter(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(members_reply(combine(ctx, &a[1..], Algebra::Inter)?.iter()))
}

pub fn sunion(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(members_reply(combine(ctx, &a[1..], Algebra::Union)?.iter()))
}

pub fn sdiff(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(members_reply(combine(ctx, &a[1..], Algebra::Diff)?.iter()))
}

fn store(ctx: &mut WriteCtx, a: &[Bytes], op: Algebra) -> CmdResult {
    let result = ctx.with_reader(|r| combine(r, &a[2..], op))?;
    let n = result.len() as i64;
    let dst = &a[1];
    if result.is_empty() {
        ctx.db_mut().remove(dst);
    } else {
        ctx.db_mut().set(dst.clone(), Value::Set(result));
    }
    ctx.touch(dst);
    Ok(Reply::Int(n))
}

pub fn sinterstore(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    store(ctx, a, Algebra::Inter)
}

pub fn sunionstore(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    store(ctx, a, Algebra::Union)
}

pub fn sdiffstore(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    store(ctx, a, Algebra::Diff)
}

/// Parses `numkeys key… [LIMIT n]` (SINTERCARD, ZINTERCARD): the keys and the limit (0: none).
pub fn numkeys_with_limit(a: &[Bytes]) -> Result<(Vec<Bytes>, usize), CmdError> {
    let n = parse_i64(&a[1]).unwrap_or(0);
    if n <= 0 {
        return Err(CmdError::err("numkeys should be greater than 0"));
    }
    let n = n as usize;
    if n > a.len() - 2 {
        return Err(CmdError::err("Number of keys can't be greater than number of args"));
    }
    let keys = a[2..2 + n].to_vec();
    let rest = &a[2 + n..];
    let limit = match rest {
        [] => 0,
        [l, v] if is(l, "limit") => parse_count(v, CmdError::err("LIMIT can't be negative"))?,
        _ => return Err(CmdError::Syntax),
    };
    Ok((keys, limit))
}

pub fn sintercard(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let (keys, limit) = numkeys_with_limit(a)?;
    let n = combine(ctx, &keys, Algebra::Inter)?.len();
    Ok(Reply::Int(if limit > 0 { n.min(limit) } else { n } as i64))
}

pub fn sscan(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let o = scan::parse(&a[2], &a[3..], false, false)?;
    let Some(s) = ctx.get_set(&a[1])? else { return Ok(scan::reply(0, vec![])) };
    let (next, page) = scan::page(|| s.iter().map(|m| (m, ())), &o);
    Ok(scan::reply(next, page.into_iter().map(|(m, _)| Reply::Bulk(m.clone())).collect()))
}
