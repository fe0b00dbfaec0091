//! `KEEPBIT EVENTS [COUNT n]`: the failover journal, newest first. Each record is a map
//! (a flat array of field, value pairs in RESP2): term, old and new primary, cause, the
//! timestamps (Unix ms, nil when unknown) and the measured unavailability (`mttr_ms`).

use bytes::Bytes;

use super::Result;
use crate::cmd::args::{is, parse_i64};
use crate::error::CmdError;
use crate::reply::Reply;
use crate::server::Server;
use crate::store::journal::{FailoverRecord, JOURNAL_RECORDS_MAX};

/// Records shown without COUNT.
pub const EVENTS_DEFAULT_COUNT: usize = 10;

/// The COUNT an `EVENTS` argument list asks for (`args` after `EVENTS`).
pub fn events_count(args: &[Bytes]) -> Result<usize> {
    match args {
        [] => Ok(EVENTS_DEFAULT_COUNT),
        [word, n] if is(word, "count") => match parse_i64(n) {
            Ok(n) if n > 0 => Ok((n as usize).min(JOURNAL_RECORDS_MAX)),
            Ok(_) => Err(CmdError::err("COUNT must be positive")),
            Err(e) => Err(e),
        },
        _ => Err(CmdError::Syntax),
    }
}

fn opt(v: Option<u64>) -> Reply {
    v.map_or(Reply::Nil, |v| Reply::Int(v as i64))
}

/// One record as the wire shows it.
pub fn record_reply(r: &FailoverRecord) -> Reply {
    let field = |k: &'static str, v: Reply| (Reply::bulk(k), v);
    Reply::Map(vec![
        field("term", Reply::Int(r.term as i64)),
        field("old_primary", opt(r.old_primary)),
        field("new_primary", Reply::Int(r.new_primary as i64)),
        field("cause", Reply::bulk(r.cause.to_string())),
        field("last_contact_ms", opt(r.last_contact_ms)),
        field("detected_ms", opt(r.detected_ms)),
        field("elected_ms", Reply::Int(r.elected_ms as i64)),
        field("first_commit_ms", opt(r.first_commit_ms)),
        field("mttr_ms", opt(r.mttr_ms())),
    ])
}

/// `KEEPBIT EVENTS [COUNT n]` (`a` is the whole command).
pub fn events(srv: &Server, a: &[Bytes]) -> Result<Reply> {
    let count = events_count(&a[2..])?;
    Ok(Reply::Array(srv.node.machine.journal(count).iter().map(record_reply).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    /// (arguments after EVENTS, count or error)
    #[test]
    fn events_arguments() {
        let cases: [(&[&str], std::result::Result<usize, &str>); 7] = [
            (&[], Ok(10)),
            (&["COUNT", "3"], Ok(3)),
            (&["count", "5000"], Ok(JOURNAL_RECORDS_MAX)),
            (&["COUNT", "0"], Err("ERR COUNT must be positive")),
            (&["COUNT", "x"], Err("ERR value is not an integer or out of range")),
            (&["COUNT"], Err("ERR syntax error")),
            (&["LIMIT", "3"], Err("ERR syntax error")),
        ];
        for (words, want) in cases {
            let got = events_count(&args(words)).map_err(|e| match e.to_reply() {
                Reply::Error(e) => e,
                other => format!("{other:?}"),
            });
            assert_eq!(got.as_ref().map_err(String::as_str), want.as_ref().map_err(|e| *e), "{words:?}");
        }
    }
}
