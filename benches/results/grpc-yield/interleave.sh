#!/usr/bin/env bash
# Two fleets side by side: the binaries in $1 on ports 100 above `make run`'s, those in $2 on
# ports 300 above. Each is loaded with $RECORDS records of 1 KiB (default 100,000), then every
# workload of $3 (e.g. "C A") runs for $5 on each fleet in turn, $4 rounds, the fleet that goes
# first alternating by round. Prints ops/s and the stores' and the bench's CPU seconds per
# 1,000 operations of every run, and each fleet's leaders per store. BENCH_BIN picks one shoal-bench for both
# fleets (default: each fleet's own). SCRIPTS_A / SCRIPTS_B start that fleet with the
# run-fleet.sh (and so the fleet-store.toml) of another scripts directory, to compare configs.
# Example: RECORDS=1000000 BENCH_BIN=target/release bash interleave.sh old/ new/ "C A" 4 20s
set -uo pipefail
A="$1"; B="$2"; wls="$3"; rounds="$4"; dur="$5"
ROOTD="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
declare -A DATA
start() { # name bins offset scripts
  local d; d="$(mktemp -d /tmp/shoal-il.XXXXXX)"; DATA[$1]="$d"
  SHOAL_BIN="$2" SHOAL_PORT_OFFSET="$3" SHOAL_DATA="$d" bash "$4/run-fleet.sh" >/dev/null
}
stop_all() { for n in a b; do SHOAL_DATA="${DATA[$n]}" SHOAL_PORT_OFFSET=0 bash $ROOTD/scripts/stop-fleet.sh >/dev/null 2>&1; rm -rf "${DATA[$n]}"; done; }
trap stop_all EXIT
start a "$A" 100 "${SCRIPTS_A:-$ROOTD/scripts}"; start b "$B" 300 "${SCRIPTS_B:-$ROOTD/scripts}"
hz=$(getconf CLK_TCK)
pids() { cat "${DATA[$1]}"/pids/store*.pid; }
ticks() { local t=0 p; for p in $(pids $1); do t=$((t + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $t; }
pd() { [ $1 = a ] && echo 127.0.0.1:2479 || echo 127.0.0.1:2679; }
bin() { [ $1 = a ] && echo "$A" || echo "$B"; }
common="--api raw --records ${RECORDS:-100000} --concurrency 64 --value-size 1024 --seed 42 --json"
for n in a b; do ${BENCH_BIN:-$(bin $n)}/shoal-bench --pd $(pd $n) $common --phase load > /tmp/il-load-$n.json 2>/dev/null; echo "$n load $(jq .load.ops_per_sec /tmp/il-load-$n.json)"; done
leaders() { local off; [ $1 = a ] && off=100 || off=300; for i in 1 2 3; do curl -s "http://127.0.0.1:$((20179 + off + i))/metrics" | awk '/^shoal_raftstore_leaders /{printf "%s ", $2}'; done; echo; }
for n in a b; do echo "$n leaders per store: $(leaders $n)"; done
if [ -n "${PAUSE:-}" ]; then sleep "$PAUSE"; fi
for r in $(seq 1 $rounds); do
 for wl in $wls; do
  order="a b"; [ $((r % 2)) = 0 ] && order="b a"
  for n in $order; do
    c0=$(ticks $n)
    /usr/bin/time -f "%U %S" -o /tmp/il-time ${BENCH_BIN:-$(bin $n)}/shoal-bench --pd $(pd $n) $common --workload $wl --phase run --duration $dur > /tmp/il-r.json 2>/dev/null
    c1=$(ticks $n)
    ops=$(jq .run.total_ops /tmp/il-r.json); rate=$(jq .run.ops_per_sec /tmp/il-r.json)
    bcpu=$(awk '{print $1+$2}' /tmp/il-time)
    awk -v n=$n -v r=$rate -v o=$ops -v c=$((c1-c0)) -v hz=$hz -v b=$bcpu 'BEGIN{printf "%s %s %.0f ops/s stores %.4f CPU s/1k bench %.4f CPU s/1k\n", n, "'$wl'", r, c/hz*1000/o, b*1000/o}'
  done
 done
done
for n in a b; do echo "$n leaders per store at the end: $(leaders $n)"; done
