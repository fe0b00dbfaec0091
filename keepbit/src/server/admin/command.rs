//! COMMAND: the command table as clients see it (COUNT, INFO, DOCS, LIST, GETKEYS).

use bytes::Bytes;

use super::{sub_arity, unknown_sub, Result};
use crate::cmd::args::{is, lossy};
use crate::cmd::{self, flags, help_reply, Spec};
use crate::error::CmdError;
use crate::glob;
use crate::reply::Reply;

fn command_info(spec: &Spec) -> Reply {
    let flag_names = flags::NAMES.iter().filter(|(f, _)| spec.has(*f)).map(|(_, n)| Reply::simple(n)).collect();
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(flag_names),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(vec![Reply::simple(&format!("@{}", spec.group))]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn command_doc(spec: &Spec) -> Reply {
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
    ])
}

fn public_specs() -> impl Iterator<Item = &'static Spec> {
    cmd::all().iter().filter(|s| !s.has(flags::INTERNAL))
}

pub fn command(a: &[Bytes]) -> Result<Reply> {
    let Some(sub) = a.get(1) else {
        return Ok(Reply::Array(public_specs().map(command_info).collect()));
    };
    let sub = lossy(sub).to_lowercase();
    match sub.as_str() {
        "count" => {
            sub_arity("command", &sub, a.len() == 2)?;
            Ok(Reply::Int(public_specs().count() as i64))
        }
        "info" => Ok(Reply::Array(if a.len() == 2 {
            public_specs().map(command_info).collect()
        } else {
            a[2..].iter().map(|n| cmd::lookup(n).map_or(Reply::Nil, command_info)).collect()
        })),
        "docs" => {
            let specs: Vec<&Spec> = if a.len() == 2 {
                public_specs().collect()
            } else {
                a[2..].iter().filter_map(|n| cmd::lookup(n)).collect()
            };
            Ok(Reply::Map(specs.into_iter().map(|s| (Reply::bulk(s.name), command_doc(s))).collect()))
        }
        "list" => {
            let pattern = match &a[2..] {
                [] => None,
                [f, kind, p] if is(f, "filterby") && is(kind, "pattern") => Some(p.clone()),
                [f, kind, cat] if is(f, "filterby") && is(kind, "aclcat") => {
                    let cat = lossy(cat).to_lowercase();
                    return Ok(Reply::bulks(public_specs().filter(|s| s.group == cat).map(|s| Bytes::from(s.name))));
                }
                [f, kind, _] if is(f, "filterby") && is(kind, "module") => return Ok(Reply::Array(vec![])),
                _ => return Err(CmdError::Syntax),
            };
            Ok(Reply::bulks(
                public_specs()
                    .filter(|s| pattern.as_ref().is_none_or(|p| glob::matches(p, s.name.as_bytes())))
                    .map(|s| Bytes::from(s.name)),
            ))
        }
        "getkeys" => {
            let args = &a[2..];
            let spec =
                args.first().and_then(|n| cmd::lookup(n)).ok_or_else(|| CmdError::err("Invalid command specified"))?;
            if !spec.arity_ok(args.len()) {
                return Err(CmdError::err("Invalid number of arguments specified for command"));
            }
            let keys = spec.keys(args);
            if keys.is_empty() {
                return Err(CmdError::err("The command has no key arguments"));
            }
            Ok(Reply::bulks(keys.into_iter().cloned()))
        }
        "help" => Ok(help_reply(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "COUNT",
            "DOCS [<command-name> ...]",
            "GETKEYS <full-command>",
            "INFO [<command-name> ...]",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "HELP",
        ])),
        _ => Err(unknown_sub("command", &a[1])),
    }
}
