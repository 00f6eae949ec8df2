#!/usr/bin/env bash
# Time the stores' and the bench's threads spent running and waiting for a core (run queue),
# per thread name, over 8 s in the middle of a 100,000-record load on a fresh fleet, from
# /proc/<pid>/task/*/schedstat. Usage: bash runqueue.sh <bin-dir>
set -euo pipefail
export SHOAL_BIN="$1"
source "$(dirname "${BASH_SOURCE[0]}")/../pair-fleet.sh"
snap() { for p in $(store_pids) $(pgrep -f shoal-bench || true); do for t in /proc/$p/task/*; do n=$(cat $t/comm 2>/dev/null) || continue; s=$(cat $t/schedstat 2>/dev/null) || continue; echo "$n $s"; done; done | sed -E 's/-[0-9]+(-[0-9]+)? / /' | awk '{r[$1]+=$2; w[$1]+=$3; c[$1]+=$4} END {for (k in r) print k, r[k], w[k], c[k]}' | sort; }
"$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/load.json" 2>/dev/null &
sleep 3
s0="$(snap)"; sleep 8; s1="$(snap)"
wait
join <(echo "$s0") <(echo "$s1") | awk '{run=($5-$2)/1e6; wait=($6-$3)/1e6; n=$7-$4; if (n>0) printf "%-16s run %7.0f ms  rq-wait %7.0f ms  slices %7d  wait/slice %6.0f us\n", $1, run, wait, n, wait*1000/n}'
jq -c '.load | {ops_per_sec, p50: .operations.INSERT.p50_us}' "$OUT/load.json"
