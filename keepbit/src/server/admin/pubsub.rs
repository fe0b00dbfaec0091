//! PUBSUB: channel and subscriber counts.

use bytes::Bytes;

use super::{sub_arity, unknown_sub, Result};
use crate::cmd::args::lossy;
use crate::cmd::help_reply;
use crate::reply::Reply;
use crate::server::Server;

pub fn pubsub(srv: &Server, a: &[Bytes]) -> Result<Reply> {
    let sub = lossy(&a[1]).to_lowercase();
    let ps = &srv.pubsub;
    match sub.as_str() {
        "channels" => {
            sub_arity("pubsub", &sub, a.len() <= 3)?;
            Ok(Reply::bulks(ps.channels(a.get(2).map(|p| &p[..]))))
        }
        "numsub" => Ok(Reply::Array(
            a[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(ps.numsub(c) as i64)]).collect(),
        )),
        "numpat" => {
            sub_arity("pubsub", &sub, a.len() == 2)?;
            Ok(Reply::Int(ps.numpat() as i64))
        }
        "shardchannels" => Ok(Reply::Array(vec![])),
        "shardnumsub" => {
            Ok(Reply::Array(a[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(0)]).collect()))
        }
        "help" => Ok(help_reply(&[
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "NUMPAT",
            "NUMSUB [<channel> ...]",
            "HELP",
        ])),
        _ => Err(unknown_sub("pubsub", &a[1])),
    }
}
