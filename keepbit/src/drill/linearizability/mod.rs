//! Linearizability of one register's history: Wing & Gong's search with Lowe's
//! just-in-time linearization and a cache of explored states, as in Porcupine.
//!
//! Every operation is an interval (call, return). The search walks the remaining calls in
//! time order and linearizes the first one the register allows; reaching a return whose
//! operation is still pending means no order works from here, so it backtracks. A state is
//! (set of linearized operations, register value): two paths reaching the same state have
//! the same future, so each state is explored once, which keeps typical histories linear.
//!
//! An `Unknown` write returns at +∞: it may take effect at any point after its call, or
//! never (being linearized after everything else is the same as never).
//!
//! The cost is exponential only in how many operations on the key are open at once (a
//! few in a drill, where clients spread over several keys); histories beyond the budget
//! or the cache limit are `Undecided`, never given a guessed verdict.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::history::{Action, Event, Outcome};

/// The answer for one register.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Linearizable,
    /// `minimal` is not linearizable on its own, and no operation left out of it could
    /// change that (every write of a value it reads is kept). Ordered by invoke time.
    NotLinearizable {
        minimal: Vec<Event>,
    },
    /// The time (or memory) budget ran out before an answer.
    Undecided,
}

/// The explored-state cache gives up (Undecided) past this size rather than exhaust memory.
const CACHE_BYTES_MAX: usize = 256 << 20;
/// The clock is read once per this many search steps.
const STEPS_PER_CLOCK_READ: u64 = 1024;

