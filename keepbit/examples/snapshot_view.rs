//! How long the node lock is held to take a snapshot view: a copy of the key maps (values
//! are shared, not copied). Prints the copy time for a keyspace of N small string keys and
//! of one hash of N fields.
//!
//!     cargo run --release -p keepbit --example snapshot_view [N]   (default 1000000)

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use keepbit::store::{Keyspace, Value};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut keys = Keyspace::new(1);
    for i in 0..n {
        keys.db_mut(0).set(Bytes::from(format!("key:{i}")), Value::Str(Bytes::from_static(b"0123456789abcdef")));
    }
    let mut one_hash = Keyspace::new(1);
    let fields: HashMap<Bytes, Bytes> = (0..n).map(|i| (Bytes::from(format!("f{i}")), Bytes::new())).collect();
    one_hash.db_mut(0).set(Bytes::from_static(b"h"), Value::Hash(fields));
    for (what, ks) in [(format!("{n} string keys"), &keys), (format!("one hash of {n} fields"), &one_hash)] {
        let start = Instant::now();
        let view = ks.clone();
        let took = start.elapsed();
        assert_eq!(view.db(0).len(), ks.db(0).len());
        println!("snapshot view of {what}: {:.1} ms under the lock", took.as_secs_f64() * 1000.0);
    }
}
