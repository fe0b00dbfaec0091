//! Hostile and careless clients against a 3-node cluster. Each case is one client's
//! commands, named after what it tries; after each, every node process must still be
//! running and a primary must still serve a write and a read.

mod support;

use std::time::Duration;

use redis::Value;
use support::cluster::{ClusterOptions, TestCluster};
use support::ADMIN_PASSWORD;

const ELECTION: Duration = Duration::from_secs(15);

/// What a case's last command must answer.
enum Expect {
    /// An error reply starting with this text.
    Error(&'static str),
    /// Any non-error reply.
    Reply,
}

struct Case {
    name: &'static str,
    /// Commands run first, each expected to succeed.
    setup: &'static [&'static [&'static str]],
    /// The hostile command.
    command: &'static [&'static str],
    expect: Expect,
}

const MEMBERS: &[&[&str]] = &[
    &["DEL", "s", "h", "z", "l"],
    &["SADD", "s", "a", "b", "c"],
    &["HSET", "h", "a", "1", "b", "2", "c", "3"],
    &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
    &["RPUSH", "l", "a", "b", "c"],
];

const I64_MIN: &str = "-9223372036854775808";
const I64_MAX: &str = "9223372036854775807";

fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        Case {
            name: "srandmember with count -1000000000 (was: 40 GB allocation, abort)",
            setup: MEMBERS,
            command: &["SRANDMEMBER", "s", "-1000000000"],
            expect: Error("ERR value is out of range"),
        },
        Case {
            name: "hrandfield with count -1000000000 withvalues",
            setup: MEMBERS,
            command: &["HRANDFIELD", "h", "-1000000000", "WITHVALUES"],
            expect: Error("ERR value is out of range"),
        },
        Case {
            name: "zrandmember with count -1000000000 withscores",
            setup: MEMBERS,
            command: &["ZRANDMEMBER", "z", "-1000000000", "WITHSCORES"],
            expect: Error("ERR value is out of range"),
        },
        Case {
            name: "srandmember with count i64::MIN",
            setup: MEMBERS,
            command: &["SRANDMEMBER", "s", I64_MIN],
            expect: Error("ERR value is out of range"),
        },
        Case {
            name: "srandmember with count i64::MAX",
            setup: MEMBERS,
            command: &["SRANDMEMBER", "s", I64_MAX],
            expect: Reply,
        },
        Case {
            name: "hrandfield with count i64::MAX",
            setup: MEMBERS,
            command: &["HRANDFIELD", "h", I64_MAX],
            expect: Reply,
        },
        Case {
            name: "cluster add from a client without the admin password",
            setup: &[],
            command: &["KEEPBIT", "CLUSTER", "ADD", "9", "127.0.0.1:1", "127.0.0.1:2"],
            expect: Error("NOPERM"),
        },
        Case {
            name: "cluster remove from a client without the admin password",
            setup: &[],
            command: &["KEEPBIT", "CLUSTER", "REMOVE", "2"],
            expect: Error("NOPERM"),
        },
        Case {
            name: "config set from a client without the admin password",
            setup: &[],
            command: &["CONFIG", "SET", "maxclients", "1"],
            expect: Error("NOPERM"),
        },
        Case {
            name: "client kill from a client without the admin password",
            setup: &[],
            command: &["CLIENT", "KILL", "ID", "1"],
            expect: Error("NOPERM"),
        },
        Case {
            name: "admin auth with a wrong password",
            setup: &[],
            command: &["AUTH", "admin", "guess"],
            expect: Error("WRONGPASS"),
        },
        Case {
            name: "setrange past 512 MB",
            setup: &[],
            command: &["SETRANGE", "big", "536870912", "x"],
            expect: Error("ERR string exceeds maximum allowed size"),
        },
        Case {
            name: "setrange at a negative offset",
            setup: &[],
            command: &["SETRANGE", "big", "-1", "x"],
            expect: Error("ERR offset is out of range"),
        },
        Case {
            name: "lrange over the whole i64 range",
            setup: MEMBERS,
            command: &["LRANGE", "l", I64_MIN, I64_MAX],
            expect: Reply,
        },
        Case {
            name: "zrange with limit i64::MAX",
            setup: MEMBERS,
            command: &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", I64_MAX, I64_MAX],
            expect: Reply,
        },
        Case {
            name: "scan with count i64::MAX",
            setup: MEMBERS,
            command: &["SCAN", "0", "COUNT", I64_MAX],
            expect: Reply,
        },
        Case {
            name: "sscan with count i64::MAX",
            setup: MEMBERS,
            command: &["SSCAN", "s", "0", "COUNT", I64_MAX],
            expect: Reply,
        },
        Case {
            name: "zunionstore with numkeys past the arguments",
            setup: MEMBERS,
            command: &["ZUNIONSTORE", "d", "2147483647", "z"],
            expect: Error("ERR syntax error"),
        },
        Case {
            name: "zinter with numkeys i64::MAX",
            setup: MEMBERS,
            command: &["ZINTER", I64_MAX, "z"],
            expect: Error("ERR"),
        },
        Case {
            name: "lmpop with numkeys i64::MAX",
            setup: MEMBERS,
            command: &["LMPOP", I64_MAX, "l", "LEFT"],
            expect: Error("ERR"),
        },
        Case {
            name: "zmpop with count i64::MAX",
            setup: MEMBERS,
            command: &["ZMPOP", "1", "z", "MIN", "COUNT", I64_MAX],
            expect: Reply,
        },
        Case { name: "spop with count i64::MAX", setup: MEMBERS, command: &["SPOP", "s", I64_MAX], expect: Reply },
        Case {
            name: "lpos with rank i64::MIN",
            setup: MEMBERS,
            command: &["LPOS", "l", "a", "RANK", I64_MIN],
            expect: Error("ERR"),
        },
        Case {
            name: "lpos with count and maxlen i64::MAX",
            setup: MEMBERS,
            command: &["LPOS", "l", "a", "COUNT", I64_MAX, "MAXLEN", I64_MAX],
            expect: Reply,
        },
        Case {
            name: "getrange over the whole i64 range",
            setup: &[&["SET", "str", "hello"]],
            command: &["GETRANGE", "str", I64_MIN, I64_MAX],
            expect: Reply,
        },
        Case {
            name: "incrby overflowing i64",
            setup: &[&["SET", "n", I64_MAX]],
            command: &["INCRBY", "n", "1"],
            expect: Error("ERR increment or decrement would overflow"),
        },
        Case {
            name: "expire with a time past i64 milliseconds",
            setup: &[&["SET", "e", "1"]],
            command: &["EXPIRE", "e", I64_MAX],
            expect: Error("ERR invalid expire time"),
        },
        Case {
            name: "blpop with a huge timeout on a full list",
            setup: MEMBERS,
            command: &["BLPOP", "l", "1e300"],
            expect: Error("ERR timeout is out of range"),
        },
        Case {
            name: "select a database past the configured ones",
            setup: &[],
            command: &["SELECT", "1000000"],
            expect: Error("ERR DB index is out of range"),
        },
    ]
}

