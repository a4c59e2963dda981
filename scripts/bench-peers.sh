#!/usr/bin/env bash
# civikey next to the tools an operator would otherwise reach for, on the same contacts:
#
#   bash scripts/bench-peers.sh [STORE.sqlite] [WORD ...]
#
# For each WORD, whole-process wall time (median of RUNS runs, default 7) of
#   civikey list --search WORD --limit 50       (the release build)
#   fzf --filter WORD < names.txt               (Debian's fzf; names.txt = every display name)
#   sqlite3 STORE "<the quick-search LIKE query> LIMIT 50"         (what one types by hand)
#   sqlite3 STORE "<the same query through civikey's word index>"  (the floor: same SQL civikey runs)
# printed as a Markdown table with ratios. The store is made with
# `civikey seed --synthetic 1000000` when it does not exist (COUNT=N to change the size).
# Uses hyperfine when installed, else a loop timed with `date +%s%N`. As root on Debian it
# installs fzf and sqlite3 with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C.UTF-8 # character counts and slices below are in characters

STORE="${1:-${TMPDIR:-/tmp}/civikey-peers/contacts-1m.sqlite}"
shift || true
WORDS=("$@")
[ ${#WORDS[@]} -gt 0 ] || WORDS=(smith garcía van wei Смирнова zqx)
RUNS="${RUNS:-7}"
COUNT="${COUNT:-1000000}"

say() { printf 'bench-peers: %s\n' "$*" >&2; }

need=()
command -v fzf >/dev/null || need+=(fzf)
command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
            { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; }
    else
        say "missing ${need[*]}: install them (apt-get install ${need[*]})"
        exit 1
    fi
fi

cargo build --release --quiet --bin civikey >&2
CIVIKEY="${CARGO_TARGET_DIR:-target}/release/civikey"

if [ ! -f "$STORE" ]; then
    mkdir -p "$(dirname "$STORE")"
    chmod 700 "$(dirname "$STORE")"
    say "creating $STORE with $COUNT contacts"
    "$CIVIKEY" seed --synthetic "$COUNT" --store "sqlite:$STORE" >&2
fi
NAMES="$STORE.names.txt"
if [ ! -f "$NAMES" ] || [ "$NAMES" -ot "$STORE" ]; then
    sqlite3 "$STORE" "SELECT display_name FROM civicrm_contact" >"$NAMES"
fi
CONTACTS=$(wc -l <"$NAMES")

# SQL-quote a word, and escape LIKE's wildcards as civikey does.
sql_text() { printf '%s' "$1" | sed "s/'/''/g"; }
like_text() { sql_text "$1" | sed 's/\\/\\\\/g; s/%/\\%/g; s/_/\\_/g'; }

COLUMNS_SQL="c.id, c.display_name, c.contact_type,
  (SELECT e.email FROM civicrm_email e WHERE e.contact_id = c.id AND e.is_primary = 1 ORDER BY e.id LIMIT 1),
  substr(c.api_key, -4),
  (SELECT u.uf_id FROM civicrm_uf_match u WHERE u.contact_id = c.id ORDER BY u.domain_id LIMIT 1)"

ESC="ESCAPE '\\'"

like_query() {
    local p
    p="$(like_text "$1")"
    echo "SELECT $COLUMNS_SQL FROM civicrm_contact c
      WHERE c.sort_name LIKE '$p%' $ESC OR c.first_name LIKE '$p%' $ESC
         OR c.last_name LIKE '$p%' $ESC
      ORDER BY coalesce(c.sort_name, ''), c.id LIMIT 50;"
}

# The words whose first one or two characters match, in list order: what civikey runs for
# a common prefix (and a fine plan for a rare one); lower-cased (the words are folded;
# this ASCII lowering is the fold only for ASCII words).
index_query() {
    local low p head col
    low="$(printf '%s' "$1" | tr 'A-Z' 'a-z')"
    p="$(like_text "$1")"
    if [ "${#1}" -ge 2 ]; then head="${low:0:2}"; col=head2; else head="${low:0:1}"; col=head; fi
    echo "SELECT $COLUMNS_SQL FROM civikey_word w INDEXED BY civikey_word_$col
      CROSS JOIN civicrm_contact c ON c.id = w.contact_id
      WHERE w.$col = '$(sql_text "$head")' AND w.word LIKE '$p%' $ESC
      GROUP BY w.sort_key, w.contact_id ORDER BY w.sort_key, w.contact_id LIMIT 50;"
}

# Median wall time in milliseconds of running "$@" RUNS times, stdin from $STDIN (default
# /dev/null), output discarded.
median_ms() {
    local input="${STDIN:-/dev/null}"
    if command -v hyperfine >/dev/null; then
        local json
        json="$(mktemp)"
        hyperfine --style none --warmup 1 --runs "$RUNS" --input "$input" --export-json "$json" -N -- "$(printf '%q ' "$@")" >/dev/null 2>&1
        python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$json"
        rm -f "$json"
        return
    fi
    local times=() i start end
    # Warm-up (the page cache, as for every tool), and proof the command works.
    local out status=0
    out="$(mktemp)"
    "$@" <"$input" >"$out" 2>&1 || status=$?
    # fzf exits 1 when nothing matches; any other failure stops the run.
    if [ "$status" -ne 0 ] && ! { [ "$1" = fzf ] && [ "$status" -eq 1 ]; }; then
        say "failed ($status): $*: $(head -c 300 "$out")"
        exit 1
    fi
    [ -z "${VERBOSE:-}" ] || say "$(wc -l <"$out") lines from: $1 ... ${*: -1}"
    rm -f "$out"
    for ((i = 0; i < RUNS; i++)); do
        start=$(date +%s%N)
        "$@" <"$input" >/dev/null 2>&1 || true
        end=$(date +%s%N)
        times+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1000}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

say "store $STORE ($CONTACTS contacts), median of $RUNS runs each$(command -v hyperfine >/dev/null && echo ' (hyperfine)')"
echo
echo "Whole-process wall time in ms, median of $RUNS runs, $CONTACTS contacts ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))."
echo
echo "| search | civikey list | fzf --filter | sqlite3, LIKE by hand | sqlite3, civikey's index | civikey / fzf | civikey / sqlite3 index |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for word in "${WORDS[@]}"; do
    c=$(median_ms "$CIVIKEY" --store "sqlite:$STORE" list --search "$word" --limit 50)
    f=$(STDIN="$NAMES" median_ms fzf --filter "$word")
    l=$(median_ms sqlite3 "$STORE" "$(like_query "$word")")
    x=$(median_ms sqlite3 "$STORE" "$(index_query "$word")")
    echo "| \`$word\` | $c | $f | $l | $x | $(ratio "$c" "$f") | $(ratio "$c" "$x") |"
done
