//! Protocol-level behaviour over raw TCP: inline commands, pipelining, RESP3, limits,
//! and bad input that must neither crash the server nor lose the connection where Redis
//! keeps it.

mod support;

use std::io::Write;

use support::{closed, read_some, roundtrip, TestServer};

/// Inline commands (as redis-cli and telnet send them) work, with quoting.
#[test]
fn inline_commands_are_understood() {
    let srv = TestServer::start();
    let mut s = srv.raw();
    assert_eq!(roundtrip(&mut s, b"PING\r\n", 7), b"+PONG\r\n");
    assert_eq!(roundtrip(&mut s, b"set \"a key\" 'a value'\n", 5), b"+OK\r\n");
    assert_eq!(roundtrip(&mut s, b"GET \"a key\"\r\n", 13), b"$7\r\na value\r\n");
    // An empty line is ignored, as in Redis.
    assert_eq!(roundtrip(&mut s, b"\r\nPING\r\n", 7), b"+PONG\r\n");
}

/// Many pipelined requests sent in one write are all answered, in order.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = TestServer::start();
    let mut s = srv.raw();
    let mut input = Vec::new();
    for i in 0..500 {
        input
            .extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$2\r\nk{}\r\n$3\r\nv{:02}\r\n", i % 10, i % 100).as_bytes());
        input.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$2\r\nk{}\r\n", i % 10).as_bytes());
    }
    let mut expected = Vec::new();
    for i in 0..500 {
        expected.extend_from_slice(format!("+OK\r\n$3\r\nv{:02}\r\n", i % 100).as_bytes());
    }
    assert_eq!(roundtrip(&mut s, &input, expected.len()), expected);
}

/// Keys and values are binary-safe: NUL, CR, LF and invalid UTF-8 round-trip.
#[test]
fn binary_keys_and_values_round_trip() {
    let srv = TestServer::start();
    let mut con = srv.conn();
    let key: Vec<u8> = vec![0, b'\r', b'\n', 0xff, 0xfe];
    let value: Vec<u8> = (0..=255u8).collect();
    let _: () = redis::cmd("SET").arg(&key).arg(&value).query(&mut con).unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(got, value);
}

/// HELLO 3 switches to RESP3: maps, doubles, nulls and sets use their RESP3 types.
#[test]
fn hello_3_switches_to_resp3_types() {
    let srv = TestServer::start();
    let mut s = srv.raw();
    let hello = roundtrip(&mut s, b"HELLO 3\r\n", 40);
    assert!(hello.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), "{}", String::from_utf8_lossy(&hello));
    let _ = read_some(&mut s, 1000); // rest of the HELLO map, if split
    assert_eq!(roundtrip(&mut s, b"GET missing\r\n", 3), b"_\r\n");
    assert_eq!(roundtrip(&mut s, b"ZADD z 1.5 m\r\n", 4), b":1\r\n");
    assert_eq!(roundtrip(&mut s, b"ZSCORE z m\r\n", 6), b",1.5\r\n");
    assert_eq!(roundtrip(&mut s, b"HSET h f v\r\n", 4), b":1\r\n");
    assert_eq!(roundtrip(&mut s, b"HGETALL h\r\n", 18), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(roundtrip(&mut s, b"SADD s a\r\n", 4), b":1\r\n");
    assert_eq!(roundtrip(&mut s, b"SMEMBERS s\r\n", 11), b"~1\r\n$1\r\na\r\n");
    assert_eq!(roundtrip(&mut s, b"HELLO 4\r\n", 37), b"-NOPROTO unsupported protocol version\r\n");
    // Back to RESP2.
    let _ = roundtrip(&mut s, b"HELLO 2\r\n", 40);
    let _ = read_some(&mut s, 1000);
    assert_eq!(roundtrip(&mut s, b"GET missing\r\n", 5), b"$-1\r\n");
}

/// Malformed protocol gets `-ERR Protocol error: …` and the connection closes, as in Redis.
#[test]
fn malformed_protocol_is_reported_then_closed() {
    let srv = TestServer::start();
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"*1\r\n$-3\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (b"SET \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"),
    ];
    for (input, reply) in cases {
        let mut s = srv.raw();
        let got = roundtrip(&mut s, input, reply.len());
        assert_eq!(String::from_utf8_lossy(&got), *reply);
        assert!(closed(&mut s), "connection should close after {:?}", String::from_utf8_lossy(input));
    }
    let mut s = srv.raw();
    assert_eq!(roundtrip(&mut s, b"PING\r\n", 7), b"+PONG\r\n");
}

/// A bulk longer than proto-max-bulk-len is refused before it is buffered.
#[test]
fn oversized_bulk_is_refused() {
    let srv = TestServer::start_with(&["--proto-max-bulk-len-bytes", "1024"]);
    let mut s = srv.raw();
    let got = roundtrip(&mut s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n", 45);
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed(&mut s));
    // Within the limit is fine.
    let mut s = srv.raw();
    let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 1000));
    req.extend_from_slice(b"\r\n");
    assert_eq!(roundtrip(&mut s, &req, 5), b"+OK\r\n");
}

