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
NEEDED="redis-cli"
# shellcheck source=side_by_side.sh
source bench/side_by_side.sh

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
