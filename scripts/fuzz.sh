#!/usr/bin/env bash
# Longer fuzzing of every parser of untrusted input (the targets in src/fuzz/, stable toolchain).
#
#   scripts/fuzz.sh [seconds per target]      default 60
#
# Env: FUZZ_SEED (default: the current time, printed so a run can be repeated),
# FUZZ_ITERATIONS (default: unbounded), FUZZ_TARGETS (a test-name filter, default all),
# FUZZ_THREADS (targets run at once, default 2).
# A failing input is saved under target/fuzz-crashes/<target>/ (or, when the process had to
# abort on a hang or a memory cap, as target/fuzz-crashes/<target>.in-flight). Fix the bug,
# then keep the input as tests/fuzz-regressions/<target>/<what-it-does>.bin: every run, the
# short one in `cargo test` included, replays those first.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [seconds per target]" >&2; exit 2 ;;
esac
seed="${FUZZ_SEED:-$(date +%s)}"
echo "fuzzing each target for ${seconds}s with FUZZ_SEED=$seed"
status=0
FUZZ_SECONDS="$seconds" FUZZ_SEED="$seed" FUZZ_ITERATIONS="${FUZZ_ITERATIONS:-18446744073709551615}" \
  cargo test --lib "fuzz::${FUZZ_TARGETS:-}" -- --nocapture --test-threads="${FUZZ_THREADS:-2}" \
  2>&1 | grep -E '^(fuzz target|test |thread .* panicked at src/fuzz)|test result' || status=1
crashes="${CARGO_TARGET_DIR:-target}/fuzz-crashes"
if [ -d "$crashes" ] && [ -n "$(find "$crashes" -type f 2>/dev/null)" ]; then
  echo "FAIL: failing inputs kept in $crashes:"
  find "$crashes" -type f | sed 's/^/  /'
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "FAIL: the fuzz run did not finish cleanly (FUZZ_SEED=$seed)"
  exit 1
fi
echo "PASS: no target failed (FUZZ_SEED=$seed)"
