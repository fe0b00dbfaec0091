//! The cursor shared by SCAN, HSCAN, SSCAN and ZSCAN.
//!
//! A cursor is a position in the order of a fixed-key hash of each element, so it does
//! not depend on how a node's tables happen to be laid out: it stays valid across
//! rehashes and on another node after a failover. Elements present for the whole
//! iteration are returned exactly once. A keyspace page is a range read of the
//! position-ordered keyspace ([`ordered_page`]); a page of a hash, set or sorted set costs
//! two passes over the collection ([`page`]).

use std::collections::BinaryHeap;

use bytes::Bytes;

use super::args::{is, parse_count};
use crate::error::CmdError;
use crate::glob;
use crate::reply::Reply;
use crate::store::ordered::position;

pub struct ScanOpts {
    pub cursor: u64,
    pub count: usize,
    pub pattern: Option<Bytes>,
    pub type_name: Option<String>,
    pub novalues: bool,
}

/// Parses `cursor [MATCH p] [COUNT n] [TYPE t] [NOVALUES]`; `allow` names the options the
/// command accepts besides MATCH and COUNT.
pub fn parse(cursor: &[u8], opts: &[Bytes], allow_type: bool, allow_novalues: bool) -> Result<ScanOpts, CmdError> {
    let cursor = std::str::from_utf8(cursor)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CmdError::err("invalid cursor"))?;
    let mut o = ScanOpts { cursor, count: 10, pattern: None, type_name: None, novalues: false };
    let mut i = 0;
    while i < opts.len() {
        let has_value = i + 1 < opts.len();
        if is(&opts[i], "match") && has_value {
            o.pattern = Some(opts[i + 1].clone()).filter(|p| &p[..] != b"*");
            i += 2;
        } else if is(&opts[i], "count") && has_value {
            o.count = parse_count(&opts[i + 1], CmdError::NotInteger)?;
            if o.count < 1 {
                return Err(CmdError::Syntax);
            }
            i += 2;
        } else if is(&opts[i], "type") && has_value && allow_type {
            o.type_name = Some(String::from_utf8_lossy(&opts[i + 1]).to_lowercase());
            i += 2;
        } else if is(&opts[i], "novalues") && allow_novalues {
            o.novalues = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(o)
}

/// One page of a source already in scan order from the cursor (the keyspace): the first
/// `count` elements and any that share the last one's position, and the next cursor (0
/// when done). Reads `count` elements and one more: O(COUNT) whatever the size.
pub fn ordered_page<'a, T>(
    items: impl Iterator<Item = (u64, &'a Bytes, T)>,
    o: &ScanOpts,
) -> (u64, Vec<(&'a Bytes, T)>) {
    let mut page = Vec::new();
    let mut last = None;
    for (pos, k, v) in items {
        if page.len() >= o.count && last != Some(pos) {
            return (pos, matching(page, o));
        }
        last = Some(pos);
        page.push((k, v));
    }
    (0, matching(page, o))
}

fn matching<'a, T>(page: Vec<(&'a Bytes, T)>, o: &ScanOpts) -> Vec<(&'a Bytes, T)> {
    page.into_iter().filter(|(k, _)| o.pattern.as_ref().is_none_or(|p| glob::matches(p, k))).collect()
}

