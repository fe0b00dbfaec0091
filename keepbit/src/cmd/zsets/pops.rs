//! Popping from sorted sets: ZPOPMIN/ZPOPMAX, ZMPOP and the blocking forms' non-blocking attempt.

use super::*;

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
