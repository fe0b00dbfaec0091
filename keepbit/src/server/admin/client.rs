//! CLIENT: connection introspection and control (ID, SETNAME, LIST, KILL …).

use bytes::Bytes;

use super::{on_off, sub_arity, unknown_sub, valid_client_name, Result};
use crate::cmd::args::{is, lossy, parse_i64};
use crate::cmd::help_reply;
use crate::error::CmdError;
use crate::reply::Reply;
use crate::server::clients::ClientShared;
use crate::server::Server;

pub fn client(srv: &Server, me: &ClientShared, a: &[Bytes]) -> Result<Reply> {
    let sub = lossy(&a[1]).to_lowercase();
    let n = a.len();
    match sub.as_str() {
        "id" => {
            sub_arity("client", &sub, n == 2)?;
            Ok(Reply::Int(me.id as i64))
        }
        "setname" => {
            sub_arity("client", &sub, n == 3)?;
            let name = valid_client_name(&a[2])?;
            *me.name.lock().unwrap_or_else(|e| e.into_inner()) = name;
            Ok(Reply::Ok)
        }
        "getname" => {
            sub_arity("client", &sub, n == 2)?;
            let name = me.name();
            Ok(if name.is_empty() { Reply::Nil } else { Reply::bulk(name) })
        }
        "info" => {
            sub_arity("client", &sub, n == 2)?;
            Ok(Reply::Verbatim(format!("{}\n", me.info_line())))
        }
        "list" => client_list(srv, &a[2..]),
        "kill" => client_kill(srv, me, &a[2..]),
        "setinfo" => {
            sub_arity("client", &sub, n == 4)?;
            let target = if is(&a[2], "lib-name") {
                &me.lib_name
            } else if is(&a[2], "lib-ver") {
                &me.lib_ver
            } else {
                return Err(CmdError::err(format!("Unrecognized option '{}'", lossy(&a[2]))));
            };
            *target.lock().unwrap_or_else(|e| e.into_inner()) = valid_client_name(&a[3])?;
            Ok(Reply::Ok)
        }
        "no-evict" | "no-touch" => {
            sub_arity("client", &sub, n == 3)?;
            on_off(&a[2])?;
            Ok(Reply::Ok)
        }
        "help" => Ok(help_reply(&[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "ID",
            "INFO",
            "KILL <ip:port> | [ID <id>] [ADDR <ip:port>] [LADDR <ip:port>] [SKIPME yes|no] [MAXAGE <s>]",
            "LIST [TYPE (NORMAL|PUBSUB)] [ID <id> ...]",
            "NO-EVICT (ON|OFF)",
            "NO-TOUCH (ON|OFF)",
            "SETINFO <option> <value>",
            "SETNAME <name>",
            "HELP",
        ])),
        _ => Err(unknown_sub("client", &a[1])),
    }
}

fn client_list(srv: &Server, opts: &[Bytes]) -> Result<Reply> {
    let mut clients = srv.clients.all();
    match opts {
        [] => {}
        [t, kind] if is(t, "type") => {
            let kind = lossy(kind).to_lowercase();
            match kind.as_str() {
                "normal" => clients.retain(|c| !c.is_pubsub()),
                "pubsub" => clients.retain(|c| c.is_pubsub()),
                "master" | "replica" | "slave" => clients.clear(),
                _ => return Err(CmdError::err(format!("Unknown client type '{kind}'"))),
            }
        }
        [id, ids @ ..] if is(id, "id") && !ids.is_empty() => {
            let wanted = ids
                .iter()
                .map(|i| parse_i64(i).map_err(|_| CmdError::err("Invalid client ID")))
                .collect::<Result<Vec<_>>>()?;
            clients.retain(|c| wanted.contains(&(c.id as i64)));
        }
        _ => return Err(CmdError::Syntax),
    }
    let text: String = clients.iter().map(|c| c.info_line() + "\n").collect();
    Ok(Reply::Verbatim(text))
}

fn client_kill(srv: &Server, me: &ClientShared, opts: &[Bytes]) -> Result<Reply> {
    let clients = srv.clients.all();
    if let [addr] = opts {
        // Old form: CLIENT KILL ip:port.
        let target = lossy(addr);
        let c = clients.iter().find(|c| c.addr.to_string() == target).ok_or_else(|| CmdError::err("No such client"))?;
        c.kill("CLIENT KILL");
        return Ok(Reply::Ok);
    }
    if opts.is_empty() || opts.len() % 2 != 0 {
        return Err(CmdError::Syntax);
    }
    let mut matching: Vec<_> = clients.clone();
    let mut skipme = true;
    for pair in opts.chunks(2) {
        let (k, v) = (&pair[0], lossy(&pair[1]));
        if is(k, "id") {
            let id = parse_i64(&pair[1]).map_err(|_| CmdError::err("client-id should be greater than 0"))?;
            matching.retain(|c| c.id as i64 == id);
        } else if is(k, "addr") {
            matching.retain(|c| c.addr.to_string() == v);
        } else if is(k, "laddr") {
            matching.retain(|c| c.laddr.to_string() == v);
        } else if is(k, "user") {
            if v != "default" {
                matching.clear();
            }
        } else if is(k, "type") {
            match v.to_lowercase().as_str() {
                "normal" => matching.retain(|c| !c.is_pubsub()),
                "pubsub" => matching.retain(|c| c.is_pubsub()),
                "master" | "replica" | "slave" => matching.clear(),
                _ => return Err(CmdError::err(format!("Unknown client type '{v}'"))),
            }
        } else if is(k, "skipme") {
            skipme = match v.to_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(CmdError::Syntax),
            };
        } else if is(k, "maxage") {
            let age = parse_i64(&pair[1])?;
            matching.retain(|c| c.created.elapsed().as_secs() as i64 >= age);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if skipme {
        matching.retain(|c| c.id != me.id);
    }
    matching.iter().for_each(|c| c.kill("CLIENT KILL"));
    Ok(Reply::Int(matching.len() as i64))
}
