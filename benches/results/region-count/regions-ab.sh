#!/usr/bin/env bash
# Two fleets side by side, as interleave.sh starts them (binaries $1 on ports 100 above `make
# run`'s, $2 on ports 300 above; SCRIPTS_A / SCRIPTS_B pick another scripts directory, and so
# another fleet-store.toml). Each is loaded with $RECORDS records of 1 KiB (default 100,000),
# then YCSB-$WL (default A) runs for $4 on each fleet in turn, $3 rounds, the fleet that goes
# first alternating. Each run prints ops/s, the stores' CPU seconds per 1,000 operations and,
# per operation, how the write path's counters moved (summed over the fleet's three stores):
# raft proposals (one per batch of client writes a leader proposes), raft messages sent and
# received, entries written to the raft log and applied, and log fsyncs. Each load is followed
# by a wait until both fleets are quiet, so that no run shares the machine with a load's
# compactions; LOAD_ORDER="b a" loads fleet b first. Each load prints the stores' CPU per
# 1,000 inserts during it and during that wait.
# Example: RECORDS=1000000 SCRIPTS_B=/tmp/other/scripts bash regions-ab.sh target/release target/release 3 20s
set -uo pipefail
A="$1"; B="$2"; rounds="$3"; dur="$4"
ROOTD="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
declare -A DATA
start() { # name bins offset scripts
  local d; d="$(mktemp -d /tmp/shoal-ra.XXXXXX)"; DATA[$1]="$d"
  SHOAL_BIN="$2" SHOAL_PORT_OFFSET="$3" SHOAL_DATA="$d" bash "$4/run-fleet.sh" >/dev/null
}
stop_all() { for n in a b; do SHOAL_DATA="${DATA[$n]}" bash "$ROOTD/scripts/stop-fleet.sh" >/dev/null 2>&1; rm -rf "${DATA[$n]}"; done; }
trap stop_all EXIT
start a "$A" 100 "${SCRIPTS_A:-$ROOTD/scripts}"; start b "$B" 300 "${SCRIPTS_B:-$ROOTD/scripts}"
hz=$(getconf CLK_TCK)
pids() { cat "${DATA[$1]}"/pids/store*.pid; }
ticks() { local t=0 p; for p in $(pids $1); do t=$((t + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $t; }
off() { [ $1 = a ] && echo 100 || echo 300; }
pd() { echo "127.0.0.1:$((2379 + $(off $1)))"; }
bin() { [ $1 = a ] && echo "$A" || echo "$B"; }
counters() {
  local o i; o=$(off $1)
  for i in 1 2 3; do curl -s "http://127.0.0.1:$((20179 + o + i))/metrics"; done |
    awk '/^shoal_(server_raft_messages_(sent|received)_total|raftstore_log_writer_(fsyncs|entries)_total|raftstore_proposals_total|raftstore_applied_entries_total)/ {
      split($1, name, "{"); sum[name[1]] += $2 } END { for (k in sum) print k, sum[k] }' | sort
}
common="--api raw --records ${RECORDS:-100000} --concurrency 64 --value-size 1024 --seed 42 --json"
# Waits until both fleets' processes are quiet, by make bench's rule (scripts/bench-phases.sh,
# sourced in a subshell so its settings stay there); prints the seconds waited.
quiet_down() {
  (ROOT="$ROOTD"; source "$ROOTD/scripts/bench-phases.sh"
   SERVER_PIDS="$(cat "${DATA[a]}"/pids/*.pid "${DATA[b]}"/pids/*.pid | tr '\n' ' ')"; settle)
}
for n in ${LOAD_ORDER:-a b}; do
  c0=$(ticks $n)
  "$(bin $n)/shoal-bench" --pd "$(pd $n)" $common --phase load > "${DATA[$n]}/load.json" 2>/dev/null
  c1=$(ticks $n)
  # The next load (or the first run) starts once this load's compactions are done.
  quiet=$(quiet_down); c2=$(ticks $n)
  awk -v n=$n -v r="$(jq .load.ops_per_sec "${DATA[$n]}/load.json")" -v o="$(jq .load.total_ops "${DATA[$n]}/load.json")" \
      -v during=$((c1 - c0)) -v after=$((c2 - c1)) -v hz="$hz" -v q="$quiet" \
      'BEGIN {printf "%s load %.0f inserts/s, stores %.4f CPU s/1k during it + %.4f in the %s s until both fleets were quiet\n", n, r, during / hz * 1000 / o, after / hz * 1000 / o, q}'
done
for n in a b; do
  echo "$n regions: $(curl -s "http://127.0.0.1:$((2380 + $(off $n)))/pd/api/v1/regions/summary")"
done
for r in $(seq 1 "$rounds"); do
  order="a b"; [ $((r % 2)) = 0 ] && order="b a"
  for n in $order; do
    counters $n > "${DATA[$n]}/c0"; c0=$(ticks $n)
    "$(bin $n)/shoal-bench" --pd "$(pd $n)" $common --workload "${WL:-A}" --phase run --duration "$dur" > "${DATA[$n]}/run.json" 2>/dev/null
    c1=$(ticks $n); counters $n > "${DATA[$n]}/c1"
    ops=$(jq .run.total_ops "${DATA[$n]}/run.json"); rate=$(jq .run.ops_per_sec "${DATA[$n]}/run.json")
    awk -v n=$n -v r="$rate" -v o="$ops" -v c=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%s %.0f ops/s stores %.4f CPU s/1k |", n, r, c / hz * 1000 / o}'
    join "${DATA[$n]}/c0" "${DATA[$n]}/c1" | awk -v o="$ops" '{sub("shoal_", "", $1); sub("_total", "", $1); printf " %s %.2f", $1, ($3 - $2) / o} END {print ""}'
  done
done
for n in a b; do
  echo "$n regions at the end: $(curl -s "http://127.0.0.1:$((2380 + $(off $n)))/pd/api/v1/regions/summary")"
done
