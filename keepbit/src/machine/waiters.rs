//! Clients waiting on keys: WATCH flags (set dirty when a watched key changes) and
//! blocked pops (woken when a key they wait on may have data). Applying an op signals
//! the keys it touched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::cmd::Touch;

/// A WATCH: set dirty when any watched key changes.
pub type WatchFlag = Arc<AtomicBool>;

/// What one connection WATCHes: a flag set as soon as a watched key changes on this node
/// (EXEC then aborts without proposing anything), and each key with the version it had
/// when watched, which the MULTI op carries so the check is made again where it applies.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    pub flag: WatchFlag,
    pub keys: Vec<crate::store::op::Watched>,
}

impl Watch {
    /// The watched keys as the registry stores them.
    pub fn registry_keys(&self) -> Vec<(usize, Bytes)> {
        self.keys.iter().map(|w| (w.db as usize, w.key.clone())).collect()
    }
}

#[derive(Default)]
pub struct Waiters {
    watches: HashMap<(usize, Bytes), Vec<WatchFlag>>,
    blocked: HashMap<(usize, Bytes), Vec<Arc<Notify>>>,
}

/// Removes `item` from the list under `key`, dropping the list once empty.
fn remove<T>(map: &mut HashMap<(usize, Bytes), Vec<Arc<T>>>, key: &(usize, Bytes), item: &Arc<T>) {
    if let Some(v) = map.get_mut(key) {
        v.retain(|x| !Arc::ptr_eq(x, item));
        if v.is_empty() {
            map.remove(key);
        }
    }
}

impl Waiters {
    pub fn watch(&mut self, db: usize, keys: &[Bytes], flag: &WatchFlag) {
        for k in keys {
            self.watches.entry((db, k.clone())).or_default().push(flag.clone());
        }
    }

    pub fn unwatch(&mut self, keys: &[(usize, Bytes)], flag: &WatchFlag) {
        for key in keys {
            remove(&mut self.watches, key, flag);
        }
    }

    pub fn block(&mut self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        for k in keys {
            self.blocked.entry((db, k.clone())).or_default().push(notify.clone());
        }
    }

    pub fn unblock(&mut self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        for k in keys {
            remove(&mut self.blocked, &(db, k.clone()), notify);
        }
    }

    /// Marks WATCHes dirty and wakes blocked clients for one touched key or database.
    pub fn signal(&self, touch: &Touch) {
        if self.watches.is_empty() && self.blocked.is_empty() {
            return;
        }
        match touch {
            Touch::Key(d, k) => {
                let key = (*d, k.clone());
                self.watches.get(&key).into_iter().flatten().for_each(|w| w.store(true, Relaxed));
                self.blocked.get(&key).into_iter().flatten().for_each(|n| n.notify_one());
            }
            Touch::Db(td) => {
                let hit = |(d, _): &&(usize, Bytes)| d == td;
                self.watches.keys().filter(hit).flat_map(|k| &self.watches[k]).for_each(|w| w.store(true, Relaxed));
                self.blocked.keys().filter(hit).flat_map(|k| &self.blocked[k]).for_each(|n| n.notify_one());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A touched key dirties exactly the WATCHes on that key in that database; a
    /// database-wide touch (FLUSHDB) dirties every WATCH in it.
    #[test]
    fn signals_reach_only_matching_watches() {
        let mut w = Waiters::default();
        let (a, b) = (WatchFlag::default(), WatchFlag::default());
        w.watch(0, &[Bytes::from("k")], &a);
        w.watch(1, &[Bytes::from("k")], &b);
        w.signal(&Touch::Key(0, Bytes::from("k")));
        assert!(a.load(Relaxed) && !b.load(Relaxed));
        w.signal(&Touch::Db(1));
        assert!(b.load(Relaxed));
        w.unwatch(&[(0, Bytes::from("k")), (1, Bytes::from("k"))], &a);
        w.unwatch(&[(1, Bytes::from("k"))], &b);
        assert!(w.watches.is_empty());
    }
}
