#!/usr/bin/env bash
# Side by side: redis-benchmark (SET and GET, -P 1 and -P 16, 50 clients) against the
# primary of a local 3-node Keepbit cluster (quorum replication, fsync = batch) and
# against a single redis-server with AOF (appendfsync everysec, then always), all in one
# run. Prints ops/s and the ratio Keepbit / redis-server for each line.
#
#   bench/cluster.sh                  # 100000 requests per line
#   REQUESTS=20000 bench/cluster.sh   # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server redis-tools" >&2; exit 1; }
done
cargo build --release -j2 -p keepbit >&2
KEEPBIT=$PWD/target/release/keepbit

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_ready() {
  for _ in $(seq 1 200); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2; exit 1
}

# Not called through $(...): the server's PID must reach this shell's PIDS for cleanup.
start_redis() { # $1 = appendfsync policy; sets REDIS_PORT
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis-$1"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync "$1" \
    --dir "$WORK/redis-$1" --daemonize no >"$WORK/redis-$1.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$REDIS_PORT"
}

start_redis everysec; REDIS_EVERYSEC=$REDIS_PORT
start_redis always; REDIS_ALWAYS=$REDIS_PORT

BASE=$(( ($(free_port) % 20000) + 30000 ))
"$KEEPBIT" up --nodes 3 --data-dir "$WORK/keepbit" --base-port "$BASE" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
PRIMARY=""
for _ in $(seq 1 300); do
  for i in 1 2 3; do
    if [ "$(redis-cli -p $((BASE + i)) role 2>/dev/null | head -1)" = "master" ]; then PRIMARY=$((BASE + i)); break 2; fi
  done
  sleep 0.1
done
[ -n "$PRIMARY" ] || { echo "no primary elected"; cat "$WORK/up.log"; exit 1; }

rps() { # port test pipeline
  redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -n "$REQUESTS" -c "$CLIENTS" -P "$3" -r 100000 --csv 2>/dev/null \
    | awk -F'","' 'NR==2 { gsub(/"/, "", $2); print $2 }'
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

echo "keepbit: 3 nodes, primary on port $PRIMARY, quorum writes, fsync=batch"
printf "%-5s %3s %14s %14s %14s %16s %14s\n" test P keepbit aof-everysec ratio aof-always ratio
for p in 1 16; do
  for t in set get; do
    k=$(rps "$PRIMARY" "$t" "$p")
    e=$(rps "$REDIS_EVERYSEC" "$t" "$p")
    a=$(rps "$REDIS_ALWAYS" "$t" "$p")
    printf "%-5s %3s %14s %14s %13sx %16s %13sx\n" "$t" "$p" "$k" "$e" "$(ratio "$k" "$e")" "$a" "$(ratio "$k" "$a")"
  done
done