/// Bad requests that are valid protocol get Redis's error text and the connection
/// stays usable.
#[test]
fn command_errors_keep_the_connection_open() {
    let srv = TestServer::start();
    let mut s = srv.raw();
    let cases: &[(&[u8], &str)] = &[
        (b"NOSUCH a b\r\n", "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n"),
        (b"GET\r\n", "-ERR wrong number of arguments for 'get' command\r\n"),
        (b"SET k v XX NX\r\n", "-ERR syntax error\r\n"),
        (b"INCRBY k notanumber\r\n", "-ERR value is not an integer or out of range\r\n"),
        (b"LPUSH k x\r\n", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (b"SELECT 99\r\n", "-ERR DB index is out of range\r\n"),
        (b"EXEC\r\n", "-ERR EXEC without MULTI\r\n"),
        (b"CONFIG SET maxclients 1\r\n", "-NOPERM User default has no permissions to run the 'config|set' command\r\n"),
        (b"AUTH admin wrong\r\n", "-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
        (b"AUTH admin test-admin\r\n", "+OK\r\n"),
        (b"CONFIG SET nosuch 1\r\n", "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n"),
    ];
    assert_eq!(roundtrip(&mut s, b"SET k v\r\n", 5), b"+OK\r\n");
    for (input, reply) in cases {
        let got = roundtrip(&mut s, input, reply.len());
        assert_eq!(String::from_utf8_lossy(&got), *reply, "for {:?}", String::from_utf8_lossy(input));
    }
    assert_eq!(roundtrip(&mut s, b"PING\r\n", 7), b"+PONG\r\n");
}

/// A deterministic xorshift generator so the fuzz input is reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn random_frame(rng: &mut XorShift) -> Vec<u8> {
    let commands = ["SET", "GET", "LPUSH", "ZADD", "HSET", "SADD", "EXPIRE", "MULTI", "EXEC", "XX", "*", "$", "\r\n"];
    let mut frame = Vec::new();
    match rng.next() % 4 {
        0 => {
            // Random bytes.
            for _ in 0..rng.next() % 64 {
                frame.push(rng.next() as u8);
            }
        }
        1 => {
            // A well-formed multibulk of random words, possibly truncated.
            let n = 1 + rng.next() % 5;
            frame.extend_from_slice(format!("*{n}\r\n").as_bytes());
            for _ in 0..n {
                let w = commands[(rng.next() % commands.len() as u64) as usize];
                frame.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
            }
            let cut = (rng.next() as usize) % (frame.len() + 1);
            frame.truncate(cut.max(1));
        }
        2 => {
            // Lies about lengths.
            let len = rng.next() % 1_000_000_000_000;
            frame.extend_from_slice(format!("*{}\r\n${len}\r\nabc\r\n", rng.next() % 3).as_bytes());
        }
        _ => {
            // An inline line of random words.
            for _ in 0..1 + rng.next() % 6 {
                frame.extend_from_slice(commands[(rng.next() % commands.len() as u64) as usize].as_bytes());
                frame.push(b' ');
            }
            frame.extend_from_slice(b"\r\n");
        }
    }
    frame
}

/// Random and truncated frames never take the server down: after each connection is
/// fed garbage and dropped, a fresh connection still answers PING.
#[test]
fn fuzzed_frames_never_crash_the_server() {
    let mut srv = TestServer::start();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..300 {
        let mut s = srv.raw();
        s.set_read_timeout(Some(std::time::Duration::from_millis(20))).unwrap();
        for _ in 0..1 + rng.next() % 4 {
            if s.write_all(&random_frame(&mut rng)).is_err() {
                break;
            }
        }
        let _ = read_some(&mut s, 1);
        drop(s);
        if round % 50 == 0 {
            assert!(srv.alive(), "server died in round {round}");
        }
    }
    assert!(srv.alive());
    let mut s = srv.raw();
    assert_eq!(roundtrip(&mut s, b"PING\r\n", 7), b"+PONG\r\n");
}

/// maxclients is enforced with Redis's error, and a slot frees when a client leaves.
#[test]
fn maxclients_refuses_extra_connections() {
    let srv = TestServer::start_with(&["--maxclients", "2"]);
    let mut a = srv.raw();
    let mut b = srv.raw();
    assert_eq!(roundtrip(&mut a, b"PING\r\n", 7), b"+PONG\r\n");
    assert_eq!(roundtrip(&mut b, b"PING\r\n", 7), b"+PONG\r\n");
    let mut c = srv.raw();
    assert_eq!(read_some(&mut c, 39), b"-ERR max number of clients reached\r\n");
    drop(a);
    support::wait_for("a free client slot", std::time::Duration::from_secs(5), || {
        let mut d = srv.raw();
        roundtrip(&mut d, b"PING\r\n", 7) == b"+PONG\r\n"
    });
}
