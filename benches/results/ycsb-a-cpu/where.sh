#!/usr/bin/env bash
# Where a YCSB-A run's CPU goes, machine-wide: starts a fleet from the binaries in $1 (ports 500
# above `make run`'s, see ../region-count/loaded-fleet.sh), loads $RECORDS records of 1 KiB
# (default 100,000) and runs YCSB-A for 40 s. From the 8th second it samples, over 10 s:
# the machine's user / system / idle / iowait shares (vmstat), each store's fdatasync calls and
# context switches per second (perf stat), and with PERF=1 a flat profile of the stores
# (perf record -F 499, 10 s; the 25 hottest symbols and the share of the kernel's). At the
# end it prints the CPU each store, PD and the bench used per operation (from /proc). $2 picks
# another scripts directory (its fleet-store.toml), as in ../region-count/threads.sh.
# WORKLOAD=C (or B, ...) runs that workload instead of A.
# Example: PERF=1 bash where.sh target/release
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../region-count/loaded-fleet.sh" "$1" "${2:-$here/../../../scripts}"
hz=$(getconf CLK_TCK)
ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
procs="$(store_pids) $(cat "$data"/pids/pd*.pid)"
declare -A t0
for p in $procs; do t0[$p]=$(ticks "$p"); done
/usr/bin/time -f "%U %S" -o "$data/bench-time" "$bins/shoal-bench" $common --workload "${WORKLOAD:-A}" --phase run --duration 40s > "$data/run.json" 2>/dev/null &
sleep 8
for p in $(store_pids); do
  perf stat -x, -e syscalls:sys_enter_fdatasync,context-switches -p "$p" -o "$data/stat.$p" -- sleep 10 &
done
[ -n "${PERF:-}" ] && perf record -F 499 -o "$data/perf.data" -p "$(store_pids | paste -sd,)" -- sleep 10 >/dev/null 2>&1 &
vmstat 2 6 | tail -5 | awk '{us += $13; sy += $14; id += $15; wa += $16} END {printf "machine: user %.0f %%, system %.0f %%, idle %.0f %%, iowait %.0f %%\n", us / NR, sy / NR, id / NR, wa / NR}'
wait
ops=$(jq .run.total_ops "$data/run.json")
echo "YCSB-${WORKLOAD:-A} $(jq .run.ops_per_sec "$data/run.json" | xargs printf '%.0f') ops/s over 40 s"
for p in $procs; do
  kind=store; grep -qx "$p" <(cat "$data"/pids/pd*.pid) && kind=pd
  awk -v k=$kind -v p=$p -v a="${t0[$p]}" -v b="$(ticks "$p")" -v o="$ops" -v hz="$hz" \
    'BEGIN {printf "%-5s %-8s %5.1f us CPU per op\n", k, p, (b - a) / hz * 1e6 / o}'
done
awk -v o="$ops" '{printf "bench          %5.1f us CPU per op\n", ($1 + $2) * 1e6 / o}' "$data/bench-time"
for p in $(store_pids); do
  grep -v '^#' "$data/stat.$p" | awk -F, -v p=$p 'NF > 2 {v[$3] = $1 / 10} END {printf "store %-8s %5.0f fdatasync/s %6.0f context switches/s\n", p, v["syscalls:sys_enter_fdatasync"], v["context-switches"]}'
done
if [ -n "${PERF:-}" ]; then
  perf report -i "$data/perf.data" --sort sym --stdio 2>/dev/null | grep -v '^#' | grep '%' > "$data/syms"
  awk '$2 == "[k]" {s += $1} END {printf "kernel: %.1f %% of the samples\n", s}' "$data/syms"
  head -25 "$data/syms"
fi
