#!/usr/bin/env bash
# Network system calls per second of each store and of the bench during a YCSB run (default C):
# starts a fleet from the binaries in $1 (ports 500 above `make run`'s, see
# ../region-count/loaded-fleet.sh), loads $RECORDS records of 1 KiB (default 100,000), and
# counts with perf stat over 10 s of a 25 s run, then prints the run's rate.
# Example: WORKLOAD=C bash syscalls-client.sh target/release
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../region-count/loaded-fleet.sh" "$1" "$here/../../../scripts"
"$bins/shoal-bench" $common --workload "${WORKLOAD:-C}" --phase run --duration 25s > "$data/run.json" 2>/dev/null &
sleep 8
bench_pid=$(pgrep -n -f "shoal-bench.*--phase run")
events=syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,context-switches
for p in $(store_pids) "$bench_pid"; do
  perf stat -x, -e "$events" -p "$p" -o "$data/stat.$p" -- sleep 10 &
done
wait
for p in $(store_pids) "$bench_pid"; do
  kind=store; [ "$p" = "$bench_pid" ] && kind=bench
  echo "$kind $p"
  grep -v '^#' "$data/stat.$p" | awk -F, 'NF > 2 && $1 >= 100 {printf "  %8.0f/s %s\n", $1 / 10, $3}'
done
echo "YCSB-${WORKLOAD:-C} $(jq .run.ops_per_sec "$data/run.json" | xargs printf '%.0f') ops/s"
