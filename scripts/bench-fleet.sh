#!/usr/bin/env bash
# make bench: a fresh local fleet (1 PD + 3 stores) in a temporary directory, the YCSB load and
# workloads A, B, C and E against it with fixed parameters, results in bench-results/ (one JSON
# per phase, a markdown table, a PNG of throughput and p99 over time); the fleet is stopped and
# its directory removed at the end, also on failure or Ctrl-C.
#
# BENCH_API=txn runs every operation, the load's inserts too, as one optimistic transaction
# (shoal-bench --api txn) instead of a raw request; its results are named shoal-txn-* so they
# sit beside the raw run's shoal-*. Write conflicts are reported as aborts. The BENCH_*
# settings of bench-phases.sh (records, duration, clients, value size, workloads) also apply.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bench-phases.sh"
API="${BENCH_API:-raw}"
case "$API" in
    raw) NAME=shoal ;;
    txn) NAME=shoal-txn ;;
    *) echo "error: BENCH_API must be raw or txn, not $API" >&2; exit 2 ;;
esac

# Ports 100 above make run's, so a running development fleet is left alone.
export SHOAL_PORT_OFFSET="${SHOAL_PORT_OFFSET:-100}"
SHOAL_DATA="$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench.XXXXXX")"
export SHOAL_DATA
source "$ROOT/scripts/fleet-env.sh"

cleanup() {
    bash "$ROOT/scripts/stop-fleet.sh" >/dev/null || true
    if [ -n "${KEEP_BENCH_DATA:-}" ]; then
        echo "fleet data kept in $SHOAL_DATA"
    else
        rm -rf "$SHOAL_DATA"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$ROOT/scripts/run-fleet.sh" | grep -v '^  try:\|^            \|^  stop:'

# The system under test: PD and the three stores.
SERVER_PIDS="$(cat "$PIDS"/*.pid | tr '\n' ' ')"
run_bench_phases "$NAME" --pd "$PD_GRPC" --api "$API"
# How PD's map looked at the end: the data's spread over regions, in the summary too.
if regions="$(curl -sf --max-time 10 "http://$PD_HTTP/pd/api/v1/regions/summary")"; then
    printf '\nRegions at the end (PD /regions/summary): %s\n' "$regions" | tee -a "$OUT/$NAME-summary.md"
fi
"$BIN/shoal-bench" plot --out "$OUT/$NAME-ycsb.png" "${bench_runs[@]}"
echo "results: $OUT ($NAME-*.json, $NAME-summary.md, $NAME-ycsb.png)"
if [ "$bench_failed" -ne 0 ]; then
    echo "error: some requests failed; see the tables above" >&2
    exit 1
fi