fn query(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

/// After the case: every node runs, and a primary serves a write and a read.
fn assert_serving(c: &mut TestCluster, case: &str, i: usize) {
    assert_eq!(c.exited(), vec![], "a node exited after case {case:?}");
    let p = c.wait_primary(ELECTION);
    let mut con = c.conn(p).expect("connect to the primary");
    let key = format!("health:{i}");
    redis::cmd("SET").arg(&key).arg(i).query::<()>(&mut con).unwrap_or_else(|e| panic!("after {case:?}: SET: {e}"));
    let v: usize = redis::cmd("GET").arg(&key).query(&mut con).unwrap_or_else(|e| panic!("after {case:?}: GET: {e}"));
    assert_eq!(v, i, "after {case:?}");
}

#[test]
fn no_hostile_command_takes_the_cluster_down() {
    let mut c = TestCluster::start(ClusterOptions { extra: "max_entry_bytes = 1048576", ..ClusterOptions::default() });
    let p = c.wait_settled(ELECTION);
    let members_before = c.status(p).expect("status");
    for (i, case) in cases().iter().enumerate() {
        let p = c.wait_primary(ELECTION);
        let mut con = c.conn(p).expect("connect");
        for s in case.setup {
            query(&mut con, s).unwrap_or_else(|e| panic!("{}: setup {s:?}: {e}", case.name));
        }
        let got = query(&mut con, case.command);
        match (&case.expect, &got) {
            (Expect::Reply, Ok(_)) => {}
            (Expect::Error(prefix), Err(e)) => {
                let text =
                    format!("{}{}", e.code().map(|c| format!("{c} ")).unwrap_or_default(), e.detail().unwrap_or(""));
                assert!(text.starts_with(prefix), "{}: got error {text:?}, want {prefix:?}", case.name);
            }
            _ => panic!("{}: got {got:?}", case.name),
        }
        // The connection stays usable after the error.
        let pong: String = redis::cmd("PING").query(&mut con).unwrap_or_else(|e| panic!("{}: PING: {e}", case.name));
        assert_eq!(pong, "PONG", "{}", case.name);
        assert_serving(&mut c, case.name, i);
    }
    oversized_writes_are_refused_before_proposing(&mut c);
    let p = c.wait_primary(ELECTION);
    let members_after = c.status(p).expect("status");
    let member_lines = |s: &str| {
        s.lines()
            .filter(|l| l.contains("peer="))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(member_lines(&members_after), member_lines(&members_before), "membership changed:\n{members_after}");
}

/// A write whose log entry would exceed `max_entry_bytes` (1 MiB here) is refused before
/// it is proposed, alone or as a MULTI block, and leaves nothing behind.
fn oversized_writes_are_refused_before_proposing(c: &mut TestCluster) {
    let p = c.wait_primary(ELECTION);
    let mut con = c.conn(p).expect("connect");
    let err = redis::cmd("SET").arg("huge").arg(vec![b'x'; 2 << 20]).query::<()>(&mut con).unwrap_err();
    assert!(err.to_string().contains("over max_entry_bytes (1048576)"), "{err}");
    let half = vec![b'y'; 600 << 10];
    redis::cmd("MULTI").query::<()>(&mut con).expect("MULTI");
    for k in ["half:1", "half:2"] {
        let queued: String = redis::cmd("SET").arg(k).arg(&half).query(&mut con).expect("SET queued");
        assert_eq!(queued, "QUEUED");
    }
    let exec: redis::RedisResult<Value> = redis::cmd("EXEC").query(&mut con);
    let text = format!("{exec:?}");
    assert!(text.contains("over max_entry_bytes"), "EXEC answered {text}");
    let left: (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) =
        redis::pipe().get("huge").get("half:1").get("half:2").query(&mut con).expect("GET");
    assert_eq!(left, (None, None, None), "an oversized write left data behind");
    assert_serving(c, "oversized writes", 10_000);
}

/// The admin user can still change configuration: the gate keeps others out, not it.
#[test]
fn the_admin_user_passes_the_gate() {
    let c = TestCluster::start(ClusterOptions::default());
    let p = c.wait_settled(ELECTION);
    let mut con = c.conn(p).expect("connect");
    redis::cmd("AUTH").arg("admin").arg(ADMIN_PASSWORD).query::<()>(&mut con).expect("AUTH admin");
    redis::cmd("CONFIG").arg("SET").arg("maxclients").arg("500").query::<()>(&mut con).expect("CONFIG SET as admin");
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut con).expect("CONFIG GET");
    assert_eq!(got, vec!["maxclients".to_string(), "500".to_string()]);
    // RESET drops the admin permission with the rest of the connection state.
    redis::cmd("RESET").query::<()>(&mut con).expect("RESET");
    let err = redis::cmd("CONFIG").arg("SET").arg("maxclients").arg("400").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err}");
}
