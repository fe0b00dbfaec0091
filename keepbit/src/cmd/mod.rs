//! Commands: the table of every command Keepbit knows (name, arity, flags, key positions,
//! implementation), the parsed `Command`, and the contexts implementations run in.
//!
//! A command runs one of three ways:
//! - `Run::Read`: reads the keyspace through a `ReadCtx` (a shared borrow: it cannot write);
//! - `Run::Write`: only ever inside `exec::apply`, through a `WriteCtx`, from an `Op`. Its
//!   optional `Prepare` rewrites the client's arguments into a deterministic form first;
//! - `Run::Session`: connection and server commands, tagged with a `SessionCmd` that the
//!   server layer carries out.

pub mod args;
pub mod exec;
mod hashes;
mod keys;
mod lists;
pub mod scan;
mod server;
mod sets;
mod strings;
mod table;
mod zsets;

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use rand::rngs::SmallRng;

pub use keys::help_reply;
pub use lists::blocking_spec;
pub use table::{all, lookup, lookup_any};
pub use zsets::bz_blocking_spec;

use crate::error::{CmdError, CmdResult};
use crate::store::{zset::ZSet, Db, Keyspace, Value};
pub use exec::{apply, Applied, Effects, NoEffects, Touch};

pub type ReadFn = fn(&mut ReadCtx, &[Bytes]) -> CmdResult;
pub type WriteFn = fn(&mut WriteCtx, &[Bytes]) -> CmdResult;
/// Rewrites a write command's arguments into their deterministic form, validating them.
pub type PrepareFn = fn(&mut ReadCtx, &[Bytes]) -> Result<Vec<Bytes>, CmdError>;

#[derive(Clone, Copy)]
pub enum Run {
    Read(ReadFn),
    Write(WriteFn, Option<PrepareFn>),
    Session(SessionCmd),
}

/// Connection and server commands: carried out by the server layer, which matches this
/// tag once (no dispatch on name strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCmd {
    Hello,
    Auth,
    Select,
    Quit,
    Reset,
    Client,
    Command,
    Info,
    Config,
    Role,
    Lastsave,
    Readonly,
    Readwrite,
    Wait,
    Sentinel,
    Keepbit,
    Failover,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Subscribe,
    Unsubscribe,
    Psubscribe,
    Punsubscribe,
    Pubsub,
}

pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const ADMIN: u32 = 1 << 2;
    pub const PUBSUB: u32 = 1 << 3;
    pub const NOSCRIPT: u32 = 1 << 4;
    pub const LOADING: u32 = 1 << 5;
    pub const STALE: u32 = 1 << 6;
    pub const FAST: u32 = 1 << 7;
    pub const BLOCKING: u32 = 1 << 8;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 9;
    /// Not queued by MULTI: runs at once (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const TX_CONTROL: u32 = 1 << 10;
    /// Only produced by the node when it rewrites a command; never accepted from clients.
    pub const INTERNAL: u32 = 1 << 11;
    /// Allowed in RESP2 subscribed mode.
    pub const SUBSCRIBED_OK: u32 = 1 << 12;
    pub const MOVABLE_KEYS: u32 = 1 << 13;

    pub const NAMES: [(u32, &str); 10] = [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (BLOCKING, "blocking"),
        (MOVABLE_KEYS, "movablekeys"),
    ];
}

pub struct Spec {
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    pub run: Run,
}

impl Spec {
    pub fn arity_ok(&self, n: usize) -> bool {
        let n = n as i32;
        if self.arity >= 0 {
            n == self.arity
        } else {
            n >= -self.arity
        }
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn is_write(&self) -> bool {
        matches!(self.run, Run::Write(..))
    }

    /// Whether running this command may grow the dataset (Redis's `denyoom`): every
    /// write except those that only remove, pop, expire or move existing data.
    pub fn may_grow(&self) -> bool {
        const SHRINKING: &[&str] = &[
            "del",
            "unlink",
            "expire",
            "pexpire",
            "expireat",
            "pexpireat",
            "persist",
            "getdel",
            "lpop",
            "rpop",
            "blpop",
            "brpop",
            "lmpop",
            "blmpop",
            "lrem",
            "ltrim",
            "srem",
            "spop",
            "hdel",
            "zrem",
            "zremrangebyrank",
            "zremrangebyscore",
            "zremrangebylex",
            "zpopmin",
            "zpopmax",
            "bzpopmin",
            "bzpopmax",
            "zmpop",
            "bzmpop",
            "flushdb",
            "flushall",
            "swapdb",
            "rename",
            "renamenx",
            "move",
            "smove",
            "lmove",
            "blmove",
            "rpoplpush",
            "brpoplpush",
        ];
        self.is_write() && !SHRINKING.contains(&self.name)
    }

    /// The keys this command names, by its key positions (for COMMAND GETKEYS and WATCH-like uses).
    pub fn keys<'a>(&self, args: &'a [Bytes]) -> Vec<&'a Bytes> {
        if self.first_key <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 { args.len() as i32 + self.last_key } else { self.last_key };
        (self.first_key..=last).step_by(self.step.max(1) as usize).filter_map(|i| args.get(i as usize)).collect()
    }
}

/// A parsed client request: which command, and its arguments (name included).
#[derive(Clone)]
pub struct Command {
    pub spec: &'static Spec,
    pub args: Vec<Bytes>,
}

impl Command {
    /// Looks the command up and checks its arity.
    pub fn parse(args: Vec<Bytes>) -> Result<Command, CmdError> {
        let spec = args.first().and_then(|name| lookup(name)).ok_or_else(|| CmdError::unknown_command(&args))?;
        if !spec.arity_ok(args.len()) {
            return Err(CmdError::WrongArity(spec.name.to_string()));
        }
        Ok(Command { spec, args })
    }
}

