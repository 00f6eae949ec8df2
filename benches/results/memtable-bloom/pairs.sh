#!/usr/bin/env bash
# One run of a pair: a fresh fleet from the binaries in $1 (shoal-server, shoal-pd, shoal-ctl,
# shoal-bench), 100,000 records of 1 KiB loaded with 64 clients, then 25 s of workload $3 (C
# by default). Prints one line: the load's ops/s, the workload's ops/s and the stores' CPU
# seconds per 1,000 operations (user + system, from /proc).
#
# Usage: benches/results/memtable-bloom/pairs.sh <bin-dir> <tag> [workload]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
export SHOAL_BIN="$1"; tag="$2"; wl="${3:-C}"
export SHOAL_PORT_OFFSET=100
SHOAL_DATA="$(mktemp -d /tmp/shoal-cp.XXXXXX)"; export SHOAL_DATA
OUT="$(mktemp -d /tmp/shoal-cpo.XXXXXX)"
source "$ROOT/scripts/fleet-env.sh"
trap 'bash "$ROOT/scripts/stop-fleet.sh" >/dev/null || true; rm -rf "$SHOAL_DATA" "$OUT"' EXIT
bash "$ROOT/scripts/run-fleet.sh" >/dev/null
common=(--pd "$PD_GRPC" --api raw --records 100000 --concurrency 64 --value-size 1024 --seed 42 --json)
store_pids() { local i; for i in 1 2 3; do live_pid "$PIDS/store$i.pid"; done; }
cpu_ticks() { local pid t=0; for pid in $(store_pids); do t=$((t + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}'))); done; echo "$t"; }
"$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/load.json" 2>/dev/null
c1="$(cpu_ticks)"
"$BIN/shoal-bench" "${common[@]}" --workload "$wl" --phase run --duration 25s >"$OUT/r.json" 2>/dev/null
c2="$(cpu_ticks)"
ops="$(jq .run.total_ops "$OUT/r.json")"
awk -v tag="$tag" -v lr="$(jq .load.ops_per_sec "$OUT/load.json")" -v o="$ops" -v c=$((c2-c1)) -v hz="$(getconf CLK_TCK)" -v wl="$wl" 'BEGIN{printf "%s load %.0f | %s %.0f ops/s, %.4f CPU s/1k\n", tag, lr, wl, o/25, c/hz*1000/o}'
