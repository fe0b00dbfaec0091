#!/usr/bin/env python3
"""Failover timing: kill -9 the primary of a local Keepbit cluster under a write loop,
ROUNDS times, and report the client-observed write gap (last acknowledged write before
the kill to the first acknowledged write after it) as min / p50 / p99 / max. With
--switchover it runs FAILOVER on the primary instead (a planned switchover) and reports
the write pause: the longest stretch without an acknowledged write around it.

The client behaves like a Sentinel-aware client: on any error it asks any node
`SENTINEL get-master-addr-by-name keepbit` and retries there.

    bench/failover.py                 # 20 rounds, 3 nodes, release build
    bench/failover.py --rounds 5 --nodes 5
    bench/failover.py --switchover

Needs python3 with the `redis` package (pip install redis).
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# redis-py retries failed commands with backoff by default; the drill's client must see
# every failure itself and re-discover the primary at once.
NO_RETRY = Retry(NoBackoff(), 0)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    def __init__(self, exe, n, workdir, extra=""):
        self.exe, self.workdir = exe, workdir
        self.nodes = {}
        for i in range(1, n + 1):
            self.nodes[i] = {"client": free_port(), "peer": free_port(), "proc": None}
        peers = "\n".join(
            f'  {{ id = {i}, addr = "127.0.0.1:{v["peer"]}", client_addr = "127.0.0.1:{v["client"]}" }},'
            for i, v in self.nodes.items()
        )
        for i, v in self.nodes.items():
            d = os.path.join(workdir, f"node-{i}")
            os.makedirs(d)
            v["config"] = os.path.join(d, "keepbit.toml")
            with open(v["config"], "w") as f:
                f.write(
                    f'bind = "127.0.0.1"\nport = {v["client"]}\ndata_dir = "{d}"\nlog_level = "warn"\nadmin_password = "bench"\n\n'
                    f'[cluster]\nnode_id = {i}\nsecret = "bench"\n{extra}\npeers = [\n{peers}\n]\n'
                )
            self.start(i)

    def start(self, i):
        v = self.nodes[i]
        log = open(os.path.join(os.path.dirname(v["config"]), "keepbit.log"), "a")
        v["proc"] = subprocess.Popen([self.exe, "server", "--config", v["config"]], stdout=subprocess.DEVNULL, stderr=log)

    def kill(self, i):
        p = self.nodes[i]["proc"]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop_all(self):
        for v in self.nodes.values():
            if v["proc"] and v["proc"].poll() is None:
                v["proc"].kill()
                v["proc"].wait()

    def conn(self, i, timeout=0.3):
        return redis.Redis(
            host="127.0.0.1", port=self.nodes[i]["client"], socket_timeout=timeout, socket_connect_timeout=timeout, retry=NO_RETRY
        )

    def role(self, i):
        try:
            return self.conn(i).execute_command("ROLE")
        except redis.RedisError:
            return None

    def primary(self):
        for i in self.nodes:
            r = self.role(i)
            if r and r[0] in (b"master", "master"):
                return i
        return None

    def node_of_port(self, port):
        return next(i for i, v in self.nodes.items() if v["client"] == port)


class Writer(threading.Thread):
    """Writes continuously, recording the time of every acknowledged write."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.acks, self.stop, self.lock = cluster, [], False, threading.Lock()

    def discover(self):
        for i in self.cluster.nodes:
            try:
                host, port = self.cluster.conn(i, 0.2).execute_command("SENTINEL", "get-master-addr-by-name", "keepbit")
                return redis.Redis(host=host, port=int(port), socket_timeout=0.5, socket_connect_timeout=0.2, retry=NO_RETRY)
            except (redis.RedisError, TypeError, ValueError):
                continue
        return None

    def run(self):
        con, n = None, 0
        while not self.stop:
            try:
                if con is None:
                    con = self.discover()
                    if con is None:
                        time.sleep(0.005)
                        continue
                con.set(f"k{n % 1000}", n)
                with self.lock:
                    self.acks.append(time.monotonic())
                n += 1
            except redis.RedisError:
                con = None
                time.sleep(0.002)

    def first_ack_after(self, t):
        with self.lock:
            return next((a for a in self.acks if a > t), None)

    def last_ack_before(self, t):
        with self.lock:
            return next((a for a in reversed(self.acks) if a <= t), None)

    def longest_silence(self, t0, t1):
        """The longest stretch without an acknowledged write that overlaps [t0, t1]."""
        start, end = self.last_ack_before(t0) or t0, self.first_ack_after(t1)
        with self.lock:
            acks = [start] + [a for a in self.acks if start < a < end] + [end]
        return max(b - a for a, b in zip(acks, acks[1:]))


