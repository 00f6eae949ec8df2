#!/usr/bin/env bash
# Where a fleet's CPU goes, by thread kind: starts a fleet from the binaries in $1 and the
# scripts directory $2 (its fleet-store.toml) on ports 500 above `make run`'s, loads $RECORDS
# records of 1 KiB (default 100,000), runs YCSB-$WL (default A) for 40 s, and prints for each
# kind of store thread (summed over the three stores, pool indexes dropped) the CPU time and
# the voluntary and involuntary context switches per operation, from /proc.
# Example: bash threads.sh target/release scripts
source "$(dirname "${BASH_SOURCE[0]}")/loaded-fleet.sh"
# kind, CPU ticks, voluntary and involuntary switches, summed over the stores' threads
threads() {
  local pid task
  for pid in $(store_pids); do
    for task in /proc/$pid/task/*; do
      echo "$(cat $task/comm) $(sed 's/.*) //' $task/stat | awk '{print $12 + $13}') $(awk '/^voluntary/ {v = $2} /^nonvoluntary/ {n = $2} END {print v, n}' $task/status)"
    done
  done | awk '{sub(/-[0-9]+(-[0-9]+)?$/, "", $1); t[$1] += $2; v[$1] += $3; n[$1] += $4} END {for (k in t) print k, t[k], v[k], n[k]}' | sort
}
threads > "$data/t0"
"$bins/shoal-bench" $common --workload "${WL:-A}" --phase run --duration 40s > "$data/run.json" 2>/dev/null
threads > "$data/t1"
ops=$(jq .run.total_ops "$data/run.json")
echo "YCSB-${WL:-A} $(jq .run.ops_per_sec "$data/run.json" | xargs printf '%.0f') ops/s over 40 s"
join "$data/t0" "$data/t1" | awk -v o="$ops" -v hz="$(getconf CLK_TCK)" '{printf "%-13s %5.1f us CPU per op, %.2f voluntary and %.2f involuntary context switches per op\n", $1, ($5 - $2) / hz * 1e6 / o, ($6 - $3) / o, ($7 - $4) / o}' | sort -k2 -rn
