#!/usr/bin/env bash
# One run of a pair: a fresh fleet from the binaries in $1 (shoal-server, shoal-pd, shoal-ctl,
# shoal-bench), 100,000 records of 1 KiB loaded with 64 clients, then 25 s of workload $3 (C
# by default). Prints one line: the load's ops/s, the workload's ops/s and the stores' CPU
# seconds per 1,000 operations (user + system, from /proc).
#
# Usage: benches/results/memtable-bloom/pairs.sh <bin-dir> <tag> [workload]
set -euo pipefail
export SHOAL_BIN="$1"
tag="$2"
wl="${3:-C}"
source "$(dirname "${BASH_SOURCE[0]}")/../pair-fleet.sh"

"$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/load.json" 2>/dev/null
c1="$(cpu_ticks)"
"$BIN/shoal-bench" "${common[@]}" --workload "$wl" --phase run --duration 25s >"$OUT/r.json" 2>/dev/null
c2="$(cpu_ticks)"
ops="$(jq .run.total_ops "$OUT/r.json")"
awk -v tag="$tag" -v lr="$(jq .load.ops_per_sec "$OUT/load.json")" -v o="$ops" -v c=$((c2-c1)) -v hz="$hz" -v wl="$wl" 'BEGIN{printf "%s load %.0f | %s %.0f ops/s, %.4f CPU s/1k\n", tag, lr, wl, o/25, c/hz*1000/o}'
