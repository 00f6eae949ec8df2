#!/usr/bin/env bash
# make bench-bank: a fresh local fleet (1 PD + 3 stores, started and stopped as make bench
# does it), then shoal-bench's bank once per transaction mode against it. Each run writes the
# accounts with their starting balance, runs transfers (one transaction each, not retried on
# conflicts) and reads every account in one snapshot to check the total. Results in
# bench-results/: shoal-bank-<mode>.json, shoal-bank-summary.md (the phase table and a bank
# table: transfers/s, aborts/s, p50/p99, check), shoal-bank.png. The fleet is stopped and its
# directory removed at the end, also on failure or Ctrl-C.
#
# Settings: BENCH_TXN_MODES (default "optimistic pessimistic async 1pc"), BENCH_ACCOUNTS
# (1000), BENCH_DURATION (30s per mode), BENCH_CLIENTS (16), BENCH_OUT (bench-results).
# Exits with 1 when a mode's requests failed or its check did not add up (the other modes
# still run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${BENCH_OUT:-$ROOT/bench-results}")"
MODES="${BENCH_TXN_MODES:-optimistic pessimistic async 1pc}"
ACCOUNTS="${BENCH_ACCOUNTS:-1000}"
DURATION="${BENCH_DURATION:-30s}"
CLIENTS="${BENCH_CLIENTS:-16}"

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

mkdir -p "$OUT"
runs=()
failed=()
for mode in $MODES; do
    json="$OUT/shoal-bank-$mode.json"
    echo "== bank, $mode: $ACCOUNTS accounts, $DURATION, $CLIENTS clients"
    # The load (re)writes every account with its starting balance, so each mode starts even.
    if ! "$BIN/shoal-bench" --pd "$PD_GRPC" --workload bank --api txn --txn-mode "$mode" \
        --accounts "$ACCOUNTS" --duration "$DURATION" --concurrency "$CLIENTS" --seed 42 \
        --json >"$json"; then
        failed+=("$mode")
    fi
    [ -s "$json" ] && runs+=("$json")
done
if [ "${#runs[@]}" -gt 0 ]; then
    "$BIN/shoal-bench" table "${runs[@]}" | tee "$OUT/shoal-bank-summary.md"
    "$BIN/shoal-bench" plot --out "$OUT/shoal-bank.png" "${runs[@]}"
fi
echo "results: $OUT (shoal-bank-*.json, shoal-bank-summary.md, shoal-bank.png)"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: requests failed or the check did not add up in: ${failed[*]}" >&2
    exit 1
fi
