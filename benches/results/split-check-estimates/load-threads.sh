#!/usr/bin/env bash
# Where the stores' CPU goes during a load: starts a fleet from the binaries in $1 and the
# scripts directory $2 (its fleet-store.toml) on ports 500 above `make run`'s, loads $RECORDS
# records of 1 KiB (default 100,000) and prints, per kind of thread (summed over the three
# stores and PD, pool indexes dropped), the CPU time and context switches per insert, from
# /proc, and the bench's own CPU.
# Example: RECORDS=1000000 bash load-threads.sh target/release scripts
SKIP_LOAD=1 source "$(dirname "${BASH_SOURCE[0]}")/../region-count/loaded-fleet.sh"
threads() {
  local pid task
  for pid in $(store_pids) $(cat "$data"/pids/pd*.pid 2>/dev/null); do
    for task in /proc/$pid/task/*; do
      echo "$(cat $task/comm | tr ' ' '_') $(sed 's/.*) //' $task/stat | awk '{print $12 + $13}') $(awk '/^voluntary/ {v = $2} /^nonvoluntary/ {n = $2} END {print v, n}' $task/status)"
    done
  done | awk '{sub(/-[0-9]+(-[0-9]+)?$/, "", $1); t[$1] += $2; v[$1] += $3; n[$1] += $4} END {for (k in t) print k, t[k], v[k], n[k]}' | sort
}
threads > "$data/t0"
/usr/bin/time -f "bench %U user %S sys %e wall" "$bins/shoal-bench" $common --phase load > "$data/load.json" 2> "$data/bench.err"
threads > "$data/t1"
ops=$(jq .load.total_ops "$data/load.json")
echo "load $(jq .load.ops_per_sec "$data/load.json" | xargs printf '%.0f') ops/s, $ops ops; $(grep '^bench' $data/bench.err)"
join "$data/t0" "$data/t1" | awk -v o="$ops" -v hz="$(getconf CLK_TCK)" '{printf "%-16s %6.1f us CPU per op, %.2f vol %.2f invol cs per op\n", $1, ($5 - $2) / hz * 1e6 / o, ($6 - $3) / o, ($7 - $4) / o}' | sort -k2 -rn
