#!/usr/bin/env bash
# One run of a pair: a fresh fleet from the binaries in $1, 100,000 records of 1 KiB loaded with
# 64 clients, then 30 s of YCSB-A and 20 s of YCSB-C, all with shoal-bench's client tasks on
# $2 threads (--client-threads). Prints one line: ops/s of each phase with the CPU seconds per
# 1,000 operations of the stores and of the bench itself (both from /proc).
#
# Usage: benches/results/client-threads/pairs.sh <bin-dir> <client-threads>
# The pairs in README.md ran 2 and 1 alternately from the same binaries.
set -euo pipefail
export SHOAL_BIN="$1"
threads="$2"
source "$(dirname "${BASH_SOURCE[0]}")/../pair-fleet.sh"

# Clock ticks the shell's waited-for children used so far (the bench runs as one).
children_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }

line="threads $threads"
phase() {
    local name="$1" ops c0 c1 b0 b1
    shift
    c0="$(cpu_ticks)"
    b0="$(children_ticks)"
    "$BIN/shoal-bench" "${common[@]}" --client-threads "$threads" "$@" >"$OUT/phase.json" 2>/dev/null
    b1="$(children_ticks)"
    c1="$(cpu_ticks)"
    ops="$(jq '(.load // .run) | .total_ops' "$OUT/phase.json")"
    rate="$(jq '(.load // .run) | .ops_per_sec' "$OUT/phase.json")"
    line+="$(awk -v n="$name" -v r="$rate" -v o="$ops" -v s=$((c1 - c0)) -v b=$((b1 - b0)) -v hz="$hz" 'BEGIN {
        printf " | %s %.0f ops/s, stores %.3f, bench %.3f CPU s/1k", n, r, s / hz * 1000 / o, b / hz * 1000 / o
    }')"
}
phase load --phase load
phase A --workload A --phase run --duration 30s
phase C --workload C --phase run --duration 20s
echo "$line"
