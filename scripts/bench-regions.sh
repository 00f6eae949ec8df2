#!/usr/bin/env bash
# Regions by the hundred thousand on a real fleet (make bench-regions): a fresh `make run`
# layout (1 PD + 3 store processes, ports 200 above make run's, data in a temporary
# directory) pre-split through PD into $REGIONS regions with `shoal-ctl presplit`, then:
#   - how long the split took and until every store held a peer of every region;
#   - per process, once the regions are idle: CPU (% of one core, from /proc/<pid>/stat) and
#     resident memory, with the stores' memory per peer above their fresh-fleet baseline;
#   - region heartbeats PD received per second while idle (PD's own counter);
#   - how long `shoal-ctl cluster` and PD's HTTP API take to answer;
#   - a store killed with SIGKILL and started again: until it prints STORE_READY (gRPC
#     serving) and the cluster takes a write and a read, until it runs every peer, and until
#     a client has written $PROBE_RECORDS records across the key space.
# Prints a markdown table and writes it to $BENCH_OUT/regions-$REGIONS.md.
#
# REGIONS (100000), SETTLE (seconds for the regions to go idle, 90), MEASURE (seconds of
# the idle measurement, 60), PROBE_RECORDS (2000), SHOAL_BIN (target/release, or
# $CARGO_TARGET_DIR/release),
# BENCH_OUT (bench-results), KEEP_DATA=1 keeps the fleet's data directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGIONS="${REGIONS:-100000}"
SETTLE="${SETTLE:-90}"
MEASURE="${MEASURE:-60}"
PROBE_RECORDS="${PROBE_RECORDS:-2000}"
OUT="$(realpath -m "${BENCH_OUT:-$ROOT/bench-results}")"
export SHOAL_BIN="${SHOAL_BIN:-$(cd "$ROOT" && realpath -m "${CARGO_TARGET_DIR:-target}/release")}"
export SHOAL_PORT_OFFSET="${SHOAL_PORT_OFFSET:-200}"
export SHOAL_DATA="${SHOAL_DATA:-$(mktemp -d /tmp/shoal-regions.XXXXXX)}"
source "$ROOT/scripts/fleet-env.sh"
mkdir -p "$OUT"
REPORT="$OUT/regions-$REGIONS.md"

