"""redis-py Sentinel discovery follows a Keepbit failover.

Usage: sentinel_failover.py ADDR [ADDR ...]   (each node's client address, ip:port)

Writes through Sentinel.master_for("keepbit"), prints "READY <primary>" and waits for a
line on stdin (the Rust test kills the primary meanwhile). Then it writes until a write
succeeds through rediscovery, each attempt with the NEXT value (an errored write's
outcome is unknown), checks that every acknowledged value is in the list exactly once,
and prints "OK <new primary>".
"""
import sys
import time

import redis
from redis.sentinel import Sentinel

RETRY_DEADLINE_S = 20

nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[1:]]
sentinel = Sentinel(nodes, socket_timeout=1.0, socket_connect_timeout=1.0)
master = sentinel.master_for("keepbit", socket_timeout=2.0, socket_connect_timeout=1.0, decode_responses=True)


def addr(pair):
    return "%s:%d" % pair


acked = []
for v in range(20):
    master.rpush("py:list", v)
    acked.append(v)
first = sentinel.discover_master("keepbit")
print("READY " + addr(first), flush=True)
sys.stdin.readline()

deadline = time.monotonic() + RETRY_DEADLINE_S
v = 100
while True:
    try:
        master.rpush("py:list", v)
        acked.append(v)
        break
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as e:
        # ConnectionError covers MasterNotFoundError and "the previous master is now a
        # slave"; ResponseError covers READONLY and TRYAGAIN.
        if time.monotonic() > deadline:
            raise
        print("retrying after: %r" % e, file=sys.stderr, flush=True)
        v += 1
        time.sleep(0.05)

second = sentinel.discover_master("keepbit")
assert second != first, "discovery still names the killed primary %s" % addr(first)
values = [int(x) for x in master.lrange("py:list", 0, -1)]
missing = [x for x in acked if x not in values]
assert not missing, "acknowledged values lost: %r" % missing
assert len(values) == len(set(values)), "duplicated values: %r" % values
print("OK " + addr(second), flush=True)
