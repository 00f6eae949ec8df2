#!/usr/bin/env bash
# Usage: benches/results/coalesced-writes/interleave.sh <bins-a> <bins-b> <workload> <rounds> <duration>
# Two fleets (bins $1 at offset 100, bins $2 at offset 300), each loaded with 100k records,
# then workload $3 alternately on each, $4 rounds of $5 each. Prints per-run ops/s and store CPU/1k.
set -uo pipefail
A="$1"; B="$2"; wl="$3"; rounds="$4"; dur="$5"
ROOTD="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
declare -A DATA
start() { # name bins offset
  local d; d="$(mktemp -d /tmp/shoal-il.XXXXXX)"; DATA[$1]="$d"
  SHOAL_BIN="$2" SHOAL_PORT_OFFSET="$3" SHOAL_DATA="$d" bash $ROOTD/scripts/run-fleet.sh >/dev/null
}
stop_all() { for n in a b; do SHOAL_DATA="${DATA[$n]}" SHOAL_PORT_OFFSET=0 bash $ROOTD/scripts/stop-fleet.sh >/dev/null 2>&1; rm -rf "${DATA[$n]}"; done; }
trap stop_all EXIT
start a "$A" 100; start b "$B" 300
hz=$(getconf CLK_TCK)
pids() { cat "${DATA[$1]}"/pids/store*.pid; }
ticks() { local t=0 p; for p in $(pids $1); do t=$((t + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $t; }
pd() { [ $1 = a ] && echo 127.0.0.1:2479 || echo 127.0.0.1:2679; }
bin() { [ $1 = a ] && echo "$A" || echo "$B"; }
common="--api raw --records 100000 --concurrency 64 --value-size 1024 --seed 42 --json"
for n in a b; do $(bin $n)/shoal-bench --pd $(pd $n) $common --phase load > /tmp/il-load-$n.json 2>/dev/null; echo "$n load $(jq .load.ops_per_sec /tmp/il-load-$n.json)"; done
for r in $(seq 1 $rounds); do
  for n in a b; do
    c0=$(ticks $n)
    $(bin $n)/shoal-bench --pd $(pd $n) $common --workload $wl --phase run --duration $dur > /tmp/il-r.json 2>/dev/null
    c1=$(ticks $n)
    ops=$(jq .run.total_ops /tmp/il-r.json); rate=$(jq .run.ops_per_sec /tmp/il-r.json)
    awk -v n=$n -v r=$rate -v o=$ops -v c=$((c1-c0)) -v hz=$hz 'BEGIN{printf "%s %s %.0f ops/s stores %.4f CPU s/1k\n", n, "'$wl'", r, c/hz*1000/o}'
  done
done
