#!/usr/bin/env bash
# One run of the hot-region experiment: a fresh fleet from $SHOAL_BIN (default
# target/release), the YCSB load (100,000 x 1 KiB, 64 clients), then workload A for
# $DURATION (default 240s) with the per-second timeline, then what PD shows: the data
# regions with their leaders and measured rates, the finished operators, and each store's CPU
# over the last 60 s of A. Output in $OUT (default ./hot-region-run). HOT_SCHEDULER=off turns
# PD's hot-region scheduler off through its HTTP API before the load, for a control run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
OUT="$(realpath -m "${OUT:-./hot-region-run}")"
DURATION="${DURATION:-240s}"
export SHOAL_PORT_OFFSET="${SHOAL_PORT_OFFSET:-100}"
SHOAL_DATA="$(mktemp -d "${TMPDIR:-/tmp}/shoal-hot.XXXXXX")"
export SHOAL_DATA
source "$ROOT/scripts/fleet-env.sh"
cleanup() {
    bash "$ROOT/scripts/stop-fleet.sh" >/dev/null || true
    rm -rf "$SHOAL_DATA"
}
trap cleanup EXIT
mkdir -p "$OUT"
bash "$ROOT/scripts/run-fleet.sh" >/dev/null
if [ "${HOT_SCHEDULER:-on}" = off ]; then
    curl -sf -X POST -d '{"enable-hot-region-scheduler": false}' \
        "http://$PD_HTTP/pd/api/v1/config/schedule" >/dev/null
fi
common=(--pd "$PD_GRPC" --api raw --records 100000 --concurrency 64 --value-size 1024 --seed 42 --json)
"$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/load.json"
"$BIN/shoal-bench" "${common[@]}" --workload A --phase run --duration "$DURATION" \
    >"$OUT/A.json" &
bench=$!
secs="$(echo "$DURATION" | tr -dc '0-9')"
sleep $((secs - 60))
cpu() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
declare -A before
for f in "$PIDS"/store*.pid; do before[$f]="$(cpu "$(cat "$f")")"; done
sleep 60
for f in "$PIDS"/store*.pid; do
    after="$(cpu "$(cat "$f")")"
    awk -v n="$(basename "$f" .pid)" -v a="$after" -v b="${before[$f]}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%s: %.0f %% of a core over the last 60 s\n", n, (a - b) / hz / 60 * 100 }'
done >"$OUT/store-cpu.txt"
wait "$bench"
curl -sf "http://$PD_HTTP/pd/api/v1/regions" | jq -c '.regions[]
    | select((.approximate_keys // 0) > 1000 or .flow_rate != null)
    | {id, start_key, end_key, leader_store: .leader.store_id, approximate_keys, flow_rate}' \
    >"$OUT/regions.jsonl"
curl -sf "http://$PD_HTTP/pd/api/v1/operators" | jq -c '.operators[]
    | select(.kind != "admin") | {region_id, kind, desc, status}' >"$OUT/operators.jsonl"
cat "$OUT/store-cpu.txt"
echo "A: $(jq -r ".run.ops_per_sec | floor" "$OUT/A.json") ops/s; results in $OUT"