/// Checks a register's history (`Write`/`Read` events of one key; others are ignored).
/// `initial` is the value before the first operation (`None`: nil).
pub fn check_register(events: &[Event], initial: Option<String>, budget: Duration) -> Verdict {
    // An unrepresentable deadline means "no deadline".
    let deadline = Instant::now().checked_add(budget);
    let history = History::new(events, initial.as_deref());
    if history.ops.is_empty() {
        return Verdict::Linearizable;
    }
    let all: Vec<usize> = (0..history.ops.len()).collect();
    match history.search(&all, deadline) {
        Search::Linearizable => Verdict::Linearizable,
        Search::OutOfBudget => Verdict::Undecided,
        Search::Violation { horizon_us } => {
            let minimal = history.minimize(&all, horizon_us, deadline);
            let mut minimal: Vec<Event> = minimal.iter().map(|&i| events[history.ops[i].event].clone()).collect();
            minimal.sort_by_key(|e| (e.invoke_us, e.id));
            Verdict::NotLinearizable { minimal }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

/// One operation that constrains the register.
#[derive(Clone, Copy, Debug)]
struct Call {
    /// Index into the caller's events.
    event: usize,
    kind: Kind,
    /// Interned value written or read; 0 is nil.
    value: u32,
    call_us: u64,
    return_us: u64,
    /// Returns at +∞ (an `Unknown` write).
    pending: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Search {
    Linearizable,
    /// No search path got past a return later than `horizon_us`, so the operations called
    /// by then already violate on their own.
    Violation {
        horizon_us: u64,
    },
    OutOfBudget,
}

struct History {
    /// Sorted by call time.
    ops: Vec<Call>,
    initial: u32,
    /// For each interned value, the writes of it (indices into `ops`).
    writers: Vec<Vec<usize>>,
}

impl History {
    fn new<'a>(events: &'a [Event], initial: Option<&'a str>) -> History {
        let mut ids: HashMap<Option<&'a str>, u32> = HashMap::from([(None, 0)]);
        let mut intern = |v: Option<&'a str>| -> u32 {
            let next = ids.len() as u32;
            *ids.entry(v).or_insert(next)
        };
        let initial = intern(initial);
        let mut ops = Vec::new();
        for (event, e) in events.iter().enumerate() {
            let (kind, value) = match (&e.action, &e.outcome) {
                (Action::Write { value, .. }, Outcome::Ok { .. } | Outcome::Unknown { .. }) => {
                    (Kind::Write, Some(value.as_str()))
                }
                (Action::Read { .. }, Outcome::Ok { value }) => (Kind::Read, value.as_deref()),
                _ => continue,
            };
            let pending = e.unknown();
            // A clock that ran backwards widens the interval rather than breaking it.
            let call_us = e.invoke_us.min(e.complete_us);
            let return_us = e.invoke_us.max(e.complete_us);
            ops.push(Call { event, kind, value: intern(value), call_us, return_us, pending });
        }
        ops.sort_by_key(|op| (op.call_us, op.event));
        let mut writers = vec![Vec::new(); ids.len()];
        for (i, op) in ops.iter().enumerate() {
            if op.kind == Kind::Write {
                writers[op.value as usize].push(i);
            }
        }
        History { ops, initial, writers }
    }

    /// Adds back every write of a value that a kept read returned, so that a violation
    /// found in the subset cannot be an artefact of dropping the write a read saw.
    fn close(&self, keep: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut member = vec![false; self.ops.len()];
        for i in keep {
            member[i] = true;
        }
        for (i, op) in self.ops.iter().enumerate() {
            if member[i] && op.kind == Kind::Read {
                for &w in &self.writers[op.value as usize] {
                    member[w] = true;
                }
            }
        }
        (0..self.ops.len()).filter(|&i| member[i]).collect()
    }

    /// Shrinks a violating subset (sorted op indices): cut at the search's horizon, keep
    /// the shortest violating suffix of that, then delta-debug until no chunk can be
    /// dropped. When the deadline passes, the smallest violating subset found so far.
    fn minimize(&self, all: &[usize], horizon_us: u64, deadline: Option<Instant>) -> Vec<usize> {
        let mut current = self.cut(all, horizon_us);
        match self.shortest_suffix(&current, deadline) {
            Some(shorter) => current = shorter,
            None => return current,
        }
        let mut chunks = 2;
        while current.len() >= 2 {
            let len = current.len();
            let size = len.div_ceil(chunks);
            let mut reduced = false;
            for start in (0..len).step_by(size) {
                let end = (start + size).min(len);
                let candidate = self.close(current[..start].iter().chain(&current[end..]).copied());
                if candidate.len() >= len {
                    continue;
                }
                match self.search(&candidate, deadline) {
                    Search::Violation { horizon_us } => {
                        current = self.cut(&candidate, horizon_us);
                        chunks = (chunks - 1).max(2);
                        reduced = true;
                        break;
                    }
                    Search::Linearizable => {}
                    Search::OutOfBudget => return current,
                }
            }
            if !reduced {
                if chunks >= len {
                    break;
                }
                chunks = (chunks * 2).min(len);
            }
        }
        current
    }

    /// The operations of a violating `subset` called by `horizon_us`, closed. Still
    /// violating: the search never reached a later call, nor would it with the writes
    /// `close` adds back, all called later.
    fn cut(&self, subset: &[usize], horizon_us: u64) -> Vec<usize> {
        self.close(subset.iter().copied().filter(|&i| self.ops[i].call_us <= horizon_us))
    }

    /// The fewest last operations of a violating `current` that still (closed) violate:
    /// doubling, then bisecting, since violations are usually local. `None` past the
    /// deadline.
    fn shortest_suffix(&self, current: &[usize], deadline: Option<Instant>) -> Option<Vec<usize>> {
        let suffix = |k: usize| self.close(current[current.len() - k..].iter().copied());
        let (mut lo, mut hi, mut k) = (1, current.len(), 1);
        let mut galloping = true;
        while lo < hi {
            let mid = if galloping { k.min(hi - 1) } else { lo + (hi - lo) / 2 };
            match self.search(&suffix(mid), deadline) {
                Search::Violation { .. } => (hi, galloping) = (mid, false),
                Search::Linearizable => (lo, k) = (mid + 1, k * 2),
                Search::OutOfBudget => return None,
            }
        }
        Some(suffix(hi))
    }

    /// Is the sub-history made of `subset` (indices into `ops`, sorted) linearizable?
    fn search(&self, subset: &[usize], deadline: Option<Instant>) -> Search {
        let ops: Vec<Call> = subset.iter().map(|&i| self.ops[i]).collect();
        let mut list = EntryList::new(&ops);
        let mut done = Linearized::new(&ops, self.writers.len());
        let mut cache: HashSet<(Vec<u64>, u32)> = HashSet::new();
        let mut cache_bytes: usize = 0;
        // (call entry lifted, register value before it)
        let mut stack: Vec<(usize, u32)> = Vec::new();
        let mut state = self.initial;
        let mut entry = list.first();
        let mut steps: u64 = 0;
        let mut horizon_us = 0;
        loop {
            steps = steps.wrapping_add(1);
            if steps % STEPS_PER_CLOCK_READ == 1 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Search::OutOfBudget;
            }
            let Some(e) = entry else {
                return Search::Linearizable;
            };
            let Entry { op: i, call } = list.entries[e];
            let op = ops[i];
            if !call {
                // Only +∞ returns are left: every acknowledged operation has a place.
                if op.pending {
                    return Search::Linearizable;
                }
                horizon_us = horizon_us.max(op.return_us);
                let Some((lifted, before)) = stack.pop() else {
                    return Search::Violation { horizon_us };
                };
                let j = list.entries[lifted].op;
                done.set(j, &ops[j], false);
                state = before;
                list.unlift(lifted);
                entry = list.next(lifted);
                continue;
            }
            let after = match op.kind {
                _ if done.unobservable(&op) => None,
                Kind::Write => Some(op.value),
                Kind::Read => (state == op.value).then_some(state),
            };
            if let Some(after) = after {
                done.set(i, &op, true);
                let key = done.key(&ops, after);
                let key_bytes = key.0.len() * 8 + 64;
                if cache.insert(key) {
                    cache_bytes = cache_bytes.saturating_add(key_bytes);
                    if cache_bytes > CACHE_BYTES_MAX {
                        return Search::OutOfBudget;
                    }
                    stack.push((e, state));
                    state = after;
                    list.lift(e);
                    entry = list.first();
                    continue;
                }
                done.set(i, &op, false);
            }
            entry = list.next(e);
        }
    }
}

/// The set of linearized operations, and what it takes to recognise unknown writes that
/// can no longer matter.
///
/// Once every read of an unknown write's value is linearized, placing the write anywhere
/// later is indistinguishable from never applying it (only writes can follow it). So such
/// a write is never linearized, and whether it already was is left out of the cache key:
/// both states have the same future. Without this, every unknown write would double the
/// states explored for the rest of the history. Likewise a register value no remaining
/// read returns only admits a write next, whichever value it is, so all such values share
/// one key: concurrent writes nobody reads then cost one state, not one per order.
struct Linearized {
    bits: Vec<u64>,
    /// Per value: acknowledged reads of it not linearized yet.
    reads_left: Vec<u32>,
    /// The unknown writes, ascending, and as a bitset.
    pending: Vec<usize>,
    pending_mask: Vec<u64>,
}

impl Linearized {
    fn new(ops: &[Call], values: usize) -> Linearized {
        let mut reads_left = vec![0u32; values];
        for op in ops.iter().filter(|op| op.kind == Kind::Read) {
            reads_left[op.value as usize] += 1;
        }
        let pending: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].pending).collect();
        let bits = vec![0; ops.len().div_ceil(64).max(1)];
        let mut pending_mask = bits.clone();
        for &p in &pending {
            pending_mask[p / 64] |= 1 << (p % 64);
        }
        Linearized { bits, reads_left, pending, pending_mask }
    }

    fn set(&mut self, i: usize, op: &Call, linearized: bool) {
        self.bits[i / 64] ^= 1 << (i % 64);
        if op.kind == Kind::Read {
            let left = &mut self.reads_left[op.value as usize];
            *left = if linearized { *left - 1 } else { *left + 1 };
        }
    }

    fn unobservable(&self, op: &Call) -> bool {
        op.pending && self.reads_left[op.value as usize] == 0
    }

    /// The cache key, compact: operations are numbered in call order, and all before the
    /// first acknowledged operation not yet linearized (`first`) are linearized, so only the
    /// live unknown writes before it and the words from it on are spelled out.
    fn key(&self, ops: &[Call], value: u32) -> (Vec<u64>, u32) {
        let first = self.first_open(ops.len());
        let split = self.pending.partition_point(|&p| p < first);
        let (before, after) = self.pending.split_at(split);
        let live = |&&p: &&usize| self.bits[p / 64] & (1 << (p % 64)) != 0 && !self.unobservable(&ops[p]);
        let before: Vec<u64> = before.iter().filter(live).map(|&p| p as u64).collect();
        let mut key = vec![first as u64, before.len() as u64];
        key.extend(before);
        let w0 = first / 64;
        let mut window = self.bits.get(w0..).unwrap_or_default().to_vec();
        if let Some(w) = window.first_mut() {
            *w &= !0 << (first % 64);
        }
        for &p in after.iter().filter(|&&p| self.unobservable(&ops[p])) {
            window[p / 64 - w0] &= !(1 << (p % 64));
        }
        while window.last() == Some(&0) {
            window.pop();
        }
        key.extend(window);
        let unread = self.reads_left[value as usize] == 0;
        (key, if unread { u32::MAX } else { value })
    }

    /// The first acknowledged operation not linearized yet (`len` if none).
    fn first_open(&self, len: usize) -> usize {
        let words = self.bits.iter().zip(&self.pending_mask).enumerate();
        let open = words.map(|(w, (&b, &p))| (w, !(b | p))).find(|&(_, free)| free != 0);
        open.map_or(len, |(w, free)| (w * 64 + free.trailing_zeros() as usize).min(len))
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    op: usize,
    call: bool,
}

