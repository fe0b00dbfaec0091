//! The keyspace: logical databases of typed values with optional absolute expiry times.
//! Pure data: no clock, no randomness. Callers pass `now_ms` (from the `Op` being applied,
//! or the reader's clock), and a key whose expiry is at or before `now_ms` is absent.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::journal::Journal;
use super::ordered::{KeyView, OrderedKey, Probe};
use super::zset::ZSet;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
    Hash(HashMap<Bytes, Bytes>),
    Set(HashSet<Bytes>),
    ZSet(ZSet),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Collections are never stored empty: an emptied collection deletes its key.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// One logical database.
/// A stored value and, for WATCH, the version (see [`Keyspace::version_clock`]) of the
/// op that last changed it.
#[derive(Clone, Debug, PartialEq)]
struct Slot {
    /// Shared with snapshot views taken since it last changed: a snapshot copies the
    /// key map, not the values, and a write to a shared value copies it first.
    value: Arc<Value>,
    version: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Db {
    /// Keys in scan order (see [`super::ordered`]).
    map: BTreeMap<OrderedKey, Slot>,
    /// Absolute expiry of each volatile key.
    expires: HashMap<Bytes, u64>,
    /// The same expiries ordered by time, so due keys are found without a scan.
    by_time: BTreeSet<(u64, Bytes)>,
    /// The version of the op that last changed every key at once (FLUSHDB, SWAPDB).
    whole_version: u64,
}

fn probe(key: &[u8]) -> Probe<'_> {
    Probe::new(key)
}

impl Db {
    fn slot(&self, key: &[u8]) -> Option<&Slot> {
        self.map.get(&probe(key) as &dyn KeyView)
    }

    fn slot_mut(&mut self, key: &[u8]) -> Option<&mut Slot> {
        self.map.get_mut(&probe(key) as &dyn KeyView)
    }

    fn is_expired(&self, key: &[u8], now_ms: u64) -> bool {
        self.expires.get(key).is_some_and(|&at| at <= now_ms)
    }

    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Value> {
        if self.is_expired(key, now_ms) {
            return None;
        }
        self.slot(key).map(|s| &*s.value)
    }

    /// Mutable access; an expired key is deleted first (deterministic: `now_ms` comes
    /// from the op being applied).
    pub fn get_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Value> {
        if self.is_expired(key, now_ms) {
            self.remove(key);
            return None;
        }
        self.slot_mut(key).map(|s| Arc::make_mut(&mut s.value))
    }

    pub fn contains(&self, key: &[u8], now_ms: u64) -> bool {
        self.get(key, now_ms).is_some()
    }

    /// Stores `value` under `key`, clearing any expiry (as SET does).
    pub fn set(&mut self, key: Bytes, value: Value) {
        self.clear_expire(&key);
        self.map.insert(OrderedKey::new(key), Slot { value: Arc::new(value), version: 0 });
    }

    /// Stores `value` and keeps the key's expiry if it had a live one.
    pub fn set_keep_ttl(&mut self, key: Bytes, value: Value, now_ms: u64) {
        if self.is_expired(&key, now_ms) {
            self.clear_expire(&key);
        }
        self.map.insert(OrderedKey::new(key), Slot { value: Arc::new(value), version: 0 });
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        self.clear_expire(key);
        self.map.remove(&probe(key) as &dyn KeyView).map(|s| Arc::unwrap_or_clone(s.value))
    }

    /// Removes the key and returns its value only if it is live.
    pub fn take(&mut self, key: &[u8], now_ms: u64) -> Option<Value> {
        let expired = self.is_expired(key, now_ms);
        let v = self.remove(key);
        if expired {
            None
        } else {
            v
        }
    }

