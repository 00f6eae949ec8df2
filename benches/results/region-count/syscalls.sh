#!/usr/bin/env bash
# System calls and context switches per YCSB-A operation by kind of store thread: starts a fleet
# from the binaries in $1 and the scripts directory $2 on ports 500 above `make run`'s, loads
# $RECORDS records of 1 KiB (default 100,000), and counts with perf stat --per-thread over 10 s of a 25 s run.
# Example: bash syscalls.sh target/release scripts
source "$(dirname "${BASH_SOURCE[0]}")/loaded-fleet.sh"
"$bins/shoal-bench" $common --workload A --phase run --duration 25s > "$data/r.json" 2>/dev/null &
b=$!
sleep 8
perf stat --per-thread -e 'syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,syscalls:sys_enter_pread64,syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64,context-switches' -p "$(store_pids | paste -sd,)" -o "$data/stat" -- sleep 10
wait $b
r=$(jq .run.ops_per_sec "$data/r.json"); echo "ops/s $r"
awk -v r=$r '/syscalls|context/ {gsub(",","",$2); t=$1; sub(/-[0-9]+$/,"",t); sub(/-[0-9]+$/,"",t); sub(/-[0-9]+$/,"",t); k=t" "$3; s[k]+=$2} END {for (k in s) if (s[k]/(r*10) >= 0.005) printf "%-50s per op %.3f\n", k, s[k]/(r*10)}' "$data/stat" | sort
