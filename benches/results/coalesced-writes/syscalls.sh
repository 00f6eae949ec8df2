#!/usr/bin/env bash
# Usage: benches/results/coalesced-writes/syscalls.sh <bin-dir> <workload>   (as root, for perf stat)
# A fresh fleet, a 100,000-record load, then 15 s of the workload; over 5 s in its middle, the
# three stores' write, send and receive system calls and context switches per operation.
set -euo pipefail
export SHOAL_BIN="$1"; wl="$2"
source "$(dirname "${BASH_SOURCE[0]}")/../pair-fleet.sh"
"$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/load.json" 2>/dev/null
"$BIN/shoal-bench" "${common[@]}" --workload $wl --phase run --duration 15s >"$OUT/r.json" 2>/dev/null &
b=$!
sleep 5
perf stat -e 'syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,context-switches' -p "$(store_pids | paste -sd,)" -o "$OUT/stat" -- sleep 5
wait $b
r=$(jq .run.ops_per_sec "$OUT/r.json"); echo "ops/s $r"
awk -v r=$r '/syscalls|context/ {gsub(",","",$1); printf "%-40s %10d  per op %.3f\n", $2, $1, $1/(r*5)}' "$OUT/stat"
