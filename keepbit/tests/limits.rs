//! Resource limits a careless client runs into: maxmemory.

mod support;

use support::{TestServer, ADMIN_PASSWORD};

/// Above `maxmemory`, writes that may grow the dataset get Redis's OOM error (alone or
/// in MULTI), while reads and deletes go on; raising the limit lets writes through again.
#[test]
fn maxmemory_refuses_growing_writes_with_redis_error() {
    let srv = TestServer::start_with(&["--maxmemory-bytes", "1048576"]);
    let mut con = srv.conn();
    // The process alone uses more than 1 MiB: every growing write is over the limit.
    let err = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("OOM"), "{err}");
    assert!(err.to_string().contains("command not allowed when used memory > 'maxmemory'"), "{err}");
    let got: Option<String> = redis::cmd("GET").arg("k").query(&mut con).expect("reads go on");
    assert_eq!(got, None);
    let deleted: i64 = redis::cmd("DEL").arg("k").query(&mut con).expect("deletes go on");
    assert_eq!(deleted, 0);
    // Inside MULTI the growing command is refused as it is queued, and EXEC aborts.
    redis::cmd("MULTI").query::<()>(&mut con).expect("MULTI");
    let err = redis::cmd("SET").arg("a").arg(1).query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("OOM"), "{err}");
    let err = redis::cmd("EXEC").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
    let info: String = redis::cmd("INFO").arg("memory").query(&mut con).expect("INFO");
    assert!(info.contains("maxmemory:1048576"), "{info}");

    redis::cmd("AUTH").arg("admin").arg(ADMIN_PASSWORD).query::<()>(&mut con).expect("AUTH admin");
    redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("0").query::<()>(&mut con).expect("CONFIG SET");
    redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).expect("no limit: the write goes through");
}

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("statm");
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).expect("rss pages") * 4096
}

/// A client that pipelines a thousand GETs of a 1 MiB value and does not read the
/// replies costs the server about one socket's worth of them, not 1 GiB; the server then
/// serves others, and the client gets its replies once it reads.
#[test]
fn pipelined_replies_a_client_does_not_read_stay_bounded() {
    use std::io::{Read, Write};
    let srv = TestServer::start();
    let mut con = srv.conn();
    redis::cmd("SET").arg("big").arg(vec![b'x'; 1 << 20]).query::<()>(&mut con).expect("SET");
    let before = rss_bytes(srv.pid());
    let mut greedy = srv.raw();
    let requests = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(1000);
    greedy.write_all(requests.as_bytes()).expect("send the pipeline");
    // Give the server time to work through everything it has buffered.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let grown = rss_bytes(srv.pid()).saturating_sub(before);
    assert!(grown < 256 << 20, "server grew by {} MiB for an unread pipeline", grown >> 20);
    let pong: String = redis::cmd("PING").query(&mut con).expect("others are served");
    assert_eq!(pong, "PONG");
    // Reading drains the replies: the first one is the whole value.
    greedy.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
    let mut head = vec![0u8; 16];
    greedy.read_exact(&mut head).expect("replies arrive once read");
    assert!(head.starts_with(b"$1048576\r\nxxxx"), "{:?}", String::from_utf8_lossy(&head));
}

/// A subscriber that never reads while 1 MiB messages are published is disconnected once
/// 32 MiB are queued for it, instead of growing the server without bound; the publisher
/// and everyone else go on.
#[test]
fn a_subscriber_that_never_reads_is_cut_off_by_bytes() {
    use std::io::Write;
    let srv = TestServer::start();
    let mut sleeper = srv.raw();
    sleeper.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n").expect("subscribe");
    let mut con = srv.conn();
    support::wait_for("the subscription", std::time::Duration::from_secs(5), || {
        redis::cmd("PUBSUB").arg("NUMSUB").arg("news").query::<(String, i64)>(&mut con).is_ok_and(|(_, n)| n == 1)
    });
    let before = rss_bytes(srv.pid());
    let message = vec![b'm'; 1 << 20];
    let mut delivered = Vec::new();
    for _ in 0..200 {
        delivered.push(redis::cmd("PUBLISH").arg("news").arg(&message).query::<i64>(&mut con).expect("PUBLISH"));
    }
    assert_eq!(delivered.last(), Some(&0), "the sleeping subscriber was never cut off: {delivered:?}");
    let grown = rss_bytes(srv.pid()).saturating_sub(before);
    assert!(grown < 160 << 20, "server grew by {} MiB for a subscriber that does not read", grown >> 20);
    let pong: String = redis::cmd("PING").query(&mut con).expect("the publisher goes on");
    assert_eq!(pong, "PONG");
}
