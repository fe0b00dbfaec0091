//! A mutation fuzzer for what a peer or client can send: the RESP request decoder, the
//! peer frame decoder, and op apply (an op from the log or a peer is data this node did
//! not validate). Not coverage-guided (cargo-fuzz needs a nightly toolchain); inputs are
//! valid samples mutated at random, plus random bytes and random commands. Any panic is
//! a finding: its input is written to `fuzz-findings/` and the run goes on.
//!
//! `cargo run --release --example fuzz -- <resp|peer|op|all> <seconds> [seed]`
//! (bench/fuzz.sh runs every target).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use keepbit::cmd::{self, NoEffects};
use keepbit::raft::peer::{decode_payload, decode_request, split_frame, PeerResponse};
use keepbit::store::{Keyspace, Op, OpKind};
use keepbit_resp::decode::{decode_frame, decode_request as resp_request};
use keepbit_resp::Limits;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Valid RESP requests and frames the mutations start from.
const RESP_SEEDS: &[&[u8]] = &[
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"PING\r\n",
    b"SET k \"a b\" EX 10\r\n",
    b"*1\r\n*2\r\n:1\r\n$-1\r\n",
    b"%1\r\n+a\r\n,1.5\r\n",
    b">2\r\n+x\r\n_\r\n",
    b"$5\r\nhello\r\n",
];

fn mutate(rng: &mut SmallRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.gen_range(1..6) {
        let at = if v.is_empty() { 0 } else { rng.gen_range(0..v.len()) };
        match rng.gen_range(0..7) {
            0 if !v.is_empty() => v[at] = rng.gen(),
            1 => v.insert(at, rng.gen()),
            2 if !v.is_empty() => {
                v.remove(at);
            }
            3 => v.truncate(at),
            4 => {
                let digits = ["-1", "0", "99999999999", "-99999999999", "18446744073709551616", "2147483648"];
                let d = digits[rng.gen_range(0..digits.len())];
                v.splice(at..at, d.bytes());
            }
            5 => {
                let other = RESP_SEEDS[rng.gen_range(0..RESP_SEEDS.len())];
                v.extend_from_slice(other);
            }
            _ => v.extend((0..rng.gen_range(0..16)).map(|_| rng.gen::<u8>())),
        }
    }
    v
}

fn fuzz_resp(rng: &mut SmallRng) -> Vec<u8> {
    let seed = RESP_SEEDS[rng.gen_range(0..RESP_SEEDS.len())];
    let input = mutate(rng, seed);
    let limits = Limits { bulk_len_max: 1 << 20, multibulk_len_max: 1 << 10, ..Limits::default() };
    let mut buf = BytesMut::from(&input[..]);
    while let Ok(Some(_)) = resp_request(&mut buf, &limits) {}
    let mut buf = BytesMut::from(&input[..]);
    while let Ok(Some(_)) = decode_frame(&mut buf, &limits) {}
    input
}

fn fuzz_peer(rng: &mut SmallRng) -> Vec<u8> {
    let hello = postcard::to_allocvec(&PeerResponse::Vote(Err("x".into()))).unwrap_or_default();
    let mut framed = (hello.len() as u32).to_be_bytes().to_vec();
    framed.extend(hello);
    let input =
        if rng.gen_bool(0.5) { mutate(rng, &framed) } else { (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect() };
    if let Ok(Some((payload, _))) = split_frame(&input, 1 << 20) {
        let _ = decode_request(payload.to_vec());
        let _ = decode_payload::<PeerResponse>(payload);
    }
    let _ = decode_request(input.clone());
    let _ = decode_payload::<keepbit::raft::peer::Hello>(&input);
    input
}

const WORDS: &[&str] = &[
    "k0",
    "k1",
    "k2",
    "s",
    "h",
    "z",
    "l",
    "0",
    "1",
    "2",
    "-1",
    "-2",
    "3",
    "10",
    "-100",
    "1.5",
    "inf",
    "-inf",
    "nan",
    "9223372036854775807",
    "-9223372036854775808",
    "4294967296",
    "9999999999",
    "",
    "EX",
    "PX",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "KEEPTTL",
    "GET",
    "LIMIT",
    "WITHSCORES",
    "COUNT",
    "MATCH",
    "BYSCORE",
    "BYLEX",
    "REV",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "MIN",
    "MAX",
    "WEIGHTS",
    "AGGREGATE",
    "SUM",
    "(1",
    "[a",
    "+",
    "-",
    "*",
    "RANK",
    "MAXLEN",
    "IDX",
    "LEN",
    "REPLACE",
    "DB",
];

/// A random write command (any name in the table, internal ones included) as a raw op.
fn random_op(rng: &mut SmallRng, writes: &[&'static str]) -> Op {
    let mut args = vec![Bytes::from_static(writes[rng.gen_range(0..writes.len())].as_bytes())];
    for _ in 0..rng.gen_range(0..7) {
        let w = WORDS[rng.gen_range(0..WORDS.len())];
        args.push(Bytes::copy_from_slice(w.as_bytes()));
    }
    let kind = match rng.gen_range(0..10) {
        0 => OpKind::Multi(vec![args.clone(), args]),
        1 => OpKind::Expire(vec![Bytes::from_static(b"k0")]),
        _ => OpKind::Cmd(args),
    };
    Op { db: rng.gen_range(0..3), now_ms: rng.gen_range(0..10_000), seed: rng.gen(), kind }
}

fn fuzz_op(rng: &mut SmallRng, ks: &mut Keyspace, writes: &[&'static str]) -> Vec<u8> {
    let op = random_op(rng, writes);
    let encoded = op.encode().unwrap_or_default();
    // The op as a peer could garble it, and the op as it is.
    if let Ok(garbled) = Op::decode(&mutate(rng, &encoded)) {
        cmd::apply(ks, &garbled, &NoEffects);
    }
    cmd::apply(ks, &op, &NoEffects);
    if rng.gen_range(0..500) == 0 {
        *ks = Keyspace::new(2);
    }
    encoded
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map_or("all", String::as_str).to_string();
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let targets: Vec<&str> = match target.as_str() {
        "all" => vec!["resp", "peer", "op"],
        t @ ("resp" | "peer" | "op") => vec![t],
        other => {
            eprintln!("unknown target {other}: resp, peer, op or all");
            std::process::exit(2);
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    let writes: Vec<&'static str> = cmd::all().iter().filter(|s| s.is_write()).map(|s| s.name).collect();
    let mut findings = 0;
    for t in targets {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut ks = Keyspace::new(2);
        let (start, budget) = (Instant::now(), Duration::from_secs(seconds));
        let mut runs = 0u64;
        while start.elapsed() < budget {
            let mut input = Vec::new();
            let result = catch_unwind(AssertUnwindSafe(|| {
                input = match t {
                    "resp" => fuzz_resp(&mut rng),
                    "peer" => fuzz_peer(&mut rng),
                    _ => fuzz_op(&mut rng, &mut ks, &writes),
                };
            }));
            runs += 1;
            if result.is_err() {
                findings += 1;
                let _ = std::fs::create_dir_all("fuzz-findings");
                let path = format!("fuzz-findings/{t}-{seed}-{runs}.bin");
                let _ = std::fs::write(&path, &input);
                println!("{t}: PANIC on run {runs}, input saved to {path}");
                ks = Keyspace::new(2);
            }
        }
        println!("{t}: {runs} runs in {:?}, seed {seed}", start.elapsed());
    }
    println!("findings: {findings}");
    std::process::exit(if findings > 0 { 1 } else { 0 });
}