/// Calls and returns in time order as a doubly linked list (index `len` is the sentinel),
/// so that lifting an operation out and putting it back are O(1).
struct EntryList {
    entries: Vec<Entry>,
    /// For each call entry, its return entry.
    partner: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    fn new(ops: &[Call]) -> EntryList {
        let mut entries: Vec<Entry> =
            (0..ops.len()).flat_map(|op| [true, false].map(|call| Entry { op, call })).collect();
        // Calls sort before returns at the same instant: touching intervals count as
        // concurrent, which can only make the check more permissive. +∞ returns go last.
        entries.sort_by_key(|&Entry { op, call }| match call {
            true => (false, ops[op].call_us, false, op),
            false => (ops[op].pending, ops[op].return_us, true, op),
        });
        let len = entries.len();
        let mut call_of = vec![0; ops.len()];
        let mut partner = vec![0; len];
        for (e, entry) in entries.iter().enumerate() {
            if entry.call {
                call_of[entry.op] = e;
            } else {
                partner[call_of[entry.op]] = e;
            }
        }
        let next = (0..=len).map(|e| (e + 1) % (len + 1)).collect();
        let prev = (0..=len).map(|e| (e + len) % (len + 1)).collect();
        EntryList { entries, partner, next, prev }
    }

    fn sentinel(&self) -> usize {
        self.entries.len()
    }

    fn first(&self) -> Option<usize> {
        self.next(self.sentinel())
    }

    fn next(&self, e: usize) -> Option<usize> {
        Some(self.next[e]).filter(|&n| n != self.sentinel())
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    /// Undoes `lift`; relinking in reverse order restores the exact list.
    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

#[cfg(test)]
mod tests;
