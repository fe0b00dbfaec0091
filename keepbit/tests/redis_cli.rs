//! Real Redis tools against a running node: `redis-cli` (Debian's redis-tools) and
//! redis-py. In CI (`CI=true`) a missing tool fails the test; elsewhere it is skipped
//! with a note.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::TestServer;

fn cli(srv: &TestServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &srv.port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// redis-cli's one-shot commands, its stdin mode (one command per line), RESP3 mode and
/// its error display all work against Keepbit.
#[test]
fn redis_cli_talks_to_keepbit() {
    if !support::tool_works("redis-cli", &["--version"], "redis-cli") {
        return;
    }
    let srv = TestServer::start();
    assert_eq!(cli(&srv, &["PING"]), "PONG\n");
    assert_eq!(cli(&srv, &["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(cli(&srv, &["GET", "greeting"]), "hello world\n");
    assert_eq!(cli(&srv, &["RPUSH", "l", "a", "b", "c"]), "3\n");
    assert_eq!(cli(&srv, &["LRANGE", "l", "0", "-1"]), "a\nb\nc\n");
    assert_eq!(cli(&srv, &["--no-raw", "LRANGE", "l", "0", "1"]), "1) \"a\"\n2) \"b\"\n");
    assert_eq!(cli(&srv, &["--no-raw", "INCR", "greeting"]), "(error) ERR value is not an integer or out of range\n");
    assert_eq!(cli(&srv, &["-3", "--no-raw", "HSET", "h", "f", "v"]), "(integer) 1\n");
    assert_eq!(cli(&srv, &["-3", "--no-raw", "HGETALL", "h"]), "1# \"f\" => \"v\"\n");
    assert!(cli(&srv, &["INFO", "server"]).contains("redis_version:"));

    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &srv.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    child.stdin.take().expect("stdin").write_all(b"SET n 41\nINCR n\nMULTI\nINCR n\nEXEC\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n42\nOK\nQUEUED\n43\n");
}

/// `redis-cli --pipe` mass insertion (RESP on stdin) is acknowledged in full.
#[test]
fn redis_cli_pipe_mode_mass_insert() {
    if !support::tool_works("redis-cli", &["--version"], "redis-cli") {
        return;
    }
    let srv = TestServer::start();
    let mut input = Vec::new();
    for i in 0..10_000 {
        let (k, v) = (format!("key:{i}"), format!("value:{i}"));
        input
            .extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len()).as_bytes());
    }
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &srv.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    child.stdin.take().expect("stdin").write_all(&input).expect("write");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 10000"), "{text}");
    assert_eq!(cli(&srv, &["DBSIZE"]), "10000\n");
}

/// redis-py (the most used Redis client) works unchanged: see tests/py/redis_py_smoke.py.
#[test]
fn redis_py_works_unchanged() {
    if !support::tool_works("python3", &["-c", "import redis"], "python3 with redis-py") {
        return;
    }
    let srv = TestServer::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/redis_py_smoke.py");
    let out = Command::new("python3").arg(script).arg(srv.port.to_string()).output().expect("run python3");
    assert!(
        out.status.success(),
        "redis-py smoke test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
