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

NEEDED="redis-cli redis-benchmark"
# shellcheck source=side_by_side.sh
source bench/side_by_side.sh

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
