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
