//! String commands.

use bytes::{Bytes, BytesMut};

use super::args::{self, is, parse_i64};
use super::{ReadCtx, WriteCtx};
use crate::error::{CmdError, CmdResult};
use crate::reply::Reply;
use crate::store::Value;

const STRING_LEN_MAX: usize = 512 * 1024 * 1024;

/// What a command does to the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expiry {
    /// Clear it (plain SET).
    Clear,
    /// Leave it (KEEPTTL, and GETEX without options).
    Keep,
    /// Set it to this absolute time.
    At(u64),
    /// GETEX PERSIST.
    Persist,
}

/// Turns `<amount>` of `unit` into an absolute expiry, with Redis's checks.
/// `relative`: EX/PX (added to `now_ms`); otherwise EXAT/PXAT.
pub fn expiry_at(amount: &[u8], unit_ms: i64, relative: bool, now_ms: u64, cmd: &str) -> Result<u64, CmdError> {
    let invalid = || CmdError::err(format!("invalid expire time in '{cmd}' command"));
    let v = parse_i64(amount)?;
    if v <= 0 {
        return Err(invalid());
    }
    let ms = v.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if relative { ms.checked_add(now_ms as i64).ok_or_else(invalid)? } else { ms };
    Ok(at as u64)
}

struct SetOpts {
    nx: bool,
    xx: bool,
    get: bool,
    expiry: Expiry,
}

