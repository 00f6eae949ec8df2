#!/usr/bin/env bash
# One run of a pair: a fresh fleet from the binaries in $1, 100,000 records of 1 KiB loaded with
# 64 clients, then 30 s of YCSB-A. Prints one line: load and A ops/s, the stores' CPU seconds
# per 1,000 operations (from /proc), and, over 5 s in the middle of the load, the stores'
# writev and write syscalls and context switches per insert (perf stat).
#
# Usage: benches/results/answer-relay/pairs.sh <bin-dir> <tag>   (run as root for perf stat)
# The pairs in README.md ran old/new alternately: `pairs.sh /tmp/old-bin old1`, `pairs.sh
# /tmp/new-bin new1`, ... with each directory holding shoal-server, shoal-pd, shoal-ctl and
# shoal-bench built from the commit before and the commit of the change.
set -euo pipefail
export SHOAL_BIN="$1"
tag="$2"
source "$(dirname "${BASH_SOURCE[0]}")/../pair-fleet.sh"

c0="$(cpu_ticks)"
"$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/load.json" 2>/dev/null &
bench=$!
sleep 3
perf stat -e 'syscalls:sys_enter_writev,syscalls:sys_enter_write,context-switches' \
    -p "$(store_pids | paste -sd,)" -o "$OUT/stat" -- sleep 5
wait "$bench"
c1="$(cpu_ticks)"
"$BIN/shoal-bench" "${common[@]}" --workload A --phase run --duration 30s >"$OUT/A.json" 2>/dev/null
c2="$(cpu_ticks)"

load_rate="$(jq .load.ops_per_sec "$OUT/load.json")"
a_ops="$(jq .run.total_ops "$OUT/A.json")"
per_insert="$(grep -E 'sys_enter|context' "$OUT/stat" |
    awk -v r="$load_rate" '{ printf "%s %.2f ", $2, $1 / (r * 5) }')"
awk -v tag="$tag" -v lr="$load_rate" -v lc=$((c1 - c0)) -v ao="$a_ops" -v ac=$((c2 - c1)) -v hz="$hz" \
    -v per="$per_insert" 'BEGIN {
        printf "%s load %.0f ops/s, %.3f CPU s/1k | A %.0f ops/s, %.3f CPU s/1k | per insert: %s\n",
            tag, lr, lc / hz / 100, ao / 30, ac / hz * 1000 / ao, per
    }'