/// A read-only view of the keyspace for one command.
pub struct ReadCtx<'a> {
    pub ks: &'a Keyspace,
    pub db: usize,
    pub now_ms: u64,
    pub rng: &'a mut SmallRng,
}

/// Mutable access to the keyspace, only ever created by `exec::apply`.
pub struct WriteCtx<'a> {
    pub ks: &'a mut Keyspace,
    pub db: usize,
    pub now_ms: u64,
    pub seed: u64,
    pub touched: &'a mut Vec<Touch>,
    pub fx: &'a dyn Effects,
}

/// Typed read accessors, shared by both contexts: `Ok(None)` for a missing key,
/// `Err(WrongType)` for a key of another type. A `ReadCtx` hands out references that
/// outlive the borrow of the context (so `ctx.rng` stays usable beside them).
macro_rules! typed_readers {
    ($ctx:ident, $out:lifetime) => {
        impl<'a> $ctx<'a> {
            pub fn db<'s>(&'s self) -> &$out Db {
                self.ks.db(self.db)
            }
            pub fn get<'s>(&'s self, key: &[u8]) -> Option<&$out Value> {
                self.ks.db(self.db).get(key, self.now_ms)
            }
            pub fn get_str<'s>(&'s self, key: &[u8]) -> Result<Option<&$out Bytes>, CmdError> {
                match self.get(key) {
                    None => Ok(None),
                    Some(Value::Str(v)) => Ok(Some(v)),
                    Some(_) => Err(CmdError::WrongType),
                }
            }
            pub fn get_list<'s>(&'s self, key: &[u8]) -> Result<Option<&$out VecDeque<Bytes>>, CmdError> {
                match self.get(key) {
                    None => Ok(None),
                    Some(Value::List(v)) => Ok(Some(v)),
                    Some(_) => Err(CmdError::WrongType),
                }
            }
            pub fn get_hash<'s>(&'s self, key: &[u8]) -> Result<Option<&$out HashMap<Bytes, Bytes>>, CmdError> {
                match self.get(key) {
                    None => Ok(None),
                    Some(Value::Hash(v)) => Ok(Some(v)),
                    Some(_) => Err(CmdError::WrongType),
                }
            }
            pub fn get_set<'s>(&'s self, key: &[u8]) -> Result<Option<&$out HashSet<Bytes>>, CmdError> {
                match self.get(key) {
                    None => Ok(None),
                    Some(Value::Set(v)) => Ok(Some(v)),
                    Some(_) => Err(CmdError::WrongType),
                }
            }
            pub fn get_zset<'s>(&'s self, key: &[u8]) -> Result<Option<&$out ZSet>, CmdError> {
                match self.get(key) {
                    None => Ok(None),
                    Some(Value::ZSet(v)) => Ok(Some(v)),
                    Some(_) => Err(CmdError::WrongType),
                }
            }
        }
    };
}

typed_readers!(ReadCtx, 'a);
typed_readers!(WriteCtx, 's);

/// Typed mutable accessors: `$get_mut` for an existing value, `$entry` creating an empty one.
macro_rules! typed_writers {
    ($get_mut:ident, $entry:ident, $variant:ident, $ty:ty) => {
        impl WriteCtx<'_> {
            pub fn $get_mut(&mut self, key: &[u8]) -> Result<Option<&mut $ty>, CmdError> {
                match self.ks.db_mut(self.db).get_mut(key, self.now_ms) {
                    None => Ok(None),
                    Some(Value::$variant(v)) => Ok(Some(v)),
                    Some(_) => Err(CmdError::WrongType),
                }
            }
            pub fn $entry(&mut self, key: &Bytes) -> Result<&mut $ty, CmdError> {
                let now_ms = self.now_ms;
                let db = self.ks.db_mut(self.db);
                if db.get_mut(key, now_ms).is_none() {
                    db.set(key.clone(), Value::$variant(Default::default()));
                }
                match db.get_mut(key, now_ms) {
                    Some(Value::$variant(v)) => Ok(v),
                    _ => Err(CmdError::WrongType),
                }
            }
        }
    };
}

typed_writers!(list_mut, list_entry, List, VecDeque<Bytes>);
typed_writers!(hash_mut, hash_entry, Hash, HashMap<Bytes, Bytes>);
typed_writers!(set_mut, set_entry, Set, HashSet<Bytes>);
typed_writers!(zset_mut, zset_entry, ZSet, ZSet);

impl WriteCtx<'_> {
    pub fn db_mut(&mut self) -> &mut Db {
        self.ks.db_mut(self.db)
    }

    /// Records that `key` changed (for WATCH and blocked clients).
    pub fn touch(&mut self, key: &Bytes) {
        self.touched.push(Touch::Key(self.db, key.clone()));
    }

    /// After a collection was modified: deletes it if emptied, and records the change.
    pub fn done(&mut self, key: &Bytes) {
        let db = self.db;
        self.ks.db_mut(db).drop_if_empty(key);
        self.touch(key);
    }

    /// A read-only context over the same keyspace, for reads inside a write.
    pub fn with_reader<T>(&mut self, f: impl FnOnce(&mut ReadCtx) -> T) -> T {
        use rand::SeedableRng;
        let mut rng = SmallRng::seed_from_u64(self.seed);
        f(&mut ReadCtx { ks: self.ks, db: self.db, now_ms: self.now_ms, rng: &mut rng })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_unique_and_lowercase() {
        let mut seen = HashSet::new();
        for s in all() {
            assert_eq!(s.name, s.name.to_lowercase());
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            assert!(s.arity != 0, "{} has arity 0", s.name);
        }
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(b"spop-chosen").is_none());
        assert!(lookup_any(b"spop-chosen").is_some());
    }
}