fn parse_set_opts(opts: &[Bytes], now_ms: u64) -> Result<SetOpts, CmdError> {
    let mut o = SetOpts { nx: false, xx: false, get: false, expiry: Expiry::Clear };
    let mut i = 0;
    while i < opts.len() {
        let a = &opts[i];
        let has_expiry = o.expiry != Expiry::Clear;
        if is(a, "nx") && !o.xx {
            o.nx = true;
        } else if is(a, "xx") && !o.nx {
            o.xx = true;
        } else if is(a, "get") {
            o.get = true;
        } else if is(a, "keepttl") && !has_expiry {
            o.expiry = Expiry::Keep;
        } else if !has_expiry && i + 1 < opts.len() && ["ex", "px", "exat", "pxat"].iter().any(|w| is(a, w)) {
            let unit = if is(a, "ex") || is(a, "exat") { 1000 } else { 1 };
            let relative = is(a, "ex") || is(a, "px");
            o.expiry = Expiry::At(expiry_at(&opts[i + 1], unit, relative, now_ms, "set")?);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

fn pxat_args(head: &[Bytes], at: u64) -> Vec<Bytes> {
    let mut out = head.to_vec();
    out.push(Bytes::from_static(b"PXAT"));
    out.push(args::int_bytes(at as i64));
    out
}

/// SET with a relative expiry becomes SET … PXAT <absolute ms>.
pub fn prepare_set(ctx: &mut ReadCtx, a: &[Bytes]) -> Result<Vec<Bytes>, CmdError> {
    let o = parse_set_opts(&a[3..], ctx.now_ms)?;
    let Expiry::At(at) = o.expiry else { return Ok(a.to_vec()) };
    let mut out: Vec<Bytes> = a[..3].to_vec();
    for (flag, word) in [(o.nx, "NX"), (o.xx, "XX"), (o.get, "GET")] {
        if flag {
            out.push(Bytes::from_static(word.as_bytes()));
        }
    }
    Ok(pxat_args(&out, at))
}

/// SETEX key seconds value → SET key value PXAT <absolute ms>.
pub fn prepare_setex(ctx: &mut ReadCtx, a: &[Bytes]) -> Result<Vec<Bytes>, CmdError> {
    let name = args::lossy(&a[0]).to_lowercase();
    let unit = if name == "setex" { 1000 } else { 1 };
    let at = expiry_at(&a[2], unit, true, ctx.now_ms, &name)?;
    Ok(pxat_args(&[Bytes::from_static(b"SET"), a[1].clone(), a[3].clone()], at))
}

pub fn set(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let (key, value, o) = if is(&a[0], "setex") || is(&a[0], "psetex") {
        let name = args::lossy(&a[0]).to_lowercase();
        let unit = if name == "setex" { 1000 } else { 1 };
        let at = expiry_at(&a[2], unit, true, ctx.now_ms, &name)?;
        let o = SetOpts { nx: false, xx: false, get: false, expiry: Expiry::At(at) };
        (&a[1], &a[3], o)
    } else {
        (&a[1], &a[2], parse_set_opts(&a[3..], ctx.now_ms)?)
    };
    let old = if o.get { ctx.get_str(key)?.cloned() } else { None };
    let exists = ctx.get(key).is_some();
    if (o.nx && exists) || (o.xx && !exists) {
        return Ok(if o.get { Reply::opt_bulk(old) } else { Reply::Nil });
    }
    store(ctx, key, value.clone(), o.expiry);
    Ok(if o.get { Reply::opt_bulk(old) } else { Reply::Ok })
}

/// Writes a string value with the given expiry treatment.
fn store(ctx: &mut WriteCtx, key: &Bytes, value: Bytes, expiry: Expiry) {
    let now_ms = ctx.now_ms;
    let db = ctx.db_mut();
    match expiry {
        Expiry::Keep | Expiry::Persist => db.set_keep_ttl(key.clone(), Value::Str(value), now_ms),
        Expiry::Clear => db.set(key.clone(), Value::Str(value)),
        Expiry::At(at) if at <= now_ms => {
            // An expiry already in the past deletes the key, as in Redis.
            db.remove(key);
        }
        Expiry::At(at) => {
            db.set(key.clone(), Value::Str(value));
            db.set_expire(key, at);
        }
    }
    if expiry == Expiry::Persist {
        db.clear_expire(key);
    }
    ctx.touch(key);
}

pub fn get(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(ctx.get_str(&a[1])?.cloned()))
}

pub fn setnx(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    if ctx.get(&a[1]).is_some() {
        return Ok(Reply::Int(0));
    }
    store(ctx, &a[1], a[2].clone(), Expiry::Clear);
    Ok(Reply::Int(1))
}

pub fn getset(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let old = ctx.get_str(&a[1])?.cloned();
    store(ctx, &a[1], a[2].clone(), Expiry::Clear);
    Ok(Reply::opt_bulk(old))
}

pub fn getdel(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let old = ctx.get_str(&a[1])?.cloned();
    if old.is_some() {
        ctx.db_mut().remove(&a[1]);
        ctx.touch(&a[1]);
    }
    Ok(Reply::opt_bulk(old))
}

fn parse_getex(a: &[Bytes], now_ms: u64) -> Result<Expiry, CmdError> {
    match &a[2..] {
        [] => Ok(Expiry::Keep),
        [p] if is(p, "persist") => Ok(Expiry::Persist),
        [opt, amount] => {
            let (unit, relative) = if is(opt, "ex") {
                (1000, true)
            } else if is(opt, "px") {
                (1, true)
            } else if is(opt, "exat") {
                (1000, false)
            } else if is(opt, "pxat") {
                (1, false)
            } else {
                return Err(CmdError::Syntax);
            };
            Ok(Expiry::At(expiry_at(amount, unit, relative, now_ms, "getex")?))
        }
        _ => Err(CmdError::Syntax),
    }
}

pub fn prepare_getex(ctx: &mut ReadCtx, a: &[Bytes]) -> Result<Vec<Bytes>, CmdError> {
    match parse_getex(a, ctx.now_ms)? {
        Expiry::At(at) => Ok(pxat_args(&a[..2], at)),
        _ => Ok(a.to_vec()),
    }
}

pub fn getex(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let expiry = parse_getex(a, ctx.now_ms)?;
    let Some(v) = ctx.get_str(&a[1])?.cloned() else { return Ok(Reply::Nil) };
    if expiry != Expiry::Keep {
        store(ctx, &a[1], v.clone(), expiry);
    }
    Ok(Reply::Bulk(v))
}

pub fn mget(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(
        a[1..]
            .iter()
            .map(|k| match ctx.get(k) {
                Some(Value::Str(v)) => Reply::Bulk(v.clone()),
                _ => Reply::Nil,
            })
            .collect(),
    ))
}

fn check_pairs(a: &[Bytes]) -> Result<(), CmdError> {
    if a.len() % 2 == 0 {
        return Err(CmdError::WrongArity(args::lossy(&a[0]).to_lowercase()));
    }
    Ok(())
}

pub fn mset(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    check_pairs(a)?;
    for kv in a[1..].chunks(2) {
        store(ctx, &kv[0], kv[1].clone(), Expiry::Clear);
    }
    Ok(Reply::Ok)
}

pub fn msetnx(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    check_pairs(a)?;
    if a[1..].chunks(2).any(|kv| ctx.get(&kv[0]).is_some()) {
        return Ok(Reply::Int(0));
    }
    for kv in a[1..].chunks(2) {
        store(ctx, &kv[0], kv[1].clone(), Expiry::Clear);
    }
    Ok(Reply::Int(1))
}

/// INCR, DECR, INCRBY, DECRBY.
pub fn incr(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let name = &a[0];
    let by = if is(name, "incr") {
        1
    } else if is(name, "decr") {
        -1
    } else if is(name, "incrby") {
        parse_i64(&a[2])?
    } else {
        let v = parse_i64(&a[2])?;
        v.checked_neg().ok_or_else(|| CmdError::err("decrement would overflow"))?
    };
    let cur = match ctx.get_str(&a[1])? {
        None => 0,
        Some(v) => parse_i64(v)?,
    };
    let new = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    store(ctx, &a[1], args::int_bytes(new), Expiry::Keep);
    Ok(Reply::Int(new))
}

/// Formats a float the way INCRBYFLOAT stores it: plain decimal, no exponent, at most
/// 17 decimals with trailing zeros trimmed (Redis's `%.17Lf` human form, over f64).
pub fn human_float(v: f64) -> Bytes {
    if v == v.trunc() && v.abs() < 1e17 {
        return args::int_bytes(v as i64);
    }
    let shortest = format!("{v}");
    let decimals = shortest.split_once('.').map_or(0, |(_, f)| f.len());
    if decimals <= 17 {
        return Bytes::from(shortest);
    }
    let fixed = format!("{v:.17}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    Bytes::from(if trimmed == "-0" { "0".to_string() } else { trimmed.to_string() })
}

pub fn incrbyfloat(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let by = args::parse_f64(&a[2])?;
    let cur = match ctx.get_str(&a[1])? {
        None => 0.0,
        Some(v) => args::parse_f64(v)?,
    };
    let new = cur + by;
    if !new.is_finite() {
        return Err(CmdError::err("increment would produce NaN or Infinity"));
    }
    let v = human_float(new);
    store(ctx, &a[1], v.clone(), Expiry::Keep);
    Ok(Reply::Bulk(v))
}

pub fn append(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let new = match ctx.get_str(&a[1])? {
        None => a[2].clone(),
        Some(cur) => {
            if cur.len() + a[2].len() > STRING_LEN_MAX {
                return Err(CmdError::err("string exceeds maximum allowed size (proto-max-bulk-len)"));
            }
            let mut buf = BytesMut::with_capacity(cur.len() + a[2].len());
            buf.extend_from_slice(cur);
            buf.extend_from_slice(&a[2]);
            buf.freeze()
        }
    };
    let len = new.len() as i64;
    store(ctx, &a[1], new, Expiry::Keep);
    Ok(Reply::Int(len))
}

pub fn strlen(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.get_str(&a[1])?.map_or(0, |v| v.len() as i64)))
}

