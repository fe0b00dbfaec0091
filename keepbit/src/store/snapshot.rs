//! Keyspace snapshots: a versioned, compact binary image of every database, from which a
//! node that missed part of the log (or a new node) restores the state machine.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::journal::{FailoverRecord, Journal};
use super::keyspace::{Keyspace, Value};
use super::zset::ZSet;

pub const SNAPSHOT_VERSION: u8 = 3;
/// Version 1 had no WATCH versions (they restore as 0: every key unchanged since the start).
const SNAPSHOT_VERSION_1: u8 = 1;
/// Version 2 had no failover journal (it restores empty).
const SNAPSHOT_VERSION_2: u8 = 2;

#[derive(Serialize, Deserialize)]
enum SnapValue {
    Str(Bytes),
    List(Vec<Bytes>),
    Hash(Vec<(Bytes, Bytes)>),
    Set(Vec<Bytes>),
    ZSet(Vec<(Bytes, f64)>),
}

#[derive(Serialize, Deserialize)]
struct SnapEntry {
    key: Bytes,
    value: SnapValue,
    expire_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Image {
    now_ms: u64,
    dbs: Vec<Vec<SnapEntry>>,
}

/// Version 2: the image plus what WATCH compares (`Keyspace::version_clock`, each key's
/// version, each database's whole-database version).
#[derive(Serialize, Deserialize)]
struct ImageV2 {
    image: Image,
    version_clock: u64,
    versions: Vec<(Vec<(Bytes, u64)>, u64)>,
}

/// Version 3: version 2 plus the failover journal, oldest record first.
#[derive(Serialize, Deserialize)]
struct ImageV3 {
    v2: ImageV2,
    journal: Vec<FailoverRecord>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SnapshotError {
    #[error("empty snapshot")]
    Empty,
    #[error("unsupported snapshot version {0}")]
    Version(u8),
    #[error("malformed snapshot: {0}")]
    Malformed(String),
}

fn snap_value(v: &Value) -> SnapValue {
    match v {
        Value::Str(s) => SnapValue::Str(s.clone()),
        Value::List(l) => SnapValue::List(l.iter().cloned().collect()),
        Value::Hash(h) => SnapValue::Hash(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect()),
        Value::Set(s) => SnapValue::Set(s.iter().cloned().collect()),
        Value::ZSet(z) => SnapValue::ZSet(z.iter().map(|(m, s)| (m.clone(), s)).collect()),
    }
}

fn value(v: SnapValue) -> Value {
    match v {
        SnapValue::Str(s) => Value::Str(s),
        SnapValue::List(l) => Value::List(l.into()),
        SnapValue::Hash(h) => Value::Hash(h.into_iter().collect()),
        SnapValue::Set(s) => Value::Set(s.into_iter().collect()),
        SnapValue::ZSet(members) => {
            let mut z = ZSet::default();
            for (m, s) in members {
                z.insert(m, s);
            }
            Value::ZSet(z)
        }
    }
}

impl Keyspace {
    /// `[SNAPSHOT_VERSION][postcard(image)]`. Expired keys not yet deleted are kept: they
    /// are deleted by the ops that follow the snapshot, on every node alike.
    pub fn to_snapshot(&self) -> Result<Vec<u8>, postcard::Error> {
        let image = Image {
            now_ms: self.now_ms,
            dbs: self
                .dbs
                .iter()
                .map(|db| {
                    db.iter(0)
                        .map(|(k, v)| SnapEntry { key: k.clone(), value: snap_value(v), expire_at_ms: db.expire_at(k) })
                        .collect()
                })
                .collect(),
        };
        let versions = self.dbs.iter().map(|db| db.versions()).collect();
        let mut out = vec![SNAPSHOT_VERSION];
        let v2 = ImageV2 { image, version_clock: self.version_clock, versions };
        out.extend(postcard::to_stdvec(&ImageV3 { v2, journal: self.journal.to_vec() })?);
        Ok(out)
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Keyspace, SnapshotError> {
        let malformed = |e: postcard::Error| SnapshotError::Malformed(e.to_string());
        let v3: ImageV3 = match bytes.split_first() {
            None => return Err(SnapshotError::Empty),
            Some((&SNAPSHOT_VERSION, body)) => postcard::from_bytes(body).map_err(malformed)?,
            Some((&SNAPSHOT_VERSION_2, body)) => {
                ImageV3 { v2: postcard::from_bytes(body).map_err(malformed)?, journal: Vec::new() }
            }
            Some((&SNAPSHOT_VERSION_1, body)) => ImageV3 {
                v2: ImageV2 {
                    image: postcard::from_bytes(body).map_err(malformed)?,
                    version_clock: 0,
                    versions: Vec::new(),
                },
                journal: Vec::new(),
            },
            Some((&v, _)) => return Err(SnapshotError::Version(v)),
        };
        let v2 = v3.v2;
        let image = v2.image;
        let mut ks = Keyspace::new(image.dbs.len());
        ks.now_ms = image.now_ms;
        for (i, entries) in image.dbs.into_iter().enumerate() {
            let db = ks.db_mut(i);
            for e in entries {
                db.set(e.key.clone(), value(e.value));
                if let Some(at) = e.expire_at_ms {
                    db.set_expire(&e.key, at);
                }
            }
        }
        ks.version_clock = v2.version_clock;
        for (i, (keys, whole)) in v2.versions.into_iter().enumerate().take(ks.dbs.len()) {
            ks.db_mut(i).restore_versions(keys, whole);
        }
        ks.journal = Journal::from_vec(v3.journal);
        Ok(ks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::zset::ZSet;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A snapshot restores an equal keyspace, every type and expiry included.
    #[test]
    fn snapshots_round_trip() {
        let mut ks = Keyspace::new(2);
        ks.now_ms = 1000;
        let db = ks.db_mut(0);
        db.set(b("s"), Value::Str(b("v")));
        db.set_expire(&b("s"), 99_999);
        db.set(b("l"), Value::List([b("a"), b("b")].into_iter().collect()));
        db.set(b("h"), Value::Hash([(b("f"), b("v"))].into_iter().collect()));
        db.set(b("set"), Value::Set([b("x"), b("y")].into_iter().collect()));
        let mut z = ZSet::default();
        z.insert(b("m"), 1.5);
        z.insert(b("n"), -2.0);
        db.set(b("z"), Value::ZSet(z));
        ks.db_mut(1).set(b("gone"), Value::Str(b("v")));
        ks.db_mut(1).set_expire(&b("gone"), 1500);
        ks.journal.record(FailoverRecord {
            term: 2,
            old_primary: Some(1),
            new_primary: 3,
            cause: crate::store::journal::Cause::Crash("connection refused".into()),
            last_contact_ms: Some(10),
            detected_ms: Some(20),
            elected_ms: 30,
            first_commit_ms: Some(40),
        });
        let restored = Keyspace::from_snapshot(&ks.to_snapshot().expect("snapshot")).expect("restore");
        assert_eq!(restored, ks);
        assert_eq!(Keyspace::from_snapshot(&[]), Err(SnapshotError::Empty));
        assert!(matches!(Keyspace::from_snapshot(&[SNAPSHOT_VERSION, 200]), Err(SnapshotError::Malformed(_))));
    }

    /// A version-2 snapshot (no journal) still restores, with an empty journal.
    #[test]
    fn version_2_snapshots_restore_without_a_journal() {
        let mut ks = Keyspace::new(1);
        ks.db_mut(0).set(b("k"), Value::Str(b("v")));
        ks.version_clock = 7;
        let image = Image {
            now_ms: 5,
            dbs: vec![vec![SnapEntry { key: b("k"), value: SnapValue::Str(b("v")), expire_at_ms: None }]],
        };
        let mut old = vec![SNAPSHOT_VERSION_2];
        old.extend(
            postcard::to_stdvec(&ImageV2 { image, version_clock: 7, versions: vec![(vec![], 0)] }).expect("encode"),
        );
        let restored = Keyspace::from_snapshot(&old).expect("restore");
        assert_eq!(restored.db(0).get(b"k", 0), Some(&Value::Str(b("v"))));
        assert_eq!((restored.version_clock, restored.journal.len()), (7, 0));
    }
}
