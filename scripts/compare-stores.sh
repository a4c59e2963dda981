#!/usr/bin/env bash
# The same texts' results through several stores: `civikey list --search TEXT --limit N`
# through each profile (or --store address), the ids compared. Prints one line per text:
# the number of ids and whether every store gave the same ones, in the same order.
#
#   STORES="--profile db|--profile api|--profile cv|--store sqlite:/tmp/big.sqlite" \
#     bash scripts/compare-stores.sh [TEXT ...]
#
# Read-only (`--read-only`); exit 1 when a text's results differ.
set -euo pipefail
CIVIKEY=${CIVIKEY:-civikey}
LIMIT=${LIMIT:-50}
IFS='|' read -r -a stores <<< "${STORES:?set STORES, e.g. \"--profile db|--profile api\"}"
[ $# -gt 0 ] || set -- c car carter zzzq "Jing Ch" "Chen, Jing" smith "wei wang" "van der" ca j
status=0
for text in "$@"; do
    first=""
    same=yes
    count=0
    for store in "${stores[@]}"; do
        # shellcheck disable=SC2086 # a store is "--profile NAME" or "--store ADDRESS"
        ids=$("$CIVIKEY" --read-only $store list --search "$text" --limit "$LIMIT" --no-header 2>/dev/null | awk '{print $1}')
        if [ -z "$first" ]; then
            first="${ids:-none}"
            count=$(printf '%s' "$ids" | grep -c . || true)
        elif [ "${ids:-none}" != "$first" ]; then
            same=no
        fi
    done
    echo "text=\"$text\" ids=$count stores=${#stores[@]} same=$same"
    [ "$same" = yes ] || status=1
done
exit "$status"
