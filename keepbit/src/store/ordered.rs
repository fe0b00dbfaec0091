//! Keys kept in the order of a fixed-key hash of their bytes ("position").
//!
//! Each database stores its keys in a B-tree ordered by (position, key), so a SCAN cursor
//! is a position and a page is a range read: O(log N + COUNT) per page, with cursors that
//! stay valid while keys come and go, across restarts, and on another node after a
//! failover. Lookups by key bytes go through [`KeyView`], so no key is cloned to find it.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use bytes::Bytes;

/// A key's place in scan order: the same on every node and in every run.
pub fn position(key: &[u8]) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
}

/// A stored key with its position; ordered by (position, bytes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderedKey {
    pub pos: u64,
    pub key: Bytes,
}

impl OrderedKey {
    pub fn new(key: Bytes) -> OrderedKey {
        OrderedKey { pos: position(&key), key }
    }
}

/// (position, key bytes): what a lookup compares, borrowed from a stored key or built
/// from a key being looked up.
pub trait KeyView {
    fn view(&self) -> (u64, &[u8]);
}

impl KeyView for OrderedKey {
    fn view(&self) -> (u64, &[u8]) {
        (self.pos, &self.key)
    }
}

/// A key being looked up.
pub struct Probe<'k>(u64, &'k [u8]);

impl<'k> Probe<'k> {
    pub fn new(key: &'k [u8]) -> Probe<'k> {
        Probe(position(key), key)
    }
}

impl KeyView for Probe<'_> {
    fn view(&self) -> (u64, &[u8]) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for OrderedKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for dyn KeyView + '_ {}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.view().cmp(&other.view())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn lookups_by_bytes_find_stored_keys_and_order_is_by_position() {
        let mut map = BTreeMap::new();
        for i in 0..1000 {
            map.insert(OrderedKey::new(Bytes::from(format!("key:{i}"))), i);
        }
        for i in 0..1000 {
            let k = format!("key:{i}");
            assert_eq!(map.get(&Probe::new(k.as_bytes()) as &dyn KeyView), Some(&i));
        }
        assert_eq!(map.get(&Probe::new(b"absent") as &dyn KeyView), None);
        let positions: Vec<u64> = map.keys().map(|k| k.pos).collect();
        assert!(positions.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(position(b"key:1"), OrderedKey::new(Bytes::from_static(b"key:1")).pos);
    }
}