def switchover(cluster, primary):
    """FAILOVER on the primary; returns when it has answered."""
    con = cluster.conn(primary, timeout=10)
    con.execute_command("AUTH", "admin", "bench")
    con.execute_command("FAILOVER", "TIMEOUT", "5000")


def wait_until(what, cond, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--exe", default=os.path.join(ROOT, "target", "release", "keepbit"))
    ap.add_argument("--switchover", action="store_true", help="FAILOVER on the primary instead of kill -9")
    ap.add_argument("--cluster-setting", action="append", default=[], metavar="KEY=VALUE",
                    help="extra [cluster] setting for every node, e.g. heartbeat_ms=25")
    args = ap.parse_args()
    if args.exe.endswith(os.path.join("release", "keepbit")):
        subprocess.run(["cargo", "build", "--release", "-j2", "-p", "keepbit"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="keepbit-failover-")
    cluster = Cluster(args.exe, args.nodes, work, "\n".join(s.replace("=", " = ", 1) for s in args.cluster_setting))
    gaps = []
    try:
        wait_until("a primary", lambda: cluster.primary() is not None, 30)
        writer = Writer(cluster)
        writer.start()
        for rnd in range(1, args.rounds + 1):
            wait_until("writes to flow", lambda: writer.first_ack_after(time.monotonic() - 0.05) is not None, 30)
            victim = cluster.primary()
            if victim is None:
                wait_until("a primary", lambda: cluster.primary() is not None, 30)
                victim = cluster.primary()
            if args.switchover:
                t0 = time.monotonic()
                switchover(cluster, victim)
                t1 = time.monotonic()
                wait_until("a write after the switchover", lambda: writer.first_ack_after(t1) is not None, 30)
                gap_ms = writer.longest_silence(t0, t1) * 1000
                gaps.append(gap_ms)
                print(f"round {rnd:2}: switched over from node {victim}, write pause {gap_ms:7.1f} ms "
                      f"(FAILOVER answered in {(t1 - t0) * 1000:.1f} ms)", flush=True)
                time.sleep(0.3)
                continue
            cluster.kill(victim)
            # Measured once the process is gone: replies already on their way before the
            # kill landed are not writes the cluster accepted after it.
            t_kill = time.monotonic()
            wait_until("a write after the kill", lambda: writer.first_ack_after(t_kill) is not None, 30)
            last = writer.last_ack_before(t_kill) or t_kill
            gap_ms = (writer.first_ack_after(t_kill) - last) * 1000
            gaps.append(gap_ms)
            print(f"round {rnd:2}: killed node {victim}, write gap {gap_ms:7.1f} ms", flush=True)
            cluster.start(victim)
            wait_until("the killed node to rejoin", lambda: (cluster.role(victim) or [b""])[0] in (b"slave", "slave"), 30)
            time.sleep(0.3)
        writer.stop = True
    finally:
        cluster.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nwrite {'pause' if args.switchover else 'gap'} over {len(gaps)} "
        f"{'switchovers' if args.switchover else 'kill -9 failovers'} ({args.nodes} nodes, "
        f"{', '.join(args.cluster_setting) or 'default settings'}): "
        f"min {min(gaps):.0f} ms, p50 {statistics.median(gaps):.0f} ms, "
        f"p99 {pct(gaps, 99):.0f} ms, max {max(gaps):.0f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
