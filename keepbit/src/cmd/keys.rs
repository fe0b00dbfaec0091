//! Generic key commands: DEL, EXISTS, TYPE, RENAME, COPY, MOVE, expiry, KEYS, SCAN, OBJECT.

use bytes::Bytes;
use rand::Rng;

use super::args::{self, is, lossy, parse_i64};
use super::Touch;
use super::{scan, ReadCtx, WriteCtx};
use crate::error::{CmdError, CmdResult};
use crate::glob;
use crate::reply::Reply;
use crate::store::Value;

pub fn del(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let now_ms = ctx.now_ms;
    let mut n = 0;
    for k in &a[1..] {
        if ctx.db_mut().take(k, now_ms).is_some() {
            ctx.touch(k);
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// EXISTS and TOUCH: counts live keys, a key named twice counting twice.
pub fn exists(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(a[1..].iter().filter(|k| ctx.get(k).is_some()).count() as i64))
}

pub fn type_(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::simple(ctx.get(&a[1]).map_or("none", |v| v.type_name())))
}

/// Moves `src` to `dst` in the current database with its expiry.
fn rename_inner(ctx: &mut WriteCtx, src: &Bytes, dst: &Bytes) {
    let now_ms = ctx.now_ms;
    let db = ctx.db_mut();
    let at = db.expire_at(src);
    if let Some(v) = db.take(src, now_ms) {
        db.set(dst.clone(), v);
        if let Some(at) = at {
            db.set_expire(dst, at);
        }
    }
    ctx.touch(src);
    ctx.touch(dst);
}

pub fn rename(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if ctx.get(&a[1]).is_none() {
        return Err(CmdError::NoSuchKey);
    }
    if a[1] != a[2] {
        rename_inner(ctx, &a[1], &a[2]);
    }
    Ok(Reply::Ok)
}

pub fn renamenx(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if ctx.get(&a[1]).is_none() {
        return Err(CmdError::NoSuchKey);
    }
    if ctx.get(&a[2]).is_some() {
        return Ok(Reply::Int(0));
    }
    rename_inner(ctx, &a[1], &a[2]);
    Ok(Reply::Int(1))
}

fn parse_db(ctx: &WriteCtx, arg: &[u8]) -> Result<usize, CmdError> {
    let d = parse_i64(arg)?;
    if d < 0 || d as usize >= ctx.ks.dbs.len() {
        return Err(CmdError::DbIndex);
    }
    Ok(d as usize)
}

pub fn copy(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let (mut dst_db, mut replace) = (ctx.db, false);
    let mut i = 3;
    while i < a.len() {
        if is(&a[i], "replace") {
            replace = true;
        } else if is(&a[i], "db") && i + 1 < a.len() {
            dst_db = parse_db(ctx, &a[i + 1])?;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let (src, dst) = (&a[1], &a[2]);
    if dst_db == ctx.db && src == dst {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let now_ms = ctx.now_ms;
    let Some(v) = ctx.get(src).cloned() else { return Ok(Reply::Int(0)) };
    let at = ctx.db().expire_at(src);
    let target = ctx.ks.db_mut(dst_db);
    if target.contains(dst, now_ms) && !replace {
        return Ok(Reply::Int(0));
    }
    target.set(dst.clone(), v);
    if let Some(at) = at {
        target.set_expire(dst, at);
    }
    ctx.touched.push(Touch::Key(dst_db, dst.clone()));
    Ok(Reply::Int(1))
}

pub fn move_(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let dst_db = parse_db(ctx, &a[2])?;
    if dst_db == ctx.db {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let now_ms = ctx.now_ms;
    let key = &a[1];
    if ctx.get(key).is_none() || ctx.ks.db(dst_db).contains(key, now_ms) {
        return Ok(Reply::Int(0));
    }
    let at = ctx.db().expire_at(key);
    let Some(v) = ctx.db_mut().take(key, now_ms) else { return Ok(Reply::Int(0)) };
    let target = ctx.ks.db_mut(dst_db);
    target.set(key.clone(), v);
    if let Some(at) = at {
        target.set_expire(key, at);
    }
    ctx.touch(key);
    ctx.touched.push(Touch::Key(dst_db, key.clone()));
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy, PartialEq)]
enum Cond {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

fn parse_cond(opts: &[Bytes]) -> Result<Cond, CmdError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in opts {
        if is(o, "nx") {
            nx = true;
        } else if is(o, "xx") {
            xx = true;
        } else if is(o, "gt") {
            gt = true;
        } else if is(o, "lt") {
            lt = true;
        } else {
            return Err(CmdError::err(format!("Unsupported option {}", lossy(o))));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::err("NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(CmdError::err("GT and LT options at the same time are not compatible"));
    }
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => Cond::Nx,
        (_, _, true, _) => Cond::Gt,
        (_, _, _, true) => Cond::Lt,
        (_, true, ..) => Cond::Xx,
        _ => Cond::Always,
    })
}

/// The absolute expiry in ms named by EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT, with Redis's
/// overflow checks. May be in the past (the key is then deleted).
fn absolute_ms(name: &str, amount: &[u8], now_ms: u64) -> Result<i64, CmdError> {
    let v = parse_i64(amount)?;
    let invalid = || CmdError::err(format!("invalid expire time in '{name}' command"));
    let unit = if name == "expire" || name == "expireat" { 1000 } else { 1 };
    let ms = v.checked_mul(unit).ok_or_else(invalid)?;
    if name == "expire" || name == "pexpire" {
        return ms.checked_add(now_ms as i64).ok_or_else(invalid);
    }
    Ok(ms)
}

/// EXPIRE k 10 → PEXPIREAT k <absolute ms>, and the same for PEXPIRE and EXPIREAT.
pub fn prepare_expire(ctx: &mut ReadCtx, a: &[Bytes]) -> Result<Vec<Bytes>, CmdError> {
    let name = lossy(&a[0]).to_lowercase();
    let at = absolute_ms(&name, &a[2], ctx.now_ms)?;
    parse_cond(&a[3..])?;
    let mut out = vec![Bytes::from_static(b"PEXPIREAT"), a[1].clone(), args::int_bytes(at)];
    out.extend_from_slice(&a[3..]);
    Ok(out)
}

/// EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with NX | XX | GT | LT.
pub fn pexpireat(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let name = lossy(&a[0]).to_lowercase();
    let at = absolute_ms(&name, &a[2], ctx.now_ms)?;
    let cond = parse_cond(&a[3..])?;
    let key = &a[1];
    if ctx.get(key).is_none() {
        return Ok(Reply::Int(0));
    }
    let current = ctx.db().expire_at(key);
    let allowed = match cond {
        Cond::Always => true,
        Cond::Nx => current.is_none(),
        Cond::Xx => current.is_some(),
        Cond::Gt => current.is_some_and(|c| at > c as i64),
        Cond::Lt => current.is_none_or(|c| at < c as i64),
    };
    if !allowed {
        return Ok(Reply::Int(0));
    }
    if at <= ctx.now_ms as i64 {
        ctx.db_mut().remove(key);
    } else {
        ctx.db_mut().set_expire(key, at as u64);
    }
    ctx.touch(key);
    Ok(Reply::Int(1))
}

/// TTL and PTTL.
pub fn ttl(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    if ctx.get(&a[1]).is_none() {
        return Ok(Reply::Int(-2));
    }
    let Some(at) = ctx.db().expire_at(&a[1]) else { return Ok(Reply::Int(-1)) };
    let left = at.saturating_sub(ctx.now_ms) as i64;
    Ok(Reply::Int(if is(&a[0], "pttl") { left } else { (left + 500) / 1000 }))
}

/// EXPIRETIME and PEXPIRETIME.
pub fn expiretime(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    if ctx.get(&a[1]).is_none() {
        return Ok(Reply::Int(-2));
    }
    let Some(at) = ctx.db().expire_at(&a[1]) else { return Ok(Reply::Int(-1)) };
    Ok(Reply::Int(if is(&a[0], "pexpiretime") { at as i64 } else { (at as i64 + 500) / 1000 }))
}

pub fn persist(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if ctx.get(&a[1]).is_none() {
        return Ok(Reply::Int(0));
    }
    let cleared = ctx.db_mut().clear_expire(&a[1]);
    if cleared {
        ctx.touch(&a[1]);
    }
    Ok(Reply::Int(cleared as i64))
}

pub fn keys(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let pattern = &a[1];
    let all = &pattern[..] == b"*";
    Ok(Reply::bulks(
        ctx.db().iter(ctx.now_ms).filter(|(k, _)| all || glob::matches(pattern, k)).map(|(k, _)| k.clone()),
    ))
}

pub fn scan(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let o = scan::parse(&a[1], &a[2..], true, false)?;
    let (next, page) = scan::ordered_page(ctx.db().scan_from(o.cursor, ctx.now_ms), &o);
    let items = page
        .into_iter()
        .filter(|(_, v)| o.type_name.as_deref().is_none_or(|t| v.type_name() == t))
        .map(|(k, _)| Reply::Bulk(k.clone()))
        .collect();
    Ok(scan::reply(next, items))
}

pub fn randomkey(ctx: &mut ReadCtx, _a: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    if db.is_empty() {
        return Ok(Reply::Nil);
    }
    // Sample a few stored keys; if they are all expired, fall back to a full pass.
    for _ in 0..16 {
        if let Some(k) = db.key_near(ctx.rng.gen()).filter(|k| db.contains(k, ctx.now_ms)) {
            return Ok(Reply::Bulk(k.clone()));
        }
    }
    let live: Vec<&Bytes> = db.iter(ctx.now_ms).map(|(k, _)| k).collect();
    if live.is_empty() {
        return Ok(Reply::Nil);
    }
    Ok(Reply::Bulk(live[ctx.rng.gen_range(0..live.len())].clone()))
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Print this help.",
];

pub fn help_reply(lines: &[&str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::simple(l)).collect())
}

pub fn object(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let sub = lossy(&a[1]).to_lowercase();
    if sub == "help" && a.len() == 2 {
        return Ok(help_reply(OBJECT_HELP));
    }
    if !["encoding", "refcount", "idletime", "freq"].contains(&sub.as_str()) {
        return Err(CmdError::UnknownSubcommand { cmd: "OBJECT".into(), sub: lossy(&a[1]) });
    }
    if a.len() != 3 {
        return Err(CmdError::WrongArity(format!("object|{sub}")));
    }
    let Some(v) = ctx.get(&a[2]) else { return Ok(Reply::Nil) };
    Ok(match sub.as_str() {
        "encoding" => Reply::bulk(encoding(v)),
        "refcount" => Reply::Int(1),
        // Access times are not tracked: every key reads as just used.
        "idletime" => Reply::Int(0),
        _ => {
            return Err(CmdError::err(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ))
        }
    })
}

/// Redis 7.2's OBJECT ENCODING name for this value, from its built-in size limits
/// (encodings here follow the current contents; Redis never converts back down, and
/// APPEND/SETRANGE results report by size, not as `raw`).
fn encoding(value: &Value) -> &'static str {
    const SMALL_ENTRIES: usize = 128;
    const SMALL_VALUE_BYTES: usize = 64;
    let canonical_int = |b: &Bytes| args::parse_i64(b).is_ok();
    let small = |b: &Bytes| b.len() <= SMALL_VALUE_BYTES;
    match value {
        Value::Str(s) if s.len() <= 20 && canonical_int(s) => "int",
        Value::Str(s) if s.len() <= 44 => "embstr",
        Value::Str(_) => "raw",
        // list-max-listpack-size -2: 8 KiB per node.
        Value::List(l) if l.iter().map(|e| e.len() + 2).sum::<usize>() + 6 <= 8192 => "listpack",
        Value::List(_) => "quicklist",
        Value::Hash(h) if h.len() <= 512 && h.iter().all(|(f, v)| small(f) && small(v)) => "listpack",
        Value::Hash(_) => "hashtable",
        Value::Set(s) if s.len() <= 512 && s.iter().all(canonical_int) => "intset",
        Value::Set(s) if s.len() <= SMALL_ENTRIES && s.iter().all(small) => "listpack",
        Value::Set(_) => "hashtable",
        Value::ZSet(z) if z.len() <= SMALL_ENTRIES && z.iter().all(|(m, _)| small(m)) => "listpack",
        Value::ZSet(_) => "skiplist",
    }
}