cleanup() {
    bash "$ROOT/scripts/stop-fleet.sh" >/dev/null 2>&1 || true
    if [ "${KEEP_DATA:-0}" != 1 ]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

CLK_TCK="$(getconf CLK_TCK)"
CTL=("$BIN/shoal-ctl" --pd "$PD_GRPC" --pd-http "$PD_HTTP")
api() { curl -sf --max-time 30 "http://$PD_HTTP/pd/api/v1/$1"; }
pid_of() { live_pid "$PIDS/$1.pid"; }
# CPU ticks (user + system) of a pid.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# jemalloc's view of store $1's memory (shoal_allocator_bytes), in MiB: live allocations,
# the pages holding them, and resident pages (those plus jemalloc's metadata and freed pages
# not yet given back).
allocator_mib() {
    curl -sf --max-time 30 "http://$(store_status_addr "$1")/metrics" | awk '
        /^shoal_allocator_bytes\{kind="(allocated|active|resident)"\}/ {
            split($1, a, "\""); v[a[2]] = $2 / 1048576 }
        END { printf "allocated %.0f, active %.0f, resident %.0f MiB", v["allocated"], v["active"], v["resident"] }'
}
now_ms() { date +%s%3N; }
# PD's id of the store serving on address $1.
store_id_at() { api stores | jq -r --arg a "$1" '.stores[] | select(.store.address == $a) | .store.id'; }
# Region count of store id $1 in PD's latest view, and the unix seconds of its heartbeat.
store_regions() { api "store/$1" | jq -r '.status.region_count // 0'; }
pd_heartbeats() {
    api metrics | awk '/^shoal_pd_region_heartbeats_total/ {s += $2} END {print s + 0}'
}
# Waits (bounded) until "$@" succeeds; $1 seconds, $2 what is awaited.
wait_until() {
    local limit="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: no $what within ${limit}s" >&2
            exit 1
        fi
        sleep 1
    done
}

rows=()
row() { rows+=("| $1 | $2 |"); echo "$1: $2"; }

bash "$ROOT/scripts/run-fleet.sh"
names=(pd store1 store2 store3)
declare -A store_id
for i in 1 2 3; do store_id[store$i]="$(store_id_at "$(store_addr "$i")")"; done
declare -A base_rss
for n in "${names[@]}"; do base_rss[$n]="$(rss_kib "$(pid_of "$n")")"; done
# Every region led, with three voters (a learner still to be promoted does not count). The
# split waits for it, so every new region starts with three voters.
fully_replicated() {
    local summary
    summary="$(api regions/summary)" || return 1
    [ "$(jq -r --argjson want "${1:-0}" \
        '.peers == 3 * .count and .learners == 0 and .leaderless == 0 and .count >= $want' \
        <<<"$summary")" = true ]
}
wait_until 300 "three peers in every region before the split" fully_replicated
first="$(api regions/summary | jq -r .count)"

# 1. The split. Keys as YCSB numbers its records ("user" + 20 digits), evenly spread.
t0="$(now_ms)"
"${CTL[@]}" presplit --prefix user --digits 20 --max 18446744073709551615 \
    --regions "$REGIONS" --progress 2>"$LOGS/presplit.log" || {
    tail -n 5 "$LOGS/presplit.log" >&2
    exit 1
}
t1="$(now_ms)"
row "pre-split into $REGIONS regions (shoal-ctl presplit)" "$(( (t1 - t0) / 1000 )) s"
total=$((REGIONS - 1 + first))
every_store_has_all() {
    local n
    for n in store1 store2 store3; do
        [ "$(store_regions "${store_id[$n]}")" -ge "$total" ] || return 1
    done
}
wait_until 1800 "peer of every region on every store" every_store_has_all
t2="$(now_ms)"
row "until every store reported a peer of all $total regions" "$(( (t2 - t0) / 1000 )) s"
wait_until 1800 "three voters in each of $total regions" fully_replicated "$total"
t2="$(now_ms)"
row "until PD saw three voters (no learner) in each of them" "$(( (t2 - t0) / 1000 )) s"

# Split regions stay led where their parent was. PD spreads the leaders, a few transfers per
# scheduling round by default; for a bulk pre-split its limits are raised for the duration,
# as an operator would, then put back.
defaults="$(api config/schedule | jq -c '{"leader-schedule-limit", "schedule-interval"}')"
curl -sf -X POST "http://$PD_HTTP/pd/api/v1/config/schedule" \
    -d '{"leader-schedule-limit": 256, "schedule-interval": "100ms"}' >/dev/null
leaders_balanced() {
    local n spread
    spread="$(api stores | jq '[.stores[].status.leader_count] | max - min')" || return 1
    n="$(api regions/summary | jq .count)" || return 1
    [ "$spread" -le $((n / 20)) ]
}
wait_until 1800 "leaders spread over the stores" leaders_balanced
curl -sf -X POST "http://$PD_HTTP/pd/api/v1/config/schedule" -d "$defaults" >/dev/null
t3="$(now_ms)"
row "until the leaders were spread (within 5 %; PD's leader-schedule-limit 256 meanwhile)" \
    "$(( (t3 - t0) / 1000 )) s"

# 2. Idle: let elections, size checks and hibernation settle, then measure.
sleep "$SETTLE"
declare -A ticks0
for n in "${names[@]}"; do ticks0[$n]="$(cpu_ticks "$(pid_of "$n")")"; done
hb0="$(pd_heartbeats)"
w0="$(now_ms)"
sleep "$MEASURE"
w1="$(now_ms)"
hb1="$(pd_heartbeats)"
wall=$(( w1 - w0 ))
for n in "${names[@]}"; do
    pid="$(pid_of "$n")"
    used=$(( $(cpu_ticks "$pid") - ticks0[$n] ))
    cpu="$(awk -v t="$used" -v hz="$CLK_TCK" -v ms="$wall" 'BEGIN {printf "%.2f", 100 * t / hz / (ms / 1000)}')"
    rss="$(rss_kib "$pid")"
    if [ "$n" = pd ]; then
        row "PD idle CPU, RSS" "$cpu % of one core, $((rss / 1024)) MiB"
    else
        peers="$(store_regions "${store_id[$n]}")"
        per_peer="$(awk -v r="$rss" -v b="${base_rss[$n]}" -v p="$peers" 'BEGIN {printf "%.1f", (r - b) / p}')"
        row "$n idle CPU, RSS, RSS per peer above a fresh store" \
            "$cpu % of one core, $((rss / 1024)) MiB, $per_peer KiB ($peers peers)"
        row "$n jemalloc" "$(allocator_mib "${n#store}")"
    fi
done
row "region heartbeats PD received while idle" \
    "$(awk -v n="$((hb1 - hb0))" -v ms="$wall" 'BEGIN {printf "%.1f/s", n / (ms / 1000)}')"

# 3. Tools and the API.
timed() {
    local a b
    a="$(now_ms)"
    "$@" >/dev/null
    b="$(now_ms)"
    echo "$((b - a)) ms"
}
row "shoal-ctl cluster (100 regions, totals over all)" "$(timed "${CTL[@]}" cluster)"
row "GET /regions/summary" "$(timed api regions/summary)"
row "GET /regions/key?limit=100 (one page)" "$(timed api 'regions/key?key=&limit=100')"
row "GET /stores" "$(timed api stores)"
# The dashboard's region table: one page of 2,000, unfiltered and filtered by a key's text
# (every region's id and keys compared).
row "GET /regions/search?limit=2000 (the dashboard's table), unfiltered" \
    "$(timed api 'regions/search?limit=2000')"
row "GET /regions/search?limit=2000&q=user000001 (filtered)" \
    "$(timed api 'regions/search?limit=2000&q=user000001')"
row "GET /regions (all of them, unpaged)" "$(timed api regions)"

# 4. Restart of store 3 after SIGKILL.
victim="$(pid_of store3)"
kill -KILL "$victim"
while kill -0 "$victim" 2>/dev/null; do sleep 0.1; done
rm -f "$PIDS/store3.pid"
r0="$(now_ms)"
bash "$ROOT/scripts/run-fleet.sh" | grep -v '^pd\|^store[12]' || true
r1="$(now_ms)"
row "store3 restart: SIGKILL to STORE_READY and a cluster write + read" "$(( (r1 - r0) / 1000 )) s"
# The store's own count of the peers it runs (its status port's metrics).
store3_peers() {
    curl -sf --max-time 10 "http://$(store_status_addr 3)/metrics" |
        awk '/^shoal_raftstore_regions / {print int($2)}'
}
store3_all_peers() { [ "$(store3_peers)" -ge "$total" ] 2>/dev/null; }
wait_until 600 "store 3 running every peer" store3_all_peers
r2="$(now_ms)"
row "store3 restart: until it runs all $total peers (shoal_raftstore_regions)" \
    "$(( (r2 - r0) / 1000 )) s"
# Regions the killed store led have no leader until an election (10 s of election timeout);
# the probe runs until one pass writes every record with no request failing.
probe_clean() {
    "$BIN/shoal-bench" --pd "$PD_GRPC" --phase load --records "$PROBE_RECORDS" \
        --concurrency 32 --value-size 128 >"$LOGS/probe.log" 2>&1
}
wait_until 600 "a clean pass of $PROBE_RECORDS writes" probe_clean
r3="$(now_ms)"
row "store3 restart: until a pass of $PROBE_RECORDS writes across the key space has no error" \
    "$(( (r3 - r0) / 1000 )) s"

{
    echo "# $REGIONS regions on a fleet of 3 stores and PD"
    echo
    echo "| what | result |"
    echo "|---|---|"
    printf '%s\n' "${rows[@]}"
} >"$REPORT"
echo "wrote $REPORT"
