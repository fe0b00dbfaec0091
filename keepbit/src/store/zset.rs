//! Sorted set: member → score, and (score, member) in order.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;

/// A score that is never NaN, so it has a total order. `-0.0` is stored as `0.0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZSet {
    scores: HashMap<Bytes, f64>,
    sorted: BTreeSet<(Score, Bytes)>,
}

/// One end of a score range: `1`, `(1`, `-inf`, `+inf`.
#[derive(Clone, Copy, Debug)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    pub fn below(&self, score: f64) -> bool {
        // true when `score` is at or above this lower bound
        if self.exclusive {
            score > self.value
        } else {
            score >= self.value
        }
    }

    pub fn above(&self, score: f64) -> bool {
        // true when `score` is at or below this upper bound
        if self.exclusive {
            score < self.value
        } else {
            score <= self.value
        }
    }
}

/// One end of a lexicographic range: `-`, `+`, `[a`, `(a`.
#[derive(Clone, Debug)]
pub enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

impl LexBound {
    pub fn allows_as_min(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(b) => m >= &b[..],
            LexBound::Excl(b) => m > &b[..],
        }
    }

    pub fn allows_as_max(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m <= &b[..],
            LexBound::Excl(b) => m < &b[..],
        }
    }
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets the member's score; true if the member is new.
    pub fn insert(&mut self, member: Bytes, score: f64) -> bool {
        let score = if score == 0.0 { 0.0 } else { score };
        match self.scores.insert(member.clone(), score) {
            Some(old) => {
                self.sorted.remove(&(Score(old), member.clone()));
                self.sorted.insert((Score(score), member));
                false
            }
            None => {
                self.sorted.insert((Score(score), member));
                true
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove_entry(member) {
            Some((m, score)) => {
                self.sorted.remove(&(Score(score), m));
                true
            }
            None => false,
        }
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let key = (Score(score), Bytes::copy_from_slice(member));
        Some(self.sorted.range(..key).count())
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.sorted.iter().map(|(s, m)| (m, s.0))
    }

    /// Members in score order within `[min, max]`, ascending or descending.
    pub fn range_by_score(&self, min: ScoreBound, max: ScoreBound, rev: bool) -> Vec<(Bytes, f64)> {
        let lo = (Score(min.value), Bytes::new());
        let in_range = |s: f64| min.below(s) && max.above(s);
        if rev {
            self.sorted
                .iter()
                .rev()
                .skip_while(|(s, _)| !max.above(s.0))
                .take_while(|(s, _)| min.below(s.0))
                .filter(|(s, _)| in_range(s.0))
                .map(|(s, m)| (m.clone(), s.0))
                .collect()
        } else {
            self.sorted
                .range(lo..)
                .skip_while(|(s, _)| !min.below(s.0))
                .take_while(|(s, _)| max.above(s.0))
                .map(|(s, m)| (m.clone(), s.0))
                .collect()
        }
    }

    /// Members within a lexicographic range (meaningful when all scores are equal).
    pub fn range_by_lex(&self, min: &LexBound, max: &LexBound, rev: bool) -> Vec<(Bytes, f64)> {
        let ok = |m: &Bytes| min.allows_as_min(m) && max.allows_as_max(m);
        let pick = |(s, m): &(Score, Bytes)| ok(m).then(|| (m.clone(), s.0));
        if rev {
            self.sorted.iter().rev().filter_map(pick).collect()
        } else {
            self.sorted.iter().filter_map(pick).collect()
        }
    }

    pub fn first(&self) -> Option<(Bytes, f64)> {
        self.sorted.first().map(|(s, m)| (m.clone(), s.0))
    }

    pub fn last(&self) -> Option<(Bytes, f64)> {
        self.sorted.last().map(|(s, m)| (m.clone(), s.0))
    }
}
