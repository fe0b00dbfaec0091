# Sourced by the standalone benchmarks: starts Debian's redis-server and `keepbit server`
# on free loopback ports (REDIS_PORT, KEEPBIT_PORT), waits until both answer PING, and
# stops both by PID on exit. KEEPBIT_BIN picks the keepbit binary (default: a fresh
# release build). Needs the tools named in NEEDED (a space-separated list).
for tool in redis-server ${NEEDED:-}; do
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
