#!/usr/bin/env bash
# One run of a pair: a fresh fleet from the binaries in $1, 100,000 records of 1 KiB loaded with
# 64 clients, then 30 s of YCSB-A. Prints one line: load and A ops/s, the stores' CPU seconds
# per 1,000 operations (from /proc), the raft messages the three stores sent to each other per
# insert and per A operation (shoal_server_raft_messages_sent_total from their status ports),
# and, over 5 s in the middle of the load, the stores' context switches per insert (perf stat).
#
# Usage: benches/results/commit-broadcast/pairs.sh <bin-dir> <tag>   (run as root for perf stat)
# The pairs in README.md ran old/new alternately, each directory holding shoal-server,
# shoal-pd, shoal-ctl and shoal-bench built from the commit before and the commit of the change.
set -euo pipefail
export SHOAL_BIN="$1"
tag="$2"
source "$(dirname "${BASH_SOURCE[0]}")/../pair-fleet.sh"

raft_messages_sent() {
    local i t=0 n
    for i in 1 2 3; do
        n="$(curl -sf "http://$(store_status_addr "$i")/metrics" |
            awk '$1 == "shoal_server_raft_messages_sent_total" { print $2 }')"
        t=$((t + ${n:-0}))
    done
    echo "$t"
}

c0="$(cpu_ticks)"
m0="$(raft_messages_sent)"
"$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/load.json" 2>/dev/null &
bench=$!
sleep 3
perf stat -e 'context-switches' -p "$(store_pids | paste -sd,)" -o "$OUT/stat" -- sleep 5
wait "$bench"
c1="$(cpu_ticks)"
m1="$(raft_messages_sent)"
"$BIN/shoal-bench" "${common[@]}" --workload A --phase run --duration 30s >"$OUT/A.json" 2>/dev/null
c2="$(cpu_ticks)"
m2="$(raft_messages_sent)"

load_rate="$(jq .load.ops_per_sec "$OUT/load.json")"
a_ops="$(jq .run.total_ops "$OUT/A.json")"
switches="$(awk '/context-switches/ { print $1 }' "$OUT/stat" | tr -d ,)"
awk -v tag="$tag" -v lr="$load_rate" -v lc=$((c1 - c0)) -v ao="$a_ops" -v ac=$((c2 - c1)) \
    -v hz="$hz" -v lm=$((m1 - m0)) -v am=$((m2 - m1)) -v cs="$switches" 'BEGIN {
        printf "%s load %.0f ops/s, %.3f CPU s/1k, %.2f raft msgs/insert, %.2f ctx switches/insert | A %.0f ops/s, %.3f CPU s/1k, %.2f raft msgs/op\n",
            tag, lr, lc / hz / 100, lm / 100000, cs / (lr * 5), ao / 30, ac / hz * 1000 / ao, am / ao
    }'
