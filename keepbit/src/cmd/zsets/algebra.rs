//! Union, intersection and difference of sorted sets (and plain sets, every member scoring 1).

use super::*;

#[derive(Clone, Copy)]
enum Src<'a> {
    Missing,
    Z(&'a ZSet),
    /// A plain set: every member scores 1.
    S(&'a HashSet<Bytes>),
}

impl<'a> Src<'a> {
    fn len(self) -> usize {
        match self {
            Src::Missing => 0,
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
        }
    }

    fn find(self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Missing => None,
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn items(self) -> Box<dyn Iterator<Item = (&'a Bytes, f64)> + 'a> {
        match self {
            Src::Missing => Box::new(std::iter::empty()),
            Src::Z(z) => Box::new(z.iter()),
            Src::S(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(t: &mut f64, v: f64, agg: Aggregate) {
    *t = match agg {
        // inf + -inf: Redis keeps 0.
        Aggregate::Sum if (*t + v).is_nan() => 0.0,
        Aggregate::Sum => *t + v,
        Aggregate::Min if v < *t => v,
        Aggregate::Max if v > *t => v,
        _ => *t,
    };
}

enum SetOpOut {
    Members(ZSet, bool),
    Card(usize),
}

/// What a ZUNION / ZINTER / ZDIFF / ZINTERCARD (or *STORE form) asks for, parsed.
struct SetOpArgs {
    op: SetOp,
    /// Number of input keys.
    n: usize,
    weights: Vec<f64>,
    agg: Aggregate,
    withscores: bool,
    /// ZINTERCARD: count the intersection only, stopping at `limit` (0: no limit).
    card_only: bool,
    limit: usize,
}

/// Parses Redis's `zunionInterDiffGenericCommand` arguments: numkeys at `at`; `store` for
/// the *STORE forms.
fn parse_setop(a: &[Bytes], at: usize, store: bool) -> Result<SetOpArgs, CmdError> {
    let name = cmd_name(a);
    let card_only = name == "zintercard";
    let op = match name.get(..6) {
        Some("zunion") => SetOp::Union,
        Some("zinter") => SetOp::Inter,
        _ => SetOp::Diff,
    };
    let setnum = parse_i64(&a[at])?;
    if setnum < 1 {
        return Err(CmdError::err(format!("at least 1 input key is needed for '{name}' command")));
    }
    let avail = a.len() - (at + 1);
    if setnum as u64 > avail as u64 {
        return Err(CmdError::Syntax);
    }
    let n = setnum as usize;
    let mut p = SetOpArgs { op, n, weights: vec![1.0; n], agg: Aggregate::Sum, withscores: false, card_only, limit: 0 };
    let mut j = at + 1 + n;
    while j < a.len() {
        let remaining = a.len() - j;
        let opt = &a[j];
        let weighted = op != SetOp::Diff && !card_only;
        if weighted && remaining > n && is(opt, "weights") {
            for (w, arg) in p.weights.iter_mut().zip(&a[j + 1..j + 1 + n]) {
                *w = parse_f64(arg).map_err(|_| CmdError::err("weight value is not a float"))?;
            }
            j += 1 + n;
        } else if weighted && remaining >= 2 && is(opt, "aggregate") {
            p.agg = match args::lossy(&a[j + 1]).to_ascii_lowercase().as_str() {
                "sum" => Aggregate::Sum,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                _ => return Err(CmdError::Syntax),
            };
            j += 2;
        } else if !store && !card_only && is(opt, "withscores") {
            p.withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && is(opt, "limit") {
            let l = int_at_least(&a[j + 1], 0, "LIMIT can't be negative")?;
            p.limit = usize::try_from(l).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(p)
}

/// Parses the arguments, looks up the inputs (numkeys at `at`) and combines them.
fn setop(ctx: &ReadCtx, a: &[Bytes], at: usize, store: bool) -> Result<SetOpOut, CmdError> {
    let p = parse_setop(a, at, store)?;
    let mut srcs = Vec::with_capacity(p.n);
    for key in &a[at + 1..at + 1 + p.n] {
        srcs.push(match ctx.get(key) {
            None => Src::Missing,
            Some(Value::ZSet(z)) => Src::Z(z),
            Some(Value::Set(s)) => Src::S(s),
            Some(_) => return Err(CmdError::WrongType),
        });
    }
    Ok(combine(&srcs, &p))
}

/// Combines the inputs as `p` asks.
fn combine(srcs: &[Src], p: &SetOpArgs) -> SetOpOut {
    let (weights, agg) = (&p.weights, p.agg);
    // Smallest input first, as Redis orders them (the order sums are taken in).
    let mut order: Vec<usize> = (0..p.n).collect();
    if p.op != SetOp::Diff {
        order.sort_by_key(|&i| srcs[i].len());
    }
    // 0 * inf: Redis counts 0.
    let weighted = |i: usize, s: f64| Some(weights[i] * s).filter(|v| !v.is_nan()).unwrap_or(0.0);
    let mut out = ZSet::default();
    let mut card = 0usize;
    match p.op {
        SetOp::Inter => {
            let (first, others) = order.split_first().map_or((0, &[][..]), |(f, o)| (*f, o));
            for (m, s) in srcs[first].items() {
                let mut score = weighted(first, s);
                let all = others.iter().all(|&k| match srcs[k].find(m) {
                    Some(v) => {
                        aggregate(&mut score, v * weights[k], agg);
                        true
                    }
                    None => false,
                });
                if !all {
                    continue;
                }
                if p.card_only {
                    card += 1;
                    if p.limit > 0 && card >= p.limit {
                        break;
                    }
                } else {
                    out.insert(m.clone(), score);
                }
            }
        }
        SetOp::Union => {
            let mut acc: HashMap<&Bytes, f64> = HashMap::new();
            for &i in &order {
                for (m, s) in srcs[i].items() {
                    let score = weighted(i, s);
                    acc.entry(m).and_modify(|t| aggregate(t, score, agg)).or_insert(score);
                }
            }
            for (m, s) in acc {
                out.insert(m.clone(), s);
            }
        }
        SetOp::Diff => {
            for (m, s) in srcs[0].items() {
                if srcs[1..].iter().all(|o| o.find(m).is_none()) {
                    out.insert(m.clone(), s);
                }
            }
        }
    }
    if p.card_only {
        SetOpOut::Card(card)
    } else {
        SetOpOut::Members(out, p.withscores)
    }
}

/// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE dst numkeys key … [WEIGHTS …] [AGGREGATE …].
pub fn zsetop_store(ctx: &mut WriteCtx, a: &[Bytes]) -> CmdResult {
    match ctx.with_reader(|r| setop(r, a, 2, true))? {
        SetOpOut::Members(z, _) => Ok(store_zset(ctx, &a[1], z)),
        SetOpOut::Card(n) => Ok(Reply::Int(n as i64)),
    }
}

/// ZUNION / ZINTER / ZDIFF numkeys key … [WEIGHTS …] [AGGREGATE …] [WITHSCORES].
pub fn zsetop(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    match setop(ctx, a, 1, false)? {
        SetOpOut::Members(z, withscores) => Ok(members(owned(z.iter()), withscores)),
        SetOpOut::Card(n) => Ok(Reply::Int(n as i64)),
    }
}

/// ZINTERCARD numkeys key … [LIMIT n].
pub fn zintercard(ctx: &mut ReadCtx, a: &[Bytes]) -> CmdResult {
    zsetop(ctx, a)
}
