//! Behaviour across connections and time: pub/sub, blocking pops, transactions with
//! WATCH, expiry.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use redis::Value;
use support::{read_some, roundtrip, wait_for, TestServer};

/// A message published on one connection reaches subscribers on others, by channel and
/// by pattern, and PUBLISH counts the receivers.
#[test]
fn pubsub_delivers_across_connections() {
    let srv = TestServer::start();
    let mut sub_con = srv.conn();
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("news").unwrap();
    sub.psubscribe("sport.*").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut publisher = srv.conn();
    let n: i64 = redis::cmd("PUBLISH").arg("news").arg("hello").query(&mut publisher).unwrap();
    assert_eq!(n, 1);
    let msg = sub.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), "news");
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
    let n: i64 = redis::cmd("PUBLISH").arg("sport.ski").arg("gold").query(&mut publisher).unwrap();
    assert_eq!(n, 1);
    let msg = sub.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), "sport.ski");
    assert_eq!(msg.get_pattern::<String>().unwrap(), "sport.*");
    let numsub: Vec<Value> = redis::cmd("PUBSUB").arg("NUMSUB").arg("news").query(&mut publisher).unwrap();
    assert_eq!(numsub[1], Value::Int(1));
    let n: i64 = redis::cmd("PUBLISH").arg("other").arg("x").query(&mut publisher).unwrap();
    assert_eq!(n, 0);
}

/// In RESP2 a subscribed connection refuses ordinary commands with Redis's error, and
/// PING answers as a pub/sub message; in RESP3 messages arrive as push frames.
#[test]
fn subscribed_connections_follow_redis_rules() {
    let srv = TestServer::start();
    let mut s = srv.raw();
    let r = roundtrip(&mut s, b"SUBSCRIBE c\r\n", 33);
    assert_eq!(r, b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
    let err = "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";
    assert_eq!(String::from_utf8_lossy(&roundtrip(&mut s, b"GET k\r\n", err.len())), err);
    assert_eq!(roundtrip(&mut s, b"PING\r\n", 21), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");

    let mut r3 = srv.raw();
    let _ = roundtrip(&mut r3, b"HELLO 3\r\n", 100);
    let _ = read_some(&mut r3, 200);
    assert_eq!(roundtrip(&mut r3, b"SUBSCRIBE c\r\n", 33), b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
    // RESP3 allows ordinary commands while subscribed.
    assert_eq!(roundtrip(&mut r3, b"PING\r\n", 7), b"+PONG\r\n");
    let mut p = srv.raw();
    assert_eq!(roundtrip(&mut p, b"PUBLISH c hi\r\n", 4), b":2\r\n");
    assert_eq!(read_some(&mut r3, 32), b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n");
}

/// BLPOP waits until another client pushes, then returns that element; the element is
/// not left in the list.
#[test]
fn blpop_is_woken_by_a_push_from_another_client() {
    let srv = TestServer::start();
    let url = srv.url();
    let waiter = thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let started = Instant::now();
        let got: (String, String) = redis::cmd("BLPOP").arg("q1").arg("q2").arg(10).query(&mut con).unwrap();
        (got, started.elapsed())
    });
    let mut con = srv.conn();
    wait_for("the client to block", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
        info.contains("blocked_clients:1")
    });
    let _: i64 = redis::cmd("RPUSH").arg("q2").arg("job").query(&mut con).unwrap();
    let ((key, value), waited) = waiter.join().unwrap();
    assert_eq!((key.as_str(), value.as_str()), ("q2", "job"));
    assert!(waited < Duration::from_secs(10));
    let len: i64 = redis::cmd("LLEN").arg("q2").query(&mut con).unwrap();
    assert_eq!(len, 0);
}

/// Blocking commands time out with a null reply; BLMOVE and BZPOPMIN are woken too.
#[test]
fn blocking_commands_time_out_and_wake() {
    let srv = TestServer::start();
    let mut con = srv.conn();
    let started = Instant::now();
    let v: Value = redis::cmd("BRPOP").arg("empty").arg("0.2").query(&mut con).unwrap();
    assert_eq!(v, Value::Nil);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let url = srv.url();
    let mover = thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let moved: String =
            redis::cmd("BLMOVE").arg("src").arg("dst").arg("LEFT").arg("RIGHT").arg(10).query(&mut con).unwrap();
        let popped: (String, String, f64) = redis::cmd("BZPOPMIN").arg("z").arg(10).query(&mut con).unwrap();
        (moved, popped)
    });
    wait_for("the client to block", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
        info.contains("blocked_clients:1")
    });
    let _: i64 = redis::cmd("LPUSH").arg("src").arg("x").query(&mut con).unwrap();
    wait_for("the client to block again", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
        info.contains("blocked_clients:1")
    });
    let _: i64 = redis::cmd("ZADD").arg("z").arg(2).arg("m").query(&mut con).unwrap();
    let (moved, popped) = mover.join().unwrap();
    assert_eq!(moved, "x");
    assert_eq!(popped, ("z".to_string(), "m".to_string(), 2.0));
    let dst: Vec<String> = redis::cmd("LRANGE").arg("dst").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(dst, vec!["x"]);
}