/// One page: the elements at or after the cursor in hash order (at least `count` of
/// them unless the end is reached) and the next cursor (0 when done). MATCH filters the
/// page after it is chosen, as in Redis. `items` is walked twice and only the page is
/// kept: memory is O(count), not O(collection), whatever COUNT and the size are.
pub fn page<'a, T, I>(items: impl Fn() -> I, o: &ScanOpts) -> (u64, Vec<(&'a Bytes, T)>)
where
    I: Iterator<Item = (&'a Bytes, T)>,
{
    // Pass 1: the count+1 smallest positions at or after the cursor (a max-heap).
    let mut smallest: BinaryHeap<u64> = BinaryHeap::new();
    for h in items().map(|(k, _)| position(k)).filter(|&h| h >= o.cursor) {
        if smallest.len() <= o.count {
            smallest.push(h);
        } else if smallest.peek().is_some_and(|&top| h < top) {
            smallest.pop();
            smallest.push(h);
        }
    }
    // More than `count` remain: the page ends at the count-th smallest position and
    // takes every element sharing it (elements that share a position are never split).
    let boundary = (smallest.len() > o.count).then(|| {
        let mut sorted = smallest.into_sorted_vec();
        sorted.truncate(o.count + 1);
        sorted[o.count]
    });
    // Pass 2: the page, and the first position after it.
    let mut next = None::<u64>;
    let mut page: Vec<(u64, &'a Bytes, T)> = Vec::new();
    for (k, v) in items() {
        let h = position(k);
        if h < o.cursor {
            continue;
        }
        match boundary {
            Some(b) if h > b => next = Some(next.map_or(h, |n| n.min(h))),
            _ => page.push((h, k, v)),
        }
    }
    page.sort_by_key(|c| c.0);
    (next.unwrap_or(0), matching(page.into_iter().map(|(_, k, v)| (k, v)).collect(), o))
}

pub fn reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(items)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_iteration_returns_every_element_once() {
        let keys: Vec<Bytes> = (0..1000).map(|i| Bytes::from(format!("k{i}"))).collect();
        let mut seen = std::collections::HashSet::new();
        let mut o = parse(b"0", &[], false, false).unwrap();
        loop {
            let (next, page) = page(|| keys.iter().map(|k| (k, ())), &o);
            assert!(page.len() <= o.count + 1, "a page of {} for COUNT {}", page.len(), o.count);
            assert!(next == 0 || page.len() >= o.count, "a short page before the end");
            for (k, _) in page {
                assert!(seen.insert(k.clone()), "{k:?} returned twice");
            }
            if next == 0 {
                break;
            }
            o.cursor = next;
        }
        assert_eq!(seen.len(), keys.len());
    }

    fn key(i: usize) -> Bytes {
        Bytes::from(format!("k{i}"))
    }

    #[test]
    fn an_ordered_page_reads_count_elements_and_one_more() {
        let mut db = crate::store::Db::default();
        for i in 0..10_000 {
            db.set(key(i), crate::store::Value::Str(Bytes::from_static(b"v")));
        }
        let o = parse(b"0", &[Bytes::from_static(b"COUNT"), Bytes::from_static(b"10")], true, false).unwrap();
        let read = std::cell::Cell::new(0);
        let (next, page) = ordered_page(db.scan_from(o.cursor, 0).inspect(|_| read.set(read.get() + 1)), &o);
        assert_eq!(page.len(), 10);
        assert_eq!(read.get(), 11, "a page of COUNT 10 read {} keys", read.get());
        assert!(next > 0);
    }

    /// Keys present for the whole iteration are returned exactly once, however many keys
    /// come and go between pages.
    #[test]
    fn a_keyspace_scan_survives_keys_coming_and_going() {
        let mut db = crate::store::Db::default();
        let v = || crate::store::Value::Str(Bytes::from_static(b"v"));
        for i in 0..2_000 {
            db.set(key(i), v());
        }
        let mut seen = std::collections::HashMap::<Bytes, usize>::new();
        let mut o = parse(b"0", &[Bytes::from_static(b"COUNT"), Bytes::from_static(b"7")], true, false).unwrap();
        let mut round = 0;
        loop {
            let (next, page) = ordered_page(db.scan_from(o.cursor, 0), &o);
            for (k, _) in page {
                *seen.entry(k.clone()).or_default() += 1;
            }
            // Between pages: new keys arrive and keys 1000.. (odd) leave.
            round += 1;
            for j in 0..20 {
                db.set(key(100_000 + round * 20 + j), v());
            }
            db.remove(&key(1000 + 2 * (round % 500) + 1));
            if next == 0 {
                break;
            }
            o.cursor = next;
        }
        for i in (0..1000).chain((1000..2000).step_by(2)) {
            assert_eq!(seen.get(&key(i)), Some(&1), "key {i} seen {:?} times", seen.get(&key(i)));
        }
        assert!(seen.values().all(|&n| n == 1), "a key returned twice");
    }
}