pub fn getrange(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let (start, end) = (parse_i64(&a[2])?, parse_i64(&a[3])?);
    let Some(v) = ctx.get_str(&a[1])? else { return Ok(Reply::bulk("")) };
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(""));
    }
    // Redis clamps both ends into the string (unlike list ranges).
    let len = v.len() as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if len == 0 || start > end {
        return Ok(Reply::bulk(""));
    }
    Ok(Reply::Bulk(v.slice(start as usize..=end as usize)))
}

pub fn setrange(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let offset = parse_i64(&a[2])?;
    if offset < 0 {
        return Err(CmdError::err("offset is out of range"));
    }
    let offset = offset as usize;
    let cur = ctx.get_str(&a[1])?.cloned();
    let value = &a[3];
    if value.is_empty() {
        return Ok(Reply::Int(cur.map_or(0, |c| c.len() as i64)));
    }
    if offset + value.len() > STRING_LEN_MAX {
        return Err(CmdError::err("string exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    let cur = cur.unwrap_or_default();
    let mut buf = BytesMut::from(&cur[..]);
    if buf.len() < offset + value.len() {
        buf.resize(offset + value.len(), 0);
    }
    buf[offset..offset + value.len()].copy_from_slice(value);
    let len = buf.len() as i64;
    store(ctx, &a[1], buf.freeze(), Expiry::Keep);
    Ok(Reply::Int(len))
}

/// Most cells the LCS table may have (4 bytes each).
const LCS_CELLS_MAX: usize = 32 * 1024 * 1024;

pub fn lcs(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    let (mut want_len, mut want_idx, mut with_match_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 3;
    while i < a.len() {
        if is(&a[i], "len") {
            want_len = true;
        } else if is(&a[i], "idx") {
            want_idx = true;
        } else if is(&a[i], "withmatchlen") {
            with_match_len = true;
        } else if is(&a[i], "minmatchlen") && i + 1 < a.len() {
            min_len = parse_i64(&a[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let read = |k: &[u8]| match ctx.get(k) {
        None => Ok(Bytes::new()),
        Some(Value::Str(v)) => Ok(v.clone()),
        Some(_) => Err(CmdError::err("The specified keys must contain string values")),
    };
    let (x, y) = (read(&a[1])?, read(&a[2])?);
    if want_len && want_idx {
        return Err(CmdError::err("If you want both the length and indexes, please just use IDX."));
    }
    if (x.len() + 1).saturating_mul(y.len() + 1) > LCS_CELLS_MAX {
        return Err(CmdError::err("Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"));
    }
    let cols = y.len() + 1;
    let mut t = vec![0u32; (x.len() + 1) * cols];
    for i in 1..=x.len() {
        for j in 1..=y.len() {
            t[i * cols + j] = if x[i - 1] == y[j - 1] {
                t[(i - 1) * cols + j - 1] + 1
            } else {
                t[(i - 1) * cols + j].max(t[i * cols + j - 1])
            };
        }
    }
    let total = t[x.len() * cols + y.len()] as usize;
    if want_len {
        return Ok(Reply::Int(total as i64));
    }
    // Walk back from the end, collecting the common string and the matching ranges.
    let mut common = vec![0u8; total];
    let mut idx = total;
    let (mut i, mut j) = (x.len(), y.len());
    let mut matches = Vec::new();
    let mut current: Option<(usize, usize, usize, usize)> = None; // x range, y range
    let flush = |m: Option<(usize, usize, usize, usize)>, matches: &mut Vec<Reply>| {
        if let Some((xs, xe, ys, ye)) = m {
            let len = xe - xs + 1;
            if len as i64 >= min_len {
                let mut item = vec![
                    Reply::Array(vec![Reply::Int(xs as i64), Reply::Int(xe as i64)]),
                    Reply::Array(vec![Reply::Int(ys as i64), Reply::Int(ye as i64)]),
                ];
                if with_match_len {
                    item.push(Reply::Int(len as i64));
                }
                matches.push(Reply::Array(item));
            }
        }
    };
    while i > 0 && j > 0 {
        if x[i - 1] == y[j - 1] {
            idx -= 1;
            common[idx] = x[i - 1];
            let (xi, yj) = (i - 1, j - 1);
            current = match current {
                Some((xs, xe, ys, ye)) if xs == xi + 1 && ys == yj + 1 => Some((xi, xe, yj, ye)),
                other => {
                    flush(other, &mut matches);
                    Some((xi, xi, yj, yj))
                }
            };
            i -= 1;
            j -= 1;
        } else if t[(i - 1) * cols + j] > t[i * cols + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    flush(current, &mut matches);
    if !want_idx {
        return Ok(Reply::Bulk(Bytes::from(common)));
    }
    Ok(Reply::Map(vec![
        (Reply::bulk("matches"), Reply::Array(matches)),
        (Reply::bulk("len"), Reply::Int(total as i64)),
    ]))
}
