#!/usr/bin/env bash
# Whole-process `civikey list --search` through a REST profile against one
# Contact.autocomplete request (curl) to the same site, median of RUNS interleaved runs,
# in ms, as a Markdown table (docs/PERFORMANCE.md).
#
#   PROFILE=api SITE=http://127.0.0.1:48391 bash scripts/rest-compare.sh [TEXT ...]
#
# The site is civikey-bench's `rest-on-mysql` stand-in (no credential checked), or a real
# CiviCRM: then set CURL_AUTH to a file of curl headers (`-H @file`: X-Civi-Auth, ...).
set -euo pipefail
RUNS=${RUNS:-7}
PROFILE=${PROFILE:-api}
SITE=${SITE:-http://127.0.0.1:48391}
CIVIKEY=${CIVIKEY:-civikey}
AUTH=()
if [ -n "${CURL_AUTH:-}" ]; then AUTH=(-H "@$CURL_AUTH" -H "X-Requested-With: XMLHttpRequest"); fi
[ $# -gt 0 ] || set -- c car carter zzzq "Jing Ch" "Chen, Jing" smith
ms() { local s; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; echo $(( ($(date +%s%N) - s) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
json_text() { python3 -c 'import json,sys; print(json.dumps({"input": sys.argv[1]}))' "$1"; }
echo "| text | civikey list --search (REST) ms | Contact.autocomplete (curl) ms | 2x autocomplete + 150 ms | met |"
echo "|---|---:|---:|---:|---|"
for text in "$@"; do
    a=(); b=()
    params="params=$(json_text "$text")"
    for i in $(seq 0 "$RUNS"); do
        x=$(ms "$CIVIKEY" --profile "$PROFILE" list --search "$text" --limit 50)
        y=$(ms curl -s "${AUTH[@]}" -X POST --data-urlencode "$params" "$SITE/civicrm/ajax/api4/Contact/autocomplete")
        # The first round warms up and is not counted.
        if [ "$i" -gt 0 ]; then a+=("$x"); b+=("$y"); fi
    done
    ma=$(printf '%s\n' "${a[@]}" | median)
    mb=$(printf '%s\n' "${b[@]}" | median)
    limit=$((2 * mb + 150))
    met=no
    if [ "$ma" -le "$limit" ]; then met=yes; fi
    echo "| \`$text\` | $ma | $mb | $limit | $met |"
done
