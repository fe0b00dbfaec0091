#!/usr/bin/env bash
# Runs the mutation fuzzer (keepbit/examples/fuzz.rs) on every target for a given time:
#   bench/fuzz.sh [seconds per target] [seed]
# Inputs that panic are saved under fuzz-findings/; the exit code is non-zero if any did.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
SEED=${2:-$RANDOM}
cargo build --release -j2 -p keepbit --example fuzz
for target in resp peer op; do
  target/release/examples/fuzz "$target" "$SECONDS_PER_TARGET" "$SEED"
done
