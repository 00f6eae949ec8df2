#!/usr/bin/env bash
# Regions by the hundred thousand on a real fleet (make bench-regions): a fresh `make run`
# layout (1 PD + 3 store processes, ports 200 above make run's, data in a temporary
# directory) pre-split through PD into $REGIONS regions with `shoal-ctl presplit`, then:
#   - how long the split took and until every store held a peer of every region;
#   - per process, once the regions are idle: CPU (% of one core, from /proc/<pid>/stat) and
#     resident memory, with the stores' memory per peer above their fresh-fleet baseline;
#   - region heartbeats PD received per second while idle (PD's own counter);
#   - how long `shoal-ctl cluster` and PD's HTTP API take to answer;
#   - a store killed with SIGKILL and started again: until it prints STORE_READY (every peer
#     loaded, gRPC serving), until PD has its heartbeat with every region counted, and until
#     a client has written $PROBE_RECORDS records across the key space.
# Prints a markdown table and writes it to $BENCH_OUT/regions-$REGIONS.md.
#
# REGIONS (100000), SETTLE (seconds for the regions to go idle, 90), MEASURE (seconds of
# the idle measurement, 60), PROBE_RECORDS (2000), SHOAL_BIN (target/release),
# BENCH_OUT (bench-results), KEEP_DATA=1 keeps the fleet's data directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGIONS="${REGIONS:-100000}"
SETTLE="${SETTLE:-90}"
MEASURE="${MEASURE:-60}"
PROBE_RECORDS="${PROBE_RECORDS:-2000}"
OUT="$(realpath -m "${BENCH_OUT:-$ROOT/bench-results}")"
export SHOAL_BIN="${SHOAL_BIN:-$ROOT/target/release}"
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
now_ms() { date +%s%3N; }
# Region count of store $1 in PD's latest view, and the unix seconds of its heartbeat.
store_regions() { api "store/$1" | jq -r '.status.region_count // 0'; }
store_heartbeat_ts() { api "store/$1" | jq -r '.status.last_heartbeat_ts // 0'; }
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
declare -A base_rss
for n in "${names[@]}"; do base_rss[$n]="$(rss_kib "$(pid_of "$n")")"; done
first="$(api regions/summary | jq -r .count)"

# 1. The split. Keys as YCSB numbers its records ("user" + 20 digits), evenly spread.
t0="$(now_ms)"
"${CTL[@]}" presplit --prefix user --digits 20 --max 18446744073709551615 \
    --regions "$REGIONS" --progress 2> >(awk 'NR % 20 == 0' >&2)
t1="$(now_ms)"
row "pre-split into $REGIONS regions (shoal-ctl presplit)" "$(( (t1 - t0) / 1000 )) s"
total=$((REGIONS - 1 + first))
every_store_has_all() {
    local s
    for s in 1 2 3; do
        [ "$(store_regions "$s")" -ge "$total" ] || return 1
    done
}
wait_until 1800 "peer of every region on every store" every_store_has_all
t2="$(now_ms)"
row "until every store reported a peer of all $total regions" "$(( (t2 - t0) / 1000 )) s"

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
        peers="$(store_regions "${n#store}")"
        per_peer="$(awk -v r="$rss" -v b="${base_rss[$n]}" -v p="$peers" 'BEGIN {printf "%.1f", (r - b) / p}')"
        row "$n idle CPU, RSS, RSS per peer above a fresh store" \
            "$cpu % of one core, $((rss / 1024)) MiB, $per_peer KiB ($peers peers)"
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
row "GET /regions (all of them, unpaged)" "$(timed api regions)"

# 4. Restart of store 3 after SIGKILL.
victim="$(pid_of store3)"
kill -KILL "$victim"
while kill -0 "$victim" 2>/dev/null; do sleep 0.1; done
rm -f "$PIDS/store3.pid"
r0="$(now_ms)"
r0_secs=$((r0 / 1000))
bash "$ROOT/scripts/run-fleet.sh" | grep -v '^pd\|^store[12]' || true
r1="$(now_ms)"
row "store3 restart: SIGKILL to STORE_READY and a cluster write + read" "$(( (r1 - r0) / 1000 )) s"
store3_counted() {
    [ "$(store_heartbeat_ts 3)" -gt "$r0_secs" ] && [ "$(store_regions 3)" -ge "$total" ]
}
wait_until 600 "store 3 heartbeat counting every region" store3_counted
r2="$(now_ms)"
row "store3 restart: until PD counts its $total peers" "$(( (r2 - r0) / 1000 )) s"
"$BIN/shoal-bench" --pd "$PD_GRPC" --phase load --records "$PROBE_RECORDS" \
    --concurrency 32 --value-size 128 >"$DATA/probe.log" 2>&1
r3="$(now_ms)"
row "store3 restart: until $PROBE_RECORDS records across the key space are written" \
    "$(( (r3 - r0) / 1000 )) s"

{
    echo "# $REGIONS regions on a fleet of 3 stores and PD"
    echo
    echo "| what | result |"
    echo "|---|---|"
    printf '%s\n' "${rows[@]}"
} >"$REPORT"
echo "wrote $REPORT"
