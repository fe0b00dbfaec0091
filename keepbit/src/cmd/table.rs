//! The command table: every command's name, arity, flags, key positions and handler,
//! and the lookups by name.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::flags::*;
use super::*;

macro_rules! spec {
    ($name:literal, $arity:literal, $flags:expr, ($f:literal, $l:literal, $s:literal), $group:literal, $run:expr, $summary:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $f,
            last_key: $l,
            step: $s,
            group: $group,
            summary: $summary,
            run: $run,
        }
    };
}

fn r(f: ReadFn) -> Run {
    Run::Read(f)
}
fn w(f: WriteFn) -> Run {
    Run::Write(f, None)
}
fn wp(f: WriteFn, p: PrepareFn) -> Run {
    Run::Write(f, Some(p))
}
fn ses(c: SessionCmd) -> Run {
    Run::Session(c)
}

const RO: u32 = READONLY;
const ROF: u32 = READONLY | FAST;
const WR: u32 = WRITE;
const WRF: u32 = WRITE | FAST;
const CONN: u32 = NOSCRIPT | LOADING | STALE | FAST;

fn build_table() -> Vec<Spec> {
    use hashes as h;
    use keys as k;
    use lists as l;
    use server as sv;
    use sets as st;
    use strings as s;
    use zsets as z;
    vec![
        // connection and server
        spec!("ping", -1, CONN | SUBSCRIBED_OK, (0, 0, 0), "connection", r(sv::ping), "Returns the server's liveliness response."),
        spec!("echo", 2, CONN, (0, 0, 0), "connection", r(sv::echo), "Returns the given string."),
        spec!("hello", -1, CONN | NO_AUTH, (0, 0, 0), "connection", ses(SessionCmd::Hello), "Handshakes with the server."),
        spec!("auth", -2, CONN | NO_AUTH, (0, 0, 0), "connection", ses(SessionCmd::Auth), "Authenticates the connection."),
        spec!("select", 2, CONN, (0, 0, 0), "connection", ses(SessionCmd::Select), "Changes the selected database."),
        spec!("quit", -1, CONN | NO_AUTH | TX_CONTROL | SUBSCRIBED_OK, (0, 0, 0), "connection", ses(SessionCmd::Quit), "Closes the connection."),
        spec!("reset", 1, CONN | NO_AUTH | TX_CONTROL | SUBSCRIBED_OK, (0, 0, 0), "connection", ses(SessionCmd::Reset), "Resets the connection."),
        spec!("client", -2, ADMIN | CONN, (0, 0, 0), "connection", ses(SessionCmd::Client), "A container for client connection commands."),
        spec!("command", -1, LOADING | STALE, (0, 0, 0), "server", ses(SessionCmd::Command), "Returns detailed information about all commands."),
        spec!("info", -1, LOADING | STALE, (0, 0, 0), "server", ses(SessionCmd::Info), "Returns information and statistics about the server."),
        spec!("config", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), "server", ses(SessionCmd::Config), "A container for server configuration commands."),
        spec!("role", 1, NOSCRIPT | LOADING | STALE | FAST, (0, 0, 0), "server", ses(SessionCmd::Role), "Returns the replication role."),
        spec!("time", 1, LOADING | STALE | FAST, (0, 0, 0), "server", r(sv::time), "Returns the server time."),
        spec!("lastsave", 1, LOADING | STALE | FAST, (0, 0, 0), "server", ses(SessionCmd::Lastsave), "Returns the Unix timestamp of the last successful save to disk."),
        spec!("dbsize", 1, ROF, (0, 0, 0), "server", r(sv::dbsize), "Returns the number of keys in the database."),
        spec!("flushdb", -1, WR, (0, 0, 0), "server", w(sv::flushdb), "Removes all keys from the current database."),
        spec!("flushall", -1, WR, (0, 0, 0), "server", w(sv::flushall), "Removes all keys from all databases."),
        spec!("swapdb", 3, WRF, (0, 0, 0), "server", w(sv::swapdb), "Swaps two Redis databases."),
        // replication and discovery
        spec!("readonly", 1, CONN, (0, 0, 0), "cluster", ses(SessionCmd::Readonly), "Enables read-only queries for a connection to a standby."),
        spec!("readwrite", 1, CONN, (0, 0, 0), "cluster", ses(SessionCmd::Readwrite), "Disables read-only queries for a connection."),
        spec!("wait", 3, NOSCRIPT, (0, 0, 0), "generic", ses(SessionCmd::Wait), "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."),
        spec!("sentinel", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), "sentinel", ses(SessionCmd::Sentinel), "Sentinel discovery: where the primary and its replicas are."),
        spec!("failover", -1, ADMIN | NOSCRIPT | STALE, (0, 0, 0), "server", ses(SessionCmd::Failover), "Hands the primary role to a caught-up replica (planned switchover)."),
        spec!("keepbit", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), "server", ses(SessionCmd::Keepbit), "Keepbit administration: HEALTH; CLUSTER STATUS | ADD | REMOVE; EVENTS [COUNT n] (the failover journal); FAULT SET name value | CLEAR (test-only fault injection)."),
        // transactions
        spec!("multi", 1, CONN | TX_CONTROL, (0, 0, 0), "transactions", ses(SessionCmd::Multi), "Starts a transaction."),
        spec!("exec", 1, NOSCRIPT | LOADING | STALE | TX_CONTROL, (0, 0, 0), "transactions", ses(SessionCmd::Exec), "Executes all commands in a transaction."),
        spec!("discard", 1, CONN | TX_CONTROL, (0, 0, 0), "transactions", ses(SessionCmd::Discard), "Discards a transaction."),
        spec!("watch", -2, CONN | TX_CONTROL, (1, -1, 1), "transactions", ses(SessionCmd::Watch), "Monitors changes to keys to determine the execution of a transaction."),
        spec!("unwatch", 1, CONN | TX_CONTROL, (0, 0, 0), "transactions", ses(SessionCmd::Unwatch), "Forgets about watched keys of a transaction."),
        // pub/sub
        spec!("subscribe", -2, PUBSUB | CONN | SUBSCRIBED_OK, (0, 0, 0), "pubsub", ses(SessionCmd::Subscribe), "Listens for messages published to channels."),
        spec!("unsubscribe", -1, PUBSUB | CONN | SUBSCRIBED_OK, (0, 0, 0), "pubsub", ses(SessionCmd::Unsubscribe), "Stops listening to messages posted to channels."),
        spec!("psubscribe", -2, PUBSUB | CONN | SUBSCRIBED_OK, (0, 0, 0), "pubsub", ses(SessionCmd::Psubscribe), "Listens for messages published to channels that match one or more patterns."),
        spec!("punsubscribe", -1, PUBSUB | CONN | SUBSCRIBED_OK, (0, 0, 0), "pubsub", ses(SessionCmd::Punsubscribe), "Stops listening to messages published to channels that match one or more patterns."),
        spec!("publish", 3, PUBSUB | LOADING | STALE | FAST, (0, 0, 0), "pubsub", w(sv::publish), "Posts a message to a channel."),
        spec!("pubsub", -2, PUBSUB | LOADING | STALE, (0, 0, 0), "pubsub", ses(SessionCmd::Pubsub), "A container for Pub/Sub commands."),
        // keys
        spec!("del", -2, WR, (1, -1, 1), "generic", w(k::del), "Deletes one or more keys."),
        spec!("unlink", -2, WRF, (1, -1, 1), "generic", w(k::del), "Asynchronously deletes one or more keys."),
        spec!("exists", -2, ROF, (1, -1, 1), "generic", r(k::exists), "Determines whether one or more keys exist."),
        spec!("type", 2, ROF, (1, 1, 1), "generic", r(k::type_), "Determines the type of value stored at a key."),
        spec!("rename", 3, WR, (1, 2, 1), "generic", w(k::rename), "Renames a key and overwrites the destination."),
        spec!("renamenx", 3, WRF, (1, 2, 1), "generic", w(k::renamenx), "Renames a key only when the target key name doesn't exist."),
        spec!("copy", -3, WR, (1, 2, 1), "generic", w(k::copy), "Copies the value of a key to a new key."),
        spec!("move", 3, WRF, (1, 1, 1), "generic", w(k::move_), "Moves a key to another database."),
        spec!("expire", -3, WRF, (1, 1, 1), "generic", wp(k::pexpireat, k::prepare_expire), "Sets the expiration time of a key in seconds."),
        spec!("pexpire", -3, WRF, (1, 1, 1), "generic", wp(k::pexpireat, k::prepare_expire), "Sets the expiration time of a key in milliseconds."),
        spec!("expireat", -3, WRF, (1, 1, 1), "generic", wp(k::pexpireat, k::prepare_expire), "Sets the expiration time of a key to a Unix timestamp."),
        spec!("pexpireat", -3, WRF, (1, 1, 1), "generic", w(k::pexpireat), "Sets the expiration time of a key to a Unix milliseconds timestamp."),
        spec!("ttl", 2, ROF, (1, 1, 1), "generic", r(k::ttl), "Returns the expiration time in seconds of a key."),
        spec!("pttl", 2, ROF, (1, 1, 1), "generic", r(k::ttl), "Returns the expiration time in milliseconds of a key."),
        spec!("expiretime", 2, ROF, (1, 1, 1), "generic", r(k::expiretime), "Returns the expiration time of a key as a Unix timestamp."),
        spec!("pexpiretime", 2, ROF, (1, 1, 1), "generic", r(k::expiretime), "Returns the expiration time of a key as a Unix milliseconds timestamp."),
        spec!("persist", 2, WRF, (1, 1, 1), "generic", w(k::persist), "Removes the expiration time of a key."),
        spec!("keys", 2, RO, (0, 0, 0), "generic", r(k::keys), "Returns all key names that match a pattern."),
        spec!("scan", -2, RO, (0, 0, 0), "generic", r(k::scan), "Iterates over the key names in the database."),
        spec!("randomkey", 1, RO, (0, 0, 0), "generic", r(k::randomkey), "Returns a random key name from the database."),
        spec!("touch", -2, ROF, (1, -1, 1), "generic", r(k::exists), "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
        spec!("object", -2, RO, (2, 2, 1), "generic", r(k::object), "A container for object introspection commands."),
        // strings
        spec!("get", 2, ROF, (1, 1, 1), "string", r(s::get), "Returns the string value of a key."),
        spec!("set", -3, WR, (1, 1, 1), "string", wp(s::set, s::prepare_set), "Sets the string value of a key, ignoring its type."),
        spec!("setnx", 3, WRF, (1, 1, 1), "string", w(s::setnx), "Set the string value of a key only when the key doesn't exist."),
        spec!("setex", 4, WR, (1, 1, 1), "string", wp(s::set, s::prepare_setex), "Sets the string value and expiration time of a key."),
        spec!("psetex", 4, WR, (1, 1, 1), "string", wp(s::set, s::prepare_setex), "Sets both string value and expiration time in milliseconds of a key."),
        spec!("getset", 3, WRF, (1, 1, 1), "string", w(s::getset), "Returns the previous string value of a key after setting it to a new value."),
        spec!("getdel", 2, WRF, (1, 1, 1), "string", w(s::getdel), "Returns the string value of a key after deleting the key."),
        spec!("getex", -2, WRF, (1, 1, 1), "string", wp(s::getex, s::prepare_getex), "Returns the string value of a key after setting its expiration time."),
        spec!("mget", -2, ROF, (1, -1, 1), "string", r(s::mget), "Atomically returns the string values of one or more keys."),
        spec!("mset", -3, WR, (1, -1, 2), "string", w(s::mset), "Atomically creates or modifies the string values of one or more keys."),
        spec!("msetnx", -3, WR, (1, -1, 2), "string", w(s::msetnx), "Atomically modifies the string values of one or more keys only when all keys don't exist."),
        spec!("incr", 2, WRF, (1, 1, 1), "string", w(s::incr), "Increments the integer value of a key by one."),
        spec!("decr", 2, WRF, (1, 1, 1), "string", w(s::incr), "Decrements the integer value of a key by one."),
        spec!("incrby", 3, WRF, (1, 1, 1), "string", w(s::incr), "Increments the integer value of a key by a number."),
        spec!("decrby", 3, WRF, (1, 1, 1), "string", w(s::incr), "Decrements a number from the integer value of a key."),
        spec!("incrbyfloat", 3, WRF, (1, 1, 1), "string", w(s::incrbyfloat), "Increment the floating point value of a key by a number."),
        spec!("append", 3, WRF, (1, 1, 1), "string", w(s::append), "Appends a string to the value of a key."),
        spec!("strlen", 2, ROF, (1, 1, 1), "string", r(s::strlen), "Returns the length of a string value."),
        spec!("getrange", 4, RO, (1, 1, 1), "string", r(s::getrange), "Returns a substring of the string stored at a key."),
        spec!("substr", 4, RO, (1, 1, 1), "string", r(s::getrange), "Returns a substring from a string value."),
        spec!("setrange", 4, WR, (1, 1, 1), "string", w(s::setrange), "Overwrites a part of a string value with another by an offset."),
        spec!("lcs", -3, RO, (1, 2, 1), "string", r(s::lcs), "Finds the longest common substring."),
        // hashes
        spec!("hset", -4, WRF, (1, 1, 1), "hash", w(h::hset), "Creates or modifies the value of a field in a hash."),
        spec!("hmset", -4, WRF, (1, 1, 1), "hash", w(h::hset), "Sets the values of multiple fields."),
        spec!("hsetnx", 4, WRF, (1, 1, 1), "hash", w(h::hsetnx), "Sets the value of a field in a hash only when the field doesn't exist."),
        spec!("hget", 3, ROF, (1, 1, 1), "hash", r(h::hget), "Returns the value of a field in a hash."),
        spec!("hmget", -3, ROF, (1, 1, 1), "hash", r(h::hmget), "Returns the values of all fields in a hash."),
        spec!("hdel", -3, WRF, (1, 1, 1), "hash", w(h::hdel), "Deletes one or more fields and their values from a hash."),
        spec!("hexists", 3, ROF, (1, 1, 1), "hash", r(h::hexists), "Determines whether a field exists in a hash."),
        spec!("hlen", 2, ROF, (1, 1, 1), "hash", r(h::hlen), "Returns the number of fields in a hash."),
        spec!("hkeys", 2, RO, (1, 1, 1), "hash", r(h::hkeys), "Returns all fields in a hash."),
        spec!("hvals", 2, RO, (1, 1, 1), "hash", r(h::hvals), "Returns all values in a hash."),
        spec!("hgetall", 2, RO, (1, 1, 1), "hash", r(h::hgetall), "Returns all fields and values in a hash."),
        spec!("hincrby", 4, WRF, (1, 1, 1), "hash", w(h::hincrby), "Increments the integer value of a field in a hash by a number."),
        spec!("hincrbyfloat", 4, WRF, (1, 1, 1), "hash", w(h::hincrbyfloat), "Increments the floating point value of a field by a number."),
        spec!("hstrlen", 3, ROF, (1, 1, 1), "hash", r(h::hstrlen), "Returns the length of the value of a field."),
        spec!("hrandfield", -2, RO, (1, 1, 1), "hash", r(h::hrandfield), "Returns one or more random fields from a hash."),
        spec!("hscan", -3, RO, (1, 1, 1), "hash", r(h::hscan), "Iterates over fields and values of a hash."),
        // lists
        spec!("lpush", -3, WRF, (1, 1, 1), "list", w(l::push), "Prepends one or more elements to a list."),
        spec!("rpush", -3, WRF, (1, 1, 1), "list", w(l::push), "Appends one or more elements to a list."),
        spec!("lpushx", -3, WRF, (1, 1, 1), "list", w(l::push), "Prepends one or more elements to a list only when the list exists."),
        spec!("rpushx", -3, WRF, (1, 1, 1), "list", w(l::push), "Appends an element to a list only when the list exists."),
        spec!("lpop", -2, WRF, (1, 1, 1), "list", w(l::pop), "Returns the first elements in a list after removing it."),
        spec!("rpop", -2, WRF, (1, 1, 1), "list", w(l::pop), "Returns and removes the last elements of a list."),
        spec!("llen", 2, ROF, (1, 1, 1), "list", r(l::llen), "Returns the length of a list."),
        spec!("lrange", 4, RO, (1, 1, 1), "list", r(l::lrange), "Returns a range of elements from a list."),
        spec!("lindex", 3, RO, (1, 1, 1), "list", r(l::lindex), "Returns an element from a list by its index."),
        spec!("lset", 4, WR, (1, 1, 1), "list", w(l::lset), "Sets the value of an element in a list by its index."),
        spec!("linsert", 5, WR, (1, 1, 1), "list", w(l::linsert), "Inserts an element before or after another element in a list."),
        spec!("lrem", 4, WR, (1, 1, 1), "list", w(l::lrem), "Removes elements from a list."),
        spec!("ltrim", 4, WR, (1, 1, 1), "list", w(l::ltrim), "Removes elements from both ends a list."),
        spec!("lpos", -3, RO, (1, 1, 1), "list", r(l::lpos), "Returns the index of matching elements in a list."),
        spec!("lmove", 5, WR, (1, 2, 1), "list", w(l::lmove), "Returns an element after popping it from one list and pushing it to another."),
        spec!("rpoplpush", 3, WR, (1, 2, 1), "list", w(l::lmove), "Returns the last element of a list after removing and pushing it to another list."),
        spec!("lmpop", -4, WR | MOVABLE_KEYS, (0, 0, 0), "list", w(l::lmpop), "Returns multiple elements from a list after removing them."),
        spec!("blpop", -3, WR | BLOCKING, (1, -2, 1), "list", w(l::bpop), "Removes and returns the first element in a list. Blocks until an element is available otherwise."),
        spec!("brpop", -3, WR | BLOCKING, (1, -2, 1), "list", w(l::bpop), "Removes and returns the last element in a list. Blocks until an element is available otherwise."),
        spec!("blmove", 6, WR | BLOCKING, (1, 2, 1), "list", w(l::lmove), "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise."),
        spec!("brpoplpush", 4, WR | BLOCKING, (1, 2, 1), "list", w(l::lmove), "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise."),
        spec!("blmpop", -5, WR | BLOCKING | MOVABLE_KEYS, (0, 0, 0), "list", w(l::lmpop), "Pops the first element from one of multiple lists. Blocks until an element is available otherwise."),
        // sets
        spec!("sadd", -3, WRF, (1, 1, 1), "set", w(st::sadd), "Adds one or more members to a set."),
        spec!("srem", -3, WRF, (1, 1, 1), "set", w(st::srem), "Removes one or more members from a set."),
        spec!("smembers", 2, RO, (1, 1, 1), "set", r(st::smembers), "Returns all members of a set."),
        spec!("sismember", 3, ROF, (1, 1, 1), "set", r(st::sismember), "Determines whether a member belongs to a set."),
        spec!("smismember", -3, ROF, (1, 1, 1), "set", r(st::smismember), "Determines whether multiple members belong to a set."),
        spec!("scard", 2, ROF, (1, 1, 1), "set", r(st::scard), "Returns the number of members in a set."),
        spec!("spop", -2, WRF, (1, 1, 1), "set", wp(st::spop, st::prepare_spop), "Returns one or more random members from a set after removing them."),
        spec!("spop-chosen", -3, WRF | INTERNAL, (1, 1, 1), "set", w(st::spop_chosen), "SPOP with the popped members chosen by the primary."),
        spec!("srandmember", -2, RO, (1, 1, 1), "set", r(st::srandmember), "Get one or multiple random members from a set."),
        spec!("smove", 4, WRF, (1, 2, 1), "set", w(st::smove), "Moves a member from one set to another."),
        spec!("sinter", -2, RO, (1, -1, 1), "set", r(st::sinter), "Returns the intersect of multiple sets."),
        spec!("sunion", -2, RO, (1, -1, 1), "set", r(st::sunion), "Returns the union of multiple sets."),
        spec!("sdiff", -2, RO, (1, -1, 1), "set", r(st::sdiff), "Returns the difference of multiple sets."),
        spec!("sinterstore", -3, WR, (1, -1, 1), "set", w(st::sinterstore), "Stores the intersect of multiple sets in a key."),
        spec!("sunionstore", -3, WR, (1, -1, 1), "set", w(st::sunionstore), "Stores the union of multiple sets in a key."),
        spec!("sdiffstore", -3, WR, (1, -1, 1), "set", w(st::sdiffstore), "Stores the difference of multiple sets in a key."),
        spec!("sintercard", -3, RO | MOVABLE_KEYS, (0, 0, 0), "set", r(st::sintercard), "Returns the number of members of the intersect of multiple sets."),
        spec!("sscan", -3, RO, (1, 1, 1), "set", r(st::sscan), "Iterates over members of a set."),
        // sorted sets
        spec!("zadd", -4, WRF, (1, 1, 1), "sorted-set", w(z::zadd), "Adds one or more members to a sorted set, or updates their scores."),
        spec!("zrem", -3, WRF, (1, 1, 1), "sorted-set", w(z::zrem), "Removes one or more members from a sorted set."),
        spec!("zscore", 3, ROF, (1, 1, 1), "sorted-set", r(z::zscore), "Returns the score of a member in a sorted set."),
        spec!("zmscore", -3, ROF, (1, 1, 1), "sorted-set", r(z::zmscore), "Returns the score of one or more members in a sorted set."),
        spec!("zincrby", 4, WRF, (1, 1, 1), "sorted-set", w(z::zincrby), "Increments the score of a member in a sorted set."),
        spec!("zcard", 2, ROF, (1, 1, 1), "sorted-set", r(z::zcard), "Returns the number of members in a sorted set."),
        spec!("zcount", 4, ROF, (1, 1, 1), "sorted-set", r(z::zcount), "Returns the count of members in a sorted set that have scores within a range."),
        spec!("zlexcount", 4, ROF, (1, 1, 1), "sorted-set", r(z::zlexcount), "Returns the number of members in a sorted set within a lexicographical range."),
        spec!("zrange", -4, RO, (1, 1, 1), "sorted-set", r(z::zrange), "Returns members in a sorted set within a range of indexes."),
        spec!("zrangestore", -5, WR, (1, 2, 1), "sorted-set", w(z::zrangestore), "Stores a range of members from sorted set in a key."),
        spec!("zrangebyscore", -4, RO, (1, 1, 1), "sorted-set", r(z::zrange), "Returns members in a sorted set within a range of scores."),
        spec!("zrevrangebyscore", -4, RO, (1, 1, 1), "sorted-set", r(z::zrange), "Returns members in a sorted set within a range of scores in reverse order."),
        spec!("zrangebylex", -4, RO, (1, 1, 1), "sorted-set", r(z::zrange), "Returns members in a sorted set within a lexicographical range."),
        spec!("zrevrangebylex", -4, RO, (1, 1, 1), "sorted-set", r(z::zrange), "Returns members in a sorted set within a lexicographical range in reverse order."),
        spec!("zrevrange", -4, RO, (1, 1, 1), "sorted-set", r(z::zrange), "Returns members in a sorted set within a range of indexes in reverse order."),
        spec!("zrank", -3, ROF, (1, 1, 1), "sorted-set", r(z::zrank), "Returns the index of a member in a sorted set ordered by ascending scores."),
        spec!("zrevrank", -3, ROF, (1, 1, 1), "sorted-set", r(z::zrank), "Returns the index of a member in a sorted set ordered by descending scores."),
        spec!("zpopmin", -2, WRF, (1, 1, 1), "sorted-set", w(z::zpop), "Returns the lowest-scoring members from a sorted set after removing them."),
        spec!("zpopmax", -2, WRF, (1, 1, 1), "sorted-set", w(z::zpop), "Returns the highest-scoring members from a sorted set after removing them."),
        spec!("bzpopmin", -3, WRF | BLOCKING, (1, -2, 1), "sorted-set", w(z::bzpop), "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise."),
        spec!("bzpopmax", -3, WRF | BLOCKING, (1, -2, 1), "sorted-set", w(z::bzpop), "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise."),
        spec!("zmpop", -4, WR | MOVABLE_KEYS, (0, 0, 0), "sorted-set", w(z::zmpop), "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them."),
        spec!("bzmpop", -5, WR | BLOCKING | MOVABLE_KEYS, (0, 0, 0), "sorted-set", w(z::zmpop), "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise."),
        spec!("zremrangebyrank", 4, WR, (1, 1, 1), "sorted-set", w(z::zremrange), "Removes members in a sorted set within a range of indexes."),
        spec!("zremrangebyscore", 4, WR, (1, 1, 1), "sorted-set", w(z::zremrange), "Removes members in a sorted set within a range of scores."),
        spec!("zremrangebylex", 4, WR, (1, 1, 1), "sorted-set", w(z::zremrange), "Removes members in a sorted set within a lexicographical range."),
        spec!("zunionstore", -4, WR | MOVABLE_KEYS, (1, 1, 1), "sorted-set", w(z::zsetop_store), "Stores the union of multiple sorted sets in a key."),
        spec!("zinterstore", -4, WR | MOVABLE_KEYS, (1, 1, 1), "sorted-set", w(z::zsetop_store), "Stores the intersect of multiple sorted sets in a key."),
        spec!("zdiffstore", -4, WR | MOVABLE_KEYS, (1, 1, 1), "sorted-set", w(z::zsetop_store), "Stores the difference of multiple sorted sets in a key."),
        spec!("zunion", -3, RO | MOVABLE_KEYS, (0, 0, 0), "sorted-set", r(z::zsetop), "Returns the union of multiple sorted sets."),
        spec!("zinter", -3, RO | MOVABLE_KEYS, (0, 0, 0), "sorted-set", r(z::zsetop), "Returns the intersect of multiple sorted sets."),
        spec!("zdiff", -3, RO | MOVABLE_KEYS, (0, 0, 0), "sorted-set", r(z::zsetop), "Returns the difference between multiple sorted sets."),
        spec!("zintercard", -3, RO | MOVABLE_KEYS, (0, 0, 0), "sorted-set", r(z::zintercard), "Returns the number of members of the intersect of multiple sorted sets."),
        spec!("zrandmember", -2, RO, (1, 1, 1), "sorted-set", r(z::zrandmember), "Returns one or more random members from a sorted set."),
        spec!("zscan", -3, RO, (1, 1, 1), "sorted-set", r(z::zscan), "Iterates over members and scores of a sorted set."),
    ]
}

struct Table {
    specs: Vec<Spec>,
    by_name: HashMap<&'static str, usize>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let specs = build_table();
        let by_name = specs.iter().enumerate().map(|(i, s)| (s.name, i)).collect();
        Table { specs, by_name }
    })
}

/// Every command, internal ones included.
pub fn all() -> &'static [Spec] {
    &table().specs
}

/// Looks up any command by name, case-insensitively (apply uses this: internal
/// commands included).
pub fn lookup_any(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let name = std::str::from_utf8(lower).ok()?;
    let t = table();
    t.by_name.get(name).map(|&i| &t.specs[i])
}

/// Looks up a command a client may send.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    lookup_any(name).filter(|s| !s.has(INTERNAL))
}
