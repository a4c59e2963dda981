#!/usr/bin/env bash
# Fuzzing by property tests (proptest): cargo fuzz needs a nightly toolchain, this project
# builds on stable. Runs every tests/proptest_*.rs target with many cases, bounded in time,
# prints the figures (cases run per target, failures, seconds) and exits non-zero on any
# failure. A failure prints the smallest input proptest could shrink it to.
#
#   PROPTEST_CASES  cases per property (default 10000)
#   FUZZ_SECONDS    time limit per property; it stops after the chunk in progress (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."

export PROPTEST_CASES="${PROPTEST_CASES:-10000}"
export FUZZ_SECONDS="${FUZZ_SECONDS:-300}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

targets=()
for f in tests/proptest_*.rs; do
  targets+=("$(basename "$f" .rs)")
done

# Built once, optimised like a release (the properties run far faster), before the clock.
args=()
for t in "${targets[@]}"; do args+=(--test "$t"); done
cargo test --release --locked "${args[@]}" --no-run >&2

status=0
start=$(date +%s)
for t in "${targets[@]}"; do
  echo "== $t (PROPTEST_CASES=$PROPTEST_CASES, FUZZ_SECONDS=$FUZZ_SECONDS per property)" >&2
  if ! cargo test --release --locked --test "$t" -- --test-threads=1 2>&1 | tee -a "$log" >&2; then
    status=1
  fi
done
elapsed=$(( $(date +%s) - start ))

echo
echo "property                     cases   failures  seconds"
# libtest may print its "test NAME ..." on the same line: take the FUZZ figures wherever.
grep -oE 'FUZZ [a-z_]+: [0-9]+ cases, [0-9]+ failures, [0-9.]+ s' "$log" |
  sed -E 's/^FUZZ ([^:]+): ([0-9]+) cases, ([0-9]+) failures, ([0-9.]+) s$/\1 \2 \3 \4/' |
  awk '{ printf "%-26s %8d %8d %8.1f\n", $1, $2, $3, $4; cases += $2; fails += $3 }
       END { printf "%-26s %8d %8d\n", "total", cases, fails }'
echo "wall time: ${elapsed} s"
if grep -q 'panicked\|FAILED' "$log"; then
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz.sh: FAILURES (see above)" >&2
fi
exit "$status"
