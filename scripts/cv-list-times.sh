#!/usr/bin/env bash
# Whole-process `civikey --profile PROFILE list --search TEXT --limit 50`, median and
# slowest of RUNS runs per text (after one warm-up run), in ms, as a Markdown table
# (docs/PERFORMANCE.md, the cv figures). Each run is a new civikey, so a new cv session.
#
#   PROFILE=cv CIVIKEY=target/release/civikey bash scripts/cv-list-times.sh [TEXT ...]
set -euo pipefail
RUNS=${RUNS:-7}
PROFILE=${PROFILE:-cv}
CIVIKEY=${CIVIKEY:-civikey}
[ $# -gt 0 ] || set -- c car carter zzzq "Jing Ch" smith "wei wang"
ms() { local s; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; echo $(( ($(date +%s%N) - s) / 1000000 )); }
echo "| text | civikey list --search ms (median) | slowest ms |"
echo "|---|---:|---:|"
for text in "$@"; do
    a=()
    for i in $(seq 0 "$RUNS"); do
        x=$(ms "$CIVIKEY" --profile "$PROFILE" list --search "$text" --limit 50)
        if [ "$i" -gt 0 ]; then a+=("$x"); fi
    done
    sorted=$(printf '%s\n' "${a[@]}" | sort -n)
    median=$(echo "$sorted" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    slowest=$(echo "$sorted" | tail -1)
    echo "| \`$text\` | $median | $slowest |"
done
