//! State machine tests: snapshot races and snapshot file damage.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;

use super::*;
use crate::cmd::NoEffects;
use crate::store::Value;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let pid = std::process::id();
        TempDir(std::env::temp_dir().join(format!("keepbit-sm-{name}-{pid}-{nanos}")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new(LeaderId { term: 1, node_id: 1 }, index)
}

fn new_machine() -> Arc<Machine<LogPosition>> {
    Arc::new(Machine::new(1, Arc::new(NoEffects)))
}

/// A snapshot up to `index` whose keyspace holds the key `k` = `value`.
fn snapshot(index: u64, value: &str) -> (SnapshotMeta, Vec<u8>) {
    let mut ks = Keyspace::new(1);
    ks.db_mut(0).set(Bytes::from_static(b"k"), Value::Str(Bytes::copy_from_slice(value.as_bytes())));
    let meta = SnapshotMeta { last_log_id: Some(log_id(index)), last_membership: StoredMembership::default() };
    (meta, ks.to_snapshot().expect("encode"))
}

fn value_of_k(machine: &Machine<LogPosition>) -> Option<Value> {
    let (ks, _) = machine.snapshot_view();
    ks.db(0).get(b"k", 0).cloned()
}

fn on_disk(dir: &TempDir) -> SnapshotFile {
    let path = dir.0.join(SNAPSHOT_FILE);
    decode_file(&path, &fs::read(&path).expect("read")).expect("decode")
}

/// Regression: openraft can build a snapshot while it installs a newer one from the
/// leader; the build used to replace the current snapshot (memory and disk) when it
/// finished, so the node later restarted from a snapshot older than its purged log.
/// Now the older build is discarded and the newer install stays, across a reopen too.
#[tokio::test]
async fn a_stale_build_does_not_replace_a_newer_install() {
    let dir = TempDir::new("race");
    let machine = new_machine();
    let mut sm = StateMachine::open(&dir.0, machine.clone()).expect("open");
    machine.update_meta(|p| p.applied = Some(log_id(5)));
    let (old_ks, old_position) = machine.snapshot_view();

    let (meta, data) = snapshot(10, "new");
    sm.install_snapshot(&meta, data).await.expect("install");
    let built = sm.finish_build(old_ks, old_position).expect("build");
    assert_eq!(built.meta.last_log_id, Some(log_id(5)));

    let current = sm.get_current_snapshot().await.expect("current").expect("some snapshot");
    assert_eq!(current.meta.last_log_id, Some(log_id(10)));
    assert_eq!(on_disk(&dir).meta.last_log_id, Some(log_id(10)));
    let leftovers = fs::read_dir(&dir.0).expect("list").count();
    assert_eq!(leftovers, 1, "only the snapshot file, no temporary");

    let reopened = new_machine();
    StateMachine::open(&dir.0, reopened.clone()).expect("reopen");
    assert_eq!(reopened.meta().applied, Some(log_id(10)));
    assert_eq!(value_of_k(&reopened), Some(Value::Str(Bytes::from_static(b"new"))));
}

/// A snapshot at least as new as the current one replaces it.
#[tokio::test]
async fn a_newer_build_replaces_the_current_snapshot() {
    let dir = TempDir::new("newer");
    let machine = new_machine();
    let mut sm = StateMachine::open(&dir.0, machine.clone()).expect("open");
    let (meta, data) = snapshot(10, "installed");
    sm.install_snapshot(&meta, data).await.expect("install");
    machine.update_meta(|p| p.applied = Some(log_id(12)));
    sm.build_snapshot().await.expect("build");
    let current = sm.get_current_snapshot().await.expect("current").expect("some snapshot");
    assert_eq!(current.meta.last_log_id, Some(log_id(12)));
    assert_eq!(on_disk(&dir).meta.last_log_id, Some(log_id(12)));
}

/// A snapshot file with a flipped byte refuses to load, naming the file and the
/// checksum, instead of restoring garbage or an error from deep inside decoding.
#[tokio::test]
async fn a_corrupt_snapshot_file_refuses_to_open() {
    let dir = TempDir::new("corrupt");
    let mut sm = StateMachine::open(&dir.0, new_machine()).expect("open");
    let (meta, data) = snapshot(10, "value");
    sm.install_snapshot(&meta, data).await.expect("install");
    let path = dir.0.join(SNAPSHOT_FILE);
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&path, &bytes).expect("write");

    let err = StateMachine::open(&dir.0, new_machine()).err().expect("corrupt snapshot must fail");
    let err = err.to_string();
    assert!(err.contains(&path.display().to_string()) && err.contains("checksum mismatch"), "{err}");
    assert!(err.contains("restore this node from a peer"), "{err}");
}

/// Snapshot files written before the checksum (format version 1) still load.
#[tokio::test]
async fn a_version_1_snapshot_file_still_loads() {
    let dir = TempDir::new("v1");
    fs::create_dir_all(&dir.0).expect("mkdir");
    let (meta, data) = snapshot(7, "old format");
    let mut bytes = vec![FILE_VERSION_UNCHECKED];
    bytes.extend(postcard::to_stdvec(&SnapshotFile { meta, data }).expect("encode"));
    fs::write(dir.0.join(SNAPSHOT_FILE), bytes).expect("write");

    let machine = new_machine();
    StateMachine::open(&dir.0, machine.clone()).expect("open");
    assert_eq!(machine.meta().applied, Some(log_id(7)));
    assert_eq!(value_of_k(&machine), Some(Value::Str(Bytes::from_static(b"old format"))));
}
