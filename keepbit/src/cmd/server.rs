//! Server commands that act on the keyspace: PING, ECHO, TIME, DBSIZE, FLUSHDB, FLUSHALL,
//! SWAPDB, and PUBLISH (applied as an op so that it reaches every node's subscribers).

use bytes::Bytes;

use super::args::{is, parse_i64};
use super::Touch;
use super::{ReadCtx, WriteCtx};
use crate::error::{CmdError, CmdResult};
use crate::reply::Reply;

pub fn ping(_ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    match a.len() {
        1 => Ok(Reply::simple("PONG")),
        2 => Ok(Reply::Bulk(a[1].clone())),
        _ => Err(CmdError::WrongArity("ping".into())),
    }
}

pub fn echo(_ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(a[1].clone()))
}

/// TIME: the time the command runs at (the op's time inside a transaction).
pub fn time(ctx: &mut ReadCtx, _a: &[Bytes]) -> CmdResult {
    let secs = ctx.now_ms / 1000;
    let micros = (ctx.now_ms % 1000) * 1000;
    Ok(Reply::bulks([Bytes::from(secs.to_string()), Bytes::from(micros.to_string())]))
}

pub fn dbsize(ctx: &mut ReadCtx, _a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.db().len() as i64))
}

/// FLUSHDB and FLUSHALL accept ASYNC or SYNC; both flush at once.
fn flush_mode(a: &[Bytes]) -> Result<(), CmdError> {
    match &a[1..] {
        [] => Ok(()),
        [m] if is(m, "async") || is(m, "sync") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

pub fn flushdb(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    flush_mode(a)?;
    ctx.db_mut().clear();
    ctx.touched.push(Touch::Db(ctx.db));
    Ok(Reply::Ok)
}

pub fn flushall(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    flush_mode(a)?;
    for i in 0..ctx.ks.dbs.len() {
        ctx.ks.db_mut(i).clear();
        ctx.touched.push(Touch::Db(i));
    }
    Ok(Reply::Ok)
}

pub fn swapdb(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    let first = parse_i64(&a[1]).map_err(|_| CmdError::err("invalid first DB index"))?;
    let second = parse_i64(&a[2]).map_err(|_| CmdError::err("invalid second DB index"))?;
    let n = ctx.ks.dbs.len() as i64;
    if !(0..n).contains(&first) || !(0..n).contains(&second) {
        return Err(CmdError::DbIndex);
    }
    ctx.ks.dbs.swap(first as usize, second as usize);
    ctx.touched.push(Touch::Db(first as usize));
    ctx.touched.push(Touch::Db(second as usize));
    Ok(Reply::Ok)
}

pub fn publish(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.fx.publish(&a[1], &a[2])))
}
