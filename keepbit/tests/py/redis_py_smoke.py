"""redis-py against a Keepbit node: RESP2 and RESP3 connections, pipelines,
transactions, pub/sub. Usage: redis_py_smoke.py PORT"""
import sys
import time

import redis

port = int(sys.argv[1])

for protocol in (2, 3):
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)
    r.flushall()
    assert r.ping() is True
    assert r.set("k", "v", ex=100) is True
    assert r.get("k") == "v"
    assert 99 <= r.ttl("k") <= 100
    assert r.incrby("n", 5) == 5
    assert r.incrbyfloat("f", 1.5) == 1.5
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hgetall("h") == {"a": "1", "b": "2"}
    assert r.rpush("l", "x", "y", "z") == 3
    assert r.lrange("l", 0, -1) == ["x", "y", "z"]
    assert r.sadd("s", "a", "b") == 2
    assert r.smembers("s") == {"a", "b"}
    assert r.zadd("z", {"a": 1, "b": 2.5}) == 2
    # redis-py returns tuples in RESP2 and lists in RESP3, for real Redis too.
    assert [tuple(p) for p in r.zrange("z", 0, -1, withscores=True)] == [("a", 1.0), ("b", 2.5)]
    assert r.zscore("z", "b") == 2.5
    pipe = r.pipeline(transaction=True)
    pipe.incr("n").get("n")
    assert pipe.execute() == [6, "6"]
    keys = set(r.scan_iter(match="*"))
    assert keys == {"k", "n", "f", "h", "l", "s", "z"}, keys
    try:
        r.lpush("k", "x")
        raise AssertionError("expected WRONGTYPE")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), e

    p = r.pubsub()
    p.subscribe("chan")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    assert r.publish("chan", "hello") == 1
    deadline = time.time() + 5
    msg = None
    while msg is None and time.time() < deadline:
        msg = p.get_message(timeout=1)
    assert msg is not None and msg["data"] == "hello", msg
    p.close()
    r.close()

print("redis-py ok")