/// A client that disconnects while blocked does not swallow a later push.
#[test]
fn a_disconnected_blocked_client_does_not_steal_elements() {
    let srv = TestServer::start();
    let mut s = srv.raw();
    use std::io::Write;
    s.write_all(b"BLPOP q 0\r\n").unwrap();
    let mut con = srv.conn();
    wait_for("the client to block", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
        info.contains("blocked_clients:1")
    });
    drop(s);
    wait_for("the blocked client to go", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
        info.contains("blocked_clients:0")
    });
    let _: i64 = redis::cmd("RPUSH").arg("q").arg("kept").query(&mut con).unwrap();
    let v: Vec<String> = redis::cmd("LRANGE").arg("q").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(v, vec!["kept"]);
}

/// MULTI/EXEC runs queued commands atomically; a WATCHed key changed by another client
/// aborts EXEC with a null reply; queue-time errors abort with EXECABORT.
#[test]
fn transactions_and_watch_conflicts() {
    let srv = TestServer::start();
    let mut a = srv.conn();
    let mut b = srv.conn();
    let (x, y): (i64, i64) =
        redis::pipe().atomic().cmd("INCR").arg("n").cmd("INCRBY").arg("n").arg(10).query(&mut a).unwrap();
    assert_eq!((x, y), (1, 11));

    let _: () = redis::cmd("WATCH").arg("n").query(&mut a).unwrap();
    let _: i64 = redis::cmd("INCR").arg("n").query(&mut b).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut a).unwrap();
    let _: Value = redis::cmd("SET").arg("n").arg(100).query(&mut a).unwrap();
    let r: Value = redis::cmd("EXEC").query(&mut a).unwrap();
    assert_eq!(r, Value::Nil, "EXEC must abort when a watched key changed");
    let n: i64 = redis::cmd("GET").arg("n").query(&mut a).unwrap();
    assert_eq!(n, 12);

    // Unchanged watched key: EXEC runs.
    let _: () = redis::cmd("WATCH").arg("n").query(&mut a).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut a).unwrap();
    let _: Value = redis::cmd("SET").arg("n").arg(100).query(&mut a).unwrap();
    let r: Vec<String> = redis::cmd("EXEC").query(&mut a).unwrap();
    assert_eq!(r, vec!["OK"]);

    // Queue-time error: EXECABORT, nothing applied.
    let mut s = srv.raw();
    assert_eq!(roundtrip(&mut s, b"MULTI\r\n", 5), b"+OK\r\n");
    assert_eq!(roundtrip(&mut s, b"SET n 1\r\n", 9), b"+QUEUED\r\n");
    let arity = "-ERR wrong number of arguments for 'get' command\r\n";
    assert_eq!(String::from_utf8_lossy(&roundtrip(&mut s, b"GET\r\n", arity.len())), arity);
    let abort = "-EXECABORT Transaction discarded because of previous errors.\r\n";
    assert_eq!(String::from_utf8_lossy(&roundtrip(&mut s, b"EXEC\r\n", abort.len())), abort);
    let n: i64 = redis::cmd("GET").arg("n").query(&mut a).unwrap();
    assert_eq!(n, 100);

    // Runtime errors inside EXEC are per command; the rest still apply.
    assert_eq!(roundtrip(&mut s, b"MULTI\r\n", 5), b"+OK\r\n");
    assert_eq!(roundtrip(&mut s, b"LPUSH n x\r\n", 9), b"+QUEUED\r\n");
    assert_eq!(roundtrip(&mut s, b"INCR n\r\n", 9), b"+QUEUED\r\n");
    let reply = "*2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n:101\r\n";
    assert_eq!(String::from_utf8_lossy(&roundtrip(&mut s, b"EXEC\r\n", reply.len())), reply);
}

/// Keys with a TTL disappear for readers at once and are deleted by active expiry.
#[test]
fn keys_expire() {
    let srv = TestServer::start();
    let mut con = srv.conn();
    let _: () = redis::cmd("SET").arg("short").arg("v").arg("PX").arg(100).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("long").arg("v").arg("EX").arg(100).query(&mut con).unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("long").query(&mut con).unwrap();
    assert!((99..=100).contains(&ttl));
    wait_for("the short key to expire", Duration::from_secs(5), || {
        let v: Option<String> = redis::cmd("GET").arg("short").query(&mut con).unwrap();
        v.is_none()
    });
    wait_for("active expiry to delete it", Duration::from_secs(5), || {
        let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        n == 1
    });
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    assert!(info.contains("expired_keys:1"), "{info}");
}

/// CLIENT KILL closes another connection (for the admin user only); CLIENT LIST shows
/// names and ids.
#[test]
fn client_list_and_kill() {
    let srv = TestServer::start();
    let mut victim = srv.raw();
    assert_eq!(roundtrip(&mut victim, b"CLIENT SETNAME victim\r\n", 5), b"+OK\r\n");
    let id_reply = roundtrip(&mut victim, b"CLIENT ID\r\n", 3);
    let id: String = String::from_utf8_lossy(&id_reply).trim_matches(|c: char| !c.is_ascii_digit()).to_string();
    let mut con = srv.conn();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(list.contains(&format!("id={id} ")) && list.contains("name=victim"), "{list}");
    let refused = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id).query::<i64>(&mut con).unwrap_err();
    assert_eq!(refused.code(), Some("NOPERM"), "{refused}");
    redis::cmd("AUTH").arg("admin").arg(support::ADMIN_PASSWORD).query::<()>(&mut con).expect("AUTH admin");
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id).query(&mut con).unwrap();
    assert_eq!(killed, 1);
    assert!(support::closed(&mut victim));
}
