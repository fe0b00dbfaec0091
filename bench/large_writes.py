#!/usr/bin/env python3
"""Large writes under a steady small-write load: does the primary keep its lease?

Starts `keepbit up` (3 nodes) on loopback, runs a client writing a small key every 2 ms
(following Sentinel discovery through failovers), and meanwhile SETs values of 8, 32 and
60 MiB and a SETRANGE that makes a 512 MiB value. Prints, per large write, its reply, its
time and the Raft term, then the small writes' errors. A term that moves is an election;
"outcome is unknown" means the primary lost its lease during the write.

    python3 bench/large_writes.py [--exe target/release/keepbit] [--base-port 7480]
"""
import argparse, os, shutil, signal, subprocess, sys, tempfile, threading, time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def primary(ports):
    for p in ports:
        try:
            h = redis.Redis(port=p, socket_timeout=1).execute_command("SENTINEL", "get-master-addr-by-name", "keepbit")
            return h[0].decode(), int(h[1])
        except Exception:
            pass
    return None


def term(ports):
    for p in ports:
        try:
            s = redis.Redis(port=p, socket_timeout=2).execute_command("KEEPBIT", "CLUSTER", "STATUS").decode()
            return s.splitlines()[0]
        except Exception:
            pass
    return "term: ?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", default=os.path.join(ROOT, "target", "release", "keepbit"))
    ap.add_argument("--base-port", type=int, default=7480)
    args = ap.parse_args()
    if args.exe.endswith(os.path.join("release", "keepbit")):
        subprocess.run(["cargo", "build", "--release", "-j2", "-p", "keepbit"], cwd=ROOT, check=True)
    ports = [args.base_port + i for i in (1, 2, 3)]
    work = tempfile.mkdtemp()
    up = subprocess.Popen([args.exe, "up", "--base-port", str(args.base_port), "--data-dir", os.path.join(work, "data")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while primary(ports) is None:
            if time.time() > deadline:
                sys.exit("no primary within 30 s")
            time.sleep(0.1)
        stop, errors, ok = False, [], [0]

        def small_writes():
            r = None
            while not stop:
                try:
                    if r is None:
                        host, port = primary(ports) or ("127.0.0.1", ports[0])
                        r = redis.Redis(host=host, port=port, socket_timeout=5)
                    r.set("small", ok[0])
                    ok[0] += 1
                except Exception as e:
                    errors.append(str(e)[:90])
                    r = None
                    time.sleep(0.05)
                time.sleep(0.002)

        t = threading.Thread(target=small_writes)
        t.start()
        time.sleep(1)
        print("before:", term(ports))
        host, port = primary(ports)
        big = redis.Redis(host=host, port=port, socket_timeout=120)
        writes = [(f"SET {mb} MiB", ("SET", "big", b"x" * (mb << 20))) for mb in (8, 32, 60)]
        writes.append(("SETRANGE to 512 MiB", ("SETRANGE", "range", 536870911, "x")))
        for name, cmd in writes:
            t0 = time.time()
            try:
                big.execute_command(*cmd)
                result = "ok"
            except Exception as e:
                result = str(e)[:90]
            print(f"{name}: {result} in {time.time() - t0:.2f} s; {term(ports)}")
            time.sleep(1)
        stop = True
        t.join()
        print(f"after: {term(ports)}; small writes ok {ok[0]}, failed {len(errors)}: {errors[:3]}")
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=15)
        except subprocess.TimeoutExpired:
            up.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