    /// Deletes `key` if its value is an emptied collection.
    pub fn drop_if_empty(&mut self, key: &[u8]) {
        if self.slot(key).is_some_and(|s| s.value.is_empty_collection()) {
            self.remove(key);
        }
    }

    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        self.expires.get(key).copied()
    }

    pub fn set_expire(&mut self, key: &Bytes, at_ms: u64) {
        if self.slot(key).is_none() {
            return;
        }
        self.clear_expire(key);
        self.expires.insert(key.clone(), at_ms);
        self.by_time.insert((at_ms, key.clone()));
    }

    /// Removes the expiry; true if there was one.
    pub fn clear_expire(&mut self, key: &[u8]) -> bool {
        match self.expires.remove_entry(key) {
            Some((k, at)) => {
                self.by_time.remove(&(at, k));
                true
            }
            None => false,
        }
    }

    /// Keys whose expiry is at or before `now_ms`, oldest first, at most `max`.
    pub fn due(&self, now_ms: u64, max: usize) -> Vec<Bytes> {
        self.by_time.iter().take_while(|(at, _)| *at <= now_ms).take(max).map(|(_, k)| k.clone()).collect()
    }

    /// Number of keys stored, counting expired ones not yet deleted (as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn volatile_len(&self) -> usize {
        self.expires.len()
    }

    /// Live keys and values.
    pub fn iter(&self, now_ms: u64) -> impl Iterator<Item = (&Bytes, &Value)> {
        self.scan_from(0, now_ms).map(|(_, k, v)| (k, v))
    }

    /// Live keys and values at or after scan position `cursor`, in scan order, with their
    /// positions: a SCAN page is a range read, O(log N) to start.
    pub fn scan_from(&self, cursor: u64, now_ms: u64) -> impl Iterator<Item = (u64, &Bytes, &Value)> {
        let from = OrderedKey { pos: cursor, key: Bytes::new() };
        self.map
            .range(from..)
            .filter(move |(k, _)| !self.is_expired(&k.key, now_ms))
            .map(|(k, s)| (k.pos, &k.key, &*s.value))
    }

    /// The first stored key at or after scan position `at`, wrapping around (for
    /// RANDOMKEY); may be expired.
    pub fn key_near(&self, at: u64) -> Option<&Bytes> {
        let from = OrderedKey { pos: at, key: Bytes::new() };
        self.map.range(from..).next().or_else(|| self.map.iter().next()).map(|(k, _)| &k.key)
    }

    /// Deletes every key (the versions are the applier's business: see `note_flush`).
    pub fn clear(&mut self) {
        self.map.clear();
        self.expires.clear();
        self.by_time.clear();
    }

    /// The version of the last op that changed `key` (0: none since the keyspace began).
    pub fn version(&self, key: &[u8]) -> u64 {
        self.slot(key).map_or(0, |s| s.version).max(self.whole_version)
    }

    /// Records that the op of version `v` changed `key` (or deleted it).
    pub fn note_change(&mut self, key: &Bytes, v: u64) {
        if let Some(s) = self.slot_mut(key) {
            s.version = v;
        }
    }

    /// Records that the op of version `v` changed every key.
    pub fn note_flush(&mut self, v: u64) {
        // Every key's version is now at least `v`, which `version` reads from here.
        self.whole_version = v;
    }

    /// Every key's recorded version, and the whole-database version (for snapshots).
    pub fn versions(&self) -> (Vec<(Bytes, u64)>, u64) {
        let keys = self.map.iter().filter(|(_, s)| s.version > 0).map(|(k, s)| (k.key.clone(), s.version));
        (keys.collect(), self.whole_version)
    }

    /// Restores what [`Db::versions`] returned.
    pub fn restore_versions(&mut self, versions: Vec<(Bytes, u64)>, whole_version: u64) {
        self.whole_version = whole_version;
        for (k, v) in versions {
            if let Some(s) = self.slot_mut(&k) {
                s.version = v;
            }
        }
    }
}

/// All logical databases, and the highest op time applied so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyspace {
    pub dbs: Vec<Db>,
    /// Op times only move forward: an op stamped earlier than one already applied (a
    /// new primary whose clock is behind) runs at this time instead, so a key that has
    /// expired never comes back.
    pub now_ms: u64,
    /// Ops applied so far: every replica counts the same ops alike, so the count is an
    /// op's version on every node, and WATCH can compare key versions across nodes.
    pub version_clock: u64,
    /// The failover journal: replicated like the data, but in no database (no key
    /// reaches it).
    pub journal: Journal,
}

impl Keyspace {
    pub fn new(databases: usize) -> Keyspace {
        Keyspace {
            dbs: (0..databases.max(1)).map(|_| Db::default()).collect(),
            now_ms: 0,
            version_clock: 0,
            journal: Journal::default(),
        }
    }

    pub fn db(&self, i: usize) -> &Db {
        &self.dbs[i]
    }

    pub fn db_mut(&mut self, i: usize) -> &mut Db {
        &mut self.dbs[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy (a snapshot view) shares values instead of copying them, and a later write
    /// to the live keyspace copies only the value it changes.
    #[test]
    fn a_copy_shares_values_and_a_write_copies_only_what_it_changes() {
        let big: HashMap<Bytes, Bytes> = (0..1000).map(|i| (Bytes::from(format!("f{i}")), Bytes::new())).collect();
        let (h, other) = (Bytes::from_static(b"h"), Bytes::from_static(b"other"));
        let mut db = Db::default();
        db.set(h.clone(), Value::Hash(big));
        db.set(other.clone(), Value::Hash(HashMap::new()));
        let view = db.clone();
        let same = |k: &[u8], a: &Db, b: &Db| std::ptr::eq(a.get(k, 0).expect("a"), b.get(k, 0).expect("b"));
        assert!(same(&h, &db, &view), "the copy duplicated a value");
        let Some(Value::Hash(live)) = db.get_mut(&h, 0) else { panic!("not a hash") };
        live.insert(Bytes::from_static(b"new"), Bytes::new());
        let len = |d: &Db| match d.get(&h, 0) {
            Some(Value::Hash(m)) => m.len(),
            _ => 0,
        };
        assert_eq!((len(&db), len(&view)), (1001, 1000), "the write reached the copy");
        assert!(!same(&h, &db, &view));
        assert!(same(&other, &db, &view), "an untouched value was copied");
    }
}
