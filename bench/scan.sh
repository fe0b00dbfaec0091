#!/usr/bin/env bash
# A full `redis-cli --scan` (SCAN with COUNT 10, page after page) over KEYS keys, against
# `keepbit server` and redis-server side by side; prints seconds and the ratio. A SCAN page
# should cost O(COUNT), so the whole walk is O(keys) on both.
#
#   bash bench/scan.sh [keys]        (default 200000; KEEPBIT_BIN=path to compare a build)
# Needs redis-server and redis-cli (apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-200000}
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server redis-tools" >&2; exit 1; }
done
if [ -z "${KEEPBIT_BIN:-}" ]; then
  cargo build --release -j2 -p keepbit >&2
  KEEPBIT_BIN=target/release/keepbit
fi

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
"$KEEPBIT_BIN" server --bind 127.0.0.1 --port "$KEEPBIT_PORT" --data-dir "$WORK/keepbit" --log-level warn \
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

python3 -c "
import sys
for i in range($KEYS):
    k = 'key:%d' % i
    sys.stdout.write('*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$1\r\nv\r\n' % (len(k), k))
" >"$WORK/load.resp"
for port in "$REDIS_PORT" "$KEEPBIT_PORT"; do
  redis-cli -p "$port" --pipe <"$WORK/load.resp" >/dev/null
done

walk() {
  local start end n
  start=$(date +%s.%N)
  n=$(redis-cli -p "$1" --scan | wc -l)
  end=$(date +%s.%N)
  [ "$n" -ge "$KEYS" ] || { echo "SCAN on port $1 returned $n of $KEYS keys" >&2; exit 1; }
  python3 -c "print($end - $start)"
}
r=$(walk "$REDIS_PORT")
k=$(walk "$KEEPBIT_PORT")
printf "full SCAN of %d keys: redis-server %.2f s, keepbit %.2f s, ratio (redis/keepbit speed) %.2fx\n" \
  "$KEYS" "$r" "$k" "$(python3 -c "print($r / $k)")"
