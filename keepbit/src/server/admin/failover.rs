//! FAILOVER: a planned switchover from the primary (`raft::switchover`), with Redis's
//! syntax and error texts. Unlike Redis, it answers once the new primary is in place (so
//! discovery names it when the reply arrives), and a TIMEOUT that is not given is 5 s.

use bytes::Bytes;

use super::Result;
use crate::cmd::args::{is, lossy, parse_i64};
use crate::error::CmdError;
use crate::raft::switchover::{FailoverRequest, Phase};
use crate::reply::Reply;
use crate::server::Server;

/// What FAILOVER's arguments ask for: `Ok(None)` is ABORT.
pub fn parse(a: &[Bytes]) -> Result<Option<FailoverRequest>> {
    if a.len() == 2 && is(&a[1], "abort") {
        return Ok(None);
    }
    let mut req = FailoverRequest::default();
    let mut j = 1;
    while j < a.len() {
        if is(&a[j], "timeout") && j + 1 < a.len() && req.timeout.is_none() {
            let ms = parse_i64(&a[j + 1])?;
            if ms <= 0 {
                return Err(CmdError::err("FAILOVER timeout must be greater than 0"));
            }
            req.timeout = Some(std::time::Duration::from_millis(ms as u64));
            j += 2;
        } else if is(&a[j], "to") && j + 2 < a.len() && req.to.is_none() {
            let port = parse_i64(&a[j + 2])?;
            req.to = Some(format!("{}:{port}", lossy(&a[j + 1])));
            j += 3;
        } else if is(&a[j], "force") && !req.force {
            req.force = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(Some(req))
}

/// `FAILOVER [TO host port [FORCE]] [TIMEOUT ms] | ABORT`. On success the clients of this
/// node (now a standby) are closed, as on any demotion, except the caller's.
pub async fn failover(srv: &Server, caller: u64, a: &[Bytes]) -> Result<Reply> {
    let req = parse(a)?;
    let Some(c) = srv.cluster.as_deref() else {
        return Err(CmdError::err(match req {
            None => "No failover in progress.",
            Some(_) => "FAILOVER requires connected replicas.",
        }));
    };
    let Some(req) = req else {
        return c.abort_failover().map(|()| Reply::Ok).map_err(|e| CmdError::err(e.to_string()));
    };
    c.failover(req).await.map_err(|e| CmdError::err(e.to_string()))?;
    srv.clients.all().iter().filter(|cl| cl.id != caller && !cl.is_pubsub()).for_each(|cl| cl.kill("switched over"));
    Ok(Reply::Ok)
}

/// `master_failover_state` for INFO replication.
pub fn state(srv: &Server) -> &'static str {
    srv.cluster.as_deref().map_or(Phase::None, |c| c.failover_phase()).name()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|w| Bytes::from(w.to_string())).collect()
    }

    /// (arguments, parsed or Redis's error text)
    #[test]
    fn failover_arguments() {
        let ok = |to: Option<&str>, ms: Option<u64>, force: bool| {
            Ok(Some(FailoverRequest {
                to: to.map(String::from),
                timeout: ms.map(std::time::Duration::from_millis),
                force,
            }))
        };
        let err = |t: &str| Err(t.to_string());
        let cases: Vec<(&str, std::result::Result<Option<FailoverRequest>, String>)> = vec![
            ("FAILOVER", ok(None, None, false)),
            ("FAILOVER abort", Ok(None)),
            ("FAILOVER TO 127.0.0.1 6380", ok(Some("127.0.0.1:6380"), None, false)),
            ("FAILOVER TO 127.0.0.1 6380 FORCE TIMEOUT 50", ok(Some("127.0.0.1:6380"), Some(50), true)),
            ("FAILOVER TIMEOUT 100", ok(None, Some(100), false)),
            ("FAILOVER TIMEOUT -1", err("ERR FAILOVER timeout must be greater than 0")),
            ("FAILOVER TIMEOUT 0", err("ERR FAILOVER timeout must be greater than 0")),
            ("FAILOVER TIMEOUT x", err("ERR value is not an integer or out of range")),
            ("FAILOVER TIMEOUT", err("ERR syntax error")),
            ("FAILOVER TO 127.0.0.1", err("ERR syntax error")),
            ("FAILOVER TO 127.0.0.1 port", err("ERR value is not an integer or out of range")),
            ("FAILOVER TIMEOUT 5 TIMEOUT 6", err("ERR syntax error")),
            ("FAILOVER ABORT TIMEOUT 5", err("ERR syntax error")),
            ("FAILOVER nonsense", err("ERR syntax error")),
        ];
        for (line, want) in cases {
            let got = parse(&args(line)).map_err(|e| e.to_string());
            assert_eq!(got, want, "{line}");
        }
    }
}
