#!/usr/bin/env bash
# Side-by-side throughput: redis-benchmark against `keepbit server` and against Debian's
# redis-server, started together in this run. Prints ops/s for both and the ratio.
#
#   bench/compare.sh                 # 100000 requests per line
#   REQUESTS=20000 bench/compare.sh  # quicker
#
# Needs redis-server and redis-benchmark (apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-"set get incr lpush hset"}
PIPELINES=${PIPELINES:-"1 16"}

for tool in redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server redis-tools" >&2; exit 1; }
done

cargo build --release -j2 -p keepbit >&2
KEEPBIT=target/release/keepbit

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
KEEPBIT_PORT=$(free_port)
"$KEEPBIT" server --bind 127.0.0.1 --port "$KEEPBIT_PORT" --data-dir "$WORK/keepbit" --log-level warn \
  >"$WORK/keepbit.log" 2>&1 &
PIDS+=($!)

wait_ready() {
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2; exit 1
}
wait_ready "$REDIS_PORT"
wait_ready "$KEEPBIT_PORT"

# ops/s of one redis-benchmark line.
rps() {
  redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -n "$REQUESTS" -c "$CLIENTS" -P "$3" -r 100000 --csv 2>/dev/null \
    | awk -F'","' 'NR==2 { gsub(/"/, "", $2); print $2 }'
}

printf "%-8s %4s %14s %14s %7s\n" test P redis-server keepbit ratio
for p in $PIPELINES; do
  for t in $TESTS; do
    r=$(rps "$REDIS_PORT" "$t" "$p")
    k=$(rps "$KEEPBIT_PORT" "$t" "$p")
    ratio=$(python3 -c "print(f'{$k/$r:.2f}')")
    printf "%-8s %4s %14s %14s %6sx\n" "$t" "$p" "$r" "$k" "$ratio"
  done
done
