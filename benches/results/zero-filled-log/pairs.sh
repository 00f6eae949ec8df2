#!/usr/bin/env bash
# One run of a pair: a fresh fleet from the binaries in $1, 100,000 records of 1 KiB loaded with
# 64 clients, then 30 s of YCSB-A. Prints one line: ops/s and p99 of each phase with the stores'
# CPU seconds per 1,000 operations (from /proc).
#
# Usage: benches/results/zero-filled-log/pairs.sh <bin-dir> <label>
# The pairs in README.md ran the binaries before and after the change alternately.
set -euo pipefail
export SHOAL_BIN="$1"
label="$2"
source "$(dirname "${BASH_SOURCE[0]}")/../pair-fleet.sh"

line="$label"
phase() {
    local name="$1" ops c0 c1
    shift
    c0="$(cpu_ticks)"
    "$BIN/shoal-bench" "${common[@]}" "$@" >"$OUT/phase.json" 2>/dev/null
    c1="$(cpu_ticks)"
    ops="$(jq '(.load // .run) | .total_ops' "$OUT/phase.json")"
    rate="$(jq '(.load // .run) | .ops_per_sec' "$OUT/phase.json")"
    p99="$(jq '[(.load // .run) | .. | objects | select(has("p99_us")) | .p99_us] | max / 1000' "$OUT/phase.json")"
    line+="$(awk -v n="$name" -v r="$rate" -v o="$ops" -v s=$((c1 - c0)) -v p="$p99" -v hz="$hz" 'BEGIN {
        printf " | %s %.0f ops/s, p99 %s ms, stores %.3f CPU s/1k", n, r, p, s / hz * 1000 / o
    }')"
}
phase load --phase load
phase A --workload A --phase run --duration 30s
echo "$line"
